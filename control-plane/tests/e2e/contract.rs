//! The API contract on a live stack: `GET /api/openapi.json` is served
//! without a session, every documented operation is routed, and a bounded
//! schemathesis run (PyPI; `scripts/lib/schemathesis.sh` installs it into
//! `.venv-schemathesis/`) with every check on finds no 5xx, no response
//! that differs from the document, no request the document allows that
//! the server refuses, and none it forbids that the server takes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// The whole schemathesis run, at most (`SDP_CONTRACT_BUDGET_SECS`
/// overrides it for a longer exploratory run).
const RUN_BUDGET: Duration = Duration::from_secs(150);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn schemathesis() -> PathBuf {
    let bin = repo_root().join(".venv-schemathesis/bin/schemathesis");
    assert!(
        bin.exists(),
        "schemathesis is not installed at {}: run `bash scripts/lib/schemathesis.sh` \
         (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Each documented operation, asked without a session: routed (not the
/// API's 404 fallback, not 405), and 401 where the document says a
/// session is needed.
async fn every_operation_is_routed(stack: &Stack, doc: &Value) -> usize {
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            if operation.get("responses").is_none() {
                continue;
            }
            count += 1;
            let concrete = path
                .replace("{name}", "x")
                .replace("{id}", "x")
                .replace("{repo}", "x")
                .replace("{service}", "x");
            let response = stack
                .http()
                .request(method.clone(), stack.url(&concrete))
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(status == StatusCode::NOT_FOUND
                    && (body.contains("API path not found") || body == "not found")),
                "{method} {path} is documented but not routed: {body}"
            );
            // `security: [{}]` marks an operation open to anyone.
            let anonymous = operation["security"] == serde_json::json!([{}]);
            let needs_session = path.starts_with("/api/") && !anonymous;
            if needs_session {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
            }
        }
    }
    count
}

/// Resources under the names the document's examples use, so the run
/// reads real objects, not only 404s and empty lists: environment
/// `baseline`, template `web`, sandbox `alpha` with a deployment of
/// `users` (its build goes on during the run).
async fn seed(stack: &Stack, token: &str) {
    let created = [
        (
            "/api/environments",
            json!({ "name": "baseline", "vars": { "USERS_URL": "http://users.example" } }),
        ),
        (
            "/api/templates",
            json!({ "name": "web", "environment": "baseline",
                    "services": [{ "repo": REPO, "branch": "main" }] }),
        ),
        (
            "/api/sandboxes",
            json!({ "name": "alpha", "template": "web" }),
        ),
    ];
    for (path, body) in created {
        let (status, body) = stack.post(token, path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
    }
    stack.deploy(token, "alpha", BRANCH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_violation() {
    let schemathesis = schemathesis();
    // With a webhook secret, so the hook is fuzzed past its 404 (its
    // signature check, body limit and headers).
    let secret = tempfile::TempDir::new().expect("temp dir");
    let secret_file = secret.path().join("bitbucket-secret");
    std::fs::write(&secret_file, "contract-secret\n").expect("write secret");
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[(
            "SDP_CONTROL_PLANE__WEBHOOKS__BITBUCKET_SECRET_FILE",
            secret_file.display().to_string(),
        )]),
        ..StackOptions::default()
    })
    .await;

    // The document, without a session.
    let response = stack
        .http()
        .get(stack.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi.json");
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.expect("document");
    assert_eq!(
        doc,
        serde_json::to_value(sdp_control_plane::api::document()).expect("document"),
        "the served document is the generated one"
    );
    let operations = every_operation_is_routed(&stack, &doc).await;

    let token = stack.login().await;
    seed(&stack, &token).await;
    let work = tempfile::TempDir::new().expect("temp dir");
    let config = repo_root().join("control-plane/tests/e2e/schemathesis.toml");
    // A longer exploratory run: e.g. SDP_CONTRACT_ARGS="--max-examples 200"
    // SDP_CONTRACT_BUDGET_SECS=900.
    let extra: Vec<String> = std::env::var("SDP_CONTRACT_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let budget = std::env::var("SDP_CONTRACT_BUDGET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(RUN_BUDGET, Duration::from_secs);
    let started = Instant::now();
    let child = tokio::process::Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(stack.url("/api/openapi.json"))
        .arg("--report")
        .arg("junit")
        .arg("--report-dir")
        .arg(work.path())
        // Also set in the config; here so no config change can turn them off.
        .arg("--checks")
        .arg("all")
        .args(&extra)
        // The session token, by environment only (the config reads it).
        .env("SDP_TOKEN", &token)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start schemathesis");
    let output = match tokio::time::timeout(budget, child.wait_with_output()).await {
        Ok(output) => output.expect("schemathesis output"),
        Err(_) => panic!(
            "schemathesis ran longer than {budget:?}: lower max-examples in {}",
            config.display()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    eprintln!(
        "contract: {operations} operations routed; schemathesis took {:.1}s, exit {:?}",
        started.elapsed().as_secs_f64(),
        output.status.code()
    );
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "schemathesis printed the session token"
    );
    assert!(
        output.status.success(),
        "schemathesis found contract violations (see its output above)"
    );
}
