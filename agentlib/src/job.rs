//! One deployment (DESIGN §4): queued → fetching → building → starting →
//! health → result. Every step runs raced against the job's cancel token
//! (a user cancel, a newer deployment of the same sandbox/service, or
//! shutdown); dropping a step kills its child process, and the job then
//! removes the container it created. Exactly one result event ends a job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sdp_bus::{DeployRequest, DeploymentId, EventBody, Status};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::docker::{self, RunSpec};
use crate::error::DeployError;
use crate::events::EventSink;
use crate::flavour::BuildContext;
use crate::git::FetchSpec;

const HEALTH_EVERY: Duration = Duration::from_millis(250);
const HEALTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const LOG_TAIL_LINES: usize = 50;

#[derive(Clone, Debug)]
pub enum CancelReason {
    User,
    Superseded(DeploymentId),
}

/// What the agent knows of an unsettled job.
pub struct JobHandle {
    pub id: DeploymentId,
    pub sandbox: String,
    pub repo: String,
    pub cancel: CancellationToken,
    reason: Mutex<Option<CancelReason>>,
    /// Fires when the job has published its result and cleaned up.
    pub done: CancellationToken,
}

impl JobHandle {
    pub fn new(id: DeploymentId, sandbox: String, repo: String, cancel: CancellationToken) -> Self {
        Self {
            id,
            sandbox,
            repo,
            cancel,
            reason: Mutex::new(None),
            done: CancellationToken::new(),
        }
    }

    /// Cancels the job; the first reason given wins.
    pub fn cancel_with(&self, reason: CancelReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.cancel.cancel();
    }

    fn cancel_error(&self) -> DeployError {
        match self
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(CancelReason::User) => DeployError::Cancelled,
            Some(CancelReason::Superseded(by)) => DeployError::Superseded(by),
            None => DeployError::Shutdown,
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub fn is_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What the steps leave behind for the end of the job.
#[derive(Default)]
struct JobState {
    commit: Option<String>,
    log_tail: Vec<String>,
    /// Set once the starting step may have created a container.
    touched_docker: bool,
    git_cancel: Arc<AtomicBool>,
    permit: Option<OwnedSemaphorePermit>,
}

pub(crate) async fn run_job(
    agent: Arc<Agent>,
    handle: Arc<JobHandle>,
    request: DeployRequest,
    origin_url: String,
    mut cancels: async_nats::Subscriber,
    superseded: Vec<CancellationToken>,
) {
    let id = handle.id.clone();
    let mut sink = EventSink::new(
        agent.js.clone(),
        id.clone(),
        agent.agent_id().to_owned(),
        agent.give_up.clone(),
    );
    let listener = {
        let handle = handle.clone();
        let client = agent.client.clone();
        tokio::spawn(async move {
            while let Some(message) = cancels.next().await {
                tracing::info!(deployment = %handle.id, "cancel requested");
                handle.cancel_with(CancelReason::User);
                if let Some(reply) = message.reply {
                    let body = sdp_bus::Reply::ok(sdp_bus::DeployCancel {});
                    let _ = client.publish(reply, sdp_bus::encode(&body).into()).await;
                }
            }
        })
    };

    let mut state = JobState::default();
    sink.phase(Status::Queued, None).await;
    let outcome = tokio::select! {
        result = steps(&agent, &request, &origin_url, &mut sink, &mut state, superseded) => result,
        _ = handle.cancel.cancelled() => Err(handle.cancel_error()),
    };
    state.git_cancel.store(true, Ordering::Relaxed);
    let body = match outcome {
        Ok(url) => {
            tracing::info!(deployment = %id, %url, "deployment running");
            EventBody::Result {
                status: Status::Running,
                url: Some(url),
                error: None,
                commit: state.commit.clone(),
                log_tail: Vec::new(),
            }
        }
        Err(err) => {
            let status = err.status();
            let cancelled = status == Status::Cancelled || matches!(err, DeployError::Shutdown);
            if cancelled && state.touched_docker {
                let labels = [(docker::LABEL_DEPLOYMENT, id.as_str())];
                if let Err(e) = agent.docker.remove_matching(&labels, None).await {
                    tracing::warn!(deployment = %id, error = %e, "cannot remove the container of a cancelled deployment");
                }
            }
            let message = err.user_message();
            tracing::info!(deployment = %id, %status, error = %message, "deployment ended");
            EventBody::Result {
                status,
                url: None,
                error: Some(message),
                commit: state.commit.clone(),
                log_tail: std::mem::take(&mut state.log_tail),
            }
        }
    };
    sink.result(body).await;
    listener.abort();
    agent.unregister(&id);
    drop(state.permit.take());
    handle.done.cancel();
}

/// The steps after `queued`; returns the service URL.
async fn steps(
    agent: &Agent,
    request: &DeployRequest,
    origin_url: &str,
    sink: &mut EventSink,
    state: &mut JobState,
    superseded: Vec<CancellationToken>,
) -> Result<String, DeployError> {
    for done in superseded {
        done.cancelled().await;
    }
    let permit = agent
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| DeployError::Shutdown)?;
    state.permit = Some(permit);

    let config = &agent.config;
    let sandbox = request.sandbox.as_str();
    let repo = request.repo.as_str();
    let worktree = config.data_dir.join("worktrees").join(sandbox).join(repo);
    let gitdir = config
        .data_dir
        .join("gitdirs")
        .join(sandbox)
        .join(format!("{repo}.git"));
    let artifact_dir = config.data_dir.join("builds").join(sandbox).join(repo);

    // Fetch.
    sink.phase(Status::Fetching, None).await;
    sink.system(format!("fetching branch {} of {repo}", request.branch))
        .await;
    let lock = agent.worktree_lock(sandbox, repo).lock_owned().await;
    let (progress, mut progress_lines) = tokio::sync::mpsc::unbounded_channel();
    let spec = OwnedFetch {
        repo: repo.to_owned(),
        url: origin_url.to_owned(),
        branch: request.branch.clone(),
        credential: request.credential.clone(),
        worktree: worktree.clone(),
        gitdir,
        cancel: state.git_cancel.clone(),
        progress,
    };
    // The blocking task keeps the worktree lock until git is done, even if
    // this job is cancelled meanwhile.
    let mut fetch = tokio::task::spawn_blocking(move || {
        let _lock = lock;
        crate::git::fetch_and_checkout(&spec.borrowed())
    });
    let commit = loop {
        tokio::select! {
            line = progress_lines.recv() => {
                if let Some(line) = line {
                    sink.system(line).await;
                }
            }
            joined = &mut fetch => {
                break joined.map_err(|e| DeployError::Internal(format!("git task failed: {e}")))??;
            }
        }
    };
    while let Ok(line) = progress_lines.try_recv() {
        sink.system(line).await;
    }
    sink.system(format!("checked out {commit}")).await;
    state.commit = Some(commit.clone());

    // Build.
    sink.phase(Status::Building, Some(commit.clone())).await;
    let ctx = BuildContext {
        worktree: worktree.clone(),
        artifact_dir: artifact_dir.clone(),
        data_dir: config.data_dir.clone(),
        cache_dir: agent.cache_dir.clone(),
    };
    agent.flavour.build(&ctx, sink).await?;

    // Start.
    sink.phase(Status::Starting, Some(commit.clone())).await;
    if !agent.docker.image_present(&agent.base_image).await {
        return Err(DeployError::ImageMissing {
            image: agent.base_image.clone(),
        });
    }
    let spec = agent.flavour.container();
    let port = config.service.port.unwrap_or(spec.default_port);
    let agent_id = agent.agent_id();
    let name = format!("sdp-{agent_id}-{sandbox}-{repo}");
    state.touched_docker = true;
    agent
        .docker
        .remove_matching(
            &[
                (docker::LABEL_AGENT, agent_id),
                (docker::LABEL_SANDBOX, sandbox),
                (docker::LABEL_SERVICE, repo),
            ],
            Some(&name),
        )
        .await?;
    let mut env: Vec<String> = request
        .env
        .iter()
        .filter(|(k, _)| k.as_str() != "PORT" && !k.starts_with("SDP_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.extend([
        format!("PORT={port}"),
        format!("SDP_SANDBOX={sandbox}"),
        format!("SDP_SERVICE={repo}"),
        format!("SDP_BRANCH={}", request.branch),
        format!("SDP_COMMIT={commit}"),
        format!("SDP_DEPLOYMENT={}", request.deployment_id),
    ]);
    let labels = HashMap::from([
        (
            docker::LABEL_DEPLOYMENT.to_owned(),
            request.deployment_id.to_string(),
        ),
        (docker::LABEL_SANDBOX.to_owned(), sandbox.to_owned()),
        (docker::LABEL_SERVICE.to_owned(), repo.to_owned()),
        (docker::LABEL_AGENT.to_owned(), agent_id.to_owned()),
        (docker::LABEL_COMMIT.to_owned(), commit.clone()),
    ]);
    let mut mounts = vec![(worktree, spec.source_mount.to_owned())];
    if let Some(target) = spec.artifact_mount {
        mounts.push((artifact_dir, target.to_owned()));
    }
    let run = RunSpec {
        name: name.clone(),
        image: agent.base_image.clone(),
        cmd: config
            .flavour
            .run_cmd
            .clone()
            .unwrap_or(spec.default_run_cmd),
        working_dir: spec.source_mount.to_owned(),
        env,
        labels,
        port,
        mounts,
        memory: config.memory_bytes(),
        nano_cpus: config.nano_cpus(),
    };
    sink.system(format!("starting container {name} from {}", run.image))
        .await;
    let container = agent.docker.create(&run).await?;
    agent.docker.start(&container).await?;

    // Health.
    let health = &config.health;
    let deadline = Instant::now() + Duration::from_secs(health.timeout_secs);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(HEALTH_REQUEST_TIMEOUT)
        .build()
        .map_err(|e| DeployError::Internal(format!("cannot build an HTTP client: {e}")))?;
    let mut host_port = None;
    loop {
        let (published, exited) = agent.docker.state(&container, port).await?;
        if let Some(code) = exited {
            state.log_tail = agent.docker.log_tail(&container, LOG_TAIL_LINES).await;
            return Err(DeployError::ContainerExited { code });
        }
        if host_port.is_none() {
            host_port = published;
        }
        if let Some(host_port) = host_port {
            let url = format!("http://127.0.0.1:{host_port}{}", health.path);
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                sink.system(format!("health check of {} passed", health.path))
                    .await;
                return Ok(format!("http://{}:{host_port}", config.advertise_host));
            }
        }
        if Instant::now() >= deadline {
            state.log_tail = agent.docker.log_tail(&container, LOG_TAIL_LINES).await;
            if host_port.is_none() {
                return Err(DeployError::NoHostPort { port });
            }
            return Err(DeployError::HealthTimeout {
                path: health.path.clone(),
                secs: health.timeout_secs,
            });
        }
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}

/// An owned [`FetchSpec`], to move into `spawn_blocking`.
struct OwnedFetch {
    repo: String,
    url: String,
    branch: String,
    credential: sdp_bus::GitCredential,
    worktree: std::path::PathBuf,
    gitdir: std::path::PathBuf,
    cancel: Arc<AtomicBool>,
    progress: tokio::sync::mpsc::UnboundedSender<String>,
}

impl OwnedFetch {
    fn borrowed(&self) -> FetchSpec<'_> {
        FetchSpec {
            repo: &self.repo,
            url: &self.url,
            branch: &self.branch,
            credential: &self.credential,
            worktree: self.worktree.clone(),
            gitdir: self.gitdir.clone(),
            cancel: self.cancel.clone(),
            progress: self.progress.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys() {
        for ok in ["A", "_x", "USERS_URL", "a1"] {
            assert!(is_env_key(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "Ä"] {
            assert!(!is_env_key(bad), "{bad}");
        }
    }
}
