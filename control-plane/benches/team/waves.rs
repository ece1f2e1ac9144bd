//! The team's sandboxes: one template (gateway + `users` + `orders`), every
//! sandbox of it deployed whole, a wave at a time.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::common::{Stack, team};

/// What the waves took.
pub struct Waves {
    pub elapsed: Duration,
    pub deployments: usize,
    pub dispatch: Vec<Duration>,
    pub per_wave: Vec<Duration>,
    /// `sandbox/repo: status (error)` of every service not running.
    pub not_running: Vec<String>,
}

/// Environment `baseline` (every service the sandbox does not run goes to
/// the shared baseline), then the team's template over it.
pub async fn setup_template(stack: &Stack, token: &str) {
    let baseline = stack
        .routing
        .as_ref()
        .expect("gateway stack")
        .baseline
        .url();
    let (status, body) = stack
        .post(
            token,
            "/api/environments",
            json!({ "name": "baseline", "vars": {
                "USERS_URL": baseline, "ORDERS_URL": baseline, "APP_ENV": "sandbox",
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    team::create_template(stack, token, Some("baseline")).await;
}

/// Deploys each wave's sandboxes whole at once and waits until every
/// service of the wave runs (or settled otherwise) before the next.
pub async fn deploy_in_waves(stack: &Stack, token: &str, names: &[String], wave: usize) -> Waves {
    let started = Instant::now();
    let mut dispatch = Vec::new();
    let mut per_wave = Vec::new();
    for batch in names.chunks(wave) {
        let wave_started = Instant::now();
        let sent = batch.iter().map(|name| async move {
            let sent = Instant::now();
            let (status, body) = stack
                .post(token, &format!("/api/sandboxes/{name}/deploy"), json!({}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{name}: {body}");
            sent.elapsed()
        });
        dispatch.extend(futures::future::join_all(sent).await);
        wait_settled(stack, token, batch).await;
        per_wave.push(wave_started.elapsed());
    }
    let elapsed = started.elapsed();
    dispatch.sort();
    let listed = list(stack, token).await;
    let mut not_running = Vec::new();
    let mut deployments = 0;
    for sandbox in listed
        .iter()
        .filter(|s| names.iter().any(|n| s["name"] == *n))
    {
        for service in sandbox["services"].as_array().into_iter().flatten() {
            deployments += 1;
            if service["status"] != "running" {
                not_running.push(format!(
                    "{}/{}: {}",
                    sandbox["name"], service["repo"], service["status"]
                ));
            }
        }
    }
    Waves {
        elapsed,
        deployments,
        dispatch,
        per_wave,
        not_running,
    }
}

/// Every sandbox as the list shows it (one page: at most 500).
pub async fn list(stack: &Stack, token: &str) -> Vec<Value> {
    let (status, body) = stack.get(token, "/api/sandboxes?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Until every service of `batch` has settled, polling the list as the
/// dashboard does.
async fn wait_settled(stack: &Stack, token: &str, batch: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let listed = list(stack, token).await;
        let settled = batch.iter().all(|name| {
            listed.iter().find(|s| s["name"] == *name).is_some_and(|s| {
                let services = s["services"].as_array().cloned().unwrap_or_default();
                services.len() == 3
                    && services.iter().all(|service| {
                        matches!(
                            service["status"].as_str(),
                            Some("running" | "failed" | "cancelled" | "stopped")
                        )
                    })
            })
        });
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a wave did not settle in 20 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Time until the dashboard's sandboxes page, freshly loaded in headless
/// Chromium, shows `rows` rows (the median of three loads).
pub async fn dashboard_rows(stack: &Stack, rows: usize) -> Option<Duration> {
    let browser = super::driver::Browser::start(&stack.base_url).await;
    browser.log_in(super::common::USER, &stack.password).await;
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(
            browser
                .sandboxes_page_time(rows, Duration::from_secs(60))
                .await,
        );
    }
    browser.close().await;
    times.sort();
    Some(times[1])
}
