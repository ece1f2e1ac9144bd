//! Deployment rows: what the API creates and lists, what the persister and
//! the agent watchdog update.

use std::sync::LazyLock;

use rusqlite::{OptionalExtension, Row, params};
use sdp_bus::{DeploymentId, Status};
use serde::Serialize;

use super::{Store, StoreError, now_rfc3339, status};

/// A deployment as the API shows it (fields may be added, not renamed).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Deployment {
    pub id: String,
    pub sandbox: String,
    pub repo: String,
    pub branch: String,
    pub commit: Option<String>,
    pub kind: String,
    pub agent_id: Option<String>,
    pub status: Status,
    pub url: Option<String>,
    pub error: Option<String>,
    pub phases: Vec<PhaseAt>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    /// The highest event seq persisted so far.
    pub last_seq: u64,
    /// A re-apply (the same build: a gateway's with new routes, or a
    /// service's with its new env), not a deployment someone asked for.
    pub reapply: bool,
    /// The commit the request asked for (`null`: the branch's head); the
    /// agent refuses one that is not on the branch. `commit` is what was
    /// checked out.
    pub requested_commit: Option<String>,
    /// A redeploy (rollback): the deployment whose commit this one deploys
    /// again.
    pub redeploy_of: Option<String>,
    /// Whether this deployment's container serves its (sandbox, service)
    /// now: the newest `running` one of them. Derived from the statuses,
    /// so it changes exactly when they do.
    pub live: bool,
    /// For a gateway: the digest of the env and routes it was sent
    /// ([`crate::routing::GatewayInputs::digest`]).
    #[serde(skip)]
    pub inputs_digest: Option<String>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PhaseAt {
    pub phase: Status,
    pub at: String,
}

pub struct NewDeployment<'a> {
    pub id: &'a DeploymentId,
    pub sandbox: &'a str,
    pub repo: &'a str,
    pub branch: &'a str,
    pub kind: &'a str,
    pub created_by: &'a str,
    pub reapply: bool,
    /// The commit to deploy instead of the branch's head.
    pub commit: Option<&'a str>,
    /// The deployment this one redeploys.
    pub redeploy_of: Option<&'a str>,
}

#[derive(Debug, Default)]
pub struct DeploymentFilter {
    pub sandbox: Option<String>,
    pub repo: Option<String>,
    pub status: Option<Status>,
    /// Only re-applies (`Some(true)`) or only the rest (`Some(false)`).
    pub reapply: Option<bool>,
    pub limit: u32,
}

/// The columns [`from_row`] reads. `live` is derived: the row is
/// `running` and no newer deployment of its (sandbox, service) is.
static COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let running = Status::Running.as_str();
    format!(
        "id, sandbox, repo, branch, commit_sha, kind, agent_id, status, url, \
         error, created_by, created_at, updated_at, finished_at, last_seq, reapply, inputs_digest, \
         requested_commit, redeploy_of, \
         status = '{running}' AND NOT EXISTS (SELECT 1 FROM deployments n \
           WHERE n.sandbox = deployments.sandbox AND n.repo = deployments.repo \
           AND n.status = '{running}' AND (n.created_at > deployments.created_at \
           OR (n.created_at = deployments.created_at AND n.id > deployments.id)))"
    )
});

fn from_row(row: &Row<'_>) -> rusqlite::Result<Deployment> {
    let status: String = row.get(7)?;
    Ok(Deployment {
        id: row.get(0)?,
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
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        finished_at: row.get(13)?,
        last_seq: row.get(14)?,
        reapply: row.get(15)?,
        inputs_digest: row.get(16)?,
        requested_commit: row.get(17)?,
        redeploy_of: row.get(18)?,
        live: row.get(19)?,
        phases: Vec::new(),
    })
}

/// A deployment's phases in lifecycle order.
fn phases(conn: &rusqlite::Connection, id: &str) -> Result<Vec<PhaseAt>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT phase, at FROM phases WHERE deployment_id = ?1")?;
    let mut phases: Vec<PhaseAt> = stmt
        .query_map([id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .filter_map(|row| row.ok())
        .filter_map(|(phase, at)| Status::parse(&phase).map(|phase| PhaseAt { phase, at }))
        .collect();
    // Phases within one millisecond keep their lifecycle order.
    phases.sort_by_key(|p| (p.at.clone(), Status::ALL.iter().position(|s| *s == p.phase)));
    Ok(phases)
}

impl Store {
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
        // A deploy into a sandbox nobody created makes it (default TTL);
        // every deploy renews the expiry.
        tx.execute(
            "INSERT OR IGNORE INTO sandboxes (name, owner, created_at, expires_at, ttl_hours) \
             VALUES (?1, ?2, ?3, ?4, 72)",
            params![new.sandbox, new.created_by, now, super::expiry_after(72)],
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
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?7, ?8, ?9, ?10)",
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
                new.redeploy_of
            ],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO phases (deployment_id, phase, at) VALUES (?1, 'queued', ?2)",
            params![new.id.as_str(), now],
        )?;
        tx.commit()?;
        drop(conn);
        self.deployment(new.id.as_str())?
            .ok_or_else(|| StoreError::Malformed("inserted deployment vanished".into()))
    }

    pub fn deployment(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        let conn = self.conn();
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

    /// Newest first.
    pub fn deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM deployments \
             WHERE (?1 IS NULL OR sandbox = ?1) AND (?2 IS NULL OR repo = ?2) \
               AND (?3 IS NULL OR status = ?3) AND (?5 IS NULL OR reapply = ?5) \
             ORDER BY created_at DESC, id DESC LIMIT ?4",
            *COLUMNS
        ))?;
        let rows = stmt.query_map(
            params![
                filter.sandbox,
                filter.repo,
                filter.status.map(Status::as_str),
                filter.limit,
                filter.reapply
            ],
            from_row,
        )?;
        let mut deployments: Vec<Deployment> = rows.collect::<Result<_, _>>()?;
        for deployment in &mut deployments {
            deployment.phases = phases(&conn, &deployment.id)?;
        }
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

    /// Marks a deployment `failed` unless it already settled; returns
    /// whether it changed.
    pub fn fail_deployment(&self, id: &str, error: &str) -> Result<bool, StoreError> {
        let now = now_rfc3339();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            &format!(
                "UPDATE deployments SET status = 'failed', error = ?2, updated_at = ?3, finished_at = ?3 \
                 WHERE id = ?1 AND status IN {}",
                status::sql_list(&status::movable_to(Status::Failed))
            ),
            params![id, error, now],
        )?;
        if changed > 0 {
            tx.execute(
                "INSERT OR IGNORE INTO phases (deployment_id, phase, at) VALUES (?1, 'failed', ?2)",
                params![id, now],
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
    pub fn deployments_to_keep(&self, agent_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id FROM deployments WHERE agent_id = ?1 AND status IN {}",
            *status::LIVE_SQL
        ))?;
        let rows = stmt.query_map([agent_id], |row| row.get(0))?;
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
