//! The live counts `/metrics` shows that no store holds: viewers of
//! deployment streams ([`Viewers`]) and bus messages refused because a
//! body disagreed with its subject ([`BusRefusals`]). Below everything that
//! counts (the WebSocket bridge, the heartbeat follower, the orchestrator,
//! the persister) and [`crate::metrics`], which renders them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
    pub(crate) const ALL: [Refusal; 4] = [
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
