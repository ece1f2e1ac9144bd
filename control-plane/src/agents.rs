//! What the control plane knows about agents: the latest heartbeat of each
//! (`agent.heartbeat.>`), and the watchdog that fails deployments whose
//! agent went silent or forgot them.
//!
//! A heartbeat is believed only for the agent its subject names: one whose
//! body names another agent id or kind is dropped and counted
//! ([`crate::counters::Refusal::HeartbeatForged`]); NATS permissions let
//! each agent user publish only on its own heartbeat subject.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sdp_bus::{Heartbeat, decode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::counters::{BusRefusals, Refusal};
use crate::events::publish_failure;
use crate::store::Store;

#[derive(Clone, Debug)]
struct Seen {
    heartbeat: Heartbeat,
    at: Instant,
    at_utc: DateTime<Utc>,
}

/// Latest heartbeat per agent id, and the count of bus messages refused
/// from agents.
#[derive(Clone, Default)]
pub struct Registry {
    agents: Arc<RwLock<HashMap<String, Seen>>>,
    refusals: BusRefusals,
}

/// An agent as `GET /api/agents` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: String,
    pub kind: String,
    pub host: String,
    pub version: String,
    pub online: bool,
    pub last_seen: DateTime<Utc>,
    pub running: Vec<String>,
    pub missing_images: Vec<String>,
    pub capacity: u32,
    pub repos: Vec<String>,
    /// `warming`, `warm`, `failed: …`, or null (nothing to warm).
    pub build_cache: Option<String>,
    /// Runtime-log streams the agent serves now (`GET …/runtime-logs`).
    pub log_streams: u32,
    /// The build toolchains the agent has, oldest first (`go 1.19.8`,
    /// `go 1.22.12`); empty for an agent without any (or an older agent).
    pub toolchains: Vec<String>,
}

impl Registry {
    pub fn record(&self, heartbeat: Heartbeat) {
        let seen = Seen {
            heartbeat,
            at: Instant::now(),
            at_utc: Utc::now(),
        };
        self.agents
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seen.heartbeat.agent_id.clone(), seen);
    }

    /// Bus messages refused so far (shown in `/metrics`).
    pub fn refusals(&self) -> &BusRefusals {
        &self.refusals
    }

    /// Whether `agent_id` heartbeats as an agent of `kind` within `timeout`.
    pub fn is_live(&self, agent_id: &str, kind: &str, timeout: Duration) -> bool {
        self.agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(agent_id)
            .is_some_and(|seen| seen.heartbeat.kind == kind && seen.at.elapsed() < timeout)
    }

    fn snapshot(&self) -> Vec<Seen> {
        self.agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Online agents and when each process started.
    pub fn instances(&self, timeout: Duration) -> Vec<(String, Option<DateTime<Utc>>)> {
        self.snapshot()
            .into_iter()
            .filter(|seen| seen.at.elapsed() < timeout)
            .map(|seen| (seen.heartbeat.agent_id, seen.heartbeat.started_at))
            .collect()
    }

    pub fn views(&self, timeout: Duration) -> Vec<AgentView> {
        let mut views: Vec<AgentView> = self
            .snapshot()
            .into_iter()
            .map(|seen| AgentView {
                online: seen.at.elapsed() < timeout,
                id: seen.heartbeat.agent_id,
                kind: seen.heartbeat.kind,
                host: seen.heartbeat.host,
                version: seen.heartbeat.version,
                last_seen: seen.at_utc,
                running: seen
                    .heartbeat
                    .running
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                missing_images: seen.heartbeat.missing_images,
                capacity: seen.heartbeat.capacity,
                repos: seen.heartbeat.repos,
                build_cache: seen.heartbeat.build_cache,
                log_streams: seen.heartbeat.log_streams,
                toolchains: seen.heartbeat.toolchains,
            })
            .collect();
        views.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        views
    }

    /// The kind of an online agent whose `repos_dir` holds `repo`.
    pub fn kind_for_repo(&self, repo: &str, timeout: Duration) -> Option<String> {
        self.snapshot()
            .into_iter()
            .filter(|seen| seen.at.elapsed() < timeout)
            .find(|seen| seen.heartbeat.repos.iter().any(|r| r == repo))
            .map(|seen| seen.heartbeat.kind)
    }
}

/// Follows heartbeats into `registry` until shutdown.
pub async fn follow_heartbeats(
    client: async_nats::Client,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut heartbeats = client
        .subscribe(sdp_bus::subject::AGENT_HEARTBEAT_ALL)
        .await?;
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            message = heartbeats.next() => message,
        };
        let Some(message) = message else {
            return Ok(());
        };
        match decode::<Heartbeat>(&message.payload) {
            Ok(heartbeat) if matches_subject(&message.subject, &heartbeat) => {
                registry.record(heartbeat)
            }
            Ok(heartbeat) => {
                registry.refusals.count(Refusal::HeartbeatForged);
                tracing::warn!(
                    subject = %message.subject,
                    agent = %heartbeat.agent_id,
                    kind = %heartbeat.kind,
                    "dropping a heartbeat whose body names another agent than its subject"
                );
            }
            Err(err) => {
                registry.refusals.count(Refusal::HeartbeatMalformed);
                tracing::warn!(subject = %message.subject, error = %err, "ignoring malformed heartbeat")
            }
        }
    }
}

/// Whether `subject` is exactly `agent.heartbeat.<kind>.<agent_id>` of the
/// heartbeat's own kind and agent id.
fn matches_subject(subject: &str, heartbeat: &Heartbeat) -> bool {
    subject == sdp_bus::subject::agent_heartbeat(&heartbeat.kind, &heartbeat.agent_id)
}

/// Every couple of seconds, fails unsettled deployments whose agent is
/// silent past `timeout`, or alive but no longer working on them (it
/// restarted). Level-triggered: it looks at the whole state each time, so a
/// control plane restart converges too (after one `timeout` of listening).
pub async fn watchdog(
    client: async_nats::Client,
    store: Store,
    registry: Registry,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let deployments = match store.unsettled_deployments() {
            Ok(deployments) => deployments,
            Err(err) => {
                tracing::error!(error = %err, "watchdog cannot read deployments");
                continue;
            }
        };
        let agents: HashMap<String, Seen> = registry
            .snapshot()
            .into_iter()
            .map(|seen| (seen.heartbeat.agent_id.clone(), seen))
            .collect();
        for deployment in deployments {
            let Some(agent_id) = deployment.agent_id.as_deref() else {
                continue; // not yet accepted; the request path settles it
            };
            let quiet_for = DateTime::parse_from_rfc3339(&deployment.updated_at)
                .map(|t| {
                    (Utc::now() - t.with_timezone(&Utc))
                        .to_std()
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let reason = match agents.get(agent_id) {
                Some(seen) if seen.at.elapsed() >= timeout => Some(format!(
                    "agent {agent_id} stopped sending heartbeats {}s ago",
                    seen.at.elapsed().as_secs()
                )),
                None if started.elapsed() >= timeout && quiet_for >= timeout => Some(format!(
                    "agent {agent_id} has not sent a heartbeat for {}s",
                    timeout.as_secs()
                )),
                Some(seen)
                    if quiet_for >= timeout
                        && !seen
                            .heartbeat
                            .running
                            .iter()
                            .any(|id| id.as_str() == deployment.id) =>
                {
                    Some(format!(
                        "agent {agent_id} is no longer working on this deployment (it restarted)"
                    ))
                }
                _ => None,
            };
            if let Some(reason) = reason {
                // SQLite lags the stream while the persister is behind:
                // the stream says whether the agent finished (its result
                // is there) or was heard from lately, and which seq the
                // failure event must follow.
                let Some(id) = sdp_bus::DeploymentId::parse(&deployment.id) else {
                    continue;
                };
                let last = match crate::events::last_stream_event(&client, &id).await {
                    Ok(last) => last,
                    Err(err) => {
                        tracing::warn!(deployment = %deployment.id, error = %err, "watchdog cannot read the stream; judging later");
                        continue;
                    }
                };
                if let Some(last) = &last {
                    let heard_for = (Utc::now() - last.ts).to_std().unwrap_or_default();
                    if matches!(last.body, sdp_bus::EventBody::Result { .. }) || heard_for < timeout
                    {
                        continue;
                    }
                }
                let last_seq = last.map_or(deployment.last_seq, |e| e.seq.max(deployment.last_seq));
                tracing::warn!(deployment = %deployment.id, %reason, "failing deployment");
                match store.fail_deployment(&deployment.id, &reason) {
                    Ok(true) => publish_failure(&client, &deployment.id, last_seq, &reason).await,
                    Ok(false) => {}
                    Err(err) => tracing::error!(error = %err, "watchdog cannot fail deployment"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(agent_id: &str, kind: &str) -> Heartbeat {
        Heartbeat {
            agent_id: agent_id.into(),
            kind: kind.into(),
            host: "h".into(),
            version: "0".into(),
            running: Vec::new(),
            missing_images: Vec::new(),
            capacity: 1,
            repos: Vec::new(),
            started_at: None,
            build_cache: None,
            log_streams: 0,
            toolchains: Vec::new(),
        }
    }

    #[test]
    fn a_heartbeat_counts_only_on_its_own_subject() {
        let beat = heartbeat("a-1", "micro");
        assert!(matches_subject("agent.heartbeat.micro.a-1", &beat));
        for other in [
            "agent.heartbeat.micro.a-2",
            "agent.heartbeat.gateway.a-1",
            "agent.heartbeat.micro.a-1.x",
            "agent.heartbeat.micro",
        ] {
            assert!(!matches_subject(other, &beat), "{other}");
        }
    }

    #[test]
    fn only_a_recent_heartbeat_of_the_kind_is_live() {
        let registry = Registry::default();
        registry.record(heartbeat("a-1", "micro"));
        assert!(registry.is_live("a-1", "micro", Duration::from_secs(10)));
        assert!(!registry.is_live("a-1", "gateway", Duration::from_secs(10)));
        assert!(!registry.is_live("a-2", "micro", Duration::from_secs(10)));
        assert!(!registry.is_live("a-1", "micro", Duration::ZERO));
    }
}
