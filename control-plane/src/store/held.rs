//! A connection taken from its lock, which says (at debug, target
//! `sdp_control_plane::store`) when it was waited for or held long: the
//! store's writing connection is shared by the API, the orchestrator and
//! the loops, so a slow statement anywhere is a slow request somewhere
//! else.

use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::{Mutex, MutexGuard, TryLockError};
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
        let guard = match conn.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => wait_for(conn),
        };
        let since = Instant::now();
        Held {
            guard,
            waited: since - asked,
            since,
            caller: Location::caller(),
        }
    }

    /// The connection if nobody holds it now.
    #[track_caller]
    pub(crate) fn try_lock(conn: &'a Mutex<Connection>) -> Option<Held<'a>> {
        let guard = match conn.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(Held {
            guard,
            waited: Duration::ZERO,
            since: Instant::now(),
            caller: Location::caller(),
        })
    }
}

/// Blocks until `conn` is free. On a request thread of the multi-thread
/// runtime the wait is announced ([`tokio::task::block_in_place`]), so the
/// runtime moves its other tasks to another thread: a holder busy-waiting
/// for SQLite's write lock (the persister holds it while it syncs a batch's
/// log files) then stalls only the tasks that need the store, never the
/// requests that do not.
fn wait_for(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    let lock = || conn.lock().unwrap_or_else(|e| e.into_inner());
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(lock)
    } else {
        lock()
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
