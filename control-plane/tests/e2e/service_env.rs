//! A service's env end to end: reserved keys (`PORT`, `SDP_*`) refused by
//! name wherever env is written (a template's overrides, an environment,
//! a sandbox's own env for a service); a micro service's container runs
//! with its environment's variables (plain and secret), the template's
//! env and the sandbox's over it; a change re-applies the running service
//! (its build again); only the owner changes the sandbox's env or sees
//! its values; its rows go with the sandbox.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sdp_api::{
    ListQuery, NewEnvironment, NewSandbox, RepoBranch, ServiceEnvWrite, TemplateBody,
    TemplateDeploy,
};
use sdp_bus::{ServiceOverrides, Status};
use sdp_testkit::{unique_id, wait_for};
use serde_json::{Value, json};

use crate::common::*;

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
    assert_eq!(api_error(body).code, "bad_request", "{what}: {body}");
    let message = api_error(body).message;
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
        Some(api_error(&body).message.as_str()).is_some_and(|m| m.contains("command")),
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
        Some(api_error(&body).message.as_str()).is_some_and(|m| m.contains("\"1BAD\"")),
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

/// A map of `KEY=VALUE` pairs.
fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_micro_service_runs_with_its_environment_and_its_sandbox_env() {
    let stack = Stack::start().await;
    let client = stack.login_as(USER).await;
    let other = stack.login_as("qa").await;
    let secret = unique_id("tok");

    client
        .create_environment(&NewEnvironment {
            name: "svc-env".to_owned(),
            vars: env(&[("APP_MODE", "sandboxed"), ("GREETING", "from-environment")]),
            secrets: env(&[("API_TOKEN", &secret)]),
        })
        .await
        .expect("create environment");
    client
        .create_template(&TemplateBody {
            name: Some("svc-tpl".to_owned()),
            environment: Some("svc-env".to_owned()),
            gateway: None,
            services: vec![RepoBranch {
                repo: REPO.to_owned(),
                branch: "main".to_owned(),
                overrides: ServiceOverrides {
                    env: env(&[("GREETING", "from-template"), ("TEMPLATE_ONLY", "t")]),
                    ..ServiceOverrides::default()
                },
            }],
            tests: None,
            resources: Vec::new(),
        })
        .await
        .expect("create template");
    let new_sandbox = NewSandbox {
        name: "svc-box".to_owned(),
        template: Some("svc-tpl".to_owned()),
        ..NewSandbox::default()
    };
    client
        .create_sandbox(&new_sandbox)
        .await
        .expect("create sandbox");

    // Set before the first deploy: nothing to re-apply.
    let write = |pairs: &[(&str, &str)]| ServiceEnvWrite { env: env(pairs) };
    let answer = client
        .put_service_env("svc-box", REPO, &write(&[("GREETING", "from-sandbox")]))
        .await
        .expect("put env");
    assert_eq!(answer.env, Some(env(&[("GREETING", "from-sandbox")])));
    assert!(!answer.reapplying);

    // Another user: 403, and the keys without their values.
    let err = other
        .put_service_env("svc-box", REPO, &write(&[("GREETING", "hijacked")]))
        .await
        .expect_err("not the owner");
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some("forbidden")),
        "{err}"
    );
    let seen = other.service_env("svc-box", REPO).await.expect("env");
    assert_eq!(seen.keys, ["GREETING"]);
    assert_eq!(seen.env, None, "values hidden: {seen:?}");
    let sandbox = other.sandbox("svc-box").await.expect("sandbox");
    let service = sandbox
        .services
        .iter()
        .find(|s| s.repo == REPO)
        .expect("the service");
    assert_eq!(service.env_keys, ["GREETING"], "{sandbox:?}");

    // Deployed: environment < template < sandbox, secrets included.
    let started = client
        .deploy_template("svc-box", &TemplateDeploy::default())
        .await
        .expect("deploy template");
    let first = started.deployments[0].id.to_string();
    let settled = wait_for_status(&client, &first, Status::Running).await;
    let container = container_env(&first);
    for expected in [
        "APP_MODE=sandboxed".to_owned(),
        format!("API_TOKEN={secret}"),
        "TEMPLATE_ONLY=t".to_owned(),
        "GREETING=from-sandbox".to_owned(),
    ] {
        assert!(container.contains(&expected), "{expected} in {container:?}");
    }
    assert_eq!(
        container
            .iter()
            .filter(|kv| kv.starts_with("GREETING="))
            .count(),
        1,
        "{container:?}"
    );

    // A change re-applies the running service with the same build.
    let answer = client
        .put_service_env(
            "svc-box",
            REPO,
            &write(&[("GREETING", "changed"), ("EXTRA", "1")]),
        )
        .await
        .expect("put env");
    assert!(answer.reapplying, "{answer:?}");
    let reapplies = ListQuery {
        sandbox: Some("svc-box".to_owned()),
        repo: Some(REPO.to_owned()),
        reapply: Some(true),
        ..ListQuery::default()
    };
    let reapply = wait_for("the service's re-apply to run", DEPLOY_TIMEOUT, || async {
        let list = client.deployments(&reapplies).await.ok()?;
        list.into_iter()
            .next()
            .filter(|d| d.status == Status::Running)
    })
    .await;
    assert_eq!(reapply.commit, settled.commit, "{reapply:?}");
    let lines = log_lines(
        &stack
            .ws_events(client.token().expect("token"), reapply.id.as_str(), 0)
            .await,
    );
    assert!(
        lines.iter().any(|l| l.contains("reusing the build")),
        "the build is reused: {lines:?}"
    );
    let container = container_env(reapply.id.as_str());
    for expected in ["GREETING=changed", "EXTRA=1", "APP_MODE=sandboxed"] {
        assert!(
            container.iter().any(|kv| kv == expected),
            "{expected} in {container:?}"
        );
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
    client.delete_sandbox("svc-box").await.expect("delete");
    client
        .create_sandbox(&new_sandbox)
        .await
        .expect("create sandbox again");
    let answer = client.service_env("svc-box", REPO).await.expect("env");
    assert!(answer.keys.is_empty(), "{answer:?}");
    stack.shutdown().await;
}
