//! `sdp history [--sandbox --repo --status --limit]`:
//! `GET /api/deployments?…`, newest first, every page unless `--limit`;
//! `live` marks the deployment whose container serves its (sandbox,
//! service) now.

use sdp_api::{Deployment, ListQuery};

use crate::args::HistoryArgs;
use crate::listing::{self, Listed, short_commit};
use crate::output::cell_of;
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: HistoryArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let query = ListQuery {
        sandbox: args.sandbox,
        repo: args.repo,
        status: args.status,
        ..ListQuery::default()
    };
    let list = client
        .all_deployments(&query, listing::wanted(args.limit))
        .await?;
    listing::print(ctx, &list)
}

impl Listed for Deployment {
    const HEADERS: &'static [&'static str] = &[
        "id", "sandbox", "repo", "branch", "commit", "status", "live", "by", "created",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            cell_of(&self.id),
            cell_of(&self.sandbox),
            cell_of(&self.repo),
            cell_of(&self.branch),
            short_commit(self.commit.as_deref()),
            cell_of(&self.status),
            if self.live { "live" } else { "-" }.to_owned(),
            cell_of(&self.created_by),
            sdp_api::timestamp::text(self.created_at),
        ]
    }
}
