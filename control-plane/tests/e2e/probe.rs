//! The route probe: every route of a sandbox checked from its
//! gateway's own network. A sandbox route (users deployed in it), a
//! baseline route (orders) and a manual route to a closed port, on the
//! real stack: agent-micro, agent-gateway, the PHP gateway, the baseline.

use std::time::Duration;

use reqwest::StatusCode;
use sdp_api::{ErrorBody, ProbeResult};
use sdp_bus::{ProbeHop, RouteCheck, RouteSource, Status};
use serde_json::{Value, json};

use crate::common::*;
use crate::routing::{deploy_template, from_sandbox, through_gateway};

async fn probe(stack: &Stack, token: &str, sandbox: &str) -> (StatusCode, Value) {
    stack
        .post(token, &format!("/api/sandboxes/{sandbox}/probe"), json!({}))
        .await
}

/// A probe that answers 200, as its report.
async fn probe_report(stack: &Stack, token: &str, sandbox: &str) -> ProbeResult {
    let (status, report) = probe(stack, token, sandbox).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    serde_json::from_value(report.clone())
        .unwrap_or_else(|err| panic!("not a probe report ({err}): {report}"))
}

fn route<'a>(report: &'a ProbeResult, service: &str) -> &'a RouteCheck {
    report
        .routes
        .iter()
        .find(|r| r.service == service)
        .unwrap_or_else(|| panic!("no route of {service}: {report:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_finds_the_broken_hop_of_each_route() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let client = stack.login_as(USER).await;
    let token = client.token().expect("token").to_owned();
    sandbox_with_gateway(&stack, &client, "alpha").await;

    // No gateway runs yet: 409; an unknown sandbox: 404.
    let (status, body) = probe(&stack, &token, "alpha").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let refused: ErrorBody = serde_json::from_value(body.clone()).expect("an error answer");
    assert_eq!(refused.error.code, "no_gateway", "{body}");
    let (status, body) = probe(&stack, &token, "ghost").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // users runs in the sandbox, orders on the baseline; payments goes by
    // hand to a port nothing listens on (the gateway container's own
    // loopback: refused for certain).
    deploy_template(
        &stack,
        &token,
        "alpha",
        json!({ "branches": { "users": BRANCH }, "only": ["users"] }),
    )
    .await;
    through_gateway(&stack, &token, "alpha", "/users/1", from_sandbox(BRANCH)).await;
    // And stock goes to a host port that accepts connections but never
    // answers (the listener never accepts; the kernel completes the
    // handshake): the check runs out of time.
    let silent = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    let silent_target = format!(
        "http://{}:{}/",
        sdp_testkit::docker_bridge_gateway(),
        silent.local_addr().expect("addr").port()
    );
    let closed = "http://127.0.0.1:9/";
    for (service, target) in [("payments", closed), ("stock", silent_target.as_str())] {
        let response = stack
            .http()
            .put(stack.url(&format!("/api/sandboxes/alpha/routes/{service}")))
            .bearer_auth(&token)
            .json(&json!({ "target": target }))
            .send()
            .await
            .expect("put route");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The re-applied gateway has the manual routes in its routes.json.
    through_gateway(&stack, &token, "alpha", "/routes", |routes| {
        let text = routes.to_string();
        text.contains("127.0.0.1:9") && text.contains(&silent_target)
    })
    .await;
    let gateway = sdp_testkit::wait_for(
        "the re-applied gateway recorded running",
        Duration::from_secs(30),
        || async {
            let gateway = crate::routing::latest_gateway(&stack, &token, "alpha").await;
            (gateway.status == Status::Running).then_some(gateway)
        },
    )
    .await;

    let report = probe_report(&stack, &token, "alpha").await;
    assert_eq!(report.sandbox, "alpha");
    assert_eq!(
        report.gateway.deployment_id,
        gateway.id.as_str(),
        "{report:?}"
    );
    assert_eq!(report.routes.len(), 4, "{report:?}");

    let users = route(&report, "users");
    assert_eq!(users.source, RouteSource::Sandbox, "{users:?}");
    assert!(users.ok, "{users:?}");
    assert!(users.status.is_some(), "{users:?}");
    assert_eq!(users.hop, None, "{users:?}");
    assert!(users.latency_ms.is_some(), "{users:?}");

    // The baseline answers / with 404: any HTTP status is an answer.
    let orders = route(&report, "orders");
    assert_eq!(orders.source, RouteSource::Environment, "{orders:?}");
    assert!(orders.ok, "{orders:?}");
    assert_eq!(orders.status, Some(404), "{orders:?}");

    let payments = route(&report, "payments");
    assert_eq!(payments.source, RouteSource::Manual, "{payments:?}");
    assert_eq!(payments.target, closed);
    assert!(!payments.ok, "{payments:?}");
    assert_eq!(payments.hop, Some(ProbeHop::Connect), "{payments:?}");
    assert_eq!(payments.status, None, "{payments:?}");
    assert_eq!(
        payments.error.as_deref(),
        Some("connection refused to 127.0.0.1:9"),
        "{payments:?}"
    );

    let stock = route(&report, "stock");
    assert!(!stock.ok, "{stock:?}");
    assert_eq!(stock.hop, Some(ProbeHop::Timeout), "{stock:?}");
    assert!(
        stock
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("no answer from")),
        "{stock:?}"
    );
    drop(silent);

    // The CLI: a table, and JSON that holds the same report.
    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp.run(&["routes", "check", "alpha"]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains("payments")
            && l.contains("broken")
            && l.contains("connect: connection refused")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("users") && l.contains("ok") && l.contains("HTTP 200")),
        "{text}"
    );
    let out = sdp.run(&["-o", "json", "routes", "check", "alpha"]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    let json: ProbeResult = serde_json::from_slice(&out.stdout).expect("a probe report");
    assert_eq!(
        route(&json, "payments").hop,
        Some(ProbeHop::Connect),
        "{json:?}"
    );
    let out = sdp.run(&["routes", "check", "ghost"]).await;
    assert_eq!(crate::cli::code(&out), 7, "{}", crate::cli::show(&out));

    // The gateway container gone behind SDP's back: every route is broken
    // at the first hop, and says so.
    let gateway_agent = stack
        .routing
        .as_ref()
        .expect("routing")
        .gateway_agent_id
        .clone();
    for container in sdp_testkit::containers_with_label("sdp.agent", &gateway_agent) {
        sdp_testkit::docker_rm(&container);
    }
    let report = probe_report(&stack, &token, "alpha").await;
    for check in &report.routes {
        assert!(!check.ok, "{check:?}");
        assert_eq!(check.hop, Some(ProbeHop::Gateway), "{check:?}");
        assert!(
            check
                .error
                .as_deref()
                .is_some_and(|e| e.contains("not running")),
            "{check:?}"
        );
    }
    stack.shutdown().await;
}
