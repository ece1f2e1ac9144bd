//! The sandbox model over REST: environments, templates,
//! sandboxes, routes; hostile names; teardown; the reaper.

use std::time::Duration;

use reqwest::StatusCode;
use sdp_api::client::Client;
use sdp_api::client::ClientError;
use sdp_api::{
    EffectiveRoute, ErrorBody, ListQuery, NewDeployment, NewSandbox, SandboxPatch, SandboxView,
    TeardownReport, TemplateDeployStarted,
};
use sdp_bus::{RouteSource, Status};
use serde_json::{Value, json};

use crate::common::*;

fn containers_of(agent: &str, sandbox: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=sdp.agent={agent}"))
        .arg("--filter")
        .arg(format!("label=sdp.sandbox={sandbox}"))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// How many environments, templates and sandboxes there are.
async fn counts(client: &Client) -> (usize, usize, usize) {
    (
        client.environments().await.expect("environments").len(),
        client.templates().await.expect("templates").len(),
        client.sandboxes().await.expect("sandboxes").len(),
    )
}

/// The route of `service` in a sandbox's route table.
fn route<'a>(sandbox: &'a SandboxView, service: &str) -> &'a EffectiveRoute {
    sandbox
        .routes
        .iter()
        .flatten()
        .find(|r| r.service == service)
        .unwrap_or_else(|| panic!("no route of {service}: {sandbox:?}"))
}

/// A sandbox view from a raw answer (kept raw for its status code).
fn sandbox_view(body: Value) -> SandboxView {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|err| panic!("not a sandbox view ({err}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_routes_and_teardown() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let client = stack.client_with(&token);

    // Environment and template.
    let (status, env) = stack
        .post(&token, "/api/environments", json!({ "name": "baseline", "vars": {
            "USERS_URL": "http://users.baseline.example", "ORDERS_URL": "http://orders.baseline.example",
            "LOG_LEVEL": "debug",
        }}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{env}");
    let (status, _) = stack
        .post(&token, "/api/environments", json!({ "name": "baseline" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, template) = stack
        .post(&token, "/api/templates", json!({
            "name": "shop", "environment": "baseline",
            "services": [{ "repo": "users", "branch": "main" }, { "repo": "orders", "branch": "main" }],
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let response = stack
        .http()
        .delete(stack.url("/api/environments/baseline"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "an environment in use by a template"
    );
    let (status, _) = stack
        .post(
            &token,
            "/api/templates",
            json!({ "name": "bad", "environment": "nope" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Hostile names: 400, nothing created.
    let before = counts(&client).await;
    let long = "a".repeat(200);
    for name in [
        "../x",
        "a.b*",
        long.as_str(),
        "café",
        "x'; DROP TABLE sandboxes;--",
        "",
        "-x",
        "A",
    ] {
        for path in ["/api/environments", "/api/templates", "/api/sandboxes"] {
            let (status, body) = stack.post(&token, path, json!({ "name": name })).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {name:?}: {body}");
            // The API's error shape, with its message.
            let refused = serde_json::from_value::<ErrorBody>(body.clone());
            assert!(refused.is_ok(), "{path} {name:?}: {body}");
        }
    }
    let (status, _) = stack
        .post(
            &token,
            "/api/environments",
            json!({ "name": "evil", "vars": { "A B": "x" } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a var name with a space");
    let after = counts(&client).await;
    assert_eq!(before, after, "a refused request created something");

    // A sandbox from the template: everything routes to the baseline.
    let (status, alpha) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "alpha", "template": "shop", "ttl_hours": 4 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alpha}");
    let alpha = sandbox_view(alpha);
    assert_eq!(alpha.sandbox.owner, USER);
    assert_eq!(route(&alpha, "users").source, RouteSource::Environment);
    assert_eq!(
        route(&alpha, "users").target,
        "http://users.baseline.example"
    );
    assert_eq!(route(&alpha, "users").env_key, "USERS_URL");
    let (status, _) = stack
        .post(&token, "/api/sandboxes", json!({ "name": "alpha" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Deploy users@feature/x only: its route flips to the sandbox.
    let expires_before = alpha.sandbox.expires_at;
    let (status, started) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deploy",
            json!({ "branches": { "users": BRANCH }, "only": ["users"] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let started: TemplateDeployStarted =
        serde_json::from_value(started).expect("a template deploy's answer");
    let id = started.deployments[0].id.as_str().to_owned();
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    let url = deployment.url.as_deref().expect("url").to_owned();
    let alpha = sdp_testkit::wait_for(
        "users route to flip to the sandbox",
        Duration::from_secs(20),
        || async {
            let alpha = client.sandbox("alpha").await.ok()?;
            (route(&alpha, "users").source == RouteSource::Sandbox).then_some(alpha)
        },
    )
    .await;
    assert_eq!(route(&alpha, "users").target, url);
    assert_eq!(route(&alpha, "orders").source, RouteSource::Environment);
    assert!(
        alpha.sandbox.expires_at > expires_before,
        "a deploy renews the expiry"
    );
    let users = alpha
        .services
        .iter()
        .find(|s| s.repo == "users")
        .expect("users");
    assert_eq!(users.status, Some(Status::Running));
    assert_eq!(users.branch.as_deref(), Some(BRANCH));

    // A manual route wins; deleting it returns to the sandbox.
    let response = stack
        .http()
        .put(stack.url("/api/sandboxes/alpha/routes/users"))
        .bearer_auth(&token)
        .json(&json!({ "target": "http://manual.example:9000" }))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), StatusCode::OK);
    let routes = client.routes("alpha").await.expect("routes of alpha");
    let users_route = routes.iter().find(|r| r.service == "users").expect("users");
    assert_eq!(users_route.source, RouteSource::Manual);
    for target in [
        "ftp://x",
        "http://",
        "http://a b",
        "javascript:alert(1)",
        "http://x\nInjected: 1",
    ] {
        let response = stack
            .http()
            .put(stack.url("/api/sandboxes/alpha/routes/users"))
            .bearer_auth(&token)
            .json(&json!({ "target": target }))
            .send()
            .await
            .expect("put");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{target:?}");
    }
    let response = stack
        .http()
        .delete(stack.url("/api/sandboxes/alpha/routes/users"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let alpha = client.sandbox("alpha").await.expect("sandbox alpha");
    assert_eq!(route(&alpha, "users").source, RouteSource::Sandbox);

    // A second sandbox, untouched by alpha's teardown.
    let beta = stack.deploy(&token, "beta", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &beta).await.status,
        Status::Running
    );
    assert_eq!(containers_of(&stack.agent_id, "alpha").len(), 1);
    assert_eq!(containers_of(&stack.agent_id, "beta").len(), 1);

    let response = stack
        .http()
        .delete(stack.url("/api/sandboxes/alpha"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let report: TeardownReport = response.json().await.expect("a teardown report");
    assert_eq!(report.stopped, 1, "{report:?}");
    assert!(
        containers_of(&stack.agent_id, "alpha").is_empty(),
        "alpha's container survived"
    );
    assert!(
        !stack
            .agent_data
            .path()
            .join("worktrees")
            .join("alpha")
            .exists()
    );
    let gone = client.sandbox("alpha").await.expect_err("alpha is gone");
    assert_eq!(
        gone.status(),
        Some(StatusCode::NOT_FOUND.as_u16()),
        "{gone}"
    );
    let deployment = client.deployment(&id).await.expect("the deployment");
    assert_eq!(deployment.status, Status::Stopped);
    assert_eq!(
        containers_of(&stack.agent_id, "beta").len(),
        1,
        "beta was touched"
    );
    let beta = client.deployment(&beta).await.expect("beta's deployment");
    assert_eq!(beta.status, Status::Running);
    stack.shutdown().await;
}

/// An admin of the reaper's test: the audit trail of a sandbox that is
/// gone is an admin's to read.
const REAPER_ADMIN: &str = "ops";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_tears_down_expired_unpinned_sandboxes() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: vec![
            (
                "SDP_CONTROL_PLANE__SANDBOXES__REAP_INTERVAL".into(),
                "1s".into(),
            ),
            // Reads the audit trail of a sandbox that is gone.
            (
                "SDP_CONTROL_PLANE__AUTH__ADMINS".into(),
                REAPER_ADMIN.into(),
            ),
        ],
        ..StackOptions::default()
    })
    .await;
    let client = stack.login_as(USER).await;
    for (name, pinned) in [("old", false), ("keep", true)] {
        let sandbox = NewSandbox {
            name: name.to_owned(),
            pinned,
            ttl_hours: Some(1),
            ..NewSandbox::default()
        };
        client.create_sandbox(&sandbox).await.expect("create");
        stack
            .deploy_and_wait(&client, name, BRANCH, Status::Running)
            .await;
    }
    // Both expired an hour ago.
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    db.execute(
        "UPDATE sandboxes SET expires_at = '2000-01-01T00:00:00.000Z'",
        [],
    )
    .expect("expire");

    sdp_testkit::wait_for(
        "the reaper to take old",
        Duration::from_secs(30),
        || async {
            let gone = client.sandbox("old").await.err()?;
            (gone.status() == Some(404)).then_some(())
        },
    )
    .await;
    assert!(containers_of(&stack.agent_id, "old").is_empty());
    // The reaper's own entry: `sandbox.expire` by `system`, saying when
    // it expired; none for the pinned one.
    let admin = stack.login_as(REAPER_ADMIN).await;
    let expired = sdp_testkit::wait_for(
        "the reaper's audit entry",
        Duration::from_secs(10),
        || async {
            let page = admin
                .audit(&sdp_api::AuditQuery {
                    action: Some("sandbox.expire".to_owned()),
                    ..Default::default()
                })
                .await
                .ok()?;
            (!page.entries.is_empty()).then_some(page.entries)
        },
    )
    .await;
    let entry = &expired[0];
    assert_eq!(expired.len(), 1, "only old expired: {expired:?}");
    assert_eq!(entry.actor.as_deref(), Some("system"), "{entry:?}");
    assert_eq!(entry.action, sdp_api::AuditAction::SandboxExpire);
    assert_eq!(entry.sandbox.as_deref(), Some("old"), "{entry:?}");
    assert_eq!(entry.outcome, sdp_api::AuditOutcome::Ok, "{entry:?}");
    assert!(
        entry
            .message
            .as_deref()
            .is_some_and(|m| m.contains("expired at 2000-01-01")),
        "{entry:?}"
    );
    let keep = client
        .sandbox("keep")
        .await
        .expect("a pinned sandbox was reaped");
    assert!(keep.sandbox.pinned);
    assert_eq!(containers_of(&stack.agent_id, "keep").len(), 1);

    // Unpinning lets it go; renewing first saves it.
    let patch = SandboxPatch {
        pinned: Some(false),
        renew: true,
        ..SandboxPatch::default()
    };
    let keep = client.update_sandbox("keep", &patch).await.expect("patch");
    assert!(keep.sandbox.expires_at > chrono::Utc::now(), "{keep:?}");
    stack.shutdown().await;
}

/// The error is the API's 403 `forbidden`.
fn assert_forbidden<T: std::fmt::Debug>(what: &str, answer: Result<T, ClientError>) {
    let err = answer.expect_err(what);
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some("forbidden")),
        "{what}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn others_read_but_cannot_change_a_sandbox() {
    let stack = Stack::start().await;
    let owner = stack.login_as(USER).await;
    let alpha = NewSandbox {
        name: "alpha".to_owned(),
        ..NewSandbox::default()
    };
    owner.create_sandbox(&alpha).await.expect("create alpha");
    let other = stack.login_as("qa").await;

    let alpha = other.sandbox("alpha").await.expect("others read it");
    assert_eq!(alpha.sandbox.owner, USER);
    assert_forbidden("delete", other.delete_sandbox("alpha").await);
    let pin = SandboxPatch {
        pinned: Some(true),
        ..SandboxPatch::default()
    };
    assert_forbidden("pin", other.update_sandbox("alpha", &pin).await);
    let deploy = NewDeployment {
        repo: REPO.to_owned(),
        branch: BRANCH.to_owned(),
        commit: None,
    };
    assert_forbidden("deploy", other.deploy("alpha", &deploy).await);
    assert_forbidden(
        "route",
        other.put_route("alpha", "users", "http://x.example").await,
    );
    let alpha = owner.sandbox("alpha").await.expect("alpha");
    assert!(!alpha.sandbox.pinned);
    let all = owner
        .deployments(&ListQuery::default())
        .await
        .expect("deployments");
    assert!(all.is_empty(), "{all:?}");
    stack.shutdown().await;
}
