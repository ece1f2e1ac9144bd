//! A sandbox's sleep state (`awake`, `asleep`, `waking`) and its last
//! activity (a deploy into it, a request through its preview link), and
//! which sandboxes have been idle long enough to sleep.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{SandboxState, Store, StoreError, columns, status};

/// An awake sandbox as the sleeper sees it.
#[derive(Clone, Debug)]
pub struct IdleCandidate {
    pub name: String,
    /// The latest of its creation, its stored last activity and its
    /// deployments' last change.
    pub last_activity: DateTime<Utc>,
    /// A deployment of it is queued, fetching, building or starting.
    pub busy: bool,
}

impl Store {
    /// Sets the sandbox's state; false if there is no such sandbox.
    pub fn set_sandbox_state(&self, name: &str, state: SandboxState) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE sandboxes SET power = ?2 WHERE name = ?1",
            params![name, state.as_str()],
        )? > 0)
    }

    /// Moves the last activity forward to `at` (never back).
    pub fn record_activity(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sandboxes SET last_activity_at = ?2 \
             WHERE name = ?1 AND (last_activity_at IS NULL OR last_activity_at < ?2)",
            params![name, columns::timestamp_text(at)],
        )?;
        Ok(())
    }

    /// Every awake sandbox, with its last activity and whether a
    /// deployment of it is in flight.
    pub fn awake_sandboxes(&self) -> Result<Vec<IdleCandidate>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT s.name, max(s.created_at, coalesce(s.last_activity_at, ''), \
               coalesce((SELECT max(d.updated_at) FROM deployments d WHERE d.sandbox = s.name), '')), \
             EXISTS (SELECT 1 FROM deployments d WHERE d.sandbox = s.name AND d.status IN {}) \
             FROM sandboxes s WHERE s.power = 'awake' ORDER BY s.name",
            *status::UNSETTLED_SQL
        ))?;
        let rows = stmt.query_map([], |row| {
            Ok(IdleCandidate {
                name: row.get(0)?,
                last_activity: columns::timestamp(row, 1)?,
                busy: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sandboxes::NewSandbox;

    #[test]
    fn state_and_activity_round_trip_and_activity_never_goes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        store
            .insert_sandbox(&NewSandbox {
                name: "alpha",
                owner: "dev",
                template: None,
                environment: None,
                ttl_hours: 1,
                pinned: false,
            })
            .expect("sandbox");
        let fresh = store.sandbox("alpha").expect("read").expect("there");
        assert_eq!(fresh.state, SandboxState::Awake);
        assert_eq!(fresh.last_activity_at, None);
        let later = Utc::now() + chrono::Duration::minutes(5);
        store.record_activity("alpha", later).expect("activity");
        store
            .record_activity("alpha", Utc::now())
            .expect("older activity");
        let read = store.sandbox("alpha").expect("read").expect("there");
        assert_eq!(
            read.last_activity_at.map(columns::timestamp_text),
            Some(columns::timestamp_text(later))
        );
        let awake = store.awake_sandboxes().expect("awake");
        assert_eq!(awake.len(), 1);
        assert!(!awake[0].busy);
        assert_eq!(
            columns::timestamp_text(awake[0].last_activity),
            columns::timestamp_text(later)
        );
        assert!(
            store
                .set_sandbox_state("alpha", SandboxState::Asleep)
                .expect("state")
        );
        assert!(store.awake_sandboxes().expect("awake").is_empty());
        assert_eq!(
            store.sandbox("alpha").expect("read").expect("there").state,
            SandboxState::Asleep
        );
        assert!(
            !store
                .set_sandbox_state("ghost", SandboxState::Asleep)
                .expect("state")
        );
    }
}
