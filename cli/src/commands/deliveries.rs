//! `sdp deliveries [SANDBOX] [--limit]`: `GET /api/deliveries?…`, the
//! build statuses and outgoing webhooks sent, newest first, with each
//! one's last outcome.

use sdp_api::{DeliveriesQuery, Delivery};

use crate::args::DeliveriesArgs;
use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: DeliveriesArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let list = client
        .deliveries(&DeliveriesQuery {
            sandbox: args.sandbox,
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

pub fn table(deliveries: &[Delivery]) -> String {
    let rows: Vec<Vec<String>> = deliveries
        .iter()
        .map(|d| {
            let commit = d.commit.as_deref().map(|c| c.chars().take(10).collect());
            let last = match (d.last_status, d.last_error.as_deref()) {
                (_, Some(error)) => error.to_owned(),
                (Some(status), None) => status.to_string(),
                (None, None) => "-".to_owned(),
            };
            vec![
                cell_of(&d.sandbox),
                cell_of(&d.repo),
                cell_of(&d.event),
                cell_of(&d.state),
                cell_of(&d.target),
                commit.unwrap_or_else(|| "-".to_owned()),
                cell_of(&d.outcome),
                d.attempts.to_string(),
                last,
                sdp_api::timestamp::text(d.updated_at),
            ]
        })
        .collect();
    render_table(
        &[
            "sandbox", "repo", "event", "state", "target", "commit", "outcome", "attempts", "last",
            "at",
        ],
        &rows,
    )
}
