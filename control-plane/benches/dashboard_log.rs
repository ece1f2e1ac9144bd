//! Dashboard bench: the dashboard shows a 100k-line log without
//! freezing the page. In headless Chromium, with the page open while the
//! lines stream in (and again opened after, replaying the history):
//! the time from the result until the last line is on screen, and the
//! longest main-thread task while the lines arrived (a frozen page shows as
//! a long task).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p sdp-control-plane --bench dashboard_log`

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)]
mod driver;

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::log_feed;
use driver::{Browser, UI_TIMEOUT};

fn main() {
    support::block_on(bench());
}

const LONGEST_TASK: &str = "window.__longest = 0; \
    new PerformanceObserver((list) => { for (const e of list.getEntries()) \
    window.__longest = Math.max(window.__longest, e.duration); }).observe({ entryTypes: ['longtask'] });";

async fn bench() {
    let lines: u64 = support::env_or("SDP_BENCH_LINES", 100_000);
    let stack = common::Stack::start_with(common::StackOptions::bench()).await;
    let browser = Browser::start(&stack.base_url).await;
    browser.open("/login").await;
    browser.wait_for("#login-form").await;
    browser.fill("#login-username", common::USER).await;
    browser
        .fill("#login-password", &format!("{}\n", stack.password))
        .await;
    browser
        .wait_js(
            "login",
            UI_TIMEOUT,
            "return location.hash.startsWith('#/sandboxes');",
        )
        .await;

    let id = sdp_bus::DeploymentId::generate();
    log_feed::insert_deployment(stack.cp_data.path(), &id, "alpha");
    browser.open(&format!("/deployments/{id}")).await;
    browser.wait_for("#log").await;
    browser.js(LONGEST_TASK).await;
    let fed = Instant::now();
    log_feed::feed_log(&stack.nats.url(), &id, lines).await;
    let result_at = Instant::now();
    let live_last = last_line_on_screen(&browser, lines).await - result_at;
    let live_total = fed.elapsed();
    let longest = browser.js("return window.__longest;").await;

    // A late viewer: the whole history at once.
    browser.open("/sandboxes").await;
    browser.wait_for("#sandboxes-empty, #sandboxes-table").await;
    let opened = Instant::now();
    browser.open(&format!("/deployments/{id}")).await;
    let late = last_line_on_screen(&browser, lines).await - opened;

    println!("\n| dashboard, a {lines}-line log in headless Chromium | measured | target |");
    println!("|---|---|---|");
    println!(
        "| page open while it streams: last line on screen after the result | {:.0} ms | <= 2000 ms |",
        live_last.as_secs_f64() * 1000.0
    );
    println!(
        "| page open while it streams: first line published to last line on screen | {:.0} ms | |",
        live_total.as_secs_f64() * 1000.0
    );
    println!(
        "| longest main-thread task while it streamed | {:.0} ms | |",
        longest.as_f64().unwrap_or(0.0)
    );
    println!(
        "| page opened after: navigation to last line on screen | {:.0} ms | <= 2000 ms |",
        late.as_secs_f64() * 1000.0
    );
    browser.close().await;
    stack.shutdown().await;
}

/// Polls (every few ms, over WebDriver) until line `n` is drawn inside the
/// log box; returns when.
async fn last_line_on_screen(browser: &Browser, n: u64) -> Instant {
    let script = format!(
        "const box = document.getElementById('log'); if (!box) return false; \
         const row = box.querySelector('.log-line[data-n=\"{n}\"]'); if (!row) return false; \
         const b = box.getBoundingClientRect(), r = row.getBoundingClientRect(); \
         return r.top >= b.top - 1 && r.bottom <= b.bottom + 1;"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if browser.js(&script).await == serde_json::Value::Bool(true) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "line {n} never reached the screen"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
