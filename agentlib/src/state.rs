//! Shared state of a running agent ([`Agent`]), below every handler: its
//! config and clients, the table of unsettled jobs ([`JobHandle`], each
//! cancelled with a [`CancelReason`]), the worktree and store locks, and
//! the count of builds in flight. The loop that fills it is
//! [`crate::agent::run`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use sdp_bus::{DeployRequest, DeploymentId};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::build_container::BuildBox;
use crate::config::AgentConfig;
use crate::docker::DockerClient;
use crate::error::DeployError;
use crate::flavour::Flavour;

/// One per (sandbox, service): held while git works on its worktree.
type WorktreeLock = Arc<tokio::sync::Mutex<()>>;

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
    pub(crate) jobs: Mutex<HashMap<DeploymentId, Arc<JobHandle>>>,
    pub(crate) worktree_locks: Mutex<HashMap<(String, String), WorktreeLock>>,
    /// One per repo: held while a fetch writes its shared store.
    pub(crate) store_locks: Mutex<HashMap<String, WorktreeLock>>,
    /// The flavour's build-cache warm-up, for heartbeats (`None`: nothing
    /// to warm).
    pub(crate) build_cache: Mutex<Option<String>>,
    /// How many deployments are building now: the warm-up stands aside
    /// while any is (both would compile the same packages at once).
    pub(crate) builds: tokio::sync::watch::Sender<usize>,
    /// Runtime-log streams open now ([`crate::runtime_logs`]).
    pub log_streams: std::sync::atomic::AtomicU32,
    pub(crate) host: String,
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

    pub(crate) fn set_build_cache(&self, state: String) {
        *self.build_cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    /// Registers the job of `request` and cancels the unsettled jobs of the
    /// same sandbox and service (superseded by it); returns its handle and
    /// their `done` tokens, or `None` when the deployment is registered
    /// already (a retried request).
    pub fn register_job(
        &self,
        request: &DeployRequest,
    ) -> Option<(Arc<JobHandle>, Vec<CancellationToken>)> {
        let id = &request.deployment_id;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.contains_key(id) {
            None
        } else {
            let handle = Arc::new(JobHandle::new(
                id.clone(),
                request.sandbox.clone(),
                request.repo.clone(),
                self.shutdown.child_token(),
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
    }

    /// Registers a test run ([`crate::test_run`]) as a job of `sandbox`, so
    /// a cancel, a teardown of the sandbox and shutdown reach it; `None`
    /// when it is registered already (a retried request). It supersedes
    /// nothing: its service name is no repo's.
    pub fn register_test_run(&self, id: &DeploymentId, sandbox: &str) -> Option<Arc<JobHandle>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.contains_key(id) {
            return None;
        }
        let handle = Arc::new(JobHandle::new(
            id.clone(),
            sandbox.to_owned(),
            format!("{}/", crate::test_run::TEST_RUNS_DIR),
            self.shutdown.child_token(),
        ));
        jobs.insert(id.clone(), handle.clone());
        Some(handle)
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

/// A build in flight (see [`Agent::building`]).
pub struct BuildGuard<'a> {
    agent: &'a Agent,
}

impl Drop for BuildGuard<'_> {
    fn drop(&mut self) {
        self.agent.builds.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[derive(Clone, Debug)]
pub enum CancelReason {
    User,
    /// A user's cancel that names them (`deploy.cancel.<id>` with `by`).
    ByUser(String),
    Superseded(DeploymentId),
    /// `agent.cmd.<id>.teardown` of the job's sandbox.
    Teardown,
    /// The control plane settled the deployment while this agent was
    /// silent (stalled, partitioned): it is no longer this agent's.
    Abandoned,
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

    pub(crate) fn cancel_error(&self) -> DeployError {
        match self
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(CancelReason::User) => DeployError::Cancelled,
            Some(CancelReason::ByUser(by)) => DeployError::CancelledBy(by),
            Some(CancelReason::Superseded(by)) => DeployError::Superseded(by),
            Some(CancelReason::Teardown) => DeployError::TornDown,
            Some(CancelReason::Abandoned) => DeployError::Abandoned,
            None => DeployError::Shutdown,
        }
    }
}
