//! Convergence: tearing a sandbox down on every online agent, reconciling
//! each agent's containers against what should run (level-triggered), and
//! reaping expired sandboxes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sdp_bus::{DeploymentId, Reconcile, ReconcileDone, Status, Teardown, TeardownDone};
use tokio_util::sync::CancellationToken;

pub use sdp_api::{AgentTeardown, TeardownReport};

use super::Orchestrator;
use crate::agent_client::AgentCallError;
use crate::store::StoreError;

/// How long an agent gets to tear a sandbox down or reconcile.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an agent was not reconciled; the next round tries again.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// What the agent should keep could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The agent did not take the command (gone, busy, or without
    /// reconcile support).
    #[error(transparent)]
    Agent(#[from] AgentCallError),
}

impl Orchestrator {
    /// Tears a sandbox down on every online agent, then stops its
    /// deployments and removes it.
    pub async fn teardown(&self, sandbox: &str) -> Result<TeardownReport, StoreError> {
        let mut report = TeardownReport::default();
        let request = Teardown {
            sandbox: sandbox.to_owned(),
        };
        for agent in self.registry.views(self.heartbeat_timeout) {
            if !agent.online {
                continue;
            }
            let outcome: Result<TeardownDone, _> = self
                .agents
                .command(
                    &agent.id,
                    sdp_bus::subject::TEARDOWN,
                    &request,
                    COMMAND_TIMEOUT,
                )
                .await;
            report.agents.push(match outcome {
                Ok(done) => AgentTeardown {
                    agent_id: agent.id,
                    ok: true,
                    containers_removed: done.containers_removed,
                    worktrees_removed: done.worktrees_removed,
                    error: None,
                },
                Err(error) => {
                    tracing::warn!(sandbox, agent = %agent.id, %error, "teardown on agent failed");
                    AgentTeardown {
                        agent_id: agent.id,
                        ok: false,
                        containers_removed: 0,
                        worktrees_removed: 0,
                        error: Some(error.to_string()),
                    }
                }
            });
        }
        report.stopped = self.store.remove_sandbox(sandbox)?;
        self.credentials.forget(sandbox);
        Ok(report)
    }

    /// Tells an agent which of its containers should exist
    /// (`agent.cmd.<id>.reconcile`); it removes the others.
    pub async fn reconcile_agent(&self, agent_id: &str) -> Result<ReconcileDone, ReconcileError> {
        let keep = self.store.deployments_to_keep(agent_id)?;
        let abandon = self.abandoned_on(agent_id)?;
        Ok(self
            .agents
            .command(
                agent_id,
                sdp_bus::subject::RECONCILE,
                &Reconcile { keep, abandon },
                COMMAND_TIMEOUT,
            )
            .await?)
    }

    /// What the agent says it works on (its last heartbeat) that the store
    /// has already failed, cancelled or stopped: it was silent (stalled,
    /// partitioned) when the watchdog gave up on it.
    fn abandoned_on(&self, agent_id: &str) -> Result<Vec<DeploymentId>, StoreError> {
        let Some(view) = self
            .registry
            .views(self.heartbeat_timeout)
            .into_iter()
            .find(|a| a.id == agent_id)
        else {
            return Ok(Vec::new());
        };
        let mut abandoned = Vec::new();
        for id in &view.running {
            if let Some(d) = self.store.deployment(id)?
                && matches!(
                    d.status,
                    Status::Failed | Status::Cancelled | Status::Stopped
                )
                && let Some(id) = DeploymentId::parse(id)
            {
                abandoned.push(id);
            }
        }
        Ok(abandoned)
    }

    /// Level-triggered reconciliation: every agent process is reconciled
    /// once when first seen (a restart shows as a new `started_at`), every
    /// agent again every `every`, and an agent at once when its heartbeat
    /// lists a deployment the store has settled (it was stalled past the
    /// heartbeat timeout and the watchdog failed its work).
    pub async fn reconciler(self, every: Duration, shutdown: CancellationToken) {
        let mut done: HashMap<String, (Option<chrono::DateTime<chrono::Utc>>, Instant)> =
            HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (agent_id, started_at) in self.registry.instances(self.heartbeat_timeout) {
                // An agent that does not advertise reconcile is never asked.
                if self
                    .registry
                    .agent_serves(&agent_id, sdp_bus::subject::RECONCILE)
                    == Some(false)
                {
                    continue;
                }
                let due = match done.get(&agent_id) {
                    None => true,
                    Some((seen_start, at)) => *seen_start != started_at || at.elapsed() >= every,
                } || self
                    .abandoned_on(&agent_id)
                    .is_ok_and(|abandoned| !abandoned.is_empty());
                if !due {
                    continue;
                }
                match self.reconcile_agent(&agent_id).await {
                    Ok(result) => {
                        if !result.removed.is_empty() {
                            tracing::info!(agent = %agent_id, removed = ?result.removed, kept = result.kept, "reconciled agent");
                        }
                        done.insert(agent_id, (started_at, Instant::now()));
                    }
                    // An agent without reconcile support or busy: try again
                    // on the next round.
                    Err(error) => tracing::debug!(agent = %agent_id, %error, "reconcile failed"),
                }
            }
        }
    }

    /// Tears down expired, unpinned sandboxes every `interval`.
    pub async fn reaper(self, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let expired = match self.store.expired_sandboxes() {
                Ok(expired) => expired,
                Err(err) => {
                    tracing::error!(error = %err, "reaper cannot read sandboxes");
                    continue;
                }
            };
            for sandbox in expired {
                tracing::info!(sandbox = %sandbox.name, expired_at = %sandbox.expires_at, "reaping expired sandbox");
                let reaped = self.teardown(&sandbox.name).await;
                if let Err(err) = &reaped {
                    tracing::error!(sandbox = %sandbox.name, error = %err, "reaping failed");
                }
                let (outcome, message) = match reaped {
                    Ok(_) => (
                        sdp_api::AuditOutcome::Ok,
                        format!("expired at {}", sandbox.expires_at),
                    ),
                    Err(err) => (sdp_api::AuditOutcome::Failed, err.to_string()),
                };
                self.audit
                    .record_system(
                        sdp_api::AuditAction::SandboxExpire,
                        &sandbox.name,
                        sandbox.name.clone(),
                        outcome,
                        Some(message),
                    )
                    .await;
            }
        }
    }
}
