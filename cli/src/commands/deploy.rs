//! `sdp deploy SANDBOX REPO[@BRANCH]…`: starts one deployment per target
//! (`POST /api/sandboxes/{name}/deployments`; the sandbox is made if
//! missing), then follows each in turn to its result over the WebSocket,
//! and exits with the worst outcome (see [`crate::exit`]). `--detach`
//! returns once they are started; `--timeout` stops following (exit 5)
//! and leaves the deployments running. `--commit SHA` (one target only)
//! deploys that commit of the branch instead of its head.
//! [`follow_started`] is shared with `sdp rollback`.

use sdp_api::{NewDeployment, SandboxView};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api::Client;
use crate::args::DeployArgs;
use crate::follow::Follower;
use crate::output::{self, cell, cell_of, render_table};
use crate::progress::{LogTo, Progress};
use crate::target::Target;
use crate::{CliError, Ctx, Exit};

/// A deployment the control plane accepted, to follow.
pub(crate) struct Started {
    pub id: String,
    pub repo: String,
    pub branch: String,
    pub status: String,
}

pub async fn run(ctx: &Ctx, args: DeployArgs) -> Result<Exit, CliError> {
    if args.commit.is_some() && args.targets.len() != 1 {
        return Err(CliError::Usage(
            "--commit names a commit of one branch: give exactly one REPO@BRANCH".into(),
        ));
    }
    let client = ctx.logged_in()?;
    let targets = resolve_branches(&client, &args.sandbox, &args.targets).await?;

    let mut started = Vec::new();
    for (repo, branch) in targets {
        let body = NewDeployment {
            repo: repo.clone(),
            branch: branch.clone(),
            commit: args.commit.clone(),
        };
        let answer = client.deploy(&args.sandbox, &body).await?;
        let id = answer.id.as_str().to_owned();
        if !ctx.json() {
            let at = args
                .commit
                .as_deref()
                .map(|c| format!(" at {c}"))
                .unwrap_or_default();
            eprintln!(
                "Deploying {repo}@{branch}{at} into {} as {id}",
                args.sandbox
            );
        }
        started.push(Started {
            id,
            repo,
            branch,
            status: cell_of(&answer.status),
        });
    }
    follow_started(
        ctx,
        &client,
        &args.sandbox,
        &started,
        args.detach,
        args.timeout,
    )
    .await
}

/// Follows each started deployment to its result (unless `detach`), then
/// prints them and exits with the worst outcome.
pub(crate) async fn follow_started(
    ctx: &Ctx,
    client: &Client,
    sandbox: &str,
    started: &[Started],
    detach: bool,
    timeout: Option<std::time::Duration>,
) -> Result<Exit, CliError> {
    let deadline = timeout.map(|t| Instant::now() + t);
    if detach {
        let rows: Vec<Value> = started
            .iter()
            .map(|s| json!({ "id": s.id, "repo": s.repo, "branch": s.branch, "status": s.status }))
            .collect();
        return finish(ctx, sandbox, rows, Exit::Ok, None);
    }

    let mut worst = Exit::Ok;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for s in started {
        let label = format!("{}@{}", s.repo, s.branch);
        let mut progress = Progress::new(&label, ctx.stderr_tty, ctx.paint, LogTo::Stderr);
        let mut follower = Follower::new(client, &s.id, 0);
        let follow = follower.run(|update| progress.update(update));
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, follow).await.ok(),
            None => Some(follow.await),
        };
        match outcome {
            Some(outcome) => {
                let outcome = outcome?;
                let exit = Exit::for_status(outcome.status).unwrap_or(Exit::Failed);
                worst = worst.worst(exit);
                if exit != Exit::Ok {
                    problems.push(format!(
                        "{label} {}{}",
                        outcome.status,
                        outcome
                            .error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ));
                }
                rows.push(json!({
                    "id": s.id, "repo": s.repo, "branch": s.branch,
                    "status": outcome.status, "url": outcome.url, "error": outcome.error,
                }));
            }
            None => {
                worst = worst.worst(Exit::TimedOut);
                // Where it got to, for the report; it goes on regardless.
                let now = client.deployment(&s.id).await.ok();
                let status = now.as_ref().map(|d| d.status);
                progress.abandon(&format!(
                    "{} {label}: timed out while {}; it goes on (follow it with `sdp logs -f {}`)",
                    ctx.paint.yellow("⏱"),
                    cell_of(&status),
                    s.id
                ));
                problems.push(format!("{label} timed out"));
                let (url, error) = now.map_or((None, None), |d| (d.url, d.error));
                rows.push(json!({
                    "id": s.id, "repo": s.repo, "branch": s.branch,
                    "status": status, "url": url, "error": error,
                    "timed_out": true,
                }));
            }
        }
    }
    let message = (!problems.is_empty()).then(|| problems.join("; "));
    finish(ctx, sandbox, rows, worst, message)
}

/// Each target's branch: the one given, else the branch the sandbox has
/// for that service (deployed or from its template).
async fn resolve_branches(
    client: &Client,
    sandbox: &str,
    targets: &[Target],
) -> Result<Vec<(String, String)>, CliError> {
    let view: Option<SandboxView> = if targets.iter().any(|t| t.branch.is_none()) {
        match client.sandbox(sandbox).await {
            Ok(view) => Some(view),
            Err(err) if err.status() == Some(404) => None,
            Err(err) => return Err(err.into()),
        }
    } else {
        None
    };
    targets
        .iter()
        .map(|t| {
            let branch = t.branch.clone().or_else(|| {
                view.as_ref()?
                    .services
                    .iter()
                    .find(|s| s.repo == t.repo)?
                    .branch
                    .clone()
            });
            branch.map(|b| (t.repo.clone(), b)).ok_or_else(|| {
                CliError::Usage(format!(
                    "sandbox {sandbox} has no branch for {}: name one, {}@BRANCH",
                    t.repo, t.repo
                ))
            })
        })
        .collect()
}

fn finish(
    ctx: &Ctx,
    sandbox: &str,
    rows: Vec<Value>,
    exit: Exit,
    problem: Option<String>,
) -> Result<Exit, CliError> {
    if ctx.json() {
        let mut out = json!({ "sandbox": sandbox, "deployments": rows });
        if exit != Exit::Ok {
            let code = match exit {
                Exit::Cancelled => "deployment_cancelled",
                Exit::TimedOut => "timed_out",
                _ => "deployment_failed",
            };
            out["error"] =
                output::error_json(code, problem.as_deref().unwrap_or(code))["error"].clone();
        }
        output::print_json(&out)?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    cell(&r["id"]),
                    cell(&r["repo"]),
                    cell(&r["branch"]),
                    cell(&r["status"]),
                    cell(&r["url"]),
                ]
            })
            .collect();
        output::print(&render_table(
            &["id", "repo", "branch", "status", "url"],
            &table,
        ))?;
    }
    Ok(exit)
}
