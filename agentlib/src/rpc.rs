//! What the agent serves, as one table ([`subscribe_all`]): each subject,
//! whether it is shared by the kind's queue group, and its handler.
//! `deploy.request.<kind>` (handled in [`crate::deploy`]) and
//! `agent.rpc.<kind>.{verify_credentials,list_repos,list_branches}` go to
//! one agent of the kind (queue group `agents.<kind>`);
//! `agent.cmd.<agent_id>.{teardown,reconcile,container_logs}` to this agent
//! only ([`crate::runtime_logs`] serves `container_logs`).
//! Added: `agent.rpc.<kind>.branch_status` ([`crate::branch_status`]) and
//! `agent.cmd.<agent_id>.probe` ([`crate::probe`]), and
//! `agent.cmd.<agent_id>.{sleep,wake}` ([`crate::power`]).
//! `agent.rpc.<kind>.test_run` ([`crate::test_run`]).
//! `agent.cmd.<agent_id>.{resource_ensure,resource_remove,resource_sizes}`
//! ([`crate::resource`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use sdp_bus::{
    BranchList, BranchStatus, BranchStatusList, CredentialsVerified, ListBranches, ListRepos,
    Probe, ProbeReport, Reconcile, ReconcileDone, Reply, RepoInfo, RepoList, RpcError,
    RpcErrorCode, SandboxPower, SandboxPowered, Teardown, TeardownDone, VerifyCredentials, decode,
    subject,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::deploy::handle_deploy;
use crate::docker;
use crate::error::AgentError;
use crate::job::SANDBOX_DIRS;
use crate::power::Power;
use crate::reply::{bad_request, respond};
use crate::service;
use crate::state::{Agent, CancelReason};

const GIT_TIMEOUT: Duration = Duration::from_secs(30);
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a teardown waits for the sandbox's jobs to wind down.
const TEARDOWN_JOB_WAIT: Duration = Duration::from_secs(30);

/// A request handler; each message is handled in its own task.
pub(crate) type Handler =
    fn(Arc<Agent>, async_nats::Message) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Who receives a subject: one agent of the kind, or this agent.
enum To {
    Kind,
    ThisAgent,
}

/// Every subject the agent serves, and its handler.
fn table(kind: &str, agent_id: &str) -> [(String, To, Handler); 16] {
    [
        (subject::deploy_request(kind), To::Kind, |agent, message| {
            Box::pin(handle_deploy(agent, message))
        }),
        // Placed on this agent by the control plane (the queue group above
        // is how a new agent gets its first work).
        (
            subject::agent_cmd(agent_id, subject::DEPLOY),
            To::ThisAgent,
            |agent, message| Box::pin(handle_deploy(agent, message)),
        ),
        (
            subject::agent_rpc(kind, subject::VERIFY_CREDENTIALS),
            To::Kind,
            |agent, message| Box::pin(handle_verify(agent, message)),
        ),
        (
            subject::agent_rpc(kind, subject::LIST_REPOS),
            To::Kind,
            |agent, message| Box::pin(handle_list_repos(agent, message)),
        ),
        (
            subject::agent_rpc(kind, subject::LIST_BRANCHES),
            To::Kind,
            |agent, message| Box::pin(handle_list_branches(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::TEARDOWN),
            To::ThisAgent,
            |agent, message| Box::pin(handle_teardown(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::RECONCILE),
            To::ThisAgent,
            |agent, message| Box::pin(handle_reconcile(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::CONTAINER_LOGS),
            To::ThisAgent,
            |agent, message| Box::pin(crate::runtime_logs::handle(agent, message)),
        ),
        (
            subject::agent_rpc(kind, subject::BRANCH_STATUS),
            To::Kind,
            |agent, message| Box::pin(handle_branch_status(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::PROBE),
            To::ThisAgent,
            |agent, message| Box::pin(handle_probe(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::SLEEP),
            To::ThisAgent,
            |agent, message| Box::pin(handle_power(agent, message, Power::Sleep)),
        ),
        (
            subject::agent_cmd(agent_id, subject::WAKE),
            To::ThisAgent,
            |agent, message| Box::pin(handle_power(agent, message, Power::Wake)),
        ),
        (
            subject::agent_rpc(kind, subject::TEST_RUN),
            To::Kind,
            |agent, message| Box::pin(crate::test_run::handle(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::RESOURCE_ENSURE),
            To::ThisAgent,
            |agent, message| Box::pin(handle_resource_ensure(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::RESOURCE_REMOVE),
            To::ThisAgent,
            |agent, message| Box::pin(handle_resource_remove(agent, message)),
        ),
        (
            subject::agent_cmd(agent_id, subject::RESOURCE_SIZES),
            To::ThisAgent,
            |agent, message| Box::pin(handle_resource_sizes(agent, message)),
        ),
    ]
}

/// The heartbeat's `serves`: the method of every directed
/// (`agent.cmd.<agent_id>.<method>`) and kind (`agent.rpc.<kind>.<method>`)
/// subject of the table, so what the agent advertises is what it answers.
pub(crate) fn served_methods(kind: &str, agent_id: &str) -> Vec<String> {
    let directed = subject::agent_cmd(agent_id, "");
    let of_kind = subject::agent_rpc(kind, "");
    table(kind, agent_id)
        .iter()
        .filter_map(|(subject, _, _)| {
            subject
                .strip_prefix(&directed)
                .or_else(|| subject.strip_prefix(&of_kind))
                .map(str::to_owned)
        })
        .collect()
}

/// Every message of every subscription, with its handler; one item is
/// `None` when a subscription ends. Dropping it unsubscribes them all.
pub(crate) type Requests = SelectAll<BoxStream<'static, Option<(Handler, async_nats::Message)>>>;

/// Subscribes to every subject of the table.
pub(crate) async fn subscribe_all(
    client: &async_nats::Client,
    kind: &'static str,
    agent_id: &str,
) -> Result<Requests, AgentError> {
    let mut all = SelectAll::new();
    for (subject, to, handler) in table(kind, agent_id) {
        let subscribed = match to {
            To::Kind => {
                client
                    .queue_subscribe(subject.clone(), subject::queue_group(kind))
                    .await
            }
            To::ThisAgent => client.subscribe(subject.clone()).await,
        };
        let subscriber = subscribed.map_err(|source| AgentError::Subscribe { subject, source })?;
        let messages = subscriber
            .map(move |message| Some((handler, message)))
            .chain(futures::stream::once(async { None }));
        all.push(messages.boxed());
    }
    Ok(all)
}

/// Decodes the request or answers with a `bad_request` error.
async fn decode_or_answer<Req: DeserializeOwned, Res: Serialize>(
    agent: &Agent,
    message: &async_nats::Message,
    what: &str,
) -> Option<Req> {
    match decode(&message.payload) {
        Ok(request) => Some(request),
        Err(err) => {
            tracing::warn!(error = %err, "cannot decode a {what} request");
            let body = Reply::<Res>::err(bad_request(format!("cannot decode the request: {err}")));
            respond(agent, message.reply.clone(), &body).await;
            None
        }
    }
}

fn internal(what: &str, err: impl std::fmt::Display) -> RpcError {
    RpcError::new(RpcErrorCode::Internal, format!("{what} failed: {err}"))
}

async fn handle_verify(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) = decode_or_answer::<VerifyCredentials, CredentialsVerified>(
        &agent,
        &message,
        "verify_credentials",
    )
    .await
    else {
        return;
    };
    let schemes = agent.config.git.allowed_schemes.clone();
    let check = tokio::task::spawn_blocking(move || {
        crate::git::verify_credentials(&request.probe_repo, &request.credential, &schemes)
    });
    let result = match tokio::time::timeout(VERIFY_TIMEOUT, check).await {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => Err(internal("verifying", err)),
        Err(_) => Err(RpcError::new(
            RpcErrorCode::Unavailable,
            "the git server did not answer in time",
        )),
    };
    let body: Reply<CredentialsVerified> = result.map(|()| CredentialsVerified {}).into();
    respond(&agent, message.reply.clone(), &body).await;
}

async fn handle_list_repos(agent: Arc<Agent>, message: async_nats::Message) {
    if decode_or_answer::<ListRepos, RepoList>(&agent, &message, "list_repos")
        .await
        .is_none()
    {
        return;
    }
    let repos_dir = agent.config.repos_dir.clone();
    let schemes = agent.config.git.allowed_schemes.clone();
    let kind = agent.kind().to_owned();
    let base = service::agent_defaults(&agent.config);
    let result =
        tokio::task::spawn_blocking(move || list_repos(&repos_dir, &schemes, &kind, &base))
            .await
            .map_err(|e| internal("listing the repos", e));
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

fn list_repos(
    repos_dir: &std::path::Path,
    schemes: &[String],
    kind: &str,
    base: &sdp_bus::ServiceSettings,
) -> RepoList {
    let mut repos = Vec::new();
    for name in crate::git::list_repos(repos_dir) {
        let remote = match crate::git::origin_url(repos_dir, &name, schemes) {
            Ok(url) => url,
            Err(why) => {
                tracing::debug!(repo = %name, %why, "not listed");
                continue;
            }
        };
        let Some(local) = crate::git::local_repo(repos_dir, &name) else {
            continue;
        };
        let none = sdp_bus::ServiceOverrides::default();
        let settings = match service::resolve(base, local.sdp_toml.as_deref(), &none) {
            Ok(settings) => settings,
            Err(err) => {
                tracing::warn!(repo = %name, error = %err, "ignoring the repo's sdp.toml");
                base.clone()
            }
        };
        repos.push(RepoInfo {
            name,
            kind: kind.to_owned(),
            remote,
            default_branch: local.default_branch,
            settings,
        });
    }
    RepoList { repos }
}

async fn handle_list_branches(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) =
        decode_or_answer::<ListBranches, BranchList>(&agent, &message, "list_branches").await
    else {
        return;
    };
    let result = list_branches(&agent, request).await;
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

async fn list_branches(agent: &Agent, request: ListBranches) -> Result<BranchList, RpcError> {
    sdp_bus::validate::repo(&request.repo).map_err(|e| bad_request(e.to_string()))?;
    let repos_dir = agent.config.repos_dir.clone();
    let schemes = agent.config.git.allowed_schemes.clone();
    let repo = request.repo.clone();
    let url =
        tokio::task::spawn_blocking(move || crate::git::origin_url(&repos_dir, &repo, &schemes))
            .await
            .map_err(|e| internal("checking the repo", e))?
            .map_err(RpcError::from)?;
    let credential = request.credential;
    let list = tokio::task::spawn_blocking(move || crate::git::list_branches(&url, &credential));
    match tokio::time::timeout(GIT_TIMEOUT, list).await {
        Ok(Ok(result)) => result.map(|branches| BranchList { branches }),
        Ok(Err(err)) => Err(internal("listing the branches", err)),
        Err(_) => Err(RpcError::new(
            RpcErrorCode::Unavailable,
            "the git server did not answer in time",
        )),
    }
}

async fn handle_branch_status(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) =
        decode_or_answer::<BranchStatus, BranchStatusList>(&agent, &message, "branch_status").await
    else {
        return;
    };
    let result = crate::branch_status::branch_status(&agent, request).await;
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

async fn handle_probe(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) = decode_or_answer::<Probe, ProbeReport>(&agent, &message, "probe").await
    else {
        return;
    };
    let result = crate::probe::probe(&agent, request).await;
    if let Err(err) = &result {
        tracing::info!(error = %err, "probe refused");
    }
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

async fn handle_power(agent: Arc<Agent>, message: async_nats::Message, power: Power) {
    let what = match power {
        Power::Sleep => "sleep",
        Power::Wake => "wake",
    };
    let Some(request) =
        decode_or_answer::<SandboxPower, SandboxPowered>(&agent, &message, what).await
    else {
        return;
    };
    let result = crate::power::apply(&agent, &request.sandbox, power).await;
    match &result {
        Ok(done) => {
            tracing::info!(sandbox = %request.sandbox, changed = done.changed, unchanged = done.unchanged, "sandbox {what}")
        }
        Err(err) => tracing::warn!(sandbox = %request.sandbox, error = %err, "{what} failed"),
    }
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

async fn handle_resource_ensure(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) = decode_or_answer::<sdp_bus::ResourceEnsure, sdp_bus::ResourceReady>(
        &agent,
        &message,
        "resource_ensure",
    )
    .await
    else {
        return;
    };
    let (sandbox, name) = (request.sandbox.clone(), request.name.clone());
    let result = crate::resource::ensure(&agent, request).await;
    if let Err(err) = &result {
        tracing::warn!(%sandbox, resource = %name, error = %err, "resource not ready");
    }
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

async fn handle_resource_remove(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) = decode_or_answer::<sdp_bus::ResourceRemove, sdp_bus::ResourceRemoved>(
        &agent,
        &message,
        "resource_remove",
    )
    .await
    else {
        return;
    };
    let result = crate::resource::remove(&agent, &request).await;
    match &result {
        Ok(done) => {
            tracing::info!(sandbox = %request.sandbox, resource = %request.name, removed = done.removed, "resource removed")
        }
        Err(err) => {
            tracing::warn!(sandbox = %request.sandbox, resource = %request.name, error = %err, "resource not removed")
        }
    }
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

async fn handle_resource_sizes(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(_request) = decode_or_answer::<sdp_bus::ResourceSizes, sdp_bus::ResourceSizeList>(
        &agent,
        &message,
        "resource_sizes",
    )
    .await
    else {
        return;
    };
    let result = crate::resource::sizes(&agent).await;
    if let Err(err) = &result {
        tracing::warn!(error = %err, "resource sizes not measured");
    }
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

async fn handle_teardown(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) =
        decode_or_answer::<Teardown, TeardownDone>(&agent, &message, "teardown").await
    else {
        return;
    };
    let result = teardown(&agent, &request.sandbox).await;
    match &result {
        Ok(done) => {
            tracing::info!(sandbox = %request.sandbox, containers = done.containers_removed, worktrees = done.worktrees_removed, "sandbox torn down")
        }
        Err(err) => tracing::warn!(sandbox = %request.sandbox, error = %err, "teardown failed"),
    }
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

/// Cancels the sandbox's jobs and waits for them, removes its containers
/// and its directories under `data_dir`. Idempotent.
async fn teardown(agent: &Agent, sandbox: &str) -> Result<TeardownDone, RpcError> {
    sdp_bus::validate::resource_name("sandbox", sandbox).map_err(|e| bad_request(e.to_string()))?;
    let jobs = agent.cancel_sandbox_jobs(sandbox, CancelReason::Teardown);
    let all_done = futures::future::join_all(jobs.iter().map(|done| done.cancelled()));
    if tokio::time::timeout(TEARDOWN_JOB_WAIT, all_done)
        .await
        .is_err()
    {
        return Err(RpcError::new(
            RpcErrorCode::Unavailable,
            "the sandbox's deployments did not stop in time; try again",
        ));
    }
    let removed = agent
        .docker
        .remove_matching(
            &[
                (docker::LABEL_AGENT, agent.agent_id()),
                (docker::LABEL_SANDBOX, sandbox),
            ],
            None,
        )
        .await
        .map_err(|e| internal("removing the containers", e.user_message()))?;
    // The sandbox's resources' data goes with it.
    agent
        .docker
        .remove_volumes_labelled(&[
            (docker::LABEL_AGENT, agent.agent_id()),
            (docker::LABEL_SANDBOX, sandbox),
        ])
        .await
        .map_err(|e| internal("removing the resources' volumes", e.user_message()))?;

    // Git may still run in a blocking task of a cancelled job: wait for it
    // through the worktree locks.
    let mut guards = Vec::new();
    for lock in agent.sandbox_worktree_locks(sandbox) {
        guards.push(lock.lock_owned().await);
    }
    let data_dir = agent.config.data_dir.clone();
    let sandbox_dir = sandbox.to_owned();
    let worktrees =
        tokio::task::spawn_blocking(move || remove_sandbox_dirs(&data_dir, &sandbox_dir))
            .await
            .map_err(|e| internal("removing the sandbox's files", e))?
            .map_err(|e| internal("removing the sandbox's files", e))?;
    drop(guards);
    Ok(TeardownDone {
        containers_removed: u32::try_from(removed).unwrap_or(u32::MAX),
        worktrees_removed: worktrees,
    })
}

async fn handle_reconcile(agent: Arc<Agent>, message: async_nats::Message) {
    let Some(request) =
        decode_or_answer::<Reconcile, ReconcileDone>(&agent, &message, "reconcile").await
    else {
        return;
    };
    let result = reconcile(&agent, &request).await;
    match &result {
        Ok(done) if !done.removed.is_empty() => {
            tracing::info!(removed = ?done.removed, kept = done.kept, "reconciled containers")
        }
        Ok(done) => tracing::debug!(kept = done.kept, "reconciled containers: none to remove"),
        Err(err) => tracing::warn!(error = %err, "reconcile failed"),
    }
    respond(&agent, message.reply.clone(), &Reply::from(result)).await;
}

/// Removes this agent's containers of every deployment that is neither in
/// `keep` nor being worked on here; keeps the rest. Idempotent, and safe to
/// run at any time: level-triggered convergence after a restart.
async fn reconcile(agent: &Agent, request: &Reconcile) -> Result<ReconcileDone, RpcError> {
    if !request.abandon.is_empty() {
        tracing::warn!(deployments = ?request.abandon, "the control plane settled these while this agent was silent: stopping them");
        let jobs = agent.cancel_jobs(&request.abandon, CancelReason::Abandoned);
        let all_done = futures::future::join_all(jobs.iter().map(|done| done.cancelled()));
        if tokio::time::timeout(TEARDOWN_JOB_WAIT, all_done)
            .await
            .is_err()
        {
            return Err(RpcError::new(
                RpcErrorCode::Unavailable,
                "abandoned deployments did not stop in time; try again",
            ));
        }
    }
    let containers = agent
        .docker
        .list_labelled(&[(docker::LABEL_AGENT, agent.agent_id())])
        .await
        .map_err(|e| internal("listing containers", e.user_message()))?;
    // Resources are kept until their sandbox is torn down: they belong to
    // no deployment.
    let resources = agent
        .docker
        .list_labelled(&[
            (docker::LABEL_AGENT, agent.agent_id()),
            (docker::LABEL_RESOURCE, ""),
        ])
        .await
        .map_err(|e| internal("listing containers", e.user_message()))?;
    let is_resource = |id: &str| resources.iter().any(|(r, _)| r == id);
    let in_flight = agent.running();
    let wanted = |deployment: &str| {
        request
            .keep
            .iter()
            .chain(in_flight.iter())
            .any(|id| id.as_str() == deployment)
    };
    let mut done = ReconcileDone::default();
    for (container, deployment) in containers {
        if is_resource(&container) {
            done.kept += 1;
            continue;
        }
        match deployment {
            Some(deployment) if wanted(&deployment) => done.kept += 1,
            deployment => {
                agent
                    .docker
                    .remove(&container)
                    .await
                    .map_err(|e| internal("removing a container", e.user_message()))?;
                done.removed.push(deployment.unwrap_or(container));
            }
        }
    }
    Ok(done)
}

/// Removes `<data_dir>/{worktrees,gitdirs,builds,routes,state}/<sandbox>`;
/// returns how many worktrees there were.
fn remove_sandbox_dirs(data_dir: &std::path::Path, sandbox: &str) -> std::io::Result<u32> {
    let worktrees = std::fs::read_dir(data_dir.join("worktrees").join(sandbox))
        .map(|entries| entries.filter_map(Result::ok).count())
        .unwrap_or(0);
    for dir in SANDBOX_DIRS {
        match std::fs::remove_dir_all(data_dir.join(dir).join(sandbox)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(u32::try_from(worktrees).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_heartbeat_advertises_every_method_of_the_table() {
        let served = super::served_methods("micro", "micro-1");
        assert_eq!(
            served,
            [
                "deploy",
                "verify_credentials",
                "list_repos",
                "list_branches",
                "teardown",
                "reconcile",
                "container_logs",
                "branch_status",
                "probe",
                "sleep",
                "wake",
                "test_run",
                "resource_ensure",
                "resource_remove",
                "resource_sizes"
            ]
        );
    }
}
