//! Autodeploy: services redeployed when their branch is pushed to. A push
//! webhook redeploys every (sandbox, service) with autodeploy on whose
//! newest deployment is of the pushed branch. A push that could not be
//! deployed (no service credential) is recorded on the row, so the sandbox
//! shows the service "behind: deploy by hand" until a newer deployment of
//! it.
//!
//! The table keeps its first name, `service_follows` (column `follow`):
//! renaming it would take a migration that the previous release could not
//! read back after a downgrade, for no change in behaviour.

use chrono::{DateTime, Utc};
use rusqlite::params;
use sdp_bus::DeploymentId;

use super::{Store, StoreError, columns, now_rfc3339};

/// A service's autodeploy row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autodeploy {
    pub repo: String,
    /// Redeployed on a push to its branch.
    pub on: bool,
    /// The newest pushed commit that was not deployed, and when it came.
    pub pushed: Option<(String, DateTime<Utc>)>,
}

/// A (sandbox, service) with autodeploy on whose newest deployment is of
/// the pushed branch, with what that deployment runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutodeployTarget {
    pub sandbox: String,
    pub deployment_id: DeploymentId,
    pub commit: Option<String>,
}

impl Store {
    /// Turns autodeploy on or off for (sandbox, repo). Turning it off also
    /// forgets an undeployed push.
    pub fn set_autodeploy(&self, sandbox: &str, repo: &str, on: bool) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO service_follows (sandbox, repo, follow) VALUES (?1, ?2, ?3) \
             ON CONFLICT (sandbox, repo) DO UPDATE SET follow = excluded.follow, \
             pushed_commit = CASE WHEN excluded.follow THEN pushed_commit END, \
             pushed_at = CASE WHEN excluded.follow THEN pushed_at END",
            params![sandbox, repo, on],
        )?;
        Ok(())
    }

    /// The autodeploy rows of a sandbox's services.
    pub fn autodeploys(&self, sandbox: &str) -> Result<Vec<Autodeploy>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT repo, follow, pushed_commit, pushed_at FROM service_follows \
             WHERE sandbox = ?1 ORDER BY repo",
        )?;
        let rows = stmt.query_map([sandbox], |row| {
            let commit: Option<String> = row.get(2)?;
            let at = columns::optional_timestamp(row, 3)?;
            Ok(Autodeploy {
                repo: row.get(0)?,
                on: row.get(1)?,
                pushed: commit.zip(at),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The services of `repo` with autodeploy on, in sandboxes that exist,
    /// whose newest deployment is of `branch`.
    pub fn autodeploy_targets(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Vec<AutodeployTarget>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT f.sandbox, d.id, d.commit_sha FROM service_follows f \
             JOIN sandboxes s ON s.name = f.sandbox \
             JOIN deployments d ON d.id = ( \
               SELECT id FROM deployments WHERE sandbox = f.sandbox AND repo = f.repo \
               ORDER BY created_at DESC, id DESC LIMIT 1) \
             WHERE f.repo = ?1 AND f.follow = 1 AND d.branch = ?2 ORDER BY f.sandbox",
        )?;
        let rows = stmt.query_map(params![repo, branch], |row| {
            Ok(AutodeployTarget {
                sandbox: row.get(0)?,
                deployment_id: columns::deployment_id(row, 1)?,
                commit: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a push to an autodeploy target that was not deployed.
    pub fn record_push(&self, sandbox: &str, repo: &str, commit: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE service_follows SET pushed_commit = ?3, pushed_at = ?4 \
             WHERE sandbox = ?1 AND repo = ?2",
            params![sandbox, repo, commit, now_rfc3339()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::deployments::NewDeployment;

    fn deploy(store: &Store, sandbox: &str, repo: &str, branch: &str) -> DeploymentId {
        let id = DeploymentId::generate();
        store
            .insert_deployment(&NewDeployment {
                id: &id,
                sandbox,
                repo,
                branch,
                kind: "micro",
                created_by: "dev",
                new_sandbox_ttl_hours: 72,
                reapply: false,
                commit: None,
                redeploy_of: None,
            })
            .expect("insert");
        id
    }

    #[test]
    fn targets_are_the_autodeployed_services_on_the_branch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        deploy(&store, "a", "users", "feature/x");
        let b = deploy(&store, "b", "users", "feature/x");
        deploy(&store, "c", "users", "feature/x");
        deploy(&store, "d", "users", "main");
        // `e` moved from feature/x to main: its newest deployment counts.
        deploy(&store, "e", "users", "feature/x");
        deploy(&store, "e", "users", "main");
        for sandbox in ["a", "b", "d", "e"] {
            store.set_autodeploy(sandbox, "users", true).expect("on");
        }
        store.set_autodeploy("a", "users", false).expect("off");

        let targets = store
            .autodeploy_targets("users", "feature/x")
            .expect("query");
        assert_eq!(
            targets,
            vec![AutodeployTarget {
                sandbox: "b".into(),
                deployment_id: b,
                commit: None
            }]
        );
        assert!(
            store
                .autodeploy_targets("orders", "feature/x")
                .expect("query")
                .is_empty()
        );

        store.record_push("b", "users", "abc123").expect("push");
        let rows = store.autodeploys("b").expect("autodeploys");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].pushed.as_ref().map(|p| p.0.as_str()),
            Some("abc123")
        );
        store.set_autodeploy("b", "users", false).expect("off");
        assert_eq!(store.autodeploys("b").expect("autodeploys")[0].pushed, None);

        // A torn-down sandbox forgets its autodeploy rows.
        store.remove_sandbox("d").expect("remove");
        assert!(store.autodeploys("d").expect("autodeploys").is_empty());
    }
}
