//! A service's env end to end: reserved keys (`PORT`, `SDP_*`) refused by
//! name wherever env is written (a template's overrides, an environment,
//! a sandbox's own env for a service); a micro service's container runs
//! with its environment's variables (plain and secret), the template's
//! env and the sandbox's over it; a change re-applies the running service
//! (its build again); only the owner changes the sandbox's env or sees
//! its values; its rows go with the sandbox.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sdp_testkit::{unique_id, wait_for};
use serde_json::{Value, json};

use crate::common::*;

const OTHER: &str = "qa";
const OTHER_PASSWORD: &str = "qa-password";

async fn login_as(stack: &Stack, user: &str, password: &str) -> String {
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": user, "password": password }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK, "login as {user}");
    let body: Value = response.json().await.expect("login body");
    body["token"].as_str().expect("token").to_owned()
}

async fn send(
    stack: &Stack,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = stack
        .http()
        .request(method, stack.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A 400 whose JSON message names `key`.
fn assert_refused(what: &str, status: StatusCode, body: &Value, key: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"]["code"], "bad_request", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("{key:?}")) && message.contains("reserved"),
        "{what}: the message names {key}: {message}"
    );
}

/// The env of the container a deployment started (`KEY=VALUE` lines).
fn container_env(deployment: &str) -> Vec<String> {
    let containers = sdp_testkit::containers_with_label("sdp.deployment", deployment);
    assert_eq!(containers.len(), 1, "one container of {deployment}");
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            &containers[0],
        ])
        .output()
        .expect("docker inspect");
    serde_json::from_slice(&out.stdout).expect("env JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_env_keys_are_refused_by_name_on_every_write() {
    let stack = Stack::start().await;
    let token = stack.login().await;

    // A template's overrides.
    for key in ["PORT", "SDP_SANDBOX"] {
        let (status, body) = stack
            .post(&token, "/api/templates", json!({
                "name": unique_id("tpl"),
                "services": [{ "repo": REPO, "branch": "main", "overrides": { "env": { key: "1" } } }],
            }))
            .await;
        assert_refused("a template override", status, &body, key);
    }
    let (status, body) = stack
        .post(
            &token,
            "/api/templates",
            json!({
                "name": "route",
                "services": [{ "repo": REPO, "branch": "main", "overrides": { "route_env": "SDP_USERS" } }],
            }),
        )
        .await;
    assert_refused("a route env key", status, &body, "SDP_USERS");
    let (status, body) = stack
        .post(
            &token,
            "/api/templates",
            json!({
                "name": "cmd",
                "services": [{ "repo": REPO, "branch": "main", "overrides": { "command": [] } }],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an empty command: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("command")),
        "{body}"
    );

    // An environment's plain and secret variables, created and updated.
    let (status, body) = stack
        .post(
            &token,
            "/api/environments",
            json!({ "name": "bad", "vars": { "PORT": "80" } }),
        )
        .await;
    assert_refused("an environment var", status, &body, "PORT");
    let (status, body) = stack
        .post(
            &token,
            "/api/environments",
            json!({ "name": "ok", "vars": { "MODE": "a" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(
        &stack,
        &token,
        Method::PUT,
        "/api/environments/ok",
        json!({ "vars": { "MODE": "a" }, "secrets": { "SDP_TOKEN": "x" } }),
    )
    .await;
    assert_refused("an environment secret", status, &body, "SDP_TOKEN");

    // A sandbox's own env for a service; nothing stored.
    let (status, body) = stack
        .post(&token, "/api/templates", json!({
            "name": "plain", "environment": "ok",
            "services": [{ "repo": REPO, "branch": "main", "overrides": { "env": { "FROM_TEMPLATE": "t" } } }],
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "box", "template": "plain" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/api/sandboxes/box/services/{REPO}/env");
    for key in ["PORT", "SDP_COMMIT"] {
        let (status, body) = send(
            &stack,
            &token,
            Method::PUT,
            &path,
            json!({ "env": { "FINE": "1", key: "x" } }),
        )
        .await;
        assert_refused("a sandbox env", status, &body, key);
    }
    let (status, body) = send(
        &stack,
        &token,
        Method::PUT,
        &path,
        json!({ "env": { "1BAD": "x" } }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"1BAD\"")),
        "{body}"
    );
    let (status, body) = stack.get(&token, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["keys"], json!([]), "nothing stored: {body}");
    assert_eq!(body["template_env"], json!({ "FROM_TEMPLATE": "t" }));
    // A service the sandbox does not have.
    let (status, body) = send(
        &stack,
        &token,
        Method::PUT,
        "/api/sandboxes/box/services/nope/env",
        json!({ "env": { "A": "1" } }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_micro_service_runs_with_its_environment_and_its_sandbox_env() {
    let stack = Stack::start().await;
    stack.git.add_user(OTHER, OTHER_PASSWORD);
    let token = stack.login().await;
    let other = login_as(&stack, OTHER, OTHER_PASSWORD).await;
    let secret = unique_id("tok");

    let (status, body) = stack
        .post(
            &token,
            "/api/environments",
            json!({
                "name": "svc-env",
                "vars": { "APP_MODE": "sandboxed", "GREETING": "from-environment" },
                "secrets": { "API_TOKEN": secret },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/templates",
            json!({
                "name": "svc-tpl", "environment": "svc-env",
                "services": [{ "repo": REPO, "branch": "main", "overrides": {
                    "env": { "GREETING": "from-template", "TEMPLATE_ONLY": "t" } } }],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "svc-box", "template": "svc-tpl" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Set before the first deploy: nothing to re-apply.
    let path = format!("/api/sandboxes/svc-box/services/{REPO}/env");
    let (status, body) = send(
        &stack,
        &token,
        Method::PUT,
        &path,
        json!({ "env": { "GREETING": "from-sandbox" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["env"], json!({ "GREETING": "from-sandbox" }));
    assert_eq!(body["reapplying"], false);

    // Another user: 403, and the keys without their values.
    let (status, body) = send(
        &stack,
        &other,
        Method::PUT,
        &path,
        json!({ "env": { "GREETING": "hijacked" } }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = stack.get(&other, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["keys"], json!(["GREETING"]));
    assert!(body.get("env").is_none(), "values hidden: {body}");
    let (_, sandbox) = stack.get(&other, "/api/sandboxes/svc-box").await;
    let service = sandbox["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["repo"] == REPO))
        .cloned()
        .unwrap_or_default();
    assert_eq!(service["env_keys"], json!(["GREETING"]), "{sandbox}");

    // Deployed: environment < template < sandbox, secrets included.
    let (status, started) = stack
        .post(&token, "/api/sandboxes/svc-box/deploy", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let first = started["deployments"][0]["id"]
        .as_str()
        .expect("deployment")
        .to_owned();
    let settled = stack.wait_settled(&token, &first).await;
    assert_eq!(settled["status"], "running", "{settled}");
    let env = container_env(&first);
    for expected in [
        "APP_MODE=sandboxed".to_owned(),
        format!("API_TOKEN={secret}"),
        "TEMPLATE_ONLY=t".to_owned(),
        "GREETING=from-sandbox".to_owned(),
    ] {
        assert!(env.contains(&expected), "{expected} in {env:?}");
    }
    assert_eq!(
        env.iter().filter(|kv| kv.starts_with("GREETING=")).count(),
        1,
        "{env:?}"
    );

    // A change re-applies the running service with the same build.
    let (status, body) = send(
        &stack,
        &token,
        Method::PUT,
        &path,
        json!({ "env": { "GREETING": "changed", "EXTRA": "1" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reapplying"], true, "{body}");
    let reapply = wait_for("the service's re-apply to run", DEPLOY_TIMEOUT, || async {
        let (_, list) = stack
            .get(
                &token,
                &format!("/api/deployments?sandbox=svc-box&repo={REPO}&reapply=true"),
            )
            .await;
        list.as_array()
            .and_then(|l| l.first())
            .filter(|d| d["status"] == "running")
            .cloned()
    })
    .await;
    assert_eq!(reapply["commit"], settled["commit"], "{reapply}");
    let id = reapply["id"].as_str().expect("id");
    let lines = log_lines(&stack.ws_events(&token, id, 0).await);
    assert!(
        lines.iter().any(|l| l.contains("reusing the build")),
        "the build is reused: {lines:?}"
    );
    let env = container_env(id);
    for expected in ["GREETING=changed", "EXTRA=1", "APP_MODE=sandboxed"] {
        assert!(env.iter().any(|kv| kv == expected), "{expected} in {env:?}");
    }
    wait_for(
        "the replaced container to go",
        Duration::from_secs(30),
        || async {
            sdp_testkit::containers_with_label("sdp.deployment", &first)
                .is_empty()
                .then_some(())
        },
    )
    .await;

    // The rows go with the sandbox: a new one of the same name starts
    // without them.
    let response = stack
        .http()
        .delete(stack.url("/api/sandboxes/svc-box"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "svc-box", "template": "svc-tpl" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack.get(&token, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["keys"], json!([]), "{body}");
    stack.shutdown().await;
}
