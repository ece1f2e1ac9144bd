//! `sdp history [--sandbox --repo --status --limit]`:
//! `GET /api/deployments?…`, newest first; `live` marks the deployment
//! whose container serves its (sandbox, service) now.

use serde_json::Value;

use crate::api::query;
use crate::args::HistoryArgs;
use crate::output::{self, cell, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: HistoryArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let limit = args.limit.to_string();
    let path = format!(
        "/api/deployments{}",
        query(&[
            ("sandbox", args.sandbox.as_deref()),
            ("repo", args.repo.as_deref()),
            ("status", args.status.as_deref()),
            ("limit", Some(&limit)),
        ])
    );
    let list: Value = client.get(&path).await?;
    if ctx.json() {
        output::print_json(&list)?;
        return Ok(Exit::Ok);
    }
    output::print(&table(list.as_array().map_or(&[][..], Vec::as_slice)))?;
    Ok(Exit::Ok)
}

pub fn table(deployments: &[Value]) -> String {
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let commit = d["commit"].as_str().map(|c| c.chars().take(10).collect());
            vec![
                cell(&d["id"]),
                cell(&d["sandbox"]),
                cell(&d["repo"]),
                cell(&d["branch"]),
                commit.unwrap_or_else(|| "-".to_owned()),
                cell(&d["status"]),
                if d["live"] == true { "live" } else { "-" }.to_owned(),
                cell(&d["created_by"]),
                cell(&d["created_at"]),
            ]
        })
        .collect();
    render_table(
        &[
            "id", "sandbox", "repo", "branch", "commit", "status", "live", "by", "created",
        ],
        &rows,
    )
}
