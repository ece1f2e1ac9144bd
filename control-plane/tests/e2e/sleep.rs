//! Sleep and wake on the real stack: a sandbox with its gateway and two
//! Go services in real containers sleeps after `sandboxes.sleep_after`
//! with no deploy and no preview request (its containers stopped, not
//! removed; its deployments still `running`), and wakes on the first
//! request through its preview link (answered once its services are
//! healthy), on a deploy, and on `sdp sandbox wake`; an agent restart
//! while it sleeps neither starts nor removes its containers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sdp_api::{SandboxState, SandboxView};
use sdp_bus::Status;
use serde_json::{Value, json};

use crate::cli::{Sdp, code, show};
use crate::common::*;
use crate::routing::{deploy_template, from_sandbox, setup};

const DOMAIN: &str = "sdp.test";
const SANDBOX: &str = "sleepy";

fn sleepy_stack() -> StackOptions {
    StackOptions {
        gateway: true,
        agent: true,
        control_plane_env: pairs(&[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", DOMAIN.into()),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "http://127.0.0.1".into(),
            ),
            ("SDP_CONTROL_PLANE__SANDBOXES__SLEEP_AFTER", "4s".into()),
        ]),
        ..StackOptions::default()
    }
}

/// (running, stopped) containers of the sandbox, whatever agent made
/// them.
fn containers(sandbox: &str) -> (usize, usize) {
    let ids = sdp_testkit::containers_with_label("sdp.sandbox", sandbox);
    let running = ids
        .iter()
        .filter(|id| {
            let out = std::process::Command::new("docker")
                .args(["inspect", "--format", "{{.State.Running}}", id.as_str()])
                .output()
                .expect("docker inspect");
            String::from_utf8_lossy(&out.stdout).trim() == "true"
        })
        .count();
    (running, ids.len() - running)
}

async fn wait_state(stack: &Stack, token: &str, state: SandboxState) -> SandboxView {
    let client = stack.client_with(token);
    sdp_testkit::wait_for(
        &format!("{SANDBOX} to be {}", state.as_str()),
        Duration::from_secs(90),
        || async {
            let view = client.sandbox(SANDBOX).await.ok()?;
            (view.sandbox.state == state).then_some(view)
        },
    )
    .await
}

async fn preview(stack: &Stack, path: &str) -> (StatusCode, Value) {
    let response = stack
        .http()
        .get(stack.url(path))
        .header(reqwest::header::HOST, format!("{SANDBOX}.{DOMAIN}"))
        .timeout(Duration::from_secs(180))
        .send()
        .await
        .expect("an answer through the preview link");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the sandbox sleeps: every container stopped, none removed,
/// its deployments still running.
async fn asleep(stack: &Stack, token: &str, expected: usize) {
    let view = wait_state(stack, token, SandboxState::Asleep).await;
    assert!(view.sandbox.last_activity_at.is_some(), "{view:?}");
    assert_eq!(
        containers(SANDBOX),
        (0, expected),
        "every container stopped, none removed"
    );
    for service in &view.services {
        assert_eq!(
            service.status,
            Some(Status::Running),
            "asleep is not stopped: {service:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_sleeps_when_idle_and_wakes_on_a_request_a_deploy_and_the_cli() {
    let mut stack = Stack::start_with(sleepy_stack()).await;
    let token = stack.login().await;
    setup(&stack, &token).await;
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": SANDBOX, "template": "shop" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: SandboxView = serde_json::from_value(body).expect("a sandbox view");
    assert_eq!(created.sandbox.state, SandboxState::Awake);
    deploy_template(&stack, &token, SANDBOX, json!({})).await;
    // The gateway's re-applies settle; every request counts as activity.
    sdp_testkit::wait_for(
        "the preview link to answer",
        Duration::from_secs(90),
        || async {
            let (status, answer) = preview(&stack, "/users/1").await;
            (status == StatusCode::OK && from_sandbox("main")(&answer)).then_some(())
        },
    )
    .await;

    // Idle: it sleeps. Gateway, users, orders: three containers.
    asleep(&stack, &token, 3).await;

    // The first request through the preview link wakes it and is
    // answered once its services are healthy.
    let started = Instant::now();
    let (status, answer) = preview(&stack, "/users/1").await;
    let woke_in = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(from_sandbox("main")(&answer), "{answer}");
    eprintln!("woken by a request in {woke_in:?}");
    assert_eq!(containers(SANDBOX), (3, 0));
    let view = stack
        .client_with(&token)
        .sandbox(SANDBOX)
        .await
        .expect("view");
    assert_eq!(view.sandbox.state, SandboxState::Awake);
    // Both are the control plane's own acts in the owner's audit trail.
    for action in ["sandbox.sleep", "sandbox.wake"] {
        let entry = sdp_testkit::wait_for(
            &format!("a {action} entry"),
            Duration::from_secs(10),
            || async {
                let page = stack
                    .client_with(&token)
                    .audit(&sdp_api::AuditQuery {
                        sandbox: Some(SANDBOX.to_owned()),
                        action: Some(action.to_owned()),
                        ..Default::default()
                    })
                    .await
                    .ok()?;
                page.entries.into_iter().next()
            },
        )
        .await;
        assert_eq!(entry.actor.as_deref(), Some("system"), "{entry:?}");
        assert_eq!(entry.outcome, sdp_api::AuditOutcome::Ok, "{entry:?}");
        assert_eq!(entry.address, None, "{entry:?}");
    }
    let (status, answer) = preview(&stack, "/orders/1").await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Asleep again; a deploy of one service wakes the others too.
    asleep(&stack, &token, 3).await;
    let (status, body) = stack
        .post(
            &token,
            &format!("/api/sandboxes/{SANDBOX}/deployments"),
            json!({ "repo": "users", "branch": BRANCH }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    wait_state(&stack, &token, SandboxState::Awake).await;
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );
    sdp_testkit::wait_for(
        "every container running",
        Duration::from_secs(60),
        || async { (containers(SANDBOX) == (3, 0)).then_some(()) },
    )
    .await;
    let (status, answer) = preview(&stack, "/orders/1").await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Asleep again; `sdp sandbox wake` wakes it and returns once awake.
    asleep(&stack, &token, 3).await;
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp.run(&["sandbox", "wake", SANDBOX]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("awake"),
        "{}",
        show(&out)
    );
    assert_eq!(containers(SANDBOX), (3, 0));
    let (status, answer) = preview(&stack, "/users/1").await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Asleep, its agent restarts: the reconcile of the new agent process
    // keeps the stopped containers and starts none (the deployments are
    // still `running`: that is the desired state once awake).
    asleep(&stack, &token, 3).await;
    stack.kill_agent();
    stack.start_agent().await;
    sdp_testkit::wait_for(
        "the restarted agent's reconcile",
        Duration::from_secs(60),
        || async {
            let (_, out) = stack
                .process_output()
                .into_iter()
                .find(|(name, _)| name == "agent.out")?;
            let since_start = out.rsplit("agent started").next()?;
            since_start.contains("reconciled containers").then_some(())
        },
    )
    .await;
    assert_eq!(containers(SANDBOX), (0, 3), "kept, and still stopped");
    let view = stack
        .client_with(&token)
        .sandbox(SANDBOX)
        .await
        .expect("view");
    assert_eq!(view.sandbox.state, SandboxState::Asleep);
    let (status, answer) = preview(&stack, "/users/1").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(containers(SANDBOX), (3, 0));

    // A stranger may not wake it.
    let stranger = stack.login_as("stranger").await;
    let refused = stranger
        .wake_sandbox(SANDBOX)
        .await
        .expect_err("not the owner");
    assert_eq!(refused.status(), Some(StatusCode::FORBIDDEN.as_u16()));
    stack.shutdown().await;
}
