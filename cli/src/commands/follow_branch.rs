//! `sdp follow SANDBOX REPO [--off]` over `PUT
//! /api/sandboxes/{name}/services/{repo}` `{follow}`: a following service
//! is redeployed when its branch is pushed to (Bitbucket webhook).

use crate::args::FollowArgs;
use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: FollowArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let service = client
        .follow_service(&args.sandbox, &args.repo, !args.off)
        .await?;
    if ctx.json() {
        output::print_json(&service)?;
        return Ok(Exit::Ok);
    }
    let branch = service.branch.as_deref().unwrap_or("its branch");
    if args.off {
        eprintln!(
            "{} in {} no longer follows {branch}",
            args.repo, args.sandbox
        );
    } else {
        eprintln!(
            "{} in {} follows {branch}: a push to it redeploys the service",
            args.repo, args.sandbox
        );
    }
    let row = vec![
        cell_of(&service.repo),
        cell_of(&service.branch),
        cell_of(&service.follow),
        cell_of(&service.pushed_head.as_ref().map(|p| &p.note)),
    ];
    output::print(&render_table(
        &["service", "branch", "follow", "note"],
        &[row],
    ))?;
    Ok(Exit::Ok)
}
