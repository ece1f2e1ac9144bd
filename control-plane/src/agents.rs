//! What the control plane knows about agents: the latest heartbeat of each
//! (`agent.heartbeat.>`), and the watchdog that fails deployments whose
//! agent went silent or forgot them.
//!
//! A heartbeat is believed only for the agent its subject names: one whose
//! body names another agent id or kind is dropped and counted
//! ([`crate::counters::Refusal::HeartbeatForged`]); NATS permissions let
//! each agent user publish only on its own heartbeat subject.
//!
//! Heartbeats say which repos an agent holds (the kind a repo's deployment
//! goes to) and which optional methods it serves (`serves`; an SDP agent
//! older than the field is taken to serve what every SDP agent then did,
//! [`sdp_bus::SERVES_BEFORE_ADVERTISING`]). Right after the control plane
//! starts, no heartbeat is in yet: [`Registry::wait_kind_for_repo`] waits
//! up to [`FIRST_HEARTBEATS_WAIT`] for the first ones instead of guessing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sdp_bus::{Heartbeat, decode};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use sdp_api::AgentView;

use crate::counters::{BusRefusals, Refusal};
use crate::events::publish_failure;
use crate::store::Store;

mod verdict;

#[derive(Clone, Debug)]
struct Seen {
    heartbeat: Heartbeat,
    at: Instant,
    at_utc: DateTime<Utc>,
}

/// How often agents heartbeat (agentlib; docs/AGENTS.md asks the same of
/// any agent).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// How long after the control plane starts a deployment waits for the
/// agents' first heartbeats to learn which kind holds its repo: three
/// heartbeat intervals, so an agent that was up before the control plane
/// (or started with it) has been heard from at least once, with room for
/// a late first beat.
pub const FIRST_HEARTBEATS_WAIT: Duration = Duration::from_secs(6);

/// Latest heartbeat per agent id, and the count of bus messages refused
/// from agents. Made when the control plane starts (the start of
/// [`FIRST_HEARTBEATS_WAIT`]).
#[derive(Clone)]
pub struct Registry {
    agents: Arc<RwLock<HashMap<String, Seen>>>,
    refusals: BusRefusals,
    started: Instant,
    /// Woken by every recorded heartbeat.
    recorded: Arc<Notify>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            agents: Arc::default(),
            refusals: BusRefusals::default(),
            started: Instant::now(),
            recorded: Arc::default(),
        }
    }
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
        self.recorded.notify_waiters();
    }

    /// Whether the agent's latest heartbeat advertises `method`; `None` for
    /// an agent never heard from.
    pub fn agent_serves(&self, agent_id: &str, method: &str) -> Option<bool> {
        self.agents
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(agent_id)
            .map(|seen| seen.heartbeat.serves(method))
    }

    /// Whether an agent of `kind` advertises `method`; `None` when no
    /// agent of the kind was heard from.
    pub fn kind_serves(&self, kind: &str, method: &str) -> Option<bool> {
        let agents = self.agents.read().unwrap_or_else(|e| e.into_inner());
        let mut of_kind = agents
            .values()
            .filter(|seen| seen.heartbeat.kind == kind)
            .peekable();
        of_kind.peek()?;
        Some(of_kind.any(|seen| seen.heartbeat.serves(method)))
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
                serves: match seen.heartbeat.serves {
                    Some(methods) => methods,
                    None => sdp_bus::SERVES_BEFORE_ADVERTISING
                        .iter()
                        .map(|m| (*m).to_owned())
                        .collect(),
                },
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

    /// [`Self::kind_for_repo`], waiting for the agents' first heartbeats
    /// while the control plane is younger than [`FIRST_HEARTBEATS_WAIT`]:
    /// a repo asked for in the first instant after start is not yet
    /// announced by the agent that holds it. Past the wait, an agent that
    /// announced it and has gone silent still names the kind (its
    /// deployment then finds no agent of the kind online). `None`: no
    /// agent ever announced it (a deployment never guesses a kind).
    pub async fn wait_kind_for_repo(&self, repo: &str, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::from_std(self.started + FIRST_HEARTBEATS_WAIT);
        loop {
            // Registered before looking, so a heartbeat recorded between
            // the look and the wait still wakes it.
            let recorded = self.recorded.notified();
            tokio::pin!(recorded);
            recorded.as_mut().enable();
            if let Some(kind) = self.kind_for_repo(repo, timeout) {
                return Some(kind);
            }
            if tokio::time::timeout_at(deadline, recorded).await.is_err() {
                return self.kind_for_repo(repo, Duration::MAX);
            }
        }
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
            let quiet_for = (Utc::now() - deployment.updated_at)
                .to_std()
                .unwrap_or_default();
            let heard = agents.get(agent_id).map(|seen| verdict::Heard {
                silent_for: seen.at.elapsed(),
                working_on_it: seen.heartbeat.running.contains(&deployment.id),
            });
            let reason = verdict::verdict(agent_id, heard, started.elapsed(), quiet_for, timeout);
            if let Some(reason) = reason {
                // SQLite lags the stream while the persister is behind:
                // the stream says whether the agent finished (its result
                // is there) or was heard from lately, and which seq the
                // failure event must follow.
                let last = match crate::events::last_stream_event(&client, &deployment.id).await {
                    Ok(last) => last,
                    Err(err) => {
                        tracing::warn!(deployment = %deployment.id, error = %err, "watchdog cannot read the stream; judging later");
                        continue;
                    }
                };
                let end = last.as_ref().map(|last| verdict::StreamEnd {
                    is_result: matches!(last.body, sdp_bus::EventBody::Result { .. }),
                    heard_for: (Utc::now() - last.ts).to_std().unwrap_or_default(),
                });
                if verdict::cleared_by_stream(end, timeout) {
                    continue;
                }
                let last_seq = last.map_or(deployment.last_seq, |e| e.seq.max(deployment.last_seq));
                tracing::warn!(deployment = %deployment.id, %reason, "failing deployment");
                match store.fail_deployment(deployment.id.as_str(), &reason) {
                    Ok(true) => {
                        publish_failure(&client, deployment.id.as_str(), last_seq, &reason).await
                    }
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
            serves: None,
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

    #[test]
    fn an_agent_serves_what_its_heartbeat_advertises() {
        let registry = Registry::default();
        assert_eq!(registry.agent_serves("s-1", "probe"), None);
        assert_eq!(registry.kind_serves("static", "probe"), None);
        let mut minimal = heartbeat("s-1", "static");
        minimal.serves = Some(Vec::new());
        registry.record(minimal);
        registry.record(heartbeat("old-1", "micro"));
        assert_eq!(registry.agent_serves("s-1", "probe"), Some(false));
        assert_eq!(registry.kind_serves("static", "deploy"), Some(false));
        // Without `serves`: an SDP agent from before the field.
        assert_eq!(registry.agent_serves("old-1", "probe"), Some(true));
        assert_eq!(registry.kind_serves("micro", "branch_status"), Some(true));
        let views = registry.views(Duration::from_secs(10));
        let old = views.iter().find(|a| a.id == "old-1").expect("listed");
        assert!(old.serves("container_logs"), "{:?}", old.serves);
    }

    #[tokio::test]
    async fn a_repo_asked_for_right_after_start_waits_for_the_first_heartbeats() {
        let registry = Registry::default();
        let waiting = tokio::spawn({
            let registry = registry.clone();
            async move {
                registry
                    .wait_kind_for_repo("edge", Duration::from_secs(3600))
                    .await
            }
        });
        // The wait has begun (this is no synchronisation: a heartbeat
        // recorded before it began is found by its first look).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut gateway = heartbeat("g-1", "gateway");
        gateway.repos = vec!["edge".into()];
        registry.record(gateway);
        assert_eq!(
            waiting.await.expect("joined").as_deref(),
            Some("gateway"),
            "found once announced"
        );
    }

    #[tokio::test]
    async fn a_repo_no_agent_announces_is_not_guessed() {
        // A control plane up for all but the last half second of the wait.
        let registry = Registry {
            started: Instant::now() - FIRST_HEARTBEATS_WAIT + Duration::from_millis(500),
            ..Registry::default()
        };
        registry.record(heartbeat("m-1", "micro"));
        let asked = Instant::now();
        let kind = registry
            .wait_kind_for_repo("nowhere", Duration::from_secs(3600))
            .await;
        assert_eq!(kind, None);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "bounded by the start"
        );
        // Once the wait is over, the answer is at once.
        let asked = Instant::now();
        assert_eq!(
            registry
                .wait_kind_for_repo("nowhere", Duration::from_secs(3600))
                .await,
            None
        );
        assert!(asked.elapsed() < Duration::from_millis(100));
        // An agent gone silent still tells its repo's kind: known, not guessed.
        let mut silent = heartbeat("m-2", "micro");
        silent.repos = vec!["users".into()];
        registry.record(silent);
        assert_eq!(
            registry
                .wait_kind_for_repo("users", Duration::ZERO)
                .await
                .as_deref(),
            Some("micro")
        );
    }
}
