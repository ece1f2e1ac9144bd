//! `sdp autodeploy on|off SANDBOX REPO` over `PUT
//! /api/sandboxes/{name}/services/{repo}` `{autodeploy}`: a service with
//! autodeploy on is redeployed when its branch is pushed to (Bitbucket
//! webhook). `sdp follow SANDBOX REPO [--off]`, its first name, is kept
//! (hidden) for scripts.

use crate::args::{AutodeployArgs, FollowArgs, Switch};
use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: AutodeployArgs) -> Result<Exit, CliError> {
    set(ctx, &args.sandbox, &args.repo, args.switch == Switch::On).await
}

/// The hidden `sdp follow`: the same, with `--off` for off.
pub async fn run_follow(ctx: &Ctx, args: FollowArgs) -> Result<Exit, CliError> {
    set(ctx, &args.sandbox, &args.repo, !args.off).await
}

async fn set(ctx: &Ctx, sandbox: &str, repo: &str, on: bool) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let service = client.set_autodeploy(sandbox, repo, on).await?;
    if ctx.json() {
        output::print_json(&service)?;
        return Ok(Exit::Ok);
    }
    let branch = service.branch.as_deref().unwrap_or("its branch");
    if on {
        eprintln!("{repo} in {sandbox}: autodeploy on, a push to {branch} redeploys it");
    } else {
        eprintln!("{repo} in {sandbox}: autodeploy off, a push to {branch} no longer redeploys it");
    }
    let row = vec![
        cell_of(&service.repo),
        cell_of(&service.branch),
        cell_of(&service.autodeploy),
        cell_of(&service.pushed_head.as_ref().map(|p| &p.note)),
    ];
    output::print(&render_table(
        &["service", "branch", "autodeploy", "note"],
        &[row],
    ))?;
    Ok(Exit::Ok)
}
