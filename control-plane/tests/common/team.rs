//! A team's worth of sandboxes, made quickly: the 3-service template
//! (gateway + `users` + `orders`) and `n` sandboxes of it through the real
//! REST API, and, for the benches that read lists, a deployment history
//! written straight into the control plane's SQLite (no agent builds
//! anything: what is measured is what the API does with the rows).

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use super::Stack;

/// The template every team sandbox is made from.
pub const TEMPLATE: &str = "team";
/// Its gateway and its two Go services.
pub const GATEWAY: &str = "gateway";
pub const SERVICES: [&str; 2] = ["users", "orders"];

/// The name of team sandbox `n`: they sort as they are numbered.
pub fn sandbox_name(n: usize) -> String {
    format!("team-{n:03}")
}

/// Creates [`TEMPLATE`] (gateway + 2 services, branch `main`), with the
/// services' variables from `environment` when one is named.
pub async fn create_template(stack: &Stack, token: &str, environment: Option<&str>) {
    let services: Vec<_> = SERVICES
        .iter()
        .map(|repo| json!({ "repo": repo, "branch": "main" }))
        .collect();
    let mut template = json!({
        "name": TEMPLATE,
        "gateway": { "repo": GATEWAY, "branch": "main" },
        "services": services,
    });
    if let Some(environment) = environment {
        template["environment"] = json!(environment);
    }
    let (status, body) = stack.post(token, "/api/templates", template).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Creates sandboxes `0..n` of [`TEMPLATE`] (a few requests at a time),
/// pinned (never expired by the reaper) or not; returns their names in
/// order.
pub async fn create_sandboxes(stack: &Stack, token: &str, n: usize, pinned: bool) -> Vec<String> {
    let names: Vec<String> = (0..n).map(sandbox_name).collect();
    futures::stream::iter(names.clone())
        .for_each_concurrent(8, |name| async move {
            let (status, body) = stack
                .post(
                    token,
                    "/api/sandboxes",
                    json!({ "name": name, "template": TEMPLATE, "pinned": pinned }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        })
        .await;
    names
}

/// Writes `waves` deployments of each service of each sandbox into the
/// control plane's database (one transaction, through the store's own
/// connection: same migrations, WAL, busy timeout), as `waves` team-wide
/// deploys would leave them: every older one `stopped`, the newest of
/// each service `running` at a URL, with their phases; a third of the
/// sandboxes follow `users` (autodeploy on, a push recorded). Returns how
/// many deployments it wrote.
pub fn seed_deployments(stack: &Stack, sandboxes: &[String], waves: usize) -> usize {
    let path = stack.cp_data.path().join("sdp.db");
    let mut conn = sdp_control_plane::store::open_connection(&path).expect("open sdp.db");
    let tx = conn.transaction().expect("transaction");
    let start = chrono::Utc::now() - chrono::Duration::days(1);
    let stamp = |seconds: usize| {
        (start + chrono::Duration::seconds(seconds as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut written = 0;
    {
        let mut deployment = tx
            .prepare(
                "INSERT INTO deployments (id, sandbox, repo, branch, kind, agent_id, status, \
                 commit_sha, url, created_by, created_at, updated_at, finished_at) \
                 VALUES (?1, ?2, ?3, 'main', ?4, ?5, ?6, ?7, ?8, 'dev', ?9, ?10, ?11)",
            )
            .expect("prepare");
        let mut phase = tx
            .prepare("INSERT INTO phases (deployment_id, phase, at) VALUES (?1, ?2, ?3)")
            .expect("prepare");
        let repos = std::iter::once(GATEWAY).chain(SERVICES);
        let repos: Vec<&str> = repos.collect();
        for wave in 0..waves {
            let newest = wave + 1 == waves;
            for (s, sandbox) in sandboxes.iter().enumerate() {
                for (r, repo) in repos.iter().enumerate() {
                    let id = sdp_bus::DeploymentId::generate();
                    let created = (wave * sandboxes.len() + s) * repos.len() + r;
                    let kind = if *repo == GATEWAY { "gateway" } else { "micro" };
                    let status = if newest { "running" } else { "stopped" };
                    let url = format!("http://127.0.0.1:{}", 20_000 + s * 3 + r);
                    let commit = format!("{:040x}", created);
                    let (at, running_at) = (stamp(created), stamp(created + 1));
                    let finished = (!newest).then(|| stamp(created + 2));
                    deployment
                        .execute(rusqlite::params![
                            id.as_str(),
                            sandbox,
                            repo,
                            kind,
                            format!("agent-{}", s % 3),
                            status,
                            commit,
                            url,
                            at,
                            finished.as_deref().unwrap_or(&running_at),
                            finished,
                        ])
                        .expect("insert deployment");
                    for (name, when) in [("queued", &at), ("running", &running_at)] {
                        phase
                            .execute(rusqlite::params![id.as_str(), name, when])
                            .expect("insert phase");
                    }
                    if let Some(finished) = &finished {
                        phase
                            .execute(rusqlite::params![id.as_str(), "stopped", finished])
                            .expect("insert phase");
                    }
                    written += 1;
                }
            }
        }
        // A third of the sandboxes follow `users`, with a push recorded
        // before its newest deployment (the view compares the two).
        let mut follow = tx
            .prepare(
                "INSERT INTO service_follows (sandbox, repo, follow, pushed_commit, pushed_at) \
                 VALUES (?1, 'users', 1, ?2, ?3)",
            )
            .expect("prepare");
        for sandbox in sandboxes.iter().step_by(3) {
            follow
                .execute(rusqlite::params![sandbox, format!("{:040x}", 7), stamp(0)])
                .expect("insert follow");
        }
    }
    tx.commit().expect("commit");
    written
}
