//! Authorization of every change, generated from the live
//! `GET /api/openapi.json`: each mutating operation (POST, PUT, PATCH,
//! DELETE) is tried on objects user A made, as A, as another user B and as
//! an admin. A and the admin get their answer (2xx, or the domain error
//! the fixture leads to, never 401/403); B gets 403 and changes nothing.
//! An operation this file does not know fails the test, so a new route
//! cannot skip the check. Also: the first-deploy race, the per-user
//! stream bounds.

use sdp_bus::Status;
use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sdp_testkit::{unique_id, wait_for};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::common::*;
use crate::runtime_logs::raw_viewer;

/// Mutating operations that change nothing anyone owns, with why.
const NOT_OWNED: &[(&str, &str)] = &[
    (
        "login",
        "makes the caller's own session; anonymous by design",
    ),
    ("logout", "ends the caller's own session"),
    (
        "bitbucket_hook",
        "signed by the webhook secret, not a session; redeploys only what users chose to follow",
    ),
];

const OTHER: &str = "qa";
const OTHER_PASSWORD: &str = "qa-password";
const ADMIN: &str = "ops";
const ADMIN_PASSWORD: &str = "ops-password";
/// A repo no agent holds: a deploy of it is recorded, then refused by the
/// agent at once (no build).
const NO_REPO: &str = "nope";

/// What user A made for one try of one operation.
struct Fixture {
    environment: String,
    template: String,
    sandbox: String,
    deployment: String,
    /// A test run of the sandbox no agent took: failed, settled.
    test_run: String,
}

/// How an operation is exercised, and what the owner and an admin may get
/// besides 2xx: `(status, error code)`.
enum Rule {
    /// Changes what A made: B gets 403.
    Owned {
        body: Option<Value>,
        domain_errors: &'static [(u16, &'static str)],
    },
    /// Makes a new object: anyone logged in may.
    Creates { body: fn(&str) -> Value },
}

fn rule(operation_id: &str) -> Option<Rule> {
    let owned = |body: Option<Value>, domain_errors| Rule::Owned {
        body,
        domain_errors,
    };
    Some(match operation_id {
        "create_environment" => Rule::Creates {
            body: |name| json!({ "name": name, "vars": {}, "secrets": { "TOKEN": "t" } }),
        },
        "create_template" => Rule::Creates {
            body: |name| json!({ "name": name }),
        },
        "create_sandbox" => Rule::Creates {
            body: |name| json!({ "name": name }),
        },
        "update_environment" => owned(
            Some(json!({ "vars": { "MODE": "changed" }, "secrets": { "TOKEN": "changed" } })),
            &[],
        ),
        "delete_environment" => owned(None, &[]),
        "update_template" => owned(Some(json!({ "services": [] })), &[]),
        "delete_template" => owned(None, &[]),
        "update_sandbox" => owned(Some(json!({ "pinned": true })), &[]),
        "delete_sandbox" => owned(None, &[]),
        // The template's only service is a repo the agent refuses: each
        // planned deployment is reported failed in a 202.
        "deploy_template" => owned(Some(json!({})), &[]),
        "create_deployment" => owned(
            Some(json!({ "repo": NO_REPO, "branch": "main" })),
            &[(503, "no_agent")],
        ),
        // The fixture's deployment failed at once: settled, no commit.
        "cancel_deployment" => owned(None, &[(409, "conflict")]),
        // The fixture's test run failed at once: settled.
        "cancel_test_run" => owned(None, &[(409, "conflict")]),
        "redeploy_deployment" => owned(None, &[(409, "conflict")]),
        "probe_routes" => owned(None, &[(409, "no_gateway")]),
        "put_route" => owned(Some(json!({ "target": "http://elsewhere.example" })), &[]),
        "delete_route" => owned(None, &[]),
        "put_service" => owned(Some(json!({ "follow": true })), &[]),
        // The template's service: known, its deployment failed (no
        // re-apply).
        "put_service_env" => owned(Some(json!({ "env": { "MODE": "changed" } })), &[]),
        // An awake sandbox: answered at once.
        "wake_sandbox" => owned(None, &[]),
        // A repo no agent holds: the run is recorded failed (503).
        "start_test_run" => owned(
            Some(json!({ "repo": NO_REPO, "command": ["go", "test", "./..."] })),
            &[(503, "no_agent")],
        ),
        // The fixture's template declares no resources.
        "reset_resource" => owned(None, &[(404, "not_found")]),
        // A sandbox's own resource: declared now, made at the next deploy.
        "put_resource" => owned(
            Some(json!({ "engine": "redis", "env_var": "CACHE_URL" })),
            &[],
        ),
        // The fixture's sandbox has none of its own.
        "delete_resource" => owned(None, &[(404, "not_found")]),
        "put_template_notify" => owned(
            Some(json!({ "targets": [{ "url": "https://hooks.example.com/changed" }] })),
            &[],
        ),
        "put_environment_notify" => owned(
            Some(json!({ "targets": [{ "url": "https://hooks.example.com/changed" }] })),
            &[],
        ),
        _ => return None,
    })
}

async fn login_as(stack: &Stack, user: &str, password: &str) -> String {
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": user, "password": password }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK, "login of {user}");
    let body: Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

async fn send(
    stack: &Stack,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = stack
        .http()
        .request(method, stack.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn created(stack: &Stack, token: &str, path: &str, body: Value) {
    let (status, answer) = stack.post(token, path, body).await;
    assert!(status.is_success(), "fixture {path}: {status} {answer}");
}

/// A fresh environment, template, sandbox (with a template whose service
/// the agent refuses, a manual route and that service) and a failed
/// deployment in it, all made by `owner`.
async fn fixture(stack: &Stack, owner: &str) -> Fixture {
    let name = unique_id("az");
    let fixture = Fixture {
        environment: format!("{name}-env"),
        template: format!("{name}-tpl"),
        sandbox: format!("{name}-sbx"),
        deployment: String::new(),
        test_run: String::new(),
    };
    let sandbox_template = format!("{name}-stpl");
    created(
        stack,
        owner,
        "/api/environments",
        json!({ "name": fixture.environment, "vars": { "MODE": "a" }, "secrets": { "TOKEN": "a" } }),
    )
    .await;
    created(
        stack,
        owner,
        "/api/templates",
        json!({ "name": fixture.template }),
    )
    .await;
    created(
        stack,
        owner,
        "/api/templates",
        json!({ "name": sandbox_template, "services": [{ "repo": NO_REPO, "branch": "main" }] }),
    )
    .await;
    created(
        stack,
        owner,
        "/api/sandboxes",
        json!({ "name": fixture.sandbox, "template": sandbox_template }),
    )
    .await;
    let (status, _) = send(
        stack,
        owner,
        Method::PUT,
        &format!("/api/sandboxes/{}/routes/{NO_REPO}", fixture.sandbox),
        Some(&json!({ "target": "http://first.example" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "fixture route");
    let (status, refused) = stack
        .post(
            owner,
            &format!("/api/sandboxes/{}/deployments", fixture.sandbox),
            json!({ "repo": NO_REPO, "branch": "main" }),
        )
        .await;
    // No agent holds the repo: recorded and failed, never sent to a
    // guessed kind.
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "fixture deployment: {refused}"
    );
    let deployment = refused["error"]["deployment_id"]
        .as_str()
        .expect("the refused deployment is recorded")
        .to_owned();
    // Settled as the persister sees it (its failure event recorded), so
    // nothing moves under the snapshots the test compares.
    let path = format!("/api/deployments/{deployment}");
    wait_for(
        "the failure event to be persisted",
        Duration::from_secs(20),
        || async {
            let (_, record) = stack.get(owner, &path).await;
            (record["last_seq"].as_u64() >= Some(1)).then_some(())
        },
    )
    .await;
    // A test run no agent takes: recorded failed (503 names it).
    let (status, refused) = stack
        .post(
            owner,
            &format!("/api/sandboxes/{}/test-runs", fixture.sandbox),
            json!({ "repo": NO_REPO, "command": ["go", "test", "./..."] }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "fixture test run: {refused}"
    );
    let test_run = refused["error"]["test_run_id"]
        .as_str()
        .expect("the refused test run is recorded")
        .to_owned();
    Fixture {
        deployment,
        test_run,
        ..fixture
    }
}

/// `path` with each `{param}` filled from the fixture; a parameter this
/// test does not know fails it.
fn fill(path: &str, fixture: &Fixture) -> String {
    let mut filled = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closing brace") + start;
        filled.push_str(&rest[..start]);
        let param = &rest[start + 1..end];
        let value = match param {
            "name" if path.starts_with("/api/environments/") => &fixture.environment,
            "name" if path.starts_with("/api/templates/") => &fixture.template,
            "name" if path.starts_with("/api/sandboxes/") => &fixture.sandbox,
            "id" if path.starts_with("/api/deployments/") => &fixture.deployment,
            "id" if path.starts_with("/api/test-runs/") => &fixture.test_run,
            "service" | "repo" => NO_REPO,
            "resource" => "db",
            _ => panic!("{path}: this test does not know how to fill {{{param}}}"),
        };
        filled.push_str(value);
        rest = &rest[end + 1..];
    }
    filled.push_str(rest);
    filled
}

/// What B could have changed, read as A.
async fn snapshot(stack: &Stack, token: &str, fixture: &Fixture) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        format!("/api/environments/{}", fixture.environment),
        format!("/api/templates/{}", fixture.template),
        format!("/api/templates/{}/notify", fixture.template),
        format!("/api/environments/{}/notify", fixture.environment),
        format!("/api/sandboxes/{}", fixture.sandbox),
        format!("/api/sandboxes/{}/resources", fixture.sandbox),
        format!("/api/deployments?sandbox={}", fixture.sandbox),
    ] {
        let (status, body) = stack.get(token, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        seen.push(body);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_authorized_as_the_openapi_document_lists_it() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[("SDP_CONTROL_PLANE__AUTH__ADMINS", ADMIN.into())]),
        ..StackOptions::default()
    })
    .await;
    stack.git.add_user(OTHER, OTHER_PASSWORD);
    stack.git.add_user(ADMIN, ADMIN_PASSWORD);
    let owner = stack.login().await;
    let other = login_as(&stack, OTHER, OTHER_PASSWORD).await;
    let admin = login_as(&stack, ADMIN, ADMIN_PASSWORD).await;

    let response = stack
        .http()
        .get(stack.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi.json");
    let doc: Value = response.json().await.expect("document");

    let mut mutating = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let method = method.to_uppercase();
            if !["POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let id = operation["operationId"].as_str().expect("operationId");
            mutating.insert(id.to_owned());
            if NOT_OWNED.iter().any(|(skipped, _)| *skipped == id) {
                continue;
            }
            let Some(rule) = rule(id) else {
                unknown.push(format!("{method} {path} ({id})"));
                continue;
            };
            tried += 1;
            match rule {
                Rule::Creates { body } => {
                    for (who, token) in [("owner", &owner), ("other", &other), ("admin", &admin)] {
                        let body = body(&unique_id("az-new"));
                        let (status, answer) =
                            send(&stack, token, method.clone(), path, Some(&body)).await;
                        assert!(
                            status.is_success(),
                            "{id} as {who}: anyone logged in may: {status} {answer}"
                        );
                    }
                }
                Rule::Owned {
                    body,
                    domain_errors,
                } => {
                    // B first, on a fixture A then still changes: B's try
                    // is refused and leaves everything as it was.
                    let fixture = fixture(&stack, &owner).await;
                    let concrete = fill(path, &fixture);
                    let before = snapshot(&stack, &owner, &fixture).await;
                    let (status, answer) =
                        send(&stack, &other, method.clone(), &concrete, body.as_ref()).await;
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{id} as another user: {answer}"
                    );
                    assert_eq!(answer["error"]["code"], "forbidden", "{id}: {answer}");
                    assert_eq!(
                        snapshot(&stack, &owner, &fixture).await,
                        before,
                        "{id}: another user's refused try changed something"
                    );
                    for (who, token, fixture) in [
                        ("owner", &owner, fixture),
                        ("admin", &admin, self::fixture(&stack, &owner).await),
                    ] {
                        let concrete = fill(path, &fixture);
                        let (status, answer) =
                            send(&stack, token, method.clone(), &concrete, body.as_ref()).await;
                        let code = answer["error"]["code"].as_str().unwrap_or_default();
                        let expected = status.is_success()
                            || domain_errors
                                .iter()
                                .any(|(s, c)| *s == status.as_u16() && *c == code);
                        assert!(
                            expected,
                            "{id} as {who}: {status} {answer} (expected 2xx or one of {domain_errors:?})"
                        );
                    }
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "mutating operations this test does not know how to exercise \
         (add each to `rule`, with how owner, another user and an admin fare): {unknown:?}"
    );
    let skipped: BTreeSet<String> = NOT_OWNED.iter().map(|(id, _)| (*id).to_owned()).collect();
    assert_eq!(
        skipped.difference(&mutating).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "every skipped operation is a mutating one of the document"
    );
    assert_eq!(tried + skipped.len(), mutating.len());
    assert!(tried >= 17, "only {tried} operations tried");
    stack.shutdown().await;
}

/// Many first deploys by two users into one new name, at once: the
/// sandbox is whoever's came first, every recorded deployment is in a
/// sandbox its requester owns, and the other user's are refused (403)
/// and unrecorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_deploys_land_only_in_the_requesters_sandbox() {
    let stack = Stack::start().await;
    stack.git.add_user(OTHER, OTHER_PASSWORD);
    let owner = stack.login().await;
    let other = login_as(&stack, OTHER, OTHER_PASSWORD).await;
    for round in 0..3 {
        let name = unique_id(&format!("race{round}"));
        let path = format!("/api/sandboxes/{name}/deployments");
        let tries = (0..16).map(|n| {
            let (user, token) = if n % 2 == 0 {
                (USER, owner.clone())
            } else {
                (OTHER, other.clone())
            };
            let (stack, path) = (&stack, path.clone());
            async move {
                let (status, answer) = stack
                    .post(&token, &path, json!({ "repo": NO_REPO, "branch": "main" }))
                    .await;
                (user, status, answer)
            }
        });
        let answers = futures::future::join_all(tries).await;
        let (_, sandbox) = stack.get(&owner, &format!("/api/sandboxes/{name}")).await;
        let sandbox_owner = sandbox["owner"].as_str().expect("the sandbox was made");
        let mut recorded = 0;
        for (user, status, answer) in &answers {
            if *user == sandbox_owner {
                // Recorded, then failed: no agent holds the repo.
                assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
                assert_eq!(answer["error"]["code"], "no_agent", "{answer}");
                recorded += 1;
            } else {
                assert_eq!(*status, StatusCode::FORBIDDEN, "{answer}");
                assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
            }
        }
        let (_, deployments) = stack
            .get(
                &owner,
                &format!("/api/deployments?sandbox={name}&limit=100"),
            )
            .await;
        let deployments = deployments.as_array().expect("list");
        assert_eq!(deployments.len(), recorded, "round {round}");
        assert!(
            deployments.iter().all(|d| d["created_by"] == sandbox_owner),
            "round {round}: a deployment in someone else's sandbox: {deployments:?}"
        );
    }
    stack.shutdown().await;
}

/// A WebSocket handshake as `token`: `Ok(socket)` or the refusal's status
/// and JSON body.
async fn open_ws(
    stack: &Stack,
    token: &str,
    id: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    (u16, Value),
> {
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(
        stack.ws_url(&format!("/ws/deployments/{id}")),
    )
    .expect("ws request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(err) => panic!("ws connect: {err}"),
    }
}

/// Each user holds at most `streams.websockets_per_user` deployment
/// WebSockets: one more is refused at the handshake (429 with a JSON
/// error), another user is not affected, and a closed one frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_bounded_per_user() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[(
            "SDP_CONTROL_PLANE__STREAMS__WEBSOCKETS_PER_USER",
            "2".into(),
        )]),
        ..StackOptions::default()
    })
    .await;
    stack.git.add_user(OTHER, OTHER_PASSWORD);
    let owner = stack.login().await;
    let other = login_as(&stack, OTHER, OTHER_PASSWORD).await;
    // A deployment id nobody made: its stream stays open, waiting.
    let id = "d0000000000000000000000000000000a";
    let first = open_ws(&stack, &owner, id).await.expect("first socket");
    let _second = open_ws(&stack, &owner, id).await.expect("second socket");
    let Err((status, body)) = open_ws(&stack, &owner, id).await else {
        panic!("a third socket was opened");
    };
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 deployment WebSockets")),
        "{body}"
    );
    let _others = open_ws(&stack, &other, id)
        .await
        .expect("another user's socket");
    drop(first);
    wait_for(
        "a closed socket frees its slot",
        Duration::from_secs(20),
        || async { open_ws(&stack, &owner, id).await.ok() },
    )
    .await;
    stack.shutdown().await;
}

/// Each user holds at most `streams.runtime_logs_per_user` runtime-log
/// streams, so one user cannot take an agent's 64: one more is 429 with a
/// JSON error and never reaches the agent, another user is served, and a
/// viewer that leaves frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_log_streams_are_bounded_per_user() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[(
            "SDP_CONTROL_PLANE__STREAMS__RUNTIME_LOGS_PER_USER",
            "2".into(),
        )]),
        ..StackOptions::default()
    })
    .await;
    stack.git.add_user(OTHER, OTHER_PASSWORD);
    let owner = stack.login().await;
    let other = login_as(&stack, OTHER, OTHER_PASSWORD).await;
    let id = stack.deploy(&owner, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&owner, &id).await.status,
        Status::Running
    );
    let path = format!("/api/deployments/{id}/runtime-logs?follow=true&tail=0");
    let first = raw_viewer(&stack, &owner, &path).await;
    let _second = raw_viewer(&stack, &owner, &path).await;
    let (status, body) = stack.get(&owner, &path).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 runtime-log streams")),
        "{body}"
    );
    let _others = raw_viewer(&stack, &other, &path).await;
    drop(first);
    wait_for(
        "a viewer that left frees its slot",
        Duration::from_secs(20),
        || async {
            let response = stack
                .http()
                .get(stack.url(&path.replace("follow=true", "follow=false")))
                .bearer_auth(&owner)
                .send()
                .await
                .ok()?;
            (response.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    stack.shutdown().await;
}
