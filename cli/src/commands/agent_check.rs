//! `sdp agent check --kind KIND --nats URL [--repo R --branch B]`: the
//! conformance check of an agent's minimal contract (docs/AGENTS.md), run
//! against a live agent straight over NATS, for anyone writing one:
//!
//! 1. a heartbeat of the kind arrives, decodes, and names the agent and
//!    kind of its subject; a second follows within the interval;
//! 2. a deployment sent on `deploy.request.<kind>` (queue group) is
//!    accepted in that agent's name, and its progress events on
//!    `deploy.progress.<id>` have `seq` from 1 without gaps, each with
//!    `Nats-Msg-Id: <id>.<seq>`, and end in a result;
//! 3. a second deployment, cancelled on `deploy.cancel.<id>` right after it
//!    was accepted, ends `cancelled` (or had already ended);
//! 4. a directed method nobody serves (`agent.cmd.<agent_id>.<unknown>`) is
//!    answered with the error code `unknown_method` (or has no subscriber).
//!
//! One line per check on stdout (`ok` / `FAILED` and why; `-o json`: an
//! array); exits 1 when any failed. The deployments carry a placeholder
//! credential (`sdp-check`): an agent that fetches a private repo ends
//! them `failed`, which is a result all the same.

use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use sdp_bus::{
    DeployAccepted, DeployRequest, DeploymentId, Event, EventBody, GitCredential, Heartbeat, Reply,
    RpcErrorCode, Secret, Status, decode, encode, subject,
};
use serde::Serialize;

use crate::nats::{self, NatsTarget};
use crate::output::{self, Format};
use crate::{CliError, Ctx, Exit};

/// A directed method no agent serves.
const UNKNOWN_METHOD: &str = "sdp_check_no_such_method";
/// Heartbeats come every 2 s: a second one within this is on time.
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Check that a running agent of KIND keeps the minimal bus contract
    /// (docs/AGENTS.md): heartbeat, deploy, progress, cancel, unknown_method.
    Check(AgentCheckArgs),
}

#[derive(Debug, Args)]
pub struct AgentCheckArgs {
    /// The agent's kind (`deploy.request.<kind>`).
    #[arg(long)]
    pub kind: String,
    /// NATS server(s), comma separated. A user and password come from
    /// SDP_NATS_USER / SDP_NATS_PASSWORD, never from arguments.
    #[arg(
        long = "nats",
        env = "SDP_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// A .creds file (JWT + nkey).
    #[arg(long, env = "SDP_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// CA certificate for a TLS server.
    #[arg(long, env = "SDP_NATS_TLS_CA")]
    pub nats_tls_ca: Option<std::path::PathBuf>,
    /// The repo to deploy (default: the first of the heartbeat's `repos`).
    #[arg(long)]
    pub repo: Option<String>,
    /// The branch to deploy.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// How long to wait for each answer (a heartbeat, the accept, the
    /// result).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// One line of the report.
#[derive(Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.0.push(Check {
            check,
            ok: true,
            detail: detail.into(),
        });
    }

    fn failed(&mut self, check: &'static str, detail: impl Into<String>) {
        self.0.push(Check {
            check,
            ok: false,
            detail: detail.into(),
        });
    }

    fn record(&mut self, check: &'static str, outcome: Result<String, String>) -> bool {
        match outcome {
            Ok(detail) => self.ok(check, detail),
            Err(detail) => self.failed(check, detail),
        }
        self.0.last().is_some_and(|c| c.ok)
    }
}

pub async fn run(ctx: &Ctx, command: AgentCommand) -> Result<Exit, CliError> {
    let AgentCommand::Check(args) = command;
    if !subject::is_token(&args.kind) {
        return Err(CliError::Usage(format!(
            "--kind {:?} is not a subject token ([A-Za-z0-9_-], 1 to 64)",
            args.kind
        )));
    }
    let client = nats::connect(
        ctx,
        "sdp-agent-check",
        NatsTarget {
            url: &args.nats_url,
            creds: args.nats_creds.as_ref(),
            tls_ca: args.nats_tls_ca.as_ref(),
        },
    )
    .await?;
    let report = check(&client, &args).await;
    let failed = report.0.iter().any(|c| !c.ok);
    match ctx.format {
        Format::Json => output::print_json(&serde_json::json!(report.0))?,
        Format::Table => {
            let lines: String = report
                .0
                .iter()
                .map(|c| {
                    let verdict = if c.ok { "ok" } else { "FAILED" };
                    format!("{verdict:<7} {:<15} {}\n", c.check, c.detail)
                })
                .collect();
            output::print(&lines)?;
        }
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// Runs every check; a check that cannot run because an earlier one
/// failed is reported failed with that reason.
async fn check(client: &async_nats::Client, args: &AgentCheckArgs) -> Report {
    let mut report = Report::default();
    let heartbeat = match first_heartbeats(client, &args.kind, args.timeout).await {
        Ok((heartbeat, second)) => {
            report.ok(
                "heartbeat",
                format!(
                    "agent {} of kind {} (version {}, capacity {})",
                    heartbeat.agent_id, heartbeat.kind, heartbeat.version, heartbeat.capacity
                ),
            );
            report.record("heartbeat_again", second);
            heartbeat
        }
        Err(why) => {
            report.failed("heartbeat", why);
            return report;
        }
    };
    report.ok(
        "serves",
        match &heartbeat.serves {
            Some(methods) if methods.is_empty() => "[] (the minimal contract only)".to_owned(),
            Some(methods) => methods.join(", "),
            None => "absent: taken for an SDP agent from before `serves` (send it, `[]` for none)"
                .to_owned(),
        },
    );
    let repo = match (&args.repo, heartbeat.repos.first()) {
        (Some(repo), _) if heartbeat.repos.contains(repo) => {
            report.ok("repos", format!("{repo} is in the heartbeat's repos"));
            repo.clone()
        }
        (Some(repo), _) => {
            report.failed(
                "repos",
                format!("{repo} is not in the heartbeat's repos {:?}: the control plane would not send it to this kind", heartbeat.repos),
            );
            repo.clone()
        }
        (None, Some(first)) => {
            report.ok(
                "repos",
                format!("deploying {first}, the first of {:?}", heartbeat.repos),
            );
            first.clone()
        }
        (None, None) => {
            report.failed(
                "repos",
                "the heartbeat's repos is empty and no --repo was given",
            );
            return report;
        }
    };

    let request = deploy_request(&repo, &args.branch);
    match deploy(client, args, &request, false).await {
        Ok(outcome) => {
            // The queue group may give it to another agent of the kind.
            let who = if outcome.accepted_by == heartbeat.agent_id {
                String::new()
            } else {
                format!(" (another agent of the kind than {})", heartbeat.agent_id)
            };
            report.ok(
                "deploy_accept",
                format!("accepted by {}{who}", outcome.accepted_by),
            );
            report.record("progress_seq", outcome.seq);
            report.record("progress_msg_id", outcome.msg_ids);
            report.record("result", outcome.result);
        }
        Err(why) => report.failed("deploy_accept", why),
    }

    let request = deploy_request(&repo, &args.branch);
    match deploy(client, args, &request, true).await {
        Ok(outcome) => {
            report.record("cancel", outcome.cancel);
        }
        Err(why) => report.failed("cancel", format!("the deployment to cancel: {why}")),
    }

    report.record(
        "unknown_method",
        unknown_method(client, &heartbeat.agent_id, args.timeout).await,
    );
    report
}

/// The first heartbeat of the kind (checked), and whether a second one
/// followed in time.
async fn first_heartbeats(
    client: &async_nats::Client,
    kind: &str,
    timeout: Duration,
) -> Result<(Heartbeat, Result<String, String>), String> {
    let mut beats = client
        .subscribe(format!("agent.heartbeat.{kind}.*"))
        .await
        .map_err(|e| format!("cannot subscribe to heartbeats: {e}"))?;
    let first = tokio::time::timeout(timeout, beats.next())
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            format!(
                "no heartbeat on agent.heartbeat.{kind}.* within {}s",
                timeout.as_secs()
            )
        })?;
    let heartbeat = checked_heartbeat(&first)?;
    let again = tokio::time::timeout(HEARTBEAT_DEADLINE, async {
        while let Some(beat) = beats.next().await {
            if beat.subject == first.subject {
                return Some(beat);
            }
        }
        None
    })
    .await;
    let second = match again {
        Ok(Some(beat)) => {
            checked_heartbeat(&beat).map(|_| "a second heartbeat came in time".to_owned())
        }
        _ => Err(format!(
            "no second heartbeat from {} within {}s (send one every 2 s)",
            heartbeat.agent_id,
            HEARTBEAT_DEADLINE.as_secs()
        )),
    };
    Ok((heartbeat, second))
}

fn checked_heartbeat(message: &async_nats::Message) -> Result<Heartbeat, String> {
    let heartbeat: Heartbeat = decode(&message.payload)
        .map_err(|e| format!("the heartbeat on {} does not decode: {e}", message.subject))?;
    let expected = subject::agent_heartbeat(&heartbeat.kind, &heartbeat.agent_id);
    if message.subject.as_str() != expected {
        return Err(format!(
            "the heartbeat on {} names agent {} of kind {}: it must come on {expected}",
            message.subject, heartbeat.agent_id, heartbeat.kind
        ));
    }
    Ok(heartbeat)
}

fn deploy_request(repo: &str, branch: &str) -> DeployRequest {
    DeployRequest {
        deployment_id: DeploymentId::generate(),
        sandbox: format!("sdp-check-{}", &DeploymentId::generate().as_str()[25..]),
        repo: repo.to_owned(),
        branch: branch.to_owned(),
        credential: GitCredential {
            username: "sdp-check".to_owned(),
            password: Secret::new(""),
        },
        env: Default::default(),
        routes: Vec::new(),
        overrides: Default::default(),
        reuse_build: false,
        commit: None,
    }
}

struct DeployOutcome {
    accepted_by: String,
    seq: Result<String, String>,
    msg_ids: Result<String, String>,
    result: Result<String, String>,
    cancel: Result<String, String>,
}

/// Sends `request` to the kind's queue group and follows its progress to
/// the result; with `cancel`, cancels it once accepted.
async fn deploy(
    client: &async_nats::Client,
    args: &AgentCheckArgs,
    request: &DeployRequest,
    cancel: bool,
) -> Result<DeployOutcome, String> {
    let id = &request.deployment_id;
    // Subscribed before the request, so no event can be missed.
    let mut progress = client
        .subscribe(subject::deploy_progress(id))
        .await
        .map_err(|e| format!("cannot subscribe to the progress: {e}"))?;
    let answer = tokio::time::timeout(
        args.timeout,
        client.request(subject::deploy_request(&args.kind), encode(request).into()),
    )
    .await
    .map_err(|_| {
        format!(
            "no answer on deploy.request.{} within {}s",
            args.kind,
            args.timeout.as_secs()
        )
    })?
    .map_err(|e| format!("deploy.request.{}: {e}", args.kind))?;
    let accepted: DeployAccepted = decode::<Reply<DeployAccepted>>(&answer.payload)
        .map_err(|e| format!("the accept reply does not decode: {e}"))?
        .into_result()
        .map_err(|e| format!("the agent refused the deployment: {e}"))?;
    if cancel {
        client
            .publish(
                subject::deploy_cancel(id),
                encode(&sdp_bus::DeployCancel::default()).into(),
            )
            .await
            .map_err(|e| format!("cannot publish deploy.cancel.{id}: {e}"))?;
    }
    let mut seqs = Vec::new();
    let mut missing_ids = Vec::new();
    let mut problems = Vec::new();
    let mut result = None;
    let deadline = tokio::time::Instant::now() + args.timeout;
    while result.is_none() {
        let Ok(Some(message)) = tokio::time::timeout_at(deadline, progress.next()).await else {
            break;
        };
        let event: Event = match decode(&message.payload) {
            Ok(event) => event,
            Err(e) => {
                problems.push(format!("an event does not decode: {e}"));
                continue;
            }
        };
        if &event.deployment_id != id {
            problems.push(format!(
                "seq {} names deployment {}",
                event.seq, event.deployment_id
            ));
        }
        let expected = sdp_bus::stream::msg_id(id, event.seq);
        let header = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned());
        if header.as_deref() != Some(expected.as_str()) {
            missing_ids.push(format!(
                "seq {} has Nats-Msg-Id {:?}, not {expected:?}",
                event.seq, header
            ));
        }
        seqs.push(event.seq);
        if let EventBody::Result {
            status, url, error, ..
        } = event.body
        {
            result = Some((status, url, error));
        }
    }
    let seq = if seqs.is_empty() {
        Err("no progress event arrived".to_owned())
    } else if !problems.is_empty() {
        Err(problems.join("; "))
    } else if seqs.iter().copied().eq(1..=seqs.len() as u64) {
        Ok(format!(
            "{} events, seq 1 to {} without gaps",
            seqs.len(),
            seqs.len()
        ))
    } else {
        Err(format!(
            "seqs {seqs:?}: they must start at 1 and have no gaps"
        ))
    };
    let msg_ids = match (seqs.is_empty(), missing_ids.first()) {
        (true, _) => Err("no progress event arrived".to_owned()),
        (false, None) => Ok("every event has Nats-Msg-Id <deployment>.<seq>".to_owned()),
        (false, Some(first)) => Err(format!(
            "{first} ({} of {} events): publish each with it, so a retry is stored once",
            missing_ids.len(),
            seqs.len()
        )),
    };
    let within = args.timeout.as_secs();
    let result_line = match &result {
        Some((Status::Running, Some(url), _)) => Ok(format!("running at {url}")),
        Some((Status::Running, None, _)) => Err("a running result without a url".to_owned()),
        Some((status, _, error)) if status.is_settled() => Ok(format!(
            "{status}: {}",
            error.as_deref().unwrap_or("(no error given)")
        )),
        Some((status, _, _)) => Err(format!("a result with the unsettled status {status}")),
        None => Err(format!("no result event within {within}s")),
    };
    let cancel = match &result {
        Some((Status::Cancelled, _, _)) => Ok("cancelled after deploy.cancel.<id>".to_owned()),
        Some((status, _, _)) => Ok(format!(
            "it had ended {status} before the cancel reached it (a settled deployment ignores cancel)"
        )),
        None => Err(format!(
            "no result within {within}s after deploy.cancel.{id}: end it `cancelled`"
        )),
    };
    Ok(DeployOutcome {
        accepted_by: accepted.agent_id,
        seq,
        msg_ids,
        result: result_line,
        cancel,
    })
}

/// `agent.cmd.<agent_id>.<unknown>`: an `unknown_method` error, or no
/// subscriber at all (the control plane sends only what `serves` lists).
async fn unknown_method(
    client: &async_nats::Client,
    agent_id: &str,
    timeout: Duration,
) -> Result<String, String> {
    let subject = subject::agent_cmd(agent_id, UNKNOWN_METHOD);
    let answer = tokio::time::timeout(
        timeout,
        client.request(subject.clone(), encode(&serde_json::json!({})).into()),
    )
    .await
    .map_err(|_| {
        format!(
            "no answer on {subject} within {}s: answer unknown_method",
            timeout.as_secs()
        )
    })?;
    let message = match answer {
        Ok(message) => message,
        Err(err) if err.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Ok(format!(
                "nothing subscribes to {subject} (allowed: answering unknown_method is better)"
            ));
        }
        Err(err) => return Err(format!("{subject}: {err}")),
    };
    match decode::<Reply<serde_json::Value>>(&message.payload) {
        Ok(reply) => match reply.into_result() {
            Err(error) if error.code == RpcErrorCode::UnknownMethod => {
                Ok(format!("answered unknown_method ({})", error.message))
            }
            Err(error) => Err(format!(
                "answered the error code {}, not unknown_method",
                error.code
            )),
            Ok(_) => Err("answered ok to a method it cannot serve".to_owned()),
        },
        Err(e) => Err(format!("the reply does not decode: {e}")),
    }
}
