//! What a sandbox's view reads besides its own row (`api/view.rs`): the
//! newest deployment of each service, the running gateway's URL, the
//! autodeploy rows and the service env keys, for one sandbox or a whole
//! page of the list at once. A page is a range of names, so each part is
//! one query over that range (a range of an index each), never a query
//! per sandbox: a team's 300 sandboxes cost the same few queries as one.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use rusqlite::{Connection, params};

use super::autodeploys::Autodeploy;
use super::deployments::{Deployment, from_row, with_phases};
use super::{Store, StoreError, columns};

/// What [`Store::sandbox_rows`] reads of one sandbox.
#[derive(Debug, Default)]
pub struct SandboxRows {
    /// The newest deployment of each service, by repo.
    pub latest: Vec<Deployment>,
    /// The URL of its newest running gateway deployment.
    pub gateway_url: Option<String>,
    /// Its autodeploy rows, by repo.
    pub autodeploys: Vec<Autodeploy>,
    /// The keys of its own env for each repo that has one.
    pub env_keys: BTreeMap<String, Vec<String>>,
}

/// The newest deployment of each service of the sandboxes that `seed`
/// (a query of one column, `n`) names, found as a loose index scan of
/// `deployments_by_service` (sandbox, repo, created_at, id): each next
/// repo of a sandbox is one seek past the last, and each service's
/// newest deployment one more, so a service's older deployments are
/// never read.
pub(super) fn latest_sql(seed: &str) -> String {
    format!(
        "WITH RECURSIVE services(s_name, s_repo) AS ( \
           SELECT n, (SELECT min(repo) FROM deployments WHERE sandbox = n) FROM ({seed}) \
           UNION ALL \
           SELECT s_name, (SELECT min(repo) FROM deployments \
             WHERE sandbox = s_name AND repo > s_repo) \
           FROM services WHERE s_repo IS NOT NULL) \
         SELECT {} FROM services JOIN deployments ON deployments.id = ( \
           SELECT id FROM deployments WHERE sandbox = s_name AND repo = s_repo \
           ORDER BY created_at DESC, id DESC LIMIT 1)",
        super::deployments::columns()
    )
}

/// [`latest_sql`] for the sandboxes named `?1` to `?2`.
pub(super) static LATEST_IN_RANGE: LazyLock<String> =
    LazyLock::new(|| latest_sql("SELECT name AS n FROM sandboxes WHERE name BETWEEN ?1 AND ?2"));

/// [`latest_sql`] for the sandbox `?1` (whether or not its row exists).
pub(super) static LATEST_OF_ONE: LazyLock<String> = LazyLock::new(|| latest_sql("SELECT ?1 AS n"));

/// The URL of the newest running gateway of each sandbox named `?1` to
/// `?2` ([`super::sandboxes::running_gateway_sql`] for each: one seek
/// into the partial index `deployments_running`).
pub(super) static GATEWAYS_IN_RANGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT name, url FROM (SELECT name, ({}) AS url FROM sandboxes \
           WHERE name BETWEEN ?1 AND ?2) WHERE url IS NOT NULL",
        super::sandboxes::running_gateway_sql("name")
    )
});

/// The autodeploy rows of the sandboxes named `?1` to `?2`.
pub(super) const FOLLOWS_IN_RANGE: &str = "SELECT sandbox, repo, follow, pushed_commit, pushed_at \
     FROM service_follows WHERE sandbox BETWEEN ?1 AND ?2 ORDER BY sandbox, repo";

/// The service env rows of the sandboxes named `?1` to `?2`.
pub(super) const ENV_IN_RANGE: &str =
    "SELECT sandbox, repo, env FROM service_env WHERE sandbox BETWEEN ?1 AND ?2";

/// Sorts `deployments` by repo and reads their phases.
fn by_repo_with_phases(
    conn: &Connection,
    mut deployments: Vec<Deployment>,
) -> Result<Vec<Deployment>, StoreError> {
    deployments.sort_by(|a, b| a.repo.cmp(&b.repo));
    with_phases(conn, &mut deployments)?;
    Ok(deployments)
}

impl Store {
    /// The newest deployment of each repo in a sandbox, by repo.
    pub fn latest_deployments(&self, sandbox: &str) -> Result<Vec<Deployment>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&LATEST_OF_ONE)?;
        let rows = stmt.query_map([sandbox], from_row)?;
        let deployments = rows.collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        by_repo_with_phases(&conn, deployments)
    }

    /// What the view of each sandbox named `first` to `last` (by name,
    /// inclusive) needs, read at once (in one read transaction, so the
    /// parts agree): a sandbox with nothing to show has no entry.
    pub fn sandbox_rows(
        &self,
        first: &str,
        last: &str,
    ) -> Result<HashMap<String, SandboxRows>, StoreError> {
        let reader = self.read();
        // One snapshot for the four reads; dropped (rolled back) at the end.
        let conn = reader.unchecked_transaction()?;
        let mut out: HashMap<String, SandboxRows> = HashMap::new();

        let mut stmt = conn.prepare_cached(&LATEST_IN_RANGE)?;
        let latest = stmt
            .query_map(params![first, last], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        for deployment in by_repo_with_phases(&conn, latest)? {
            out.entry(deployment.sandbox.clone())
                .or_default()
                .latest
                .push(deployment);
        }

        let mut stmt = conn.prepare_cached(&GATEWAYS_IN_RANGE)?;
        let rows = stmt.query_map(params![first, last], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (sandbox, url) = row?;
            out.entry(sandbox).or_default().gateway_url = Some(url);
        }
        drop(stmt);

        let mut stmt = conn.prepare_cached(FOLLOWS_IN_RANGE)?;
        let rows = stmt.query_map(params![first, last], |row| {
            let commit: Option<String> = row.get(3)?;
            let at = columns::optional_timestamp(row, 4)?;
            Ok((
                row.get::<_, String>(0)?,
                Autodeploy {
                    repo: row.get(1)?,
                    on: row.get(2)?,
                    pushed: commit.zip(at),
                },
            ))
        })?;
        for row in rows {
            let (sandbox, autodeploy) = row?;
            out.entry(sandbox).or_default().autodeploys.push(autodeploy);
        }
        drop(stmt);

        let mut stmt = conn.prepare_cached(ENV_IN_RANGE)?;
        let rows = stmt.query_map(params![first, last], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (sandbox, repo, json) = row?;
            let env: BTreeMap<String, String> =
                serde_json::from_str(&json).map_err(|e| StoreError::Malformed(e.to_string()))?;
            out.entry(sandbox)
                .or_default()
                .env_keys
                .insert(repo, env.into_keys().collect());
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use sdp_bus::{DeploymentId, Status};

    use super::super::NewSandbox;
    use super::super::deployments::NewDeployment;
    use super::*;

    /// A sandbox of `ann`'s, named `name`.
    pub(in crate::store) fn sandbox(store: &Store, name: &str) {
        store
            .insert_sandbox(&NewSandbox {
                name,
                owner: "ann",
                template: None,
                environment: None,
                ttl_hours: 72,
                pinned: false,
            })
            .expect("sandbox");
    }

    /// A deployment of `repo` in `sandbox` made at second `at`, in `status`.
    fn deploy(store: &Store, sandbox: &str, repo: &str, status: Status, at: u32) -> DeploymentId {
        let id = DeploymentId::generate();
        let kind = if repo == "edge" { "gateway" } else { "micro" };
        store
            .insert_deployment(&NewDeployment {
                id: &id,
                sandbox,
                repo,
                branch: "main",
                kind,
                created_by: "ann",
                new_sandbox_ttl_hours: 72,
                reapply: false,
                commit: None,
                redeploy_of: None,
            })
            .expect("deploy");
        store
            .conn()
            .execute(
                "UPDATE deployments SET status = ?2, created_at = ?3, url = ?4 WHERE id = ?1",
                params![
                    id.as_str(),
                    status.as_str(),
                    format!("2026-01-01T00:00:{at:02}.000Z"),
                    format!("http://{repo}-{at}")
                ],
            )
            .expect("set");
        id
    }

    /// Each service's newest deployment (ties of one instant by id), the
    /// newest running gateway (not a newer failed one), the autodeploy
    /// and env rows, for exactly the sandboxes of the range; the same as
    /// one sandbox's own read.
    #[test]
    fn a_range_reads_what_each_of_its_sandboxes_shows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("sdp.db")).expect("store");
        for name in ["a", "b", "c"] {
            sandbox(&store, name);
        }
        let tied: Vec<DeploymentId> = (0..3)
            .map(|_| deploy(&store, "a", "users", Status::Stopped, 5))
            .collect();
        deploy(&store, "a", "users", Status::Running, 4);
        let orders = deploy(&store, "a", "orders", Status::Running, 1);
        deploy(&store, "a", "edge", Status::Running, 1);
        deploy(&store, "a", "edge", Status::Running, 2);
        let failed_edge = deploy(&store, "a", "edge", Status::Failed, 3);
        let c_users = deploy(&store, "c", "users", Status::Running, 1);
        store
            .set_autodeploy("a", "users", true)
            .expect("autodeploy");
        let env: std::collections::BTreeMap<String, String> =
            [("K".to_owned(), "v".to_owned())].into();
        assert!(store.set_service_env("a", "users", &env).expect("env"));

        let mut rows = store.sandbox_rows("a", "b").expect("rows");
        assert!(!rows.contains_key("c"), "c is past the range");
        let a = rows.remove("a").expect("a");
        let latest: Vec<(&str, &str)> = a
            .latest
            .iter()
            .map(|d| (d.repo.as_str(), d.id.as_str()))
            .collect();
        let newest_tied = tied.iter().max().expect("three");
        assert_eq!(
            latest,
            [
                ("edge", failed_edge.as_str()),
                ("orders", orders.as_str()),
                ("users", newest_tied.as_str())
            ]
        );
        assert!(a.latest.iter().all(|d| !d.phases.is_empty()), "with phases");
        assert_eq!(a.gateway_url.as_deref(), Some("http://edge-2"));
        assert_eq!(
            store.running_gateway_url("a").expect("url").as_deref(),
            Some("http://edge-2")
        );
        assert_eq!(a.autodeploys.len(), 1);
        assert!(a.autodeploys[0].on);
        assert_eq!(a.env_keys.get("users"), Some(&vec!["K".to_owned()]));
        assert!(rows.remove("b").is_none(), "b has nothing to show");

        let one = store.latest_deployments("a").expect("latest");
        let ids = |ds: &[crate::store::Deployment]| -> Vec<String> {
            ds.iter().map(|d| d.id.to_string()).collect()
        };
        assert_eq!(ids(&one), ids(&a.latest));
        assert_eq!(
            ids(&store.latest_deployments("c").expect("latest")),
            [c_users.to_string()]
        );
        assert!(store.latest_deployments("none").expect("latest").is_empty());
    }
}
