//! `GET /metrics`: Prometheus text, computed at scrape time from the store
//! and the agent registry, plus the live counts of [`crate::counters`]
//! (WebSocket viewers, bus messages refused because a body disagreed with
//! its subject).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::agents::Registry as Agents;
use crate::counters::{Refusal, Viewers};
use crate::store::{Store, StoreError};

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
