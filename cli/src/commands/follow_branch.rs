//! `sdp follow SANDBOX REPO [--off]` over `PUT
//! /api/sandboxes/{name}/services/{repo}` `{follow}`: a following service
//! is redeployed when its branch is pushed to (Bitbucket webhook).

use serde_json::{Value, json};

use crate::api::segment;
use crate::args::FollowArgs;
use crate::output::{self, cell, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: FollowArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let service: Value = client
        .put(
            &format!(
                "/api/sandboxes/{}/services/{}",
                segment(&args.sandbox),
                segment(&args.repo)
            ),
            &json!({ "follow": !args.off }),
        )
        .await?;
    if ctx.json() {
        output::print_json(&service)?;
        return Ok(Exit::Ok);
    }
    let branch = service["branch"].as_str().unwrap_or("its branch");
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
        cell(&service["repo"]),
        cell(&service["branch"]),
        cell(&service["follow"]),
        cell(&service["pushed_head"]["note"]),
    ];
    output::print(&render_table(
        &["service", "branch", "follow", "note"],
        &[row],
    ))?;
    Ok(Exit::Ok)
}
