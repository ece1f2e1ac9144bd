//! `sdp routes SANDBOX`, `routes set SANDBOX SERVICE TARGET`,
//! `routes reset SANDBOX SERVICE` over `/api/sandboxes/{name}/routes`
//! (and `routes check SANDBOX`, in [`super::checks`]).

use serde_json::{Value, json};

use crate::api::segment;
use crate::args::{RoutesAction, RoutesArgs};
use crate::output::{self, cell, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: RoutesArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let sandbox = match args.action {
        None => args
            .sandbox
            .ok_or_else(|| CliError::Usage("name a sandbox: sdp routes SANDBOX".to_owned()))?,
        Some(RoutesAction::Set {
            sandbox,
            service,
            target,
        }) => {
            let _: Value = client
                .put(
                    &format!(
                        "/api/sandboxes/{}/routes/{}",
                        segment(&sandbox),
                        segment(&service)
                    ),
                    &json!({ "target": target }),
                )
                .await?;
            if !ctx.json() {
                eprintln!("{service} in {sandbox} now goes to {target}");
            }
            sandbox
        }
        Some(RoutesAction::Check { sandbox }) => {
            return super::checks::check_routes(ctx, &sandbox).await;
        }
        Some(RoutesAction::Reset { sandbox, service }) => {
            client
                .send_empty(
                    reqwest::Method::DELETE,
                    &format!(
                        "/api/sandboxes/{}/routes/{}",
                        segment(&sandbox),
                        segment(&service)
                    ),
                )
                .await?;
            if !ctx.json() {
                eprintln!("{service} in {sandbox}: manual route removed");
            }
            sandbox
        }
    };
    let routes: Value = client
        .get(&format!("/api/sandboxes/{}/routes", segment(&sandbox)))
        .await?;
    if ctx.json() {
        output::print_json(&routes)?;
    } else {
        output::print(&table(routes.as_array().map_or(&[][..], Vec::as_slice)))?;
    }
    Ok(Exit::Ok)
}

/// The routes as a table: service, source, target, env key.
pub fn table(routes: &[Value]) -> String {
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            vec![
                cell(&r["service"]),
                cell(&r["source"]),
                cell(&r["target"]),
                cell(&r["env_key"]),
            ]
        })
        .collect();
    render_table(&["service", "source", "target", "env"], &rows)
}
