//! `sdp deliveries [SANDBOX] [--limit]`: `GET /api/deliveries?…`, the
//! build statuses and outgoing webhooks sent, newest first (every page
//! unless `--limit`), with each one's last outcome.

use sdp_api::{DeliveriesQuery, Delivery};

use crate::args::DeliveriesArgs;
use crate::listing::{self, Listed, short_commit};
use crate::output::cell_of;
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: DeliveriesArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let query = DeliveriesQuery {
        sandbox: args.sandbox,
        ..DeliveriesQuery::default()
    };
    let list = client
        .all_deliveries(&query, listing::wanted(args.limit))
        .await?;
    listing::print(ctx, &list)
}

impl Listed for Delivery {
    const HEADERS: &'static [&'static str] = &[
        "sandbox", "repo", "event", "state", "target", "commit", "outcome", "attempts", "last",
        "at",
    ];

    fn cells(&self) -> Vec<String> {
        let last = match (self.last_status, self.last_error.as_deref()) {
            (_, Some(error)) => error.to_owned(),
            (Some(status), None) => status.to_string(),
            (None, None) => "-".to_owned(),
        };
        vec![
            cell_of(&self.sandbox),
            cell_of(&self.repo),
            cell_of(&self.event),
            cell_of(&self.state),
            cell_of(&self.target),
            short_commit(self.commit.as_deref()),
            cell_of(&self.outcome),
            self.attempts.to_string(),
            last,
            sdp_api::timestamp::text(self.updated_at),
        ]
    }
}
