//! Placement: which agent of a kind a deployment goes to, decided afresh
//! for every deployment from the store and the heartbeats (no state of its
//! own, so a restarted control plane places the same way).
//!
//! A (sandbox, service) that has a container on a live agent goes back to
//! that agent (it replaces its own container: never two of them), unless
//! that agent lost the base image. A new one
//! goes to the least-loaded live agent of the kind that has its base images
//! and room; an agent at capacity or missing an image is not chosen. Load
//! is what the store says the agent holds (running and in-flight
//! deployments: fresh, where heartbeats lag by seconds), then its
//! heartbeat's builds in flight. If the
//! chosen agent does not answer, the next one is tried; once the deployment
//! runs elsewhere, the old container is removed from the agent that held it
//! ([`super::Orchestrator::on_result`] asks it to reconcile; an agent that
//! is down reconciles when it returns).
//!
//! Only an agent whose heartbeat advertises `deploy` (`serves`) is placed
//! on; with none, or when the placed agent answers `unknown_method`, the
//! deployment goes to the kind's queue group (`deploy.request.<kind>`),
//! which every agent serves (the minimal contract, docs/AGENTS.md).
//!
//! Who accepted: a deployment sent to one agent must be accepted in that
//! agent's name ([`crate::agent_client::AgentClient::deploy_to`]); one
//! sent to the kind's queue group, by a live agent of the kind
//! ([`check_queue_accept`]). Any agent of the kind may answer the queue
//! group, so naming another live agent of the kind cannot be told from the
//! truth there (docs/SECURITY.md, Known limits).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::agent_client::AgentCallError;
use crate::agents::{AgentView, Registry};

/// How long an agent that accepted from the queue group may take to show
/// up in the heartbeats: a new agent's first one leaves as it subscribes.
const FIRST_HEARTBEAT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Dispatches on their way to an agent, counted until the store records
/// where they went. Without it a burst of requests placed at once all see
/// the same counts and pile onto one agent (the fleet bench put 56 of 60
/// on one of three).
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashMap<String, usize>>>);

/// One dispatch counted against its agent until dropped.
pub struct Reservation {
    in_flight: InFlight,
    agent: String,
}

impl InFlight {
    /// Orders the candidates with `held` plus what is in flight, and
    /// reserves the first, in one step, so concurrent placements see each
    /// other.
    pub fn choose(
        &self,
        agents: &[AgentView],
        kind: &str,
        holder: Option<&str>,
        held: &HashMap<String, usize>,
    ) -> (Vec<String>, Option<Reservation>) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut load = held.clone();
        for (agent, n) in pending.iter() {
            *load.entry(agent.clone()).or_default() += n;
        }
        let order = candidates(agents, kind, holder, &load);
        let reservation = order.first().map(|agent| {
            *pending.entry(agent.clone()).or_default() += 1;
            Reservation {
                in_flight: self.clone(),
                agent: agent.clone(),
            }
        });
        (order, reservation)
    }

    /// Counts a dispatch against `agent` (a later candidate, tried after
    /// the first did not answer).
    pub fn reserve(&self, agent: &str) -> Reservation {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *pending.entry(agent.to_owned()).or_default() += 1;
        Reservation {
            in_flight: self.clone(),
            agent: agent.to_owned(),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut pending = self.in_flight.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = pending.get_mut(&self.agent) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.agent);
            }
        }
    }
}

/// The agents to try, in order (only online agents of `kind` that serve
/// directed deploys): the `holder` of the (sandbox, service) if
/// it is online and has its images, then the other online agents of `kind` with no missing
/// image and room, least loaded first (fewest live deployments in `held`,
/// then fewest in flight, then most room, then id, so ties place the same
/// way every time).
pub fn candidates(
    agents: &[AgentView],
    kind: &str,
    holder: Option<&str>,
    held: &HashMap<String, usize>,
) -> Vec<String> {
    let online = |a: &&AgentView| a.online && a.kind == kind && a.serves(sdp_bus::subject::DEPLOY);
    let mut order: Vec<String> = Vec::new();
    // A holder that lost its base image cannot start the service again:
    // it moves, and the holder's container goes once it runs elsewhere.
    if let Some(holder) = holder
        && agents
            .iter()
            .filter(online)
            .any(|a| a.id == holder && a.missing_images.is_empty())
    {
        order.push(holder.to_owned());
    }
    let mut others: Vec<&AgentView> = agents
        .iter()
        .filter(online)
        .filter(|a| Some(a.id.as_str()) != holder)
        .filter(|a| a.missing_images.is_empty() && a.capacity > 0)
        .collect();
    let key = |a: &AgentView| {
        (
            held.get(&a.id).copied().unwrap_or(0),
            a.running.len(),
            std::cmp::Reverse(a.capacity),
            a.id.clone(),
        )
    };
    others.sort_by_key(|a| key(a));
    order.extend(others.into_iter().map(|a| a.id.clone()));
    order
}

/// Refuses a queue-group acceptance in the name of an agent that is not a
/// live agent of `kind`, after giving a just-started one
/// [`FIRST_HEARTBEAT_WAIT`] to heartbeat.
pub async fn check_queue_accept(
    registry: &Registry,
    kind: &str,
    agent_id: &str,
    heartbeat_timeout: std::time::Duration,
) -> Result<(), AgentCallError> {
    let live = || registry.is_live(agent_id, kind, heartbeat_timeout);
    let deadline = tokio::time::Instant::now() + FIRST_HEARTBEAT_WAIT;
    while !live() {
        if tokio::time::Instant::now() >= deadline {
            return Err(AgentCallError::ForgedAccept {
                answered: agent_id.to_owned(),
                why: format!("it is not a live {kind} agent"),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn agent(id: &str, running: usize, capacity: u32) -> AgentView {
        AgentView {
            id: id.into(),
            kind: "micro".into(),
            host: "h".into(),
            version: "0".into(),
            online: true,
            last_seen: Utc::now(),
            running: (0..running).map(|n| format!("d{n}")).collect(),
            missing_images: Vec::new(),
            capacity,
            repos: Vec::new(),
            build_cache: None,
            log_streams: 0,
            toolchains: Vec::new(),
            serves: vec!["deploy".into()],
        }
    }

    #[test]
    fn the_holder_comes_first_even_when_busy() {
        let agents = [agent("a", 0, 4), agent("b", 3, 0), agent("c", 1, 3)];
        assert_eq!(
            candidates(&agents, "micro", Some("b"), &HashMap::new()),
            ["b", "a", "c"]
        );
    }

    #[test]
    fn new_work_goes_to_the_least_loaded_with_room_and_images() {
        let mut missing = agent("m", 0, 4);
        missing.missing_images = vec!["sdp-go:1".into()];
        let mut offline = agent("o", 0, 4);
        offline.online = false;
        let mut gateway = agent("g", 0, 4);
        gateway.kind = "gateway".into();
        let agents = [
            agent("busy", 2, 2),
            agent("full", 0, 0),
            missing,
            offline,
            gateway,
            agent("idle-b", 0, 2),
            agent("idle-a", 0, 2),
            agent("roomy", 0, 8),
        ];
        assert_eq!(
            candidates(&agents, "micro", None, &HashMap::new()),
            ["roomy", "idle-a", "idle-b", "busy"]
        );
        // What the store says they hold comes first.
        let held = HashMap::from([("roomy".to_owned(), 2), ("idle-a".to_owned(), 1)]);
        assert_eq!(
            candidates(&agents, "micro", None, &held),
            ["idle-b", "busy", "idle-a", "roomy"]
        );
    }

    #[test]
    fn an_offline_holder_is_passed_over() {
        let mut holder = agent("h", 0, 4);
        holder.online = false;
        let agents = [holder, agent("x", 1, 4)];
        assert_eq!(
            candidates(&agents, "micro", Some("h"), &HashMap::new()),
            ["x"]
        );
        assert!(candidates(&[], "micro", Some("h"), &HashMap::new()).is_empty());
    }

    #[test]
    fn a_burst_placed_at_once_spreads_over_the_agents() {
        let agents = [agent("a", 0, 2), agent("b", 0, 2), agent("c", 0, 2)];
        let in_flight = InFlight::default();
        let mut first = Vec::new();
        let mut held = Vec::new();
        for _ in 0..6 {
            let (order, reservation) = in_flight.choose(&agents, "micro", None, &HashMap::new());
            first.push(order[0].clone());
            held.push(reservation.expect("a reservation"));
        }
        first.sort();
        assert_eq!(first, ["a", "a", "b", "b", "c", "c"]);
        drop(held);
        assert!(
            in_flight.0.lock().expect("lock").is_empty(),
            "released on drop"
        );
    }

    #[test]
    fn a_holder_missing_its_image_is_passed_over() {
        let mut holder = agent("h", 0, 4);
        holder.missing_images = vec!["sdp-go:1".into()];
        let agents = [holder, agent("x", 1, 4)];
        assert_eq!(
            candidates(&agents, "micro", Some("h"), &HashMap::new()),
            ["x"]
        );
    }

    #[test]
    fn an_agent_that_does_not_serve_directed_deploys_is_not_placed_on() {
        let mut minimal = agent("s", 0, 9);
        minimal.serves = Vec::new();
        let agents = [minimal, agent("x", 1, 4)];
        assert_eq!(
            candidates(&agents, "micro", Some("s"), &HashMap::new()),
            ["x"]
        );
        assert!(candidates(&agents[..1], "micro", None, &HashMap::new()).is_empty());
    }
}
