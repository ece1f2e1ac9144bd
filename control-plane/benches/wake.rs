//! Wake latency: a sandbox of three services (the PHP gateway and two Go
//! services, each in its container) put to sleep by `sandboxes.sleep_after`,
//! then woken by one request through its preview link; the time from that
//! request to its answer (the containers started on their agents, every
//! service healthy, the request passed on). `SDP_BENCH_WAKE_ROUNDS`
//! rounds (default 5); prints the median, the fastest and the slowest.
//!
//! Run: `cargo bench -p sdp-control-plane --bench wake` (after `cargo
//! build --workspace --bins`), or `scripts/bench.sh`.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;

const DOMAIN: &str = "sdp.bench";
const SANDBOX: &str = "wake-bench";

fn main() {
    support::block_on(bench());
}

async fn state(stack: &common::Stack, token: &str) -> Option<sdp_api::SandboxState> {
    let view = stack.client_with(token).sandbox(SANDBOX).await.ok()?;
    Some(view.sandbox.state)
}

async fn bench() {
    let rounds: usize = support::env_or("SDP_BENCH_WAKE_ROUNDS", 5);
    let stack = common::Stack::start_with(common::StackOptions {
        gateway: true,
        control_plane_env: common::pairs(&[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", DOMAIN.into()),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "http://127.0.0.1".into(),
            ),
            ("SDP_CONTROL_PLANE__SANDBOXES__SLEEP_AFTER", "3s".into()),
        ]),
        ..common::StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let baseline = stack
        .routing
        .as_ref()
        .expect("gateway stack")
        .baseline
        .url();
    for (path, body) in [
        (
            "/api/environments",
            json!({ "name": "baseline", "vars": { "USERS_URL": baseline, "ORDERS_URL": baseline } }),
        ),
        (
            "/api/templates",
            json!({
                "name": "shop", "environment": "baseline",
                "gateway": { "repo": "gateway", "branch": "main" },
                "services": [{ "repo": "users", "branch": "main" }, { "repo": "orders", "branch": "main" }],
            }),
        ),
        (
            "/api/sandboxes",
            json!({ "name": SANDBOX, "template": "shop" }),
        ),
    ] {
        let (status, answer) = stack.post(&token, path, body).await;
        assert!(status.is_success(), "{path}: {answer}");
    }
    let (status, started) = stack
        .post(
            &token,
            &format!("/api/sandboxes/{SANDBOX}/deploy"),
            json!({}),
        )
        .await;
    assert!(status.is_success(), "{started}");
    for deployment in started["deployments"].as_array().expect("deployments") {
        let id = deployment["id"].as_str().expect("id");
        stack.wait_settled(&token, id).await;
    }

    let mut latencies = Vec::new();
    for round in 0..rounds {
        sdp_testkit::wait_for("the sandbox to sleep", Duration::from_secs(120), || async {
            (state(&stack, &token).await == Some(sdp_api::SandboxState::Asleep)).then_some(())
        })
        .await;
        let sent = Instant::now();
        let response = stack
            .http()
            .get(stack.url("/users/1"))
            .header(reqwest::header::HOST, format!("{SANDBOX}.{DOMAIN}"))
            .timeout(Duration::from_secs(180))
            .send()
            .await
            .expect("an answer");
        let latency = sent.elapsed();
        assert!(
            response.status().is_success(),
            "round {round}: {}",
            response.status()
        );
        latencies.push(latency);
    }
    latencies.sort();
    let secs = |d: Duration| d.as_secs_f64();
    println!("\n| wake of a 3-service sandbox ({rounds} rounds) | time |");
    println!("|---|---|");
    println!(
        "| first request → first answer, median | {:.2} s |",
        secs(latencies[latencies.len() / 2])
    );
    println!(
        "| fastest / slowest | {:.2} s / {:.2} s |",
        secs(latencies[0]),
        secs(latencies[latencies.len() - 1])
    );
    stack.shutdown().await;
}
