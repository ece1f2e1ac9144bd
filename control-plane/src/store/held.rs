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
    /// The thread's schedstat when taken, only while slow holds are
    /// logged: says whether a slow hold worked or waited for a core.
    sched: Option<Schedstat>,
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
            sched: Schedstat::if_logged(),
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
            sched: Schedstat::if_logged(),
        })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let held = self.since.elapsed();
        if held < SLOW && self.waited < SLOW {
            return;
        }
        let (on_cpu, queued) = match (self.sched, Schedstat::now()) {
            (Some(then), Some(now)) => (
                Some(now.on_cpu_ns.saturating_sub(then.on_cpu_ns) / 1_000_000),
                Some(now.queued_ns.saturating_sub(then.queued_ns) / 1_000_000),
            ),
            _ => (None, None),
        };
        tracing::debug!(
            waited_ms = self.waited.as_millis() as u64,
            held_ms = held.as_millis() as u64,
            on_cpu_ms = on_cpu,
            queued_ms = queued,
            caller = %self.caller,
            "store connection slow"
        );
    }
}

/// The calling thread's time on a core and waiting for one
/// (`/proc/thread-self/schedstat`, Linux).
#[derive(Clone, Copy)]
struct Schedstat {
    on_cpu_ns: u64,
    queued_ns: u64,
}

impl Schedstat {
    fn if_logged() -> Option<Schedstat> {
        if tracing::enabled!(tracing::Level::DEBUG) {
            Self::now()
        } else {
            None
        }
    }

    fn now() -> Option<Schedstat> {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        Some(Schedstat {
            on_cpu_ns: fields.next()?.ok()?,
            queued_ns: fields.next()?.ok()?,
        })
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
