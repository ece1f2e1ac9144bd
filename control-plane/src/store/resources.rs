//! A sandbox's resources (`sandbox_resources`): one row per (sandbox,
//! resource) with its engine, the variable its URL goes in, where it runs
//! and how it is. The password is made once per (sandbox, resource) and
//! kept like a secret value: read only by [`Store::resource_password`]
//! (to build the URL for the services and the owner), never listed. The
//! rows go with their sandbox.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use sdp_api::{ResourceSpec, ResourceState};
use sdp_bus::{ResourceEngine, Secret};

use super::{Store, StoreError, columns, now_rfc3339};

/// One stored resource, without its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResource {
    pub sandbox: String,
    pub name: String,
    pub engine: ResourceEngine,
    pub env_var: String,
    pub agent_id: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub state: ResourceState,
    pub error: Option<String>,
    pub size_bytes: u64,
    /// When the periodic poll last measured `size_bytes`.
    pub size_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "sandbox, name, engine, env_var, agent_id, host, port, state, error, \
     size_bytes, updated_at, size_at";

fn malformed(what: &str, value: &str) -> StoreError {
    StoreError::Malformed(format!("{what} {value}"))
}

type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<u16>,
    String,
    Option<String>,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        columns::timestamp(row, 10)?,
        columns::optional_timestamp(row, 11)?,
    ))
}

fn to_resource(row: Row) -> Result<StoredResource, StoreError> {
    let (
        sandbox,
        name,
        engine,
        env_var,
        agent_id,
        host,
        port,
        state,
        error,
        size,
        updated_at,
        size_at,
    ) = row;
    Ok(StoredResource {
        engine: ResourceEngine::parse(&engine).ok_or_else(|| malformed("engine", &engine))?,
        state: ResourceState::parse(&state).ok_or_else(|| malformed("state", &state))?,
        sandbox,
        name,
        env_var,
        agent_id,
        host,
        port,
        error,
        size_bytes: u64::try_from(size).unwrap_or(0),
        size_at,
        updated_at,
    })
}

impl Store {
    /// The sandbox's resources, by name.
    pub fn resources(&self, sandbox: &str) -> Result<Vec<StoredResource>, StoreError> {
        let rows: Vec<Row> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sandbox_resources WHERE sandbox = ?1 ORDER BY name"
            ))?;
            let rows = stmt.query_map([sandbox], read_row)?;
            rows.collect::<Result<_, _>>()?
        };
        rows.into_iter().map(to_resource).collect()
    }

    pub fn resource(
        &self,
        sandbox: &str,
        name: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM sandbox_resources WHERE sandbox = ?1 AND name = ?2"
                ),
                params![sandbox, name],
                read_row,
            )
            .optional()?
            .map(to_resource)
            .transpose()
    }

    /// Records `spec` for the sandbox with `password` unless it is there
    /// (its password is kept; engine and variable follow the template).
    /// `false` if the sandbox is gone: no row outlives it.
    pub fn declare_resource(
        &self,
        sandbox: &str,
        spec: &ResourceSpec,
        password: &Secret,
    ) -> Result<bool, StoreError> {
        let written = self.conn().execute(
            "INSERT INTO sandbox_resources (sandbox, name, engine, env_var, password, state, updated_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, 'starting', ?6 \
             WHERE EXISTS (SELECT 1 FROM sandboxes WHERE name = ?1) \
             ON CONFLICT (sandbox, name) DO UPDATE SET engine = excluded.engine, \
               env_var = excluded.env_var",
            params![
                sandbox,
                spec.name,
                spec.engine.as_str(),
                spec.env_var,
                password.expose(),
                now_rfc3339()
            ],
        )?;
        Ok(written > 0)
    }

    /// The resource's password (to build its URL).
    pub fn resource_password(
        &self,
        sandbox: &str,
        name: &str,
    ) -> Result<Option<Secret>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT password FROM sandbox_resources WHERE sandbox = ?1 AND name = ?2",
                params![sandbox, name],
                |row| row.get::<_, String>(0),
            )
            .optional()?
            .map(Secret::new))
    }

    /// Marks the resource as being started or reset.
    pub fn resource_starting(&self, sandbox: &str, name: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sandbox_resources SET state = 'starting', error = NULL, updated_at = ?3 \
             WHERE sandbox = ?1 AND name = ?2",
            params![sandbox, name, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Records where the ready resource listens.
    pub fn resource_ready(
        &self,
        sandbox: &str,
        name: &str,
        agent_id: &str,
        host: &str,
        port: u16,
        size_bytes: u64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sandbox_resources SET state = 'ready', error = NULL, agent_id = ?3, host = ?4, \
             port = ?5, size_bytes = ?6, updated_at = ?7 WHERE sandbox = ?1 AND name = ?2",
            params![
                sandbox,
                name,
                agent_id,
                host,
                port,
                i64::try_from(size_bytes).unwrap_or(i64::MAX),
                now_rfc3339()
            ],
        )?;
        Ok(())
    }

    /// Records why the resource is not ready; `agent_id` is where it was
    /// tried (its volume may be there).
    pub fn resource_failed(
        &self,
        sandbox: &str,
        name: &str,
        agent_id: Option<&str>,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sandbox_resources SET state = 'failed', error = ?3, \
             agent_id = coalesce(?4, agent_id), updated_at = ?5 WHERE sandbox = ?1 AND name = ?2",
            params![sandbox, name, error, agent_id, now_rfc3339()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::NewSandbox;
    use super::*;

    #[test]
    fn a_resource_keeps_its_password_and_goes_with_its_sandbox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        let spec = ResourceSpec {
            name: "db".into(),
            engine: ResourceEngine::Postgres,
            env_var: "DATABASE_URL".into(),
            seed: None,
        };
        let first = Secret::new("a".repeat(24));
        assert!(
            !store
                .declare_resource("box", &spec, &first)
                .expect("declare")
        );
        store
            .insert_sandbox(&NewSandbox {
                name: "box",
                owner: "alice",
                template: None,
                environment: None,
                ttl_hours: 1,
                pinned: false,
            })
            .expect("sandbox");
        assert!(
            store
                .declare_resource("box", &spec, &first)
                .expect("declare")
        );
        let again = Secret::new("b".repeat(24));
        assert!(
            store
                .declare_resource("box", &spec, &again)
                .expect("declare")
        );
        assert_eq!(
            store.resource_password("box", "db").expect("pw"),
            Some(first)
        );
        store
            .resource_ready("box", "db", "micro-1", "10.0.0.5", 41000, 4096)
            .expect("ready");
        let listed = store.resources("box").expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, ResourceState::Ready);
        assert_eq!(listed[0].port, Some(41000));
        store.remove_sandbox("box").expect("remove");
        assert!(store.resources("box").expect("list").is_empty());
    }
}
