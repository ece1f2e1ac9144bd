//! `sdp sandbox stale NAME` (`GET /api/sandboxes/{name}/staleness`) and
//! `sdp routes check SANDBOX` (`POST /api/sandboxes/{name}/probe`): checks
//! the control plane asks of agents. Both exit 0 when they could check;
//! what they found is in the output (`-o json`: `state` per service, `ok`
//! per route).

use serde_json::{Value, json};

use crate::api::segment;
use crate::output::{self, cell, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn stale(ctx: &Ctx, sandbox: &str) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let answer: Value = client
        .get(&format!("/api/sandboxes/{}/staleness", segment(sandbox)))
        .await?;
    if ctx.json() {
        output::print_json(&answer)?;
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = answer["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["repo"]),
                cell(&s["branch"]),
                short(&s["deployed_commit"]),
                short(&s["head"]),
                staleness(s),
            ]
        })
        .collect();
    output::print(&render_table(
        &["service", "branch", "deployed", "head", "state"],
        &rows,
    ))?;
    Ok(Exit::Ok)
}

pub async fn check_routes(ctx: &Ctx, sandbox: &str) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let report: Value = client
        .post(
            &format!("/api/sandboxes/{}/probe", segment(sandbox)),
            &json!({}),
        )
        .await?;
    if ctx.json() {
        output::print_json(&report)?;
        return Ok(Exit::Ok);
    }
    let paint = ctx.paint;
    let rows: Vec<Vec<String>> = report["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let (state, detail) = if r["ok"] == true {
                let latency = r["latency_ms"]
                    .as_u64()
                    .map_or_else(String::new, |ms| format!(" {ms} ms"));
                (
                    paint.green("ok"),
                    format!("HTTP {}{latency}", cell(&r["status"])),
                )
            } else {
                (
                    paint.red("broken"),
                    format!("{}: {}", cell(&r["hop"]), cell(&r["error"])),
                )
            };
            vec![
                cell(&r["service"]),
                cell(&r["source"]),
                cell(&r["target"]),
                state,
                detail,
            ]
        })
        .collect();
    output::print(&render_table(
        &["service", "source", "target", "check", "detail"],
        &rows,
    ))?;
    Ok(Exit::Ok)
}

/// `up to date`, `behind by 2`, `branch moved`, `unknown: <reason>`.
fn staleness(service: &Value) -> String {
    match service["state"].as_str() {
        Some("up_to_date") => "up to date".to_owned(),
        Some("behind") => match service["behind"].as_u64() {
            Some(n) if n > 0 => format!("behind by {n}"),
            _ => "branch moved".to_owned(),
        },
        _ => format!("unknown: {}", cell(&service["reason"])),
    }
}

/// The first 12 hex digits of a commit, `-` when null.
fn short(commit: &Value) -> String {
    commit
        .as_str()
        .map_or_else(|| "-".to_owned(), |c| c.chars().take(12).collect())
}
