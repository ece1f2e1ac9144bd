//! REST at team scale: `SDP_BENCH_REST_SANDBOXES` (default 300) sandboxes
//! of the 3-service template (gateway + 2 Go services), made through the
//! REST API, each service with `SDP_BENCH_REST_WAVES` (default 12)
//! deployments written into the control plane's SQLite (the history a
//! team's deploy waves leave; no agent builds anything). Then, on a quiet
//! control plane, `SDP_BENCH_REST_REQUESTS` (default 200) requests one
//! after the other to each of the lists the dashboard and CLI read,
//! p50/p99; and the dashboard's sandboxes page in headless Chromium,
//! from navigation to every row shown (`Browser::sandboxes_page_time`),
//! over `SDP_BENCH_REST_LOADS` (default 5) fresh loads.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p sdp-control-plane --bench rest_scale`

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)]
mod driver;

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::team;
use driver::Browser;
use reqwest::StatusCode;
use serde_json::Value;
use support::{ms, percentile};

fn main() {
    support::block_on(bench());
}

/// Times `requests` GETs of `path(n)` one after the other; checks each
/// answer with `check`. Sorted durations.
async fn time_gets(
    stack: &common::Stack,
    token: &str,
    requests: usize,
    path: impl Fn(usize) -> String,
    check: impl Fn(&Value),
) -> Vec<Duration> {
    let mut took = Vec::with_capacity(requests);
    for n in 0..requests {
        let path = path(n);
        let sent = Instant::now();
        let (status, body) = stack.get(token, &path).await;
        took.push(sent.elapsed());
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        check(&body);
    }
    took.sort();
    took
}

async fn bench() {
    let count: usize = support::env_or("SDP_BENCH_REST_SANDBOXES", 300);
    let waves: usize = support::env_or("SDP_BENCH_REST_WAVES", 12);
    let requests: usize = support::env_or("SDP_BENCH_REST_REQUESTS", 200);
    let loads: usize = support::env_or("SDP_BENCH_REST_LOADS", 5);
    // With its agent: logging in checks the credential through one.
    let stack = common::Stack::start().await;
    let token = stack.login().await;
    let seeding = Instant::now();
    team::create_template(&stack, &token, None).await;
    let names = team::create_sandboxes(&stack, &token, count, true).await;
    let rows = team::seed_deployments(&stack, &names, waves);
    let seeded = seeding.elapsed();

    let services = 1 + team::SERVICES.len();
    let list = time_gets(
        &stack,
        &token,
        requests,
        |_| "/api/sandboxes".to_owned(),
        |body| {
            let sandboxes = body.as_array().expect("a list");
            assert_eq!(sandboxes.len(), count);
            assert!(sandboxes.iter().all(|s| {
                let services_of = s["services"].as_array().expect("services");
                services_of.len() == services
                    && services_of.iter().all(|v| v["status"] == "running")
            }));
        },
    )
    .await;
    let show = time_gets(
        &stack,
        &token,
        requests,
        |n| format!("/api/sandboxes/{}", names[n % names.len()]),
        |body| {
            assert_eq!(body["services"].as_array().expect("services").len(), 3);
            assert!(body["routes"].is_array());
            assert!(body["gateway_url"].is_string());
        },
    )
    .await;
    let deployments = time_gets(
        &stack,
        &token,
        requests,
        |n| format!("/api/deployments?sandbox={}", names[n % names.len()]),
        |body| {
            let rows = body.as_array().expect("a list");
            assert_eq!(rows.len(), (waves * services).min(100));
            assert!(
                rows.iter()
                    .all(|d| !d["phases"].as_array().expect("phases").is_empty())
            );
        },
    )
    .await;

    let browser = Browser::start(&stack.base_url).await;
    browser.log_in(common::USER, &stack.password).await;
    let mut page = Vec::with_capacity(loads);
    for _ in 0..loads {
        page.push(
            browser
                .sandboxes_page_time(count, Duration::from_secs(60))
                .await,
        );
    }
    page.sort();
    browser.close().await;

    println!(
        "\n| REST at team scale: {count} sandboxes × {services} services, {rows} deployments, \
         {requests} requests each | p50 | p99 | target |"
    );
    println!("|---|---|---|---|");
    for (what, took) in [
        ("`GET /api/sandboxes` (every sandbox, one page)", &list),
        ("`GET /api/sandboxes/{name}`", &show),
        ("`GET /api/deployments?sandbox=` (first page)", &deployments),
    ] {
        println!(
            "| {what} | {:.1} ms | {:.1} ms | p99 <= 50 ms |",
            ms(percentile(took, 0.5)),
            ms(percentile(took, 0.99))
        );
    }
    println!(
        "| sandboxes page in headless Chromium: navigation to {count} rows ({loads} loads, median / max) | {:.0} ms | {:.0} ms | <= 1000 ms |",
        ms(percentile(&page, 0.5)),
        ms(page[page.len() - 1])
    );
    println!(
        "| seeding (template, sandboxes over REST, rows into SQLite) | {:.1} s | | |",
        seeded.as_secs_f64()
    );
    stack.shutdown().await;
}
