//! The agent's NATS side: [`run`] (one loop over the subscriptions of
//! [`rpc::subscribe_all`]), the deploy handler, heartbeats and the table of
//! unsettled jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use sdp_bus::{
    DeployAccepted, DeployRequest, DeploymentId, Heartbeat, Reply, RpcError, RpcErrorCode, decode,
    encode, subject,
};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::build_container::BuildBox;
use crate::config::AgentConfig;
use crate::docker::DockerClient;
use crate::error::AgentError;
use crate::flavour::Flavour;
use crate::job::{self, CancelReason, JobHandle};
use crate::rpc;

/// One per (sandbox, service): held while git works on its worktree.
type WorktreeLock = Arc<tokio::sync::Mutex<()>>;

pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// How long jobs get to publish their results after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Shared state of a running agent.
pub(crate) struct Agent {
    pub config: AgentConfig,
    pub flavour: Arc<dyn Flavour>,
    pub base_image: String,
    pub cache_dir: PathBuf,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub docker: DockerClient,
    /// Runs the build containers.
    pub builder: BuildBox,
    pub slots: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    /// Fires after the grace period: event publishing stops retrying.
    pub give_up: CancellationToken,
    pub tasks: TaskTracker,
    jobs: Mutex<HashMap<DeploymentId, Arc<JobHandle>>>,
    worktree_locks: Mutex<HashMap<(String, String), WorktreeLock>>,
    /// One per repo: held while a fetch writes its shared store.
    store_locks: Mutex<HashMap<String, WorktreeLock>>,
    /// The flavour's build-cache warm-up, for heartbeats (`None`: nothing
    /// to warm).
    build_cache: Mutex<Option<String>>,
    /// How many deployments are building now: the warm-up stands aside
    /// while any is (both would compile the same packages at once).
    builds: tokio::sync::watch::Sender<usize>,
    /// Runtime-log streams open now ([`crate::runtime_logs`]).
    pub log_streams: std::sync::atomic::AtomicU32,
    host: String,
}

impl Agent {
    pub fn agent_id(&self) -> &str {
        &self.config.agent.id
    }

    pub fn kind(&self) -> &'static str {
        self.flavour.kind()
    }

    /// Serialises git work on one worktree across jobs.
    pub fn worktree_lock(&self, sandbox: &str, repo: &str) -> WorktreeLock {
        let mut locks = self
            .worktree_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        locks
            .entry((sandbox.to_owned(), repo.to_owned()))
            .or_default()
            .clone()
    }

    /// Serialises fetches into one repo's shared store across jobs (the
    /// store's file lock then covers other processes).
    pub fn store_lock(&self, repo: &str) -> WorktreeLock {
        let mut locks = self.store_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(repo.to_owned()).or_default().clone()
    }

    /// Counts a build in flight until the guard drops.
    pub fn building(&self) -> BuildGuard<'_> {
        self.builds.send_modify(|n| *n += 1);
        BuildGuard { agent: self }
    }

    fn set_build_cache(&self, state: String) {
        *self.build_cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    pub fn unregister(&self, id: &DeploymentId) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Cancels the jobs with these ids; returns their `done` tokens.
    pub fn cancel_jobs(
        &self,
        ids: &[DeploymentId],
        reason: CancelReason,
    ) -> Vec<CancellationToken> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .filter_map(|id| jobs.get(id))
            .map(|job| {
                job.cancel_with(reason.clone());
                job.done.clone()
            })
            .collect()
    }

    /// Cancels every unsettled job of `sandbox`; returns their `done`
    /// tokens.
    pub fn cancel_sandbox_jobs(
        &self,
        sandbox: &str,
        reason: CancelReason,
    ) -> Vec<CancellationToken> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .filter(|job| job.sandbox == sandbox)
            .map(|job| {
                job.cancel_with(reason.clone());
                job.done.clone()
            })
            .collect()
    }

    /// The worktree locks of `sandbox`'s services.
    pub fn sandbox_worktree_locks(&self, sandbox: &str) -> Vec<WorktreeLock> {
        let locks = self
            .worktree_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        locks
            .iter()
            .filter(|((s, _), _)| s == sandbox)
            .map(|(_, lock)| lock.clone())
            .collect()
    }

    pub(crate) fn running(&self) -> Vec<DeploymentId> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<DeploymentId> = jobs.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// Docker can publish only on an address of this host; an agent
/// configured with another one (a typo, the wrong host's file) would fail
/// every deployment at its start, so it refuses to start instead.
fn check_publish_addr(ip: std::net::IpAddr) -> Result<(), AgentError> {
    match std::net::TcpListener::bind((ip, 0)) {
        Ok(_) => Ok(()),
        Err(source) if source.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(AgentError::PublishAddr { ip, source })
        }
        // Anything else (a sandbox that forbids binding) is not proof the
        // address is foreign; Docker will tell.
        Err(_) => Ok(()),
    }
}

/// Runs the agent until `shutdown` fires: connects to NATS and Docker,
/// serves deploy requests and RPCs of the flavour's kind, heartbeats. On
/// shutdown, in-flight deployments are cancelled and get
/// [`SHUTDOWN_GRACE`] to publish their results.
pub async fn run(
    mut config: AgentConfig,
    flavour: Arc<dyn Flavour>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    config.validate()?;
    check_publish_addr(config.publish_ip())?;
    let toolchains = flavour
        .toolchains(&config)
        .map_err(AgentError::Toolchains)?;
    config.data_dir = absolute_dir(&config.data_dir, true)?;
    config.repos_dir = absolute_dir(&config.repos_dir, false)?;
    let cache_dir = match &config.flavour.cache_dir {
        Some(dir) => absolute_dir(dir, true)?,
        None => absolute_dir(&config.data_dir.join("cache"), true)?,
    };
    let kind = flavour.kind();
    let base_image = config
        .flavour
        .base_image
        .clone()
        .unwrap_or_else(|| flavour.default_base_image().to_owned());
    let name = format!("sdp-agent-{kind}-{}", config.agent.id);

    let client = tokio::select! {
        client = sdp_bus::nats::connect(&config.nats, &name) => client?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let docker = DockerClient::connect().await?;
    let builder = BuildBox::connect(&config).await?;
    let leftovers = builder.remove_leftovers().await;
    if leftovers > 0 {
        tracing::info!(
            count = leftovers,
            "removed build containers left by an earlier run"
        );
    }
    let js = jetstream::new(client.clone());

    // Subscribed before the agent exists, so a refused subscription fails
    // the start.
    let mut requests = rpc::subscribe_all(&client, kind, &config.agent.id).await?;

    let stop = shutdown.child_token();
    let agent = Arc::new(Agent {
        slots: Arc::new(Semaphore::new(config.agent.max_parallel as usize)),
        config,
        flavour,
        base_image,
        cache_dir,
        client: client.clone(),
        js,
        docker,
        builder,
        shutdown: stop.clone(),
        give_up: CancellationToken::new(),
        tasks: TaskTracker::new(),
        jobs: Mutex::new(HashMap::new()),
        worktree_locks: Mutex::new(HashMap::new()),
        store_locks: Mutex::new(HashMap::new()),
        build_cache: Mutex::new(None),
        builds: tokio::sync::watch::Sender::new(0),
        log_streams: std::sync::atomic::AtomicU32::new(0),
        host: crate::hostname(),
    });
    tracing::info!(agent_id = agent.agent_id(), kind, base_image = %agent.base_image, toolchains = %toolchains.join(", "), "agent started");

    // Warm-up first, so the first heartbeat already says `warming`.
    let warm = warm_build_cache(agent.clone(), stop.clone());
    let heartbeat = tokio::spawn(heartbeats(agent.clone()));
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = requests.next() => next,
        };
        // A subscription that ended (the connection closed for good)
        // stops the agent.
        let Some(Some((handler, message))) = next else {
            break;
        };
        let tasks = agent.tasks.clone();
        tasks.spawn(handler(agent.clone(), message));
    }

    tracing::info!("agent stopping");
    // Dropping the subscriptions unsubscribes: no new request reaches an
    // agent that is winding down.
    drop(requests);
    heartbeat.abort();
    if let Some(warm) = warm {
        warm.abort();
    }
    // Jobs' cancel tokens are children of `stop`: they wind down now.
    stop.cancel();
    agent.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, agent.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("deployments did not finish within the shutdown grace period");
        agent.give_up.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), agent.tasks.wait()).await;
    }
    // The warm-up's container, and any build whose removal was left to a
    // task that did not get to run.
    let _ = tokio::time::timeout(Duration::from_secs(10), agent.builder.remove_leftovers()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    tracing::info!("agent stopped");
    Ok(())
}

fn absolute_dir(path: &Path, create: bool) -> Result<PathBuf, AgentError> {
    let err = |source| AgentError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    if create {
        std::fs::create_dir_all(path).map_err(err)?;
    }
    match path.canonicalize() {
        Ok(p) => Ok(p),
        Err(_) if !create => std::path::absolute(path).map_err(err),
        Err(e) => Err(err(e)),
    }
}

pub(crate) async fn respond<T: Serialize>(
    agent: &Agent,
    reply: Option<async_nats::Subject>,
    body: &Reply<T>,
) {
    let Some(reply) = reply else {
        tracing::warn!("request without a reply subject; not answered");
        return;
    };
    if let Err(err) = agent.client.publish(reply, Bytes::from(encode(body))).await {
        tracing::warn!(error = %err, "cannot send a reply");
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> RpcError {
    RpcError::new(RpcErrorCode::BadRequest, message)
}

/// Checks a request before anything touches git or Docker; the error is
/// for the requester (no host paths, no credential). Returns the repo's
/// origin URL.
async fn check_request(agent: &Agent, request: &DeployRequest) -> Result<String, RpcError> {
    sdp_bus::validate::repo(&request.repo).map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::branch(&request.branch).map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::resource_name("sandbox", &request.sandbox)
        .map_err(|e| bad_request(e.to_string()))?;
    if let Some(commit) = &request.commit {
        sdp_bus::validate::commit(commit).map_err(|e| bad_request(e.to_string()))?;
    }
    if let Some(key) = request.env.keys().find(|k| !job::is_env_key(k)) {
        return Err(bad_request(format!(
            "invalid env key {key:?}: use [A-Za-z_][A-Za-z0-9_]*"
        )));
    }
    // The control plane refuses these when they are written; a message
    // that still has one is hostile or stale, and nothing must start.
    if let Some(key) = request
        .env
        .keys()
        .find(|k| sdp_bus::service::is_reserved_env_key(k))
    {
        return Err(bad_request(format!(
            "env key {key:?} is reserved: SDP sets PORT and every SDP_* variable itself; remove it from the sandbox's environment"
        )));
    }
    let repos_dir = agent.config.repos_dir.clone();
    let repo = request.repo.clone();
    let schemes = agent.config.git.allowed_schemes.clone();
    tokio::task::spawn_blocking(move || crate::git::origin_url(&repos_dir, &repo, &schemes))
        .await
        .map_err(|e| {
            RpcError::new(
                RpcErrorCode::Internal,
                format!("checking the repo failed: {e}"),
            )
        })?
        .map_err(RpcError::from)
}

pub(crate) async fn handle_deploy(agent: Arc<Agent>, message: async_nats::Message) {
    let reply = message.reply.clone();
    let request: DeployRequest = match decode(&message.payload) {
        Ok(request) => request,
        Err(err) => {
            tracing::warn!(error = %err, "cannot decode a deploy request");
            let body = Reply::<DeployAccepted>::err(bad_request(format!(
                "cannot decode the deploy request: {err}"
            )));
            respond(&agent, reply, &body).await;
            return;
        }
    };
    let id = request.deployment_id.clone();
    let accepted = Reply::ok(DeployAccepted {
        agent_id: agent.agent_id().to_owned(),
    });
    if !subject::is_token(id.as_str()) {
        respond(
            &agent,
            reply,
            &Reply::<DeployAccepted>::err(bad_request("invalid deployment id")),
        )
        .await;
        return;
    }
    let url = match check_request(&agent, &request).await {
        Ok(url) => url,
        Err(err) => {
            tracing::info!(deployment = %id, repo = %request.repo, error = %err, "deploy request refused");
            respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
            return;
        }
    };
    if agent.shutdown.is_cancelled() {
        let err = RpcError::new(RpcErrorCode::Unavailable, "the agent is shutting down");
        respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
        return;
    }
    // Listen for cancels before accepting, so none can be missed.
    let cancels = match agent.client.subscribe(subject::deploy_cancel(&id)).await {
        Ok(subscriber) => subscriber,
        Err(err) => {
            tracing::warn!(error = %err, "cannot subscribe to deploy.cancel");
            let err = RpcError::new(
                RpcErrorCode::Unavailable,
                "the agent cannot reach NATS properly",
            );
            respond(&agent, reply, &Reply::<DeployAccepted>::err(err)).await;
            return;
        }
    };
    let registered = {
        let mut jobs = agent.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.contains_key(&id) {
            None
        } else {
            let handle = Arc::new(JobHandle::new(
                id.clone(),
                request.sandbox.clone(),
                request.repo.clone(),
                agent.shutdown.child_token(),
            ));
            let mut superseded = Vec::new();
            for other in jobs.values() {
                if other.sandbox == request.sandbox && other.repo == request.repo {
                    other.cancel_with(CancelReason::Superseded(id.clone()));
                    superseded.push(other.done.clone());
                }
            }
            jobs.insert(id.clone(), handle.clone());
            Some((handle, superseded))
        }
    };
    let Some((handle, superseded)) = registered else {
        // A retried request: already ours.
        respond(&agent, reply, &accepted).await;
        return;
    };
    tracing::info!(deployment = %id, sandbox = %request.sandbox, repo = %request.repo, branch = %request.branch, "deployment accepted");
    respond(&agent, reply, &accepted).await;
    let tasks = agent.tasks.clone();
    tasks.spawn(job::run_job(
        agent, handle, request, url, cancels, superseded,
    ));
}

/// A build in flight (see [`Agent::building`]).
pub struct BuildGuard<'a> {
    agent: &'a Agent,
}

impl Drop for BuildGuard<'_> {
    fn drop(&mut self) {
        self.agent.builds.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Starts the flavour's cache warm-up in the background. Deploys never wait
/// for it; it waits for them: while a deployment builds, the warm-up is
/// stopped (its child killed; what it finished stays in the cache) and it
/// starts again once no build runs, so a first deploy on a fresh agent
/// gets the CPU and compiles the standard library only once.
fn warm_build_cache(
    agent: Arc<Agent>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    // Only flavours with a cache to warm; the future is made again (and
    // only then runs) each time the warm-up (re)starts.
    drop(
        agent
            .flavour
            .warm_cache(&agent.builder, &agent.cache_dir, &agent.config)?,
    );
    agent.set_build_cache("warming".to_owned());
    Some(tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut builds = agent.builds.subscribe();
        let result = loop {
            // Cancel-safe: `wait_for` only reads the watch.
            tokio::select! {
                idle = builds.wait_for(|n| *n == 0) => if idle.is_err() { return },
                _ = stop.cancelled() => return,
            }
            let Some(warm) =
                agent
                    .flavour
                    .warm_cache(&agent.builder, &agent.cache_dir, &agent.config)
            else {
                return;
            };
            agent.set_build_cache("warming".to_owned());
            tokio::select! {
                result = warm => break result,
                // Dropping the future kills the child.
                _ = stop.cancelled() => return,
                busy = builds.wait_for(|n| *n > 0) => {
                    if busy.is_err() { return }
                    tracing::info!("a deployment is building: build-cache warm-up paused");
                    agent.set_build_cache("paused".to_owned());
                }
            }
        };
        let state = match result {
            Ok(()) => {
                tracing::info!(secs = started.elapsed().as_secs_f64(), "build cache warm");
                "warm".to_owned()
            }
            Err(reason) => {
                tracing::warn!(%reason, "build cache warm-up failed");
                format!("failed: {reason}")
            }
        };
        agent.set_build_cache(state);
    }))
}

async fn heartbeats(agent: Arc<Agent>) {
    let subject = subject::agent_heartbeat(agent.kind(), agent.agent_id());
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // This task runs once per agent process: its start marks a restart.
    let started_at = chrono::Utc::now();
    loop {
        ticker.tick().await;
        let running = agent.running();
        let mut missing_images = Vec::new();
        for image in [&agent.base_image, &agent.config.build.image] {
            if !agent.docker.image_present(image).await {
                missing_images.push(image.clone());
            }
        }
        let repos_dir = agent.config.repos_dir.clone();
        let repos = tokio::task::spawn_blocking(move || crate::git::list_repos(&repos_dir))
            .await
            .unwrap_or_default();
        // Looked for again each time (a few VERSION files): a toolchain
        // installed since shows, as builds would use it.
        let (flavour, config) = (agent.flavour.clone(), agent.config.clone());
        let toolchains = tokio::task::spawn_blocking(move || flavour.toolchains(&config))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let heartbeat = Heartbeat {
            agent_id: agent.agent_id().to_owned(),
            kind: agent.kind().to_owned(),
            host: agent.host.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capacity: agent
                .config
                .agent
                .max_parallel
                .saturating_sub(running.len() as u32),
            running,
            missing_images,
            repos,
            started_at: Some(started_at),
            build_cache: agent
                .build_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            log_streams: agent.log_streams.load(std::sync::atomic::Ordering::Relaxed),
            toolchains,
            serves: Some(crate::rpc::served_methods(agent.kind(), agent.agent_id())),
        };
        if let Err(err) = agent
            .client
            .publish(subject.clone(), Bytes::from(encode(&heartbeat)))
            .await
        {
            tracing::warn!(error = %err, "cannot publish a heartbeat");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_address_of_another_host_is_refused_naming_the_keys() {
        check_publish_addr("127.0.0.1".parse().expect("ip")).expect("loopback is ours");
        // TEST-NET-3: never an address of this host.
        let err = check_publish_addr("203.0.113.77".parse().expect("ip")).expect_err("foreign");
        let message = err.to_string();
        assert!(
            message.contains("203.0.113.77") && message.contains("advertise_host"),
            "{message}"
        );
    }
}
