//! Per-user bounds on long-lived streams: deployment WebSockets and
//! runtime-log streams. An agent serves at most 64 runtime-log streams and
//! the control plane holds a task per WebSocket, so one user opening many
//! would starve everyone else; each user gets at most the configured
//! number of each kind at once (`[streams]` in the config).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The kinds of stream that are bounded, each on its own.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StreamKind {
    WebSocket,
    RuntimeLogs,
}

impl StreamKind {
    pub fn describe(self) -> &'static str {
        match self {
            Self::WebSocket => "deployment WebSockets",
            Self::RuntimeLogs => "runtime-log streams",
        }
    }
}

/// How many streams of each kind each user has open.
#[derive(Clone, Default)]
pub struct UserStreams(Arc<Mutex<HashMap<(StreamKind, String), usize>>>);

/// One open stream, counted until it drops.
pub struct StreamSlot {
    streams: UserStreams,
    key: (StreamKind, String),
}

impl UserStreams {
    /// A slot for one more stream of `kind` for `user`, unless they hold
    /// `limit` already.
    pub fn try_open(&self, kind: StreamKind, user: &str, limit: usize) -> Option<StreamSlot> {
        let key = (kind, user.to_owned());
        let mut open = self.lock();
        let count = open.entry(key.clone()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            streams: self.clone(),
            key,
        })
    }

    /// Streams of `kind` that `user` holds now.
    pub fn open(&self, kind: StreamKind, user: &str) -> usize {
        self.lock()
            .get(&(kind, user.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(StreamKind, String), usize>> {
        // Counters stay consistent across a panic: each change is one step.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_and_kind_has_its_own_bound() {
        let streams = UserStreams::default();
        let a1 = streams
            .try_open(StreamKind::RuntimeLogs, "a", 2)
            .expect("first");
        let _a2 = streams
            .try_open(StreamKind::RuntimeLogs, "a", 2)
            .expect("second");
        assert!(streams.try_open(StreamKind::RuntimeLogs, "a", 2).is_none());
        assert!(streams.try_open(StreamKind::RuntimeLogs, "b", 2).is_some());
        assert!(streams.try_open(StreamKind::WebSocket, "a", 2).is_some());
        drop(a1);
        assert_eq!(streams.open(StreamKind::RuntimeLogs, "a"), 1);
        assert!(streams.try_open(StreamKind::RuntimeLogs, "a", 2).is_some());
    }
}
