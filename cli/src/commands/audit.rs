//! `sdp audit [--user --sandbox --action --since --until --limit]`:
//! `GET /api/audit?…`, the audit trail newest first, every page (following
//! `next_cursor`) unless `--limit`.

use sdp_api::{AuditEntry, AuditQuery};

use crate::args::AuditArgs;
use crate::listing::{self, Listed, or_dash};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: AuditArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let query = AuditQuery {
        user: args.user,
        sandbox: args.sandbox,
        action: args.action,
        since: args.since,
        until: args.until,
        ..AuditQuery::default()
    };
    let entries = client
        .all_audit(&query, listing::wanted(args.limit))
        .await?;
    listing::print(ctx, &entries)
}

impl Listed for AuditEntry {
    const HEADERS: &'static [&'static str] = &[
        "at", "actor", "action", "target", "sandbox", "address", "outcome", "message",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            sdp_api::timestamp::text(self.at),
            or_dash(self.actor.as_deref()),
            self.action.as_str().to_owned(),
            or_dash(self.target.as_deref()),
            or_dash(self.sandbox.as_deref()),
            or_dash(self.address.as_deref()),
            self.outcome.as_str().to_owned(),
            or_dash(self.message.as_deref()),
        ]
    }
}
