//! Sleep and wake of sandboxes. A sandbox with no deploy and no request
//! through its preview link for `sandboxes.sleep_after` sleeps: every
//! online agent stops its containers in place (`agent.cmd.<id>.sleep`)
//! and the store says `asleep`. The first preview request, `POST
//! /api/sandboxes/{name}/wake` or a deploy wakes it: the agents start the
//! containers again (`agent.cmd.<id>.wake`) and the wake ends once every
//! running service answers its health path.
//!
//! One transition per sandbox at a time (a per-sandbox lock), and one wake
//! per sandbox however many requests ask for it (they share its outcome).
//! Deployments stay `running` while asleep, so a reconcile keeps the
//! stopped containers (and starts none: agents never start containers on
//! their own).
//!
//! Last activity is kept in memory on every touch and written to the store
//! at most once per [`ACTIVITY_WRITE_EVERY`] per sandbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sdp_api::{AuditAction, AuditOutcome};
use sdp_bus::{SandboxPower, SandboxPowered, ServiceSettings, Status};
use tokio_util::sync::CancellationToken;

use super::Orchestrator;
use crate::store::{SandboxState, StoreError};

/// How often a sandbox's last activity is written to the store at most.
pub const ACTIVITY_WRITE_EVERY: Duration = Duration::from_secs(60);
/// How long an agent gets to stop or start a sandbox's containers.
const POWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a wake waits for the services to answer their health paths.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);
const HEALTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const HEALTH_EVERY: Duration = Duration::from_millis(100);

/// Why a wake did not end with the sandbox awake. Cloned to every request
/// that waited on the same wake.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WakeError {
    #[error("there is no sandbox {0}")]
    NoSandbox(String),
    #[error("waking sandbox {sandbox} failed: {reason}")]
    Failed { sandbox: String, reason: String },
    #[error("the services of sandbox {sandbox} were not healthy within {secs}s: {waiting}")]
    Unhealthy {
        sandbox: String,
        secs: u64,
        waiting: String,
    },
}

impl From<(String, StoreError)> for WakeError {
    fn from((sandbox, err): (String, StoreError)) -> Self {
        Self::Failed {
            sandbox,
            reason: err.to_string(),
        }
    }
}

type WakeFuture = Shared<BoxFuture<'static, Result<(), WakeError>>>;

#[derive(Clone, Copy)]
struct Seen {
    at: DateTime<Utc>,
    stored: Option<Instant>,
}

/// What sleep and wake share across requests and tasks.
#[derive(Clone, Default)]
pub struct Power {
    activity: Arc<Mutex<HashMap<String, Seen>>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    waking: Arc<Mutex<HashMap<String, WakeFuture>>>,
}

impl Power {
    fn lock_of(&self, sandbox: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(sandbox.to_owned())
            .or_default()
            .clone()
    }

    fn last_seen(&self, sandbox: &str) -> Option<DateTime<Utc>> {
        self.activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sandbox)
            .map(|seen| seen.at)
    }
}

impl Orchestrator {
    /// Notes activity in `sandbox` now (a preview request, a deploy); the
    /// store gets it at most once per [`ACTIVITY_WRITE_EVERY`].
    pub fn touch(&self, sandbox: &str) {
        let now = Utc::now();
        let write = {
            let mut activity = self
                .power
                .activity
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let seen = activity.entry(sandbox.to_owned()).or_insert(Seen {
                at: now,
                stored: None,
            });
            seen.at = now;
            let due = seen
                .stored
                .is_none_or(|at| at.elapsed() >= ACTIVITY_WRITE_EVERY);
            if due {
                seen.stored = Some(Instant::now());
            }
            due
        };
        if write && let Err(err) = self.store.record_activity(sandbox, now) {
            tracing::warn!(sandbox, error = %err, "cannot record the sandbox's activity");
        }
    }

    /// A deploy into `sandbox`: activity, and a wake in the background if
    /// it sleeps (the deploy does not wait for it).
    pub fn wake_for_deploy(&self, sandbox: &str) {
        self.touch(sandbox);
        let asleep = matches!(
            self.store.sandbox(sandbox),
            Ok(Some(s)) if s.state != SandboxState::Awake
        );
        if asleep {
            tracing::info!(sandbox, "a deploy wakes the sandbox");
            drop(self.start_wake(sandbox));
        }
    }

    /// Wakes `sandbox` (if it sleeps) and waits for the wake to end; many
    /// callers share one wake.
    pub async fn wake(&self, sandbox: &str) -> Result<(), WakeError> {
        self.start_wake(sandbox).await
    }

    /// The wake of `sandbox` under way, or a new one. It runs in a task of
    /// its own, so it ends even if every caller stops waiting.
    pub fn start_wake(&self, sandbox: &str) -> WakeFuture {
        let mut waking = self.power.waking.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wake) = waking.get(sandbox) {
            return wake.clone();
        }
        let this = self.clone();
        let name = sandbox.to_owned();
        let wake = async move {
            let outcome = this.wake_now(&name).await;
            this.power
                .waking
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            outcome
        }
        .boxed()
        .shared();
        waking.insert(sandbox.to_owned(), wake.clone());
        tokio::spawn(wake.clone());
        wake
    }

    async fn wake_now(&self, name: &str) -> Result<(), WakeError> {
        let lock = self.power.lock_of(name);
        let _held = lock.lock().await;
        let store_err = |err| WakeError::from((name.to_owned(), err));
        let Some(sandbox) = self.store.sandbox(name).map_err(store_err)? else {
            return Err(WakeError::NoSandbox(name.to_owned()));
        };
        if sandbox.state == SandboxState::Awake {
            return Ok(());
        }
        tracing::info!(sandbox = name, "waking sandbox");
        let started = Instant::now();
        self.store
            .set_sandbox_state(name, SandboxState::Waking)
            .map_err(store_err)?;
        let outcome = match self.power_agents(name, sdp_bus::subject::WAKE).await {
            Ok(()) => self.wait_healthy(name).await,
            Err(reason) => Err(WakeError::Failed {
                sandbox: name.to_owned(),
                reason,
            }),
        };
        // A failed wake leaves it asleep: the next request tries again.
        let state = match outcome {
            Ok(()) => SandboxState::Awake,
            Err(_) => SandboxState::Asleep,
        };
        self.store
            .set_sandbox_state(name, state)
            .map_err(store_err)?;
        match &outcome {
            Ok(()) => {
                self.touch(name);
                tracing::info!(
                    sandbox = name,
                    secs = started.elapsed().as_secs_f64(),
                    "sandbox awake"
                );
            }
            Err(err) => tracing::warn!(sandbox = name, error = %err, "wake failed"),
        }
        // Whatever asked for it (a preview request, a deploy, the API),
        // the wake itself is the control plane's.
        let (audited, message) = match &outcome {
            Ok(()) => (
                AuditOutcome::Ok,
                format!("awake in {:.1} s", started.elapsed().as_secs_f64()),
            ),
            Err(err) => (AuditOutcome::Failed, err.to_string()),
        };
        self.audit
            .record_system(
                AuditAction::SandboxWake,
                name,
                name.to_owned(),
                audited,
                Some(message),
            )
            .await;
        outcome
    }

    /// Puts `sandbox` to sleep unless it is not awake or was active
    /// within `idle` (checked again under its lock). True if it slept.
    pub async fn sleep_sandbox(&self, name: &str, idle: Duration) -> Result<bool, StoreError> {
        let lock = self.power.lock_of(name);
        let _held = lock.lock().await;
        let Some(candidate) = self
            .store
            .awake_sandboxes()?
            .into_iter()
            .find(|c| c.name == name)
        else {
            return Ok(false);
        };
        if candidate.busy || !self.idle_since(name, candidate.last_activity, idle) {
            return Ok(false);
        }
        tracing::info!(sandbox = name, "sandbox idle: putting it to sleep");
        let slept = self.power_agents(name, sdp_bus::subject::SLEEP).await;
        if let Err(reason) = &slept {
            // Some containers may have stopped: a wake starts them again.
            tracing::warn!(sandbox = name, %reason, "sleep failed on an agent; marked asleep so the next request wakes it");
        }
        let (audited, message) = match slept {
            Ok(()) => (AuditOutcome::Ok, format!("idle for {} s", idle.as_secs())),
            Err(reason) => (AuditOutcome::Failed, reason),
        };
        self.audit
            .record_system(
                AuditAction::SandboxSleep,
                name,
                name.to_owned(),
                audited,
                Some(message),
            )
            .await;
        self.store.set_sandbox_state(name, SandboxState::Asleep)?;
        Ok(true)
    }

    /// Whether nothing happened in the sandbox for `idle` (stored or in
    /// memory).
    fn idle_since(&self, name: &str, stored: DateTime<Utc>, idle: Duration) -> bool {
        let last = self.power.last_seen(name).map_or(stored, |m| m.max(stored));
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
        Utc::now() - last >= idle
    }

    /// Asks every online agent that serves `method` (sleep or wake) to
    /// apply it to the sandbox's containers, all at once. An agent that does
    /// not serve it is skipped (its containers keep running).
    async fn power_agents(&self, sandbox: &str, method: &'static str) -> Result<(), String> {
        let request = SandboxPower {
            sandbox: sandbox.to_owned(),
        };
        let agents: Vec<String> = self
            .registry
            .views(self.heartbeat_timeout)
            .into_iter()
            .filter(|a| a.online)
            .map(|a| a.id)
            .collect();
        let calls = agents.iter().map(|agent| {
            let request = &request;
            async move {
                let outcome: Result<SandboxPowered, _> = self
                    .agents
                    .command(agent, method, request, POWER_TIMEOUT)
                    .await;
                (agent, outcome)
            }
        });
        let mut failures = Vec::new();
        for (agent, outcome) in futures::future::join_all(calls).await {
            match outcome {
                Ok(done) => {
                    tracing::debug!(sandbox, agent, method, changed = done.changed, "agent done")
                }
                Err(err) if err.is_not_supported() => {
                    tracing::info!(
                        sandbox,
                        agent,
                        method,
                        "the agent does not serve {method}: its containers of the sandbox are left as they are"
                    )
                }
                Err(err) => failures.push(format!("agent {agent}: {err}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Waits until every running service of the sandbox (its gateway too)
    /// answers its health path with a success.
    async fn wait_healthy(&self, sandbox: &str) -> Result<(), WakeError> {
        let store_err = |err| WakeError::from((sandbox.to_owned(), err));
        let running: Vec<(String, String)> = self
            .store
            .latest_deployments(sandbox)
            .map_err(store_err)?
            .into_iter()
            .filter(|d| d.status == Status::Running)
            .filter_map(|d| Some((d.repo, d.url?)))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        let settings = self.repos.settings(&self.online_kinds()).await;
        let default_path = ServiceSettings::default().health_path;
        let mut waiting: Vec<(String, String)> = running
            .into_iter()
            .map(|(repo, url)| {
                let path = settings
                    .get(&repo)
                    .map_or(default_path.as_str(), |s| s.health_path.as_str());
                let url = format!("{}{path}", url.trim_end_matches('/'));
                (repo, url)
            })
            .collect();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(HEALTH_REQUEST_TIMEOUT)
            .build()
            .map_err(|err| WakeError::Failed {
                sandbox: sandbox.to_owned(),
                reason: err.to_string(),
            })?;
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            let checks = waiting.iter().map(|(_, url)| {
                let http = &http;
                async move {
                    http.get(url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            });
            let healthy = futures::future::join_all(checks).await;
            let mut healthy = healthy.into_iter();
            waiting.retain(|_| !healthy.next().unwrap_or(false));
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let names: Vec<&str> = waiting.iter().map(|(repo, _)| repo.as_str()).collect();
                return Err(WakeError::Unhealthy {
                    sandbox: sandbox.to_owned(),
                    secs: HEALTH_TIMEOUT.as_secs(),
                    waiting: names.join(", "),
                });
            }
            tokio::time::sleep(HEALTH_EVERY).await;
        }
    }

    /// Puts idle sandboxes to sleep: every so often, each awake sandbox
    /// with no deployment in flight and no activity for `sleep_after`.
    pub async fn sleeper(self, sleep_after: Duration, shutdown: CancellationToken) {
        let every = (sleep_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let awake = match self.store.awake_sandboxes() {
                Ok(awake) => awake,
                Err(err) => {
                    tracing::error!(error = %err, "sleeper cannot read sandboxes");
                    continue;
                }
            };
            for candidate in awake {
                if candidate.busy
                    || !self.idle_since(&candidate.name, candidate.last_activity, sleep_after)
                {
                    continue;
                }
                let slept = tokio::select! {
                    () = shutdown.cancelled() => return,
                    slept = self.sleep_sandbox(&candidate.name, sleep_after) => slept,
                };
                if let Err(err) = slept {
                    tracing::error!(sandbox = %candidate.name, error = %err, "sleep failed");
                }
            }
        }
    }
}
