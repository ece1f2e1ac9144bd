//! `sdp history [--sandbox --repo --status --limit]`:
//! `GET /api/deployments?…`, newest first; `live` marks the deployment
//! whose container serves its (sandbox, service) now.

use sdp_api::{Deployment, ListQuery};

use crate::args::HistoryArgs;
use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: HistoryArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let list = client
        .deployments(&ListQuery {
            sandbox: args.sandbox,
            repo: args.repo,
            status: args.status,
            reapply: None,
            limit: Some(args.limit),
        })
        .await?;
    if ctx.json() {
        output::print_json(&list)?;
        return Ok(Exit::Ok);
    }
    output::print(&table(&list))?;
    Ok(Exit::Ok)
}

pub fn table(deployments: &[Deployment]) -> String {
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let commit = d.commit.as_deref().map(|c| c.chars().take(10).collect());
            vec![
                cell_of(&d.id),
                cell_of(&d.sandbox),
                cell_of(&d.repo),
                cell_of(&d.branch),
                commit.unwrap_or_else(|| "-".to_owned()),
                cell_of(&d.status),
                if d.live { "live" } else { "-" }.to_owned(),
                cell_of(&d.created_by),
                sdp_api::timestamp::text(d.created_at),
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
