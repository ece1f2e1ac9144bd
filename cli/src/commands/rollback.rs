//! `sdp rollback ID` (alias `redeploy`): `POST
//! /api/deployments/{id}/redeploy` deploys that deployment's commit again
//! into its sandbox; then followed like `sdp deploy` (same output, same
//! exit codes).

use serde_json::Value;

use crate::api::segment;
use crate::args::RollbackArgs;
use crate::output::cell;
use crate::{CliError, Ctx, Exit};

use super::deploy::{Started, follow_started};

pub async fn run(ctx: &Ctx, args: RollbackArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let original: Value = client
        .get(&format!("/api/deployments/{}", segment(&args.id)))
        .await?;
    let answer: Value = client
        .post(
            &format!("/api/deployments/{}/redeploy", segment(&args.id)),
            &serde_json::json!({}),
        )
        .await?;
    let sandbox = cell(&original["sandbox"]);
    let started = Started {
        id: cell(&answer["id"]),
        repo: cell(&original["repo"]),
        branch: cell(&original["branch"]),
        status: cell(&answer["status"]),
    };
    if !ctx.json() {
        eprintln!(
            "Deploying {}@{} at {} (as deployment {} had it) into {sandbox} as {}",
            started.repo,
            started.branch,
            cell(&original["commit"]),
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
