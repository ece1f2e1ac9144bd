//! The SQLite store: deployments, their phases and events, sandboxes and
//! sessions, deliveries of notifications. WAL mode, so the API and the persister (each with its own
//! connection) read and write side by side. Migrations live in code.

mod audit;
mod autodeploys;
pub mod columns;
mod deliveries;
mod deployments;
mod guard;
mod held;
pub mod keyset;
#[cfg(test)]
mod keyset_tests;
mod migrations;
mod power;
mod readers;
mod resource_specs;
mod resources;
pub(crate) mod results;
mod sandbox_rows;
mod sandboxes;
mod service_env;
mod sessions;
pub mod status;
mod templates;
pub(crate) mod test_runs;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub use audit::{AuditFilter, NewAuditEntry};
pub use autodeploys::{Autodeploy, AutodeployTarget};
pub use deliveries::{
    Attempt, BuildState, Delivery, DeliveryKind, DeliveryOutcome, NewDelivery, NotifyEvent,
    NotifyTarget,
};
pub use deployments::{Deployment, DeploymentFilter, NewDeployment, PhaseAt};
pub use guard::{Editor, Guarded};
use held::Held;
pub use keyset::{PageOf, TimeKey};
pub use power::IdleCandidate;
use readers::Readers;
pub use resources::StoredResource;
pub use sandbox_rows::SandboxRows;
pub use sandboxes::{NewSandbox, Sandbox, SandboxState, StoredRoute};
pub use sessions::SessionRow;
pub use templates::{
    Environment, EnvironmentWrite, RepoBranch, SecretVars, Template, is_constraint, object_only,
};
pub use test_runs::NewTestRun;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database query failed")]
    Sql(#[from] rusqlite::Error),
    #[error("stored value is malformed: {0}")]
    Malformed(String),
    /// A deployment asked for a sandbox that someone else owns.
    #[error("sandbox {sandbox} belongs to {owner}")]
    NotOwner { sandbox: String, owner: String },
}

/// A shared handle on one writing SQLite connection and a few reading
/// ones. Queries are short; callers on the async runtime hold a
/// connection only for one statement or transaction.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(path)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Readers::open(path)?),
        })
    }

    #[track_caller]
    pub(crate) fn conn(&self) -> Held<'_> {
        Held::lock(&self.conn)
    }

    /// A reading connection, for the API's hot reads: it sees every
    /// committed write and never waits for the writer.
    #[track_caller]
    pub(crate) fn read(&self) -> Held<'_> {
        self.readers.take()
    }

    /// Writes a consistent copy of the database to `file` (which must not
    /// exist) while others read and write it: SQLite's `VACUUM INTO`.
    pub fn backup_to(&self, file: &Path) -> Result<(), StoreError> {
        let target = file.to_str().ok_or_else(|| {
            StoreError::Malformed(format!("{} is not a UTF-8 path", file.display()))
        })?;
        self.conn().execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// A cheap query proving the database answers, for `/readyz`.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Opens (creating if needed) the database with WAL and migrations applied.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    migrations::apply(&mut conn)?;
    Ok(conn)
}

/// Now, as the store writes timestamps ([`columns::timestamp_text`]).
pub(crate) fn now_rfc3339() -> String {
    columns::timestamp_text(chrono::Utc::now())
}

/// `ttl_hours` from now, as expiries are stored (here, not in
/// `sandboxes.rs`: deployments and sandboxes both set one).
pub fn expiry_after(ttl_hours: u32) -> String {
    columns::timestamp_text(chrono::Utc::now() + chrono::Duration::hours(i64::from(ttl_hours)))
}
