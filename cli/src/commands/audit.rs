//! `sdp audit [--user --sandbox --action --since --until --page --limit]`:
//! `GET /api/audit?…`, one page of the audit trail, newest first; the
//! next page's number follows the table.

use sdp_api::{AuditPage, AuditQuery};

use crate::args::AuditArgs;
use crate::output::{self, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: AuditArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let page = client
        .audit(&AuditQuery {
            user: args.user,
            sandbox: args.sandbox,
            action: args.action,
            since: args.since,
            until: args.until,
            page: Some(args.page),
            limit: Some(args.limit),
        })
        .await?;
    if ctx.json() {
        output::print_json(&page)?;
        return Ok(Exit::Ok);
    }
    output::print(&table(&page))?;
    Ok(Exit::Ok)
}

pub fn table(page: &AuditPage) -> String {
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<Vec<String>> = page
        .entries
        .iter()
        .map(|e| {
            vec![
                sdp_api::timestamp::text(e.at),
                dash(&e.actor),
                e.action.as_str().to_owned(),
                dash(&e.target),
                dash(&e.sandbox),
                dash(&e.address),
                e.outcome.as_str().to_owned(),
                dash(&e.message),
            ]
        })
        .collect();
    let mut text = render_table(
        &[
            "at", "actor", "action", "target", "sandbox", "address", "outcome", "message",
        ],
        &rows,
    );
    if let Some(next) = page.next_page {
        text.push_str(&format!("more: --page {next}\n"));
    }
    text
}
