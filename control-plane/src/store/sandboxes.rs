//! Sandboxes and their stored routes (`sandbox` and `manual`; environment
//! routes are derived, see `crate::routing`).

use std::sync::LazyLock;

use rusqlite::{OptionalExtension, Row, params};
use sdp_bus::{RouteSource, Status};

pub use sdp_api::{Sandbox, SandboxState};

use super::keyset::{PageOf, Select, text};
use super::{Store, StoreError, columns, expiry_after, now_rfc3339, status};

pub struct NewSandbox<'a> {
    pub name: &'a str,
    pub owner: &'a str,
    pub template: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub ttl_hours: u32,
    pub pinned: bool,
}

/// A stored route row.
#[derive(Clone, Debug)]
pub struct StoredRoute {
    pub service: String,
    pub target: String,
    pub source: RouteSource,
}

const COLUMNS: &str = "name, owner, template, environment, created_at, expires_at, pinned, \
     ttl_hours, power, last_activity_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Sandbox> {
    Ok(Sandbox {
        name: row.get(0)?,
        owner: row.get(1)?,
        template: row.get(2)?,
        environment: row.get(3)?,
        created_at: columns::timestamp(row, 4)?,
        expires_at: columns::timestamp(row, 5)?,
        pinned: row.get(6)?,
        ttl_hours: row.get(7)?,
        state: SandboxState::parse(&row.get::<_, String>(8)?),
        last_activity_at: columns::optional_timestamp(row, 9)?,
    })
}

/// The URL of the newest running gateway of the sandbox `sandbox` (an
/// SQL expression) in literals, so the partial index
/// `deployments_running` serves it: one seek, no sort.
pub(super) fn running_gateway_sql(sandbox: &str) -> String {
    format!(
        "SELECT url FROM deployments WHERE sandbox = {sandbox} AND status = '{}' \
         AND kind = '{}' AND url IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1",
        Status::Running.as_str(),
        sdp_bus::subject::KIND_GATEWAY
    )
}

/// [`running_gateway_sql`] of the sandbox `?1`.
pub(super) static RUNNING_GATEWAY: LazyLock<String> = LazyLock::new(|| running_gateway_sql("?1"));

pub(super) fn sandboxes_select(page: &PageOf<String>) -> Select {
    let mut select = Select::from(COLUMNS, "sandboxes");
    if let Some(after) = &page.after {
        select.push(" AND name > ?#", [text(after)]);
    }
    select.push(
        " ORDER BY name LIMIT ?#",
        [rusqlite::types::Value::Integer(page.limit.into())],
    );
    select
}

impl Store {
    /// Creates a sandbox; a duplicate name is a constraint error.
    pub fn insert_sandbox(&self, new: &NewSandbox<'_>) -> Result<Sandbox, StoreError> {
        self.conn().execute(
            "INSERT INTO sandboxes (name, owner, template, environment, created_at, expires_at, pinned, ttl_hours) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                new.name,
                new.owner,
                new.template,
                new.environment,
                now_rfc3339(),
                expiry_after(new.ttl_hours),
                new.pinned,
                new.ttl_hours
            ],
        )?;
        self.sandbox(new.name)?
            .ok_or_else(|| StoreError::Malformed("inserted sandbox vanished".into()))
    }

    pub fn sandbox(&self, name: &str) -> Result<Option<Sandbox>, StoreError> {
        Ok(self
            .read()
            .query_row(
                &format!("SELECT {COLUMNS} FROM sandboxes WHERE name = ?1"),
                [name],
                from_row,
            )
            .optional()?)
    }

    pub fn sandboxes(&self) -> Result<Vec<Sandbox>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sandboxes ORDER BY name"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page of the sandboxes by name: at most `page.limit` after the
    /// name `page.after` (the primary key's index serves it).
    pub fn sandboxes_page(&self, page: &PageOf<String>) -> Result<Vec<Sandbox>, StoreError> {
        let select = sandboxes_select(page);
        let conn = self.read();
        let mut stmt = conn.prepare_cached(select.sql())?;
        let rows = stmt.query_map(select.args(), from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Changes pin and TTL; `renew` restarts the expiry clock.
    pub fn update_sandbox(
        &self,
        name: &str,
        pinned: Option<bool>,
        ttl_hours: Option<u32>,
        renew: bool,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        if let Some(pinned) = pinned {
            conn.execute(
                "UPDATE sandboxes SET pinned = ?2 WHERE name = ?1",
                params![name, pinned],
            )?;
        }
        if let Some(ttl) = ttl_hours {
            conn.execute(
                "UPDATE sandboxes SET ttl_hours = ?2 WHERE name = ?1",
                params![name, ttl],
            )?;
        }
        if renew || ttl_hours.is_some() {
            let ttl: u32 = conn.query_row(
                "SELECT ttl_hours FROM sandboxes WHERE name = ?1",
                [name],
                |r| r.get(0),
            )?;
            conn.execute(
                "UPDATE sandboxes SET expires_at = ?2 WHERE name = ?1",
                params![name, expiry_after(ttl)],
            )?;
        }
        Ok(())
    }

    /// Sandboxes past their expiry and not pinned.
    pub fn expired_sandboxes(&self) -> Result<Vec<Sandbox>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM sandboxes WHERE pinned = 0 AND expires_at <= ?1"
        ))?;
        let rows = stmt.query_map([now_rfc3339()], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a torn-down sandbox: its routes, autodeploy rows and service env
    /// go, its deployments become `stopped` (settled ones keep their status
    /// except `running`), and the row is deleted. Returns how many deployments were stopped.
    pub fn remove_sandbox(&self, name: &str) -> Result<usize, StoreError> {
        let now = now_rfc3339();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let stoppable = status::sql_list(&status::movable_to(Status::Stopped));
        tx.execute(
            &format!(
                "INSERT OR IGNORE INTO phases (deployment_id, phase, at) \
                 SELECT id, ?3, ?2 FROM deployments WHERE sandbox = ?1 \
                 AND status IN {stoppable}"
            ),
            params![name, now, Status::Stopped.as_str()],
        )?;
        let stopped = tx.execute(
            &format!(
                "UPDATE deployments SET status = ?3, updated_at = ?2, \
                 finished_at = coalesce(finished_at, ?2) \
                 WHERE sandbox = ?1 AND status IN {stoppable}"
            ),
            params![name, now, Status::Stopped.as_str()],
        )?;
        tx.execute("DELETE FROM routes WHERE sandbox = ?1", [name])?;
        tx.execute("DELETE FROM service_follows WHERE sandbox = ?1", [name])?;
        tx.execute("DELETE FROM service_env WHERE sandbox = ?1", [name])?;
        tx.execute("DELETE FROM sandbox_resources WHERE sandbox = ?1", [name])?;
        tx.execute(
            "DELETE FROM sandbox_resource_specs WHERE sandbox = ?1",
            [name],
        )?;
        tx.execute("DELETE FROM sandboxes WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(stopped)
    }

    /// The URL of the sandbox's newest running gateway deployment: while a
    /// re-apply replaces it, the one it replaces (same port: the URL does
    /// not change).
    pub fn running_gateway_url(&self, sandbox: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&RUNNING_GATEWAY)?
            .query_row([sandbox], |row| row.get(0))
            .optional()?)
    }

    /// Renews a sandbox's expiry by its TTL (every deploy does).
    pub fn renew_sandbox(&self, name: &str) -> Result<(), StoreError> {
        self.update_sandbox(name, None, None, true)
    }

    pub fn stored_routes(&self, sandbox: &str) -> Result<Vec<StoredRoute>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT service, target, source FROM routes WHERE sandbox = ?1 ORDER BY service",
        )?;
        let rows = stmt.query_map([sandbox], |row| {
            let source: String = row.get(2)?;
            Ok(StoredRoute {
                service: row.get(0)?,
                target: row.get(1)?,
                source: if source == "manual" {
                    RouteSource::Manual
                } else {
                    RouteSource::Sandbox
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_route(
        &self,
        sandbox: &str,
        service: &str,
        target: &str,
        source: RouteSource,
    ) -> Result<(), StoreError> {
        let source = match source {
            RouteSource::Manual => "manual",
            _ => "sandbox",
        };
        self.conn().execute(
            "INSERT INTO routes (sandbox, service, target, source, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (sandbox, service, source) DO UPDATE SET target = excluded.target, \
             updated_at = excluded.updated_at",
            params![sandbox, service, target, source, now_rfc3339()],
        )?;
        Ok(())
    }

    pub fn delete_route(
        &self,
        sandbox: &str,
        service: &str,
        source: RouteSource,
    ) -> Result<bool, StoreError> {
        let source = match source {
            RouteSource::Manual => "manual",
            _ => "sandbox",
        };
        Ok(self.conn().execute(
            "DELETE FROM routes WHERE sandbox = ?1 AND service = ?2 AND source = ?3",
            params![sandbox, service, source],
        )? > 0)
    }
}
