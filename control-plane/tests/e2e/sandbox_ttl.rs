//! The TTL of a sandbox made by its first deploy (the README's quick start
//! takes that path): `sandboxes.default_ttl_hours`, as for one created
//! with `POST /api/sandboxes`.

use chrono::{Duration as ChronoDuration, Utc};
use reqwest::StatusCode;
use sdp_api::SandboxView;
use sdp_bus::Status;

use crate::common::*;

/// Not the built-in default (72), so a hard-coded TTL shows.
const DEFAULT_TTL_HOURS: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_deploy_makes_its_sandbox_with_the_configured_default_ttl() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: vec![(
            "SDP_CONTROL_PLANE__SANDBOXES__DEFAULT_TTL_HOURS".into(),
            DEFAULT_TTL_HOURS.to_string(),
        )],
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let client = stack.client_with(&token);
    let missing = client
        .sandbox("fresh")
        .await
        .expect_err("the sandbox is new");
    assert_eq!(
        missing.status(),
        Some(StatusCode::NOT_FOUND.as_u16()),
        "the sandbox is new: {missing}"
    );

    let before = Utc::now();
    let id = stack.deploy(&token, "fresh", BRANCH).await;
    let after = Utc::now();
    let sandbox = client
        .sandbox("fresh")
        .await
        .expect("sandbox fresh")
        .sandbox;
    assert_eq!(sandbox.ttl_hours, DEFAULT_TTL_HOURS, "{sandbox:?}");
    let ttl = ChronoDuration::hours(i64::from(DEFAULT_TTL_HOURS));
    // The store keeps milliseconds: allow the truncation.
    let (earliest, latest) = (before + ttl - ChronoDuration::milliseconds(1), after + ttl);
    let expires = sandbox.expires_at;
    assert!(
        earliest <= expires && expires <= latest,
        "expires at {expires}, not {DEFAULT_TTL_HOURS} h after the deploy ({earliest} … {latest})"
    );

    // The deploy itself runs, and a sandbox created by hand gets the same.
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );
    let (status, made) = stack
        .post(
            &token,
            "/api/sandboxes",
            serde_json::json!({ "name": "by-hand" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let made: SandboxView = serde_json::from_value(made).expect("a sandbox view");
    assert_eq!(made.sandbox.ttl_hours, sandbox.ttl_hours);
    stack.shutdown().await;
}
