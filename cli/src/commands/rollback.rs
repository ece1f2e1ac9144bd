//! `sdp rollback ID` (alias `redeploy`): `POST
//! /api/deployments/{id}/redeploy` deploys that deployment's commit again
//! into its sandbox; then followed like `sdp deploy` (same output, same
//! exit codes).

use crate::args::RollbackArgs;
use crate::output::cell_of;
use crate::{CliError, Ctx, Exit};

use super::deploy::{Started, follow_started};

pub async fn run(ctx: &Ctx, args: RollbackArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let original = client.deployment(&args.id).await?;
    let answer = client.redeploy(&args.id).await?;
    let sandbox = cell_of(&original.sandbox);
    let started = Started {
        id: cell_of(&answer.id),
        repo: cell_of(&original.repo),
        branch: cell_of(&original.branch),
        status: cell_of(&answer.status),
    };
    if !ctx.json() {
        eprintln!(
            "Deploying {}@{} at {} (as deployment {} had it) into {sandbox} as {}",
            started.repo,
            started.branch,
            cell_of(&original.commit),
            args.id,
            started.id
        );
    }
    follow_started(
        ctx,
        &client,
        &sandbox,
        std::slice::from_ref(&started),
        args.detach,
        args.timeout,
    )
    .await
}
