//! The bus contract kept by a stranger: an agent of a new kind (`static`),
//! written in Python on nats-py from docs/AGENTS.md alone
//! (`tests/fixtures/stranger_agent.py`; `scripts/lib/nats_py.sh` installs
//! nats-py into `.venv-nats-py/`), implementing only the minimal contract.
//! The control plane learns its repo from its heartbeat and serves a
//! template's deployment through it; `sdp agent check` reports every
//! minimal check holds on it, and catches a variant that leaves out
//! `Nats-Msg-Id`. And a deploy right after the control plane starts, before
//! the agent holding the repo has been heard from, waits for the first
//! heartbeats instead of guessing a kind (else 503 naming the repo).

use sdp_bus::Status;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sdp_api::{AgentView, DeploymentStarted, TemplateDeployStarted};
use sdp_testkit::{ChildGuard, unique_id, wait_for};
use serde_json::{Value, json};

use crate::common::*;

/// The repo the stranger's agent holds.
const SITE: &str = "site";
/// The minimal contract's checks, as `sdp agent check` names them.
const CHECKS: [&str; 10] = [
    "heartbeat",
    "heartbeat_again",
    "serves",
    "repos",
    "deploy_accept",
    "progress_seq",
    "progress_msg_id",
    "result",
    "cancel",
    "unknown_method",
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn python() -> PathBuf {
    let python = repo_root().join(".venv-nats-py/bin/python");
    assert!(
        python.exists(),
        "nats-py is not installed at {}: run `bash scripts/lib/nats_py.sh` (scripts/test.sh does)",
        python.display()
    );
    python
}

/// Starts the stranger's agent of `kind` holding [`SITE`]; `extra` are
/// more flags (`--skip-msg-id`). Killed when the guard drops.
fn start_stranger(stack: &Stack, kind: &str, id: &str, extra: &[&str]) -> ChildGuard {
    let script = repo_root().join("control-plane/tests/fixtures/stranger_agent.py");
    let script = script.display().to_string();
    let mut args = vec![
        script.as_str(),
        "--nats",
        stack.nats_url.as_str(),
        "--kind",
        kind,
        "--id",
        id,
        "--repos",
        SITE,
    ];
    args.extend_from_slice(extra);
    spawn_logged(
        stack.logs_dir.path(),
        &format!("stranger-{id}"),
        &python(),
        &args,
        &[],
    )
}

/// Waits until `GET /api/agents` lists `id` online; returns its view.
async fn wait_online(stack: &Stack, token: &str, id: &str) -> AgentView {
    let client = stack.client_with(token);
    wait_for(
        &format!("agent {id} online"),
        Duration::from_secs(30),
        || async {
            let agents = client.agents().await.ok()?;
            agents.into_iter().find(|a| a.id == id && a.online)
        },
    )
    .await
}

/// `sdp [args]` with only `PATH`; its exit code and stdout.
async fn sdp(args: &[&str]) -> (Option<i32>, String) {
    let binary = agent_binary().with_file_name("sdp");
    let out = tokio::process::Command::new(binary)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("sdp runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "sdp {args:?} exited {:?}\n{stdout}{stderr}",
        out.status.code()
    );
    (out.status.code(), stdout)
}

/// `sdp -o json agent check` against the stack's NATS: exit code and the
/// checks by name.
async fn agent_check(stack: &Stack, kind: &str) -> (Option<i32>, Vec<(String, bool, String)>) {
    let (code, stdout) = sdp(&[
        "-o",
        "json",
        "agent",
        "check",
        "--kind",
        kind,
        "--nats",
        &stack.nats_url,
        "--timeout",
        "20s",
    ])
    .await;
    let report: Vec<Value> = serde_json::from_str(&stdout).expect("a JSON report");
    let checks = report
        .iter()
        .map(|c| {
            (
                c["check"].as_str().expect("check").to_owned(),
                c["ok"].as_bool().expect("ok"),
                c["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (code, checks)
}

#[tokio::test]
async fn a_strangers_agent_of_a_new_kind_serves_a_template_deployment() {
    // The micro agent is there for the login only.
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = unique_id("static");
    let _stranger = start_stranger(&stack, "static", &id, &[]);
    let view = wait_online(&stack, &token, &id).await;
    assert_eq!(view.kind, "static", "{view:?}");
    assert!(view.serves.is_empty(), "the minimal contract: {view:?}");
    assert_eq!(view.repos, [SITE], "{view:?}");
    // SDP's own agent advertises its whole table.
    let micro = wait_online(&stack, &token, &stack.agent_id).await;
    for method in ["deploy", "reconcile", "teardown", "container_logs", "probe"] {
        assert!(
            micro.serves.iter().any(|m| m == method),
            "{method}: {micro:?}"
        );
    }

    let template = unique_id("tpl");
    let (status, body) = stack
        .post(
            &token,
            "/api/templates",
            json!({ "name": template, "services": [{ "repo": SITE, "branch": "main" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sandbox = unique_id("sb");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": sandbox, "template": template }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, started) = stack
        .post(
            &token,
            &format!("/api/sandboxes/{sandbox}/deploy"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let started: TemplateDeployStarted =
        serde_json::from_value(started).expect("a template deploy's answer");
    let deployment_id = started.deployments[0].id.as_str().to_owned();

    let deployment = stack.wait_settled(&token, &deployment_id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    assert_eq!(deployment.kind, "static", "{deployment:?}");
    assert_eq!(
        deployment.agent_id.as_deref(),
        Some(id.as_str()),
        "{deployment:?}"
    );
    let url = deployment.url.as_deref().expect("a url");
    let served = stack.get_service(url).await;
    assert_eq!(served["served_by"], id.as_str(), "{served}");
    // Every event came through the stream, in order, from seq 1.
    let events = stack.ws_events(&token, &deployment_id, 0).await;
    assert_eq!(
        statuses(&events),
        [Status::Queued, Status::Starting, Status::Running]
    );
    assert_eq!(seqs(&events), [1, 2, 3]);

    // What the agent does not serve is 501, not a 502 or a hang.
    let (status, body) = stack
        .get(
            &token,
            &format!("/api/deployments/{deployment_id}/runtime-logs"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert_eq!(api_error(&body).code, "not_supported", "{body}");
    let message = api_error(&body).message;
    assert!(message.contains("not supported by the agent"), "{message}");
}

#[tokio::test]
async fn the_conformance_check_passes_on_the_strangers_agent_and_fails_a_broken_one() {
    // No Rust agent: the control plane only makes the progress stream.
    let stack = Stack::start_with(StackOptions {
        agent: false,
        ..StackOptions::default()
    })
    .await;
    let _good = start_stranger(&stack, "static", &unique_id("static"), &[]);
    let _broken = start_stranger(&stack, "broken", &unique_id("broken"), &["--skip-msg-id"]);

    let (code, checks) = agent_check(&stack, "static").await;
    let names: Vec<&str> = checks.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, CHECKS, "every minimal check is reported");
    for (name, ok, detail) in &checks {
        assert!(ok, "{name} FAILED on the stranger's agent: {detail}");
    }
    assert_eq!(code, Some(0));
    // The people's report: one line per check, each `ok`.
    let (code, table) = sdp(&[
        "agent",
        "check",
        "--kind",
        "static",
        "--nats",
        &stack.nats_url,
        "--timeout",
        "20s",
    ])
    .await;
    assert_eq!(code, Some(0), "{table}");
    assert_eq!(table.lines().count(), CHECKS.len(), "{table}");
    assert!(table.lines().all(|l| l.starts_with("ok ")), "{table}");

    let (code, checks) = agent_check(&stack, "broken").await;
    assert_eq!(code, Some(1), "a failed check exits 1: {checks:?}");
    let failed: Vec<&(String, bool, String)> = checks.iter().filter(|(_, ok, _)| !ok).collect();
    assert_eq!(
        failed.len(),
        1,
        "only the message ids are missing: {checks:?}"
    );
    let (name, _, detail) = failed[0];
    assert_eq!(name, "progress_msg_id");
    assert!(detail.contains("Nats-Msg-Id"), "{detail}");
}

#[tokio::test]
async fn a_deploy_right_after_start_waits_for_the_first_heartbeats_and_never_guesses_a_kind() {
    let mut stack = Stack::start().await;
    let id = unique_id("static");

    // A fresh control plane, and the agent holding the repo started with
    // it but not heard from for its first seconds.
    stack.kill_control_plane();
    let readyz = stack.url("/readyz");
    wait_for(
        "the control plane to be gone",
        Duration::from_secs(15),
        || {
            let readyz = readyz.clone();
            async move { reqwest::get(readyz).await.is_err().then_some(()) }
        },
    )
    .await;
    stack.start_control_plane().await;
    let _stranger = start_stranger(&stack, "static", &id, &["--first-heartbeat-after", "3"]);
    // The credential a deploy fetches with is held in memory: log in anew.
    let token = stack.login().await;

    // The stranger's repo: served by its kind (once its heartbeat is in),
    // never sent to `micro` (whose agent would answer "not on this agent").
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/early/deployments",
            json!({ "repo": SITE, "branch": "main" }),
        )
        .await;
    match status {
        StatusCode::ACCEPTED => {
            let started: DeploymentStarted =
                serde_json::from_value(body.clone()).expect("a started deployment");
            assert_eq!(started.agent_id, id, "{body}");
            let id = started.id.as_str();
            let deployment = stack.wait_settled(&token, id).await;
            assert_eq!(deployment.status, Status::Running, "{deployment:?}");
            assert_eq!(deployment.kind, "static", "{deployment:?}");
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            let message = api_error(&body).message;
            assert!(message.contains(SITE), "names the repo: {body}");
        }
        other => panic!("{other}: {body}"),
    }

    // A repo nobody holds: a clear 503 naming it, within the wait.
    let asked = Instant::now();
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/early/deployments",
            json!({ "repo": "nowhere", "branch": "main" }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(api_error(&body).code, "no_agent", "{body}");
    let message = api_error(&body).message;
    assert!(message.contains("repo nowhere"), "{message}");
    assert!(asked.elapsed() < Duration::from_secs(10), "bounded");
}

#[tokio::test]
async fn sdps_own_agent_passes_the_conformance_check() {
    let stack = Stack::start().await;
    let (code, checks) = agent_check(&stack, "micro").await;
    let names: Vec<&str> = checks.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, CHECKS, "every minimal check is reported");
    for (name, ok, detail) in &checks {
        assert!(ok, "{name} FAILED on agent-micro: {detail}");
    }
    assert_eq!(code, Some(0));
    let serves = &checks
        .iter()
        .find(|(name, _, _)| name == "serves")
        .expect("serves")
        .2;
    assert!(serves.contains("container_logs"), "{serves}");
}
