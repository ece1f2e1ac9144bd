//! Deliveries already handled: a webhook delivered again within
//! [`WINDOW`] (a Bitbucket retry, or someone replaying a captured request)
//! is answered "duplicate" and deploys nothing.
//!
//! A delivery is known by its request id (`X-Request-UUID` from Cloud,
//! `X-Request-Id` from Data Center) and by the SHA-256 of its body: the
//! signature covers only the body, so a replay with a fresh id still
//! carries a body seen before. Only signed deliveries are remembered, so
//! nobody without the secret can fill the map; it is bounded all the same
//! (the oldest entries go first).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a delivery is remembered.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// At most this many keys are remembered.
pub const CAPACITY: usize = 10_000;

#[derive(Clone)]
pub struct Deliveries {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    window: Duration,
    capacity: usize,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self::new(WINDOW, CAPACITY)
    }
}

/// The keys a delivery is known by.
pub fn keys(request_id: Option<&str>, body: &[u8]) -> Vec<String> {
    let mut keys = vec![format!("body:{}", hex::encode(Sha256::digest(body)))];
    if let Some(id) = request_id.map(str::trim).filter(|id| !id.is_empty()) {
        keys.push(format!("id:{id}"));
    }
    keys
}

impl Deliveries {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            seen: Arc::default(),
            window,
            capacity: capacity.max(1),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a delivery; false if any of its keys was seen within the
    /// window (then nothing is recorded).
    pub fn claim(&self, keys: &[String], now: Instant) -> bool {
        let mut seen = self.map();
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < self.window;
        if keys.iter().any(|k| seen.get(k).is_some_and(fresh)) {
            return false;
        }
        if seen.len() + keys.len() > self.capacity {
            seen.retain(|_, at| fresh(at));
        }
        while seen.len() + keys.len() > self.capacity {
            let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            seen.remove(&oldest);
        }
        for key in keys {
            seen.insert(key.clone(), now);
        }
        true
    }

    /// Forgets a delivery whose handling failed, so Bitbucket's retry of
    /// it is handled.
    pub fn release(&self, keys: &[String]) {
        let mut seen = self.map();
        for key in keys {
            seen.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_known_by_its_id_and_by_its_body() {
        let deliveries = Deliveries::default();
        let now = Instant::now();
        assert!(deliveries.claim(&keys(Some("u-1"), b"one"), now));
        assert!(
            !deliveries.claim(&keys(Some("u-1"), b"one"), now),
            "the same delivery"
        );
        assert!(
            !deliveries.claim(&keys(Some("u-2"), b"one"), now),
            "a new id, the same body"
        );
        assert!(
            !deliveries.claim(&keys(Some("u-1"), b"two"), now),
            "the same id, another body"
        );
        assert!(
            !deliveries.claim(&keys(None, b"one"), now),
            "no id, the same body"
        );
        assert!(deliveries.claim(&keys(Some("u-3"), b"three"), now));
        // A refused claim recorded nothing: "two" under a new id is new.
        assert!(deliveries.claim(&keys(Some("u-4"), b"two"), now));
    }

    #[test]
    fn deliveries_are_forgotten_after_the_window_or_on_release() {
        let deliveries = Deliveries::new(Duration::from_secs(60), 100);
        let start = Instant::now();
        let one = keys(Some("u-1"), b"one");
        assert!(deliveries.claim(&one, start));
        assert!(!deliveries.claim(&one, start + Duration::from_secs(59)));
        assert!(deliveries.claim(&one, start + Duration::from_secs(61)));
        deliveries.release(&one);
        assert!(deliveries.claim(&one, start + Duration::from_secs(62)));
    }

    #[test]
    fn the_map_is_bounded_and_drops_the_oldest() {
        let deliveries = Deliveries::new(Duration::from_secs(600), 6);
        let start = Instant::now();
        for i in 0..10u64 {
            let at = start + Duration::from_secs(i);
            assert!(deliveries.claim(&keys(Some(&format!("u-{i}")), &i.to_be_bytes()), at));
            assert!(deliveries.map().len() <= 6);
        }
        // The newest three deliveries (two keys each) are still known.
        let at = start + Duration::from_secs(20);
        assert!(!deliveries.claim(&keys(Some("u-9"), b"x"), at));
        assert!(deliveries.claim(&keys(Some("u-0"), b"y"), at));
    }
}
