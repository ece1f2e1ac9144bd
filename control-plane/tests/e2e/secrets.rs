//! Secret environment variables reach the gateway's container and
//! nothing else: a canary secret is set, a gateway deployed with it, its
//! errors provoked; then it is searched for in every REST answer (the
//! owner's too), every WebSocket event, every process's output, the
//! deployment logs, the agents' data dirs and the NATS store. It is found
//! in the container's env, so the search could have found it.

use sdp_bus::Status;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

use sdp_testkit::util::files_containing;

async fn text_of(stack: &Stack, token: &str, path: &str) -> String {
    let response = stack
        .http()
        .get(stack.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    format!(
        "{path} {}: {}",
        response.status(),
        response.text().await.unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_variables_reach_the_gateway_container_and_nothing_else() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let canary = sdp_testkit::unique_id("secret-canary");
    let baseline = stack.routing.as_ref().expect("routing").baseline.url();

    let (status, created) = stack
        .post(
            &token,
            "/api/environments",
            json!({ "name": "vault", "vars": { "USERS_URL": baseline, "APP_ENV": "sandbox" },
                    "secrets": { "API_TOKEN": canary } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["secret_keys"], json!(["API_TOKEN"]));
    let (status, body) = stack
        .post(
            &token,
            "/api/templates",
            json!({ "name": "vaulted", "environment": "vault",
                    "gateway": { "repo": "gateway", "branch": "main" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "safe", "template": "vaulted" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, started) = stack
        .post(&token, "/api/sandboxes/safe/deploy", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["deployments"][0]["id"]
        .as_str()
        .expect("gateway deployment")
        .to_owned();
    let events = stack.ws_events(&token, &id, 0).await;
    assert_eq!(
        statuses(&events).last(),
        Some(&Status::Running),
        "{events:?}"
    );

    // Errors that name a secret: its key only.
    let mut answers = Vec::new();
    for body in [
        json!({ "vars": {}, "secrets": { "API_TOKEN": format!("{canary}\u{0}") } }),
        json!({ "vars": { "API_TOKEN": "x" }, "secrets": { "API_TOKEN": canary } }),
        json!({ "vars": {}, "secrets": { "bad key": canary } }),
    ] {
        let response = stack
            .http()
            .put(stack.url("/api/environments/vault"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("put");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        answers.push(response.text().await.unwrap_or_default());
    }

    // Every read the owner can make.
    for path in [
        "/api/environments".to_owned(),
        "/api/environments/vault".to_owned(),
        "/api/templates".to_owned(),
        "/api/templates/vaulted".to_owned(),
        "/api/sandboxes".to_owned(),
        "/api/sandboxes/safe".to_owned(),
        "/api/sandboxes/safe/routes".to_owned(),
        "/api/deployments".to_owned(),
        format!("/api/deployments/{id}"),
        format!("/api/deployments/{id}/logs"),
        "/api/agents".to_owned(),
        "/metrics".to_owned(),
    ] {
        answers.push(text_of(&stack, &token, &path).await);
    }
    for answer in &answers {
        assert!(
            !answer.contains(&canary),
            "the secret in an answer: {answer}"
        );
    }
    let (_, environment) = stack.get(&token, "/api/environments/vault").await;
    assert_eq!(environment["secret_keys"], json!(["API_TOKEN"]));
    // The frames as sent: a field the typed event does not know counts too.
    for frame in stack.ws_frames(&token, &id, 0).await {
        assert!(
            !frame.contains(&canary),
            "the secret in a WebSocket event: {frame}"
        );
    }

    // Given to the gateway's container.
    let routing = stack.routing.as_ref().expect("routing");
    let containers = sdp_testkit::containers_with_label("sdp.agent", &routing.gateway_agent_id);
    let envs: Vec<Value> = containers
        .iter()
        .map(|c| {
            let out = Command::new("docker")
                .args(["inspect", "--format", "{{json .Config.Env}}", c])
                .output()
                .expect("docker inspect");
            serde_json::from_slice(&out.stdout).expect("env JSON")
        })
        .collect();
    assert!(
        envs.iter().any(|env| env
            .as_array()
            .is_some_and(|e| e.contains(&json!(format!("API_TOKEN={canary}"))))),
        "the gateway container has the secret: {envs:?}"
    );

    // Written nowhere: no log line, no file the agents keep, no stream.
    let needle = canary.as_bytes();
    for dir in [
        stack.cp_data.path().join("logs").as_path(),
        stack.agent_data.path(),
        routing.gateway_agent_data.path(),
        stack.nats.store_dir(),
    ] {
        let hits = files_containing(dir, needle);
        assert!(hits.is_empty(), "the secret in {hits:?}");
    }
    for (name, text) in stack.process_output() {
        let line = text.lines().find(|l| l.contains(&canary));
        assert!(
            line.is_none(),
            "the secret in the output of {name}: {line:?}"
        );
    }
    stack.shutdown().await;
}
