//! `sdp sandbox ls|show|create|rm|pin|unpin|renew` over
//! `/api/sandboxes[/{name}]` (and `stale`, in [`super::checks`]).

use serde_json::{Value, json};

use crate::api::segment;
use crate::args::SandboxCommand;
use crate::output::{self, cell, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, command: SandboxCommand) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let path = |name: &str| format!("/api/sandboxes/{}", segment(name));
    let shown: Value = match command {
        SandboxCommand::Ls => {
            let list: Value = client.get("/api/sandboxes").await?;
            return show_list(ctx, &list);
        }
        SandboxCommand::Show { name } => client.get(&path(&name)).await?,
        SandboxCommand::Stale { name } => return super::checks::stale(ctx, &name).await,
        SandboxCommand::Create {
            name,
            template,
            environment,
            ttl_hours,
            pin,
        } => {
            let mut body = json!({ "name": name, "pinned": pin });
            if let Some(template) = template {
                body["template"] = json!(template);
            }
            if let Some(environment) = environment {
                body["environment"] = json!(environment);
            }
            if let Some(ttl) = ttl_hours {
                body["ttl_hours"] = json!(ttl);
            }
            client.post("/api/sandboxes", &body).await?
        }
        SandboxCommand::Rm { name } => {
            let report = client
                .send_empty(reqwest::Method::DELETE, &path(&name))
                .await?;
            if ctx.json() {
                output::print_json(&report)?;
            } else {
                eprintln!("Sandbox {name} is being torn down.");
            }
            return Ok(Exit::Ok);
        }
        SandboxCommand::Pin { name } => {
            client
                .patch(&path(&name), &json!({ "pinned": true }))
                .await?
        }
        SandboxCommand::Unpin { name } => {
            client
                .patch(&path(&name), &json!({ "pinned": false }))
                .await?
        }
        SandboxCommand::Renew { name, ttl_hours } => {
            let mut body = json!({ "renew": true });
            if let Some(ttl) = ttl_hours {
                body["ttl_hours"] = json!(ttl);
            }
            client.patch(&path(&name), &body).await?
        }
    };
    show_one(ctx, &shown)
}

fn show_list(ctx: &Ctx, list: &Value) -> Result<Exit, CliError> {
    if ctx.json() {
        output::print_json(list)?;
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["name"]),
                cell(&s["owner"]),
                cell(&s["template"]),
                cell(&s["expires_at"]),
                cell(&s["pinned"]),
                services(&s["services"]),
            ]
        })
        .collect();
    output::print(&render_table(
        &["name", "owner", "template", "expires", "pinned", "services"],
        &rows,
    ))?;
    Ok(Exit::Ok)
}

/// `users:running,orders:failed`
fn services(services: &Value) -> String {
    let list: Vec<String> = services
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}:{}", cell(&s["repo"]), cell(&s["status"])))
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(",")
    }
}

fn show_one(ctx: &Ctx, sandbox: &Value) -> Result<Exit, CliError> {
    if ctx.json() {
        output::print_json(sandbox)?;
        return Ok(Exit::Ok);
    }
    let mut text = String::new();
    for (label, key) in [
        ("name", "name"),
        ("owner", "owner"),
        ("template", "template"),
        ("environment", "effective_environment"),
        ("expires", "expires_at"),
        ("pinned", "pinned"),
        ("gateway", "gateway_url"),
        ("preview", "preview_url"),
    ] {
        if label == "preview" && sandbox[key].is_null() {
            continue;
        }
        text.push_str(&format!("{label:<12} {}\n", cell(&sandbox[key])));
    }
    let services: Vec<Vec<String>> = sandbox["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["repo"]),
                cell(&s["branch"]),
                cell(&s["status"]),
                cell(&s["deployment_id"]),
                cell(&s["url"]),
            ]
        })
        .collect();
    if !services.is_empty() {
        text.push('\n');
        text.push_str(&render_table(
            &["service", "branch", "status", "deployment", "url"],
            &services,
        ));
    }
    if let Some(routes) = sandbox["routes"].as_array().filter(|r| !r.is_empty()) {
        text.push('\n');
        text.push_str(&super::routes::table(routes));
    }
    output::print(&text)?;
    Ok(Exit::Ok)
}
