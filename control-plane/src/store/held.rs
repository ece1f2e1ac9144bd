//! A connection taken from its lock, which says (at debug, target
//! `sdp_control_plane::store`) when it was waited for or held long: the
//! store's one connection is shared by the API, the orchestrator and the
//! loops, so a slow statement anywhere is a slow request somewhere else.

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// Waits or holds at least this long are logged.
const SLOW: Duration = Duration::from_millis(20);

pub(crate) struct Held<'a> {
    guard: MutexGuard<'a, Connection>,
    waited: Duration,
    since: Instant,
    caller: &'static Location<'static>,
}

impl<'a> Held<'a> {
    #[track_caller]
    pub(crate) fn lock(conn: &'a Mutex<Connection>) -> Held<'a> {
        let asked = Instant::now();
        // A panic while holding the lock leaves SQLite consistent (the
        // transaction rolls back), so a poisoned lock is still usable.
        let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
        let since = Instant::now();
        Held {
            guard,
            waited: since - asked,
            since,
            caller: Location::caller(),
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let held = self.since.elapsed();
        if held >= SLOW || self.waited >= SLOW {
            tracing::debug!(
                waited_ms = self.waited.as_millis() as u64,
                held_ms = held.as_millis() as u64,
                caller = %self.caller,
                "store connection slow"
            );
        }
    }
}

impl Deref for Held<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.guard
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard
    }
}
