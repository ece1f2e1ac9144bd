//! `GET /metrics`: Prometheus text, computed at scrape time from the store
//! and the agent registry, plus the live WebSocket viewer count and the bus
//! messages refused because a body disagreed with its subject.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::agents::Registry as Agents;
use crate::store::{Store, StoreError};

/// Viewers of deployment streams right now; the WebSocket bridge counts
/// them in and out.
#[derive(Clone, Default)]
pub struct Viewers(Arc<AtomicI64>);

impl Viewers {
    /// Counts one viewer until the returned guard drops.
    pub fn enter(&self) -> ViewerGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        ViewerGuard(self.0.clone())
    }

    pub fn current(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct ViewerGuard(Arc<AtomicI64>);

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a bus message was refused (the `reason` label of
/// `sdp_bus_refused_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A heartbeat that does not decode (a bad agent id or kind included).
    HeartbeatMalformed,
    /// A heartbeat whose body names another agent or kind than its subject.
    HeartbeatForged,
    /// A `DeployAccepted` from an agent other than the one addressed, or,
    /// on the queue-group path, from no live agent of the kind.
    AcceptForged,
    /// A progress event that does not decode (a deployment id that is not
    /// a token included) or whose body names another deployment than its
    /// subject; the persister drops it.
    EventRefused,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::HeartbeatMalformed,
        Refusal::HeartbeatForged,
        Refusal::AcceptForged,
        Refusal::EventRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::HeartbeatMalformed => "heartbeat_malformed",
            Refusal::HeartbeatForged => "heartbeat_forged",
            Refusal::AcceptForged => "accept_forged",
            Refusal::EventRefused => "event_refused",
        }
    }
}

/// Counts of refused bus messages by [`Refusal`], shared by the heartbeat
/// follower, the orchestrator and the embedded persister.
#[derive(Clone, Default)]
pub struct BusRefusals(Arc<[AtomicU64; 4]>);

impl BusRefusals {
    pub fn count(&self, refusal: Refusal) {
        self.0[refusal as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, refusal: Refusal) -> u64 {
        self.0[refusal as usize].load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    kind: String,
    online: String,
}

/// Renders every metric in the Prometheus text format.
pub fn render(
    store: &Store,
    agents: &Agents,
    viewers: &Viewers,
    heartbeat_timeout: std::time::Duration,
) -> Result<String, StoreError> {
    let mut registry = Registry::with_prefix("sdp");

    let deployments = Family::<StatusLabel, Gauge>::default();
    for (status, count) in store.deployment_counts()? {
        deployments
            .get_or_create(&StatusLabel { status })
            .set(count);
    }
    registry.register("deployments", "Deployments by status", deployments);

    let agent_gauge = Family::<AgentLabels, Gauge>::default();
    for agent in agents.views(heartbeat_timeout) {
        agent_gauge
            .get_or_create(&AgentLabels {
                kind: agent.kind,
                online: agent.online.to_string(),
            })
            .inc();
    }
    registry.register(
        "agents",
        "Agents by kind and whether they heartbeat",
        agent_gauge,
    );

    let sandboxes = Gauge::<i64>::default();
    sandboxes.set(store.sandboxes()?.len() as i64);
    registry.register("sandboxes", "Sandboxes", sandboxes);

    let viewer_gauge = Gauge::<i64>::default();
    viewer_gauge.set(viewers.current());
    registry.register("websocket_viewers", "Open deployment streams", viewer_gauge);

    let refused = Family::<ReasonLabel, Counter>::default();
    for refusal in Refusal::ALL {
        refused
            .get_or_create(&ReasonLabel {
                reason: refusal.as_str(),
            })
            .inc_by(agents.refusals().get(refusal));
    }
    registry.register(
        "bus_refused",
        "Bus messages refused: malformed, or a body that disagrees with its subject",
        refused,
    );

    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_own_counter() {
        let refusals = BusRefusals::default();
        for (n, refusal) in Refusal::ALL.into_iter().enumerate() {
            assert_eq!(refusal as usize, n, "ALL is in declaration order");
            for _ in 0..=n {
                refusals.count(refusal);
            }
        }
        for (n, refusal) in Refusal::ALL.into_iter().enumerate() {
            assert_eq!(refusals.get(refusal), n as u64 + 1);
        }
    }
}
