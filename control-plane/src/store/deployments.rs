//! Deployment rows: what the API creates and lists, what the persister and
//! the agent watchdog update.

use std::collections::HashMap;
use std::sync::LazyLock;

use rusqlite::{OptionalExtension, Row, params};
use sdp_bus::{DeploymentId, Status};

pub use sdp_api::{Deployment, PhaseAt};

use rusqlite::types::Value;

use super::keyset::{Select, TimeKey};
use super::{Store, StoreError, columns, now_rfc3339, status};

pub struct NewDeployment<'a> {
    pub id: &'a DeploymentId,
    pub sandbox: &'a str,
    pub repo: &'a str,
    pub branch: &'a str,
    pub kind: &'a str,
    pub created_by: &'a str,
    /// The TTL the sandbox gets if this deploy creates it
    /// (`sandboxes.default_ttl_hours`).
    pub new_sandbox_ttl_hours: u32,
    pub reapply: bool,
    /// The commit to deploy instead of the branch's head.
    pub commit: Option<&'a str>,
    /// The deployment this one redeploys.
    pub redeploy_of: Option<&'a DeploymentId>,
}

#[derive(Debug, Default)]
pub struct DeploymentFilter {
    pub sandbox: Option<String>,
    pub repo: Option<String>,
    pub status: Option<Status>,
    /// Only re-applies (`Some(true)`) or only the rest (`Some(false)`).
    pub reapply: Option<bool>,
    pub limit: u32,
    /// The page starts after this row (keyset paging, [`super::keyset`]).
    pub after: Option<TimeKey>,
}

/// The query of [`Store::deployments`]: only the filters given, so the
/// (sandbox | repo, created_at, id) indexes serve it.
pub(super) fn deployments_select(filter: &DeploymentFilter) -> Select {
    let mut select = Select::from(&COLUMNS, "deployments");
    select.equals("sandbox", filter.sandbox.as_deref());
    select.equals("repo", filter.repo.as_deref());
    select.equals("status", filter.status.map(Status::as_str));
    if let Some(reapply) = filter.reapply {
        select.push(" AND reapply = ?#", [Value::Integer(reapply.into())]);
    }
    select.newest_first(filter.after.as_ref(), filter.limit);
    select
}

/// Whether a row of `deployments` is live: `running`, and no newer
/// deployment of its (sandbox, service) is.
static LIVE_CONDITION: LazyLock<String> = LazyLock::new(|| {
    let running = Status::Running.as_str();
    format!(
        "status = '{running}' AND NOT EXISTS (SELECT 1 FROM deployments n \
           WHERE n.sandbox = deployments.sandbox AND n.repo = deployments.repo \
           AND n.status = '{running}' AND (n.created_at > deployments.created_at \
           OR (n.created_at = deployments.created_at AND n.id > deployments.id)))"
    )
});

/// The columns [`from_row`] reads; `live` is [`LIVE_CONDITION`].
static COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "id, sandbox, repo, branch, commit_sha, kind, agent_id, status, url, \
         error, created_by, created_at, updated_at, finished_at, last_seq, reapply, inputs_digest, \
         requested_commit, redeploy_of, {}",
        *LIVE_CONDITION
    )
});

/// The columns [`from_row`] reads, for the queries of other modules.
pub(super) fn columns() -> &'static str {
    &COLUMNS
}

pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Deployment> {
    let status: String = row.get(7)?;
    Ok(Deployment {
        id: columns::deployment_id(row, 0)?,
        sandbox: row.get(1)?,
        repo: row.get(2)?,
        branch: row.get(3)?,
        commit: row.get(4)?,
        kind: row.get(5)?,
        agent_id: row.get(6)?,
        // Only this crate writes the column, from `Status::as_str`.
        status: Status::parse(&status).unwrap_or(Status::Failed),
        url: row.get(8)?,
        error: row.get(9)?,
        created_by: row.get(10)?,
        created_at: columns::timestamp(row, 11)?,
        updated_at: columns::timestamp(row, 12)?,
        finished_at: columns::optional_timestamp(row, 13)?,
        last_seq: row.get(14)?,
        reapply: row.get(15)?,
        requested_commit: row.get(17)?,
        redeploy_of: columns::optional_deployment_id(row, 18)?,
        live: row.get(19)?,
        phases: Vec::new(),
    })
}

/// A deployment's phases in lifecycle order.
fn phases(conn: &rusqlite::Connection, id: &str) -> Result<Vec<PhaseAt>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT phase, at FROM phases WHERE deployment_id = ?1")?;
    let mut phases: Vec<PhaseAt> = stmt
        .query_map([id], |row| {
            Ok((row.get::<_, String>(0)?, columns::timestamp(row, 1)?))
        })?
        .filter_map(|row| row.ok())
        .filter_map(|(phase, at)| Status::parse(&phase).map(|phase| PhaseAt { phase, at }))
        .collect();
    sort_phases(&mut phases);
    Ok(phases)
}

/// Phases within one millisecond keep their lifecycle order.
fn sort_phases(phases: &mut [PhaseAt]) {
    phases.sort_by_key(|p| (p.at, Status::ALL.iter().position(|s| *s == p.phase)));
}

/// The phases of the deployments whose ids `?1` lists (a JSON array).
pub(super) const PHASES_OF_MANY: &str = "SELECT deployment_id, phase, at FROM phases \
     WHERE deployment_id IN (SELECT value FROM json_each(?1))";

/// Reads the phases of every deployment in `deployments` in one query
/// (a primary-key range each), not one query per row.
pub(super) fn with_phases(
    conn: &rusqlite::Connection,
    deployments: &mut [Deployment],
) -> Result<(), StoreError> {
    if deployments.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = deployments.iter().map(|d| d.id.as_str()).collect();
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Malformed(e.to_string()))?;
    let mut stmt = conn.prepare_cached(PHASES_OF_MANY)?;
    let rows = stmt.query_map([ids], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            columns::timestamp(row, 2)?,
        ))
    })?;
    let mut by_id: HashMap<String, Vec<PhaseAt>> = HashMap::new();
    for row in rows {
        let (id, phase, at) = row?;
        if let Some(phase) = Status::parse(&phase) {
            by_id.entry(id).or_default().push(PhaseAt { phase, at });
        }
    }
    for deployment in deployments {
        let mut phases = by_id.remove(deployment.id.as_str()).unwrap_or_default();
        sort_phases(&mut phases);
        deployment.phases = phases;
    }
    Ok(())
}

impl Store {
    /// The URLs of running deployments: the ports agents published for
    /// sandboxes (no webhook may point there, see `notify::guard`).
    pub fn published_urls(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT DISTINCT url FROM deployments WHERE url IS NOT NULL AND status = '{}'",
            Status::Running.as_str()
        ))?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a new `queued` deployment, creating its sandbox (owned by the
    /// requester) if it does not exist yet.
    pub fn insert_deployment(&self, new: &NewDeployment<'_>) -> Result<Deployment, StoreError> {
        self.insert_deployment_as(new, None)
    }

    /// [`Self::insert_deployment`] for `editor` (the requester): the
    /// sandbox must be theirs, or they an admin, else
    /// [`StoreError::NotOwner`] and nothing is written. Making the sandbox
    /// if missing and reading its owner happen in one transaction, so a
    /// sandbox someone else creates meanwhile is never handed this
    /// deployment.
    pub fn insert_deployment_as(
        &self,
        new: &NewDeployment<'_>,
        editor: Option<super::Editor<'_>>,
    ) -> Result<Deployment, StoreError> {
        let now = now_rfc3339();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // A deploy into a sandbox nobody created makes it (with the
        // default TTL); every deploy renews the expiry.
        tx.execute(
            "INSERT OR IGNORE INTO sandboxes (name, owner, created_at, expires_at, ttl_hours) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                new.sandbox,
                new.created_by,
                now,
                super::expiry_after(new.new_sandbox_ttl_hours),
                new.new_sandbox_ttl_hours
            ],
        )?;
        let (owner, ttl): (String, u32) = tx.query_row(
            "SELECT owner, ttl_hours FROM sandboxes WHERE name = ?1",
            [new.sandbox],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        if editor.is_some_and(|editor| !editor.may_change(Some(&owner))) {
            return Err(StoreError::NotOwner {
                sandbox: new.sandbox.to_owned(),
                owner,
            });
        }
        tx.execute(
            "UPDATE sandboxes SET expires_at = ?2 WHERE name = ?1",
            params![new.sandbox, super::expiry_after(ttl)],
        )?;
        tx.execute(
            "INSERT INTO deployments (id, sandbox, repo, branch, kind, status, created_by, \
             created_at, updated_at, reapply, requested_commit, redeploy_of) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?11, ?6, ?7, ?7, ?8, ?9, ?10)",
            params![
                new.id.as_str(),
                new.sandbox,
                new.repo,
                new.branch,
                new.kind,
                new.created_by,
                now,
                new.reapply,
                new.commit,
                new.redeploy_of.map(DeploymentId::as_str),
                Status::Queued.as_str()
            ],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO phases (deployment_id, phase, at) VALUES (?1, ?2, ?3)",
            params![new.id.as_str(), Status::Queued.as_str(), now],
        )?;
        tx.commit()?;
        drop(conn);
        self.deployment(new.id.as_str())?
            .ok_or_else(|| StoreError::Malformed("inserted deployment vanished".into()))
    }

    pub fn deployment(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        let conn = self.read();
        let Some(mut deployment) = conn
            .query_row(
                &format!("SELECT {} FROM deployments WHERE id = ?1", *COLUMNS),
                [id],
                from_row,
            )
            .optional()?
        else {
            return Ok(None);
        };
        deployment.phases = phases(&conn, id)?;
        Ok(Some(deployment))
    }

    /// Newest first, at most `filter.limit`, after `filter.after`.
    pub fn deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError> {
        let select = deployments_select(filter);
        let conn = self.read();
        let mut stmt = conn.prepare_cached(select.sql())?;
        let rows = stmt.query_map(select.args(), from_row)?;
        let mut deployments: Vec<Deployment> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        with_phases(&conn, &mut deployments)?;
        Ok(deployments)
    }

    /// The running deployments of a sandbox that serve it now: the newest
    /// running one of each service (the `live` ones), by repo.
    pub fn running_deployments(&self, sandbox: &str) -> Result<Vec<Deployment>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM deployments WHERE sandbox = ?1 AND {} ORDER BY repo",
            *COLUMNS, *LIVE_CONDITION
        ))?;
        let rows = stmt.query_map([sandbox], from_row)?;
        let mut deployments: Vec<Deployment> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        with_phases(&conn, &mut deployments)?;
        Ok(deployments)
    }

    pub fn set_deployment_agent(
        &self,
        id: &DeploymentId,
        agent_id: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deployments SET agent_id = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.as_str(), agent_id, now_rfc3339()],
        )?;
        Ok(())
    }

    /// The agent holding (sandbox, repo): that of its newest deployment
    /// (other than `except`) that has, or is getting, a container.
    pub fn holder(
        &self,
        sandbox: &str,
        repo: &str,
        except: &DeploymentId,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT agent_id FROM deployments WHERE sandbox = ?1 AND repo = ?2 \
                     AND id != ?3 AND agent_id IS NOT NULL AND status IN {} \
                     ORDER BY created_at DESC, id DESC LIMIT 1",
                    *status::LIVE_SQL
                ),
                params![sandbox, repo, except.as_str()],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// How many live deployments (running or in flight) each agent holds.
    pub fn live_by_agent(&self) -> Result<std::collections::HashMap<String, usize>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT agent_id, count(*) FROM deployments \
             WHERE agent_id IS NOT NULL AND status IN {} GROUP BY agent_id",
            *status::LIVE_SQL
        ))?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as usize)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The agents other than `agent_id` that held deployments of
    /// (sandbox, repo) now stopped or failed: their containers of it may
    /// still be there.
    pub fn former_holders(
        &self,
        sandbox: &str,
        repo: &str,
        agent_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT agent_id FROM deployments WHERE sandbox = ?1 AND repo = ?2 \
             AND agent_id IS NOT NULL AND agent_id != ?3",
        )?;
        let rows = stmt.query_map(params![sandbox, repo, agent_id], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the digest of the env and routes a gateway deployment got.
    pub fn set_inputs_digest(&self, id: &DeploymentId, digest: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deployments SET inputs_digest = ?2 WHERE id = ?1",
            params![id.as_str(), digest],
        )?;
        Ok(())
    }

    /// The digest [`Self::set_inputs_digest`] recorded, if any (not part
    /// of the API's `Deployment`).
    pub fn inputs_digest(&self, id: &str) -> Result<Option<String>, StoreError> {
        let digest = self
            .conn()
            .query_row(
                "SELECT inputs_digest FROM deployments WHERE id = ?1",
                params![id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()?;
        Ok(digest.flatten())
    }

    /// Marks a deployment `failed` unless it already settled; returns
    /// whether it changed.
    pub fn fail_deployment(&self, id: &str, error: &str) -> Result<bool, StoreError> {
        let now = now_rfc3339();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            &format!(
                "UPDATE deployments SET status = ?4, error = ?2, updated_at = ?3, finished_at = ?3 \
                 WHERE id = ?1 AND status IN {}",
                status::sql_list(&status::movable_to(Status::Failed))
            ),
            params![id, error, now, Status::Failed.as_str()],
        )?;
        if changed > 0 {
            tx.execute(
                "INSERT OR IGNORE INTO phases (deployment_id, phase, at) VALUES (?1, ?2, ?3)",
                params![id, Status::Failed.as_str(), now],
            )?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Deployments an agent has yet to finish (queued … starting).
    pub fn unsettled_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM deployments WHERE status IN {}",
            *COLUMNS,
            *status::UNSETTLED_SQL
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deployments that should have a container on `agent_id`: every one
    /// that is neither failed, cancelled nor stopped.
    pub fn deployments_to_keep(&self, agent_id: &str) -> Result<Vec<DeploymentId>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id FROM deployments WHERE agent_id = ?1 AND status IN {}",
            *status::LIVE_SQL
        ))?;
        let rows = stmt.query_map([agent_id], |row| columns::deployment_id(row, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many deployments are in each status.
    pub fn deployment_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT status, count(*) FROM deployments GROUP BY status")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The highest event seq persisted for a deployment; `None` if there
    /// is no such deployment.
    pub fn last_seq(&self, id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT last_seq FROM deployments WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Waits (polling, up to `bound`) until the persister has written a
    /// deployment's events up to `seq`; returns whether it has. A
    /// deployment with no row has nothing to wait for.
    pub async fn wait_persisted(&self, id: &str, seq: u64, bound: std::time::Duration) -> bool {
        const EVERY: std::time::Duration = std::time::Duration::from_millis(5);
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            match self.last_seq(id) {
                Ok(Some(last)) if last < seq => {}
                Ok(_) => return true,
                Err(err) => {
                    tracing::warn!(deployment = id, error = %err, "cannot read the persisted seq");
                    return false;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(EVERY).await;
        }
    }

    /// Persisted events of a deployment with `seq > after`, in order, as
    /// their JSON wire text.
    pub fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, body FROM events WHERE deployment_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![id, after], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::guard::Editor;

    fn deploy(store: &Store, sandbox: &str, repo: &str, status: Status, at: &str) -> DeploymentId {
        let id = DeploymentId::generate();
        let new = NewDeployment {
            id: &id,
            sandbox,
            repo,
            branch: "main",
            kind: "micro",
            created_by: "dev",
            new_sandbox_ttl_hours: 72,
            reapply: false,
            commit: None,
            redeploy_of: None,
        };
        store.insert_deployment(&new).expect("insert");
        store
            .conn()
            .execute(
                "UPDATE deployments SET status = ?2, created_at = ?3 WHERE id = ?1",
                params![id.as_str(), status.as_str(), at],
            )
            .expect("set status");
        id
    }

    #[test]
    fn running_deployments_are_the_newest_running_of_each_service() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        let t = |n: u32| format!("2026-01-01T00:00:0{n}.000Z");
        deploy(&store, "s", "users", Status::Running, &t(1));
        let users = deploy(&store, "s", "users", Status::Running, &t(2));
        deploy(&store, "s", "users", Status::Failed, &t(3));
        let edge = deploy(&store, "s", "edge", Status::Running, &t(1));
        deploy(&store, "s", "orders", Status::Stopped, &t(1));
        deploy(&store, "other", "users", Status::Running, &t(4));
        let running = store.running_deployments("s").expect("query");
        let ids: Vec<&str> = running.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, [edge.as_str(), users.as_str()], "by repo");
        assert!(
            running
                .iter()
                .all(|d| d.live && d.status == Status::Running)
        );
        assert!(store.running_deployments("none").expect("query").is_empty());
    }

    /// A deploy into a new sandbox makes it with the TTL it is given, and
    /// later deploys do not change an existing sandbox's TTL.
    #[test]
    fn a_first_deploy_makes_its_sandbox_with_the_given_ttl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        let insert = |ttl| {
            let id = DeploymentId::generate();
            let new = NewDeployment {
                id: &id,
                sandbox: "fresh",
                repo: "users",
                branch: "main",
                kind: "micro",
                created_by: "dev",
                new_sandbox_ttl_hours: ttl,
                reapply: false,
                commit: None,
                redeploy_of: None,
            };
            store.insert_deployment(&new).expect("insert");
            store.sandbox("fresh").expect("read").expect("made")
        };
        let before = chrono::Utc::now();
        let sandbox = insert(5);
        assert_eq!(sandbox.ttl_hours, 5);
        let hours = (sandbox.expires_at - before).num_minutes() as f64 / 60.0;
        assert!((4.9..5.1).contains(&hours), "expires in {hours} h");
        assert_eq!(insert(9).ttl_hours, 5, "the sandbox keeps its TTL");
    }

    /// Two users race many first deploys into one new name: the sandbox
    /// goes to whoever came first, and every deployment recorded is in a
    /// sandbox its requester owns; the others are refused, unrecorded.
    #[test]
    fn a_first_deploy_never_lands_in_a_sandbox_someone_else_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("sdp.db")).expect("store"));
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let user = if n % 2 == 0 { "alice" } else { "bob" };
                    let id = DeploymentId::generate();
                    let new = NewDeployment {
                        id: &id,
                        sandbox: "fresh",
                        repo: "users",
                        branch: "main",
                        kind: "micro",
                        created_by: user,
                        new_sandbox_ttl_hours: 72,
                        reapply: false,
                        commit: None,
                        redeploy_of: None,
                    };
                    let editor = Editor { user, admin: false };
                    (user, store.insert_deployment_as(&new, Some(editor)))
                })
            })
            .collect();
        let owner = |store: &Store| store.sandbox("fresh").expect("read").expect("made").owner;
        let mut refused = 0;
        for thread in threads {
            let (user, outcome) = thread.join().expect("thread");
            match outcome {
                Ok(deployment) => assert_eq!(deployment.created_by, owner(&store)),
                Err(StoreError::NotOwner { owner: other, .. }) => {
                    assert_ne!(other, user);
                    refused += 1;
                }
                Err(err) => panic!("{err}"),
            }
        }
        assert_eq!(refused, 8, "the other user's eight are refused");
        let recorded = store
            .deployments(&DeploymentFilter {
                limit: 100,
                ..Default::default()
            })
            .expect("list");
        assert_eq!(recorded.len(), 8);
        assert!(recorded.iter().all(|d| d.created_by == owner(&store)));
        // An admin may deploy into it.
        let id = DeploymentId::generate();
        let new = NewDeployment {
            id: &id,
            sandbox: "fresh",
            repo: "users",
            branch: "main",
            kind: "micro",
            created_by: "root",
            new_sandbox_ttl_hours: 72,
            reapply: false,
            commit: None,
            redeploy_of: None,
        };
        let admin = Editor {
            user: "root",
            admin: true,
        };
        store
            .insert_deployment_as(&new, Some(admin))
            .expect("an admin deploys anywhere");
    }
}
