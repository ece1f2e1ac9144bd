//! The deployment page's "Runtime log" tab: a running service's own output,
//! live, with ANSI colours, a search applied by the agent, and the stream
//! ended on the agent when the tab is left.

use sdp_bus::Status;

use serde_json::json;

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};

/// The runtime log's lines as the page holds them.
async fn runtime_lines(browser: &Browser) -> Vec<String> {
    let rows = browser
        .js("return document.getElementById('runtime-log').logRows().map((r) => r[2]);")
        .await;
    serde_json::from_value(rows).expect("lines")
}

async fn wait_line(browser: &Browser, what: &str, line: &str) {
    browser
        .wait_js(
            what,
            UI_TIMEOUT,
            &format!(
                "return document.getElementById('runtime-log').logRows().some((r) => r[2] === {});",
                json!(line)
            ),
        )
        .await;
}

async fn wait_state(browser: &Browser, state: &str) {
    browser
        .wait_js(
            &format!("the runtime log to be {state}"),
            UI_TIMEOUT,
            &format!(
                "return document.querySelector('#runtime-state').dataset.state === {};",
                json!(state)
            ),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_runtime_log_tab_follows_searches_and_stops() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    let url = deployment.url.as_deref().expect("url").to_owned();

    let browser = Browser::start(&stack.base_url).await;
    browser.open("/login").await;
    browser.wait_for("#login-form").await;
    browser.fill("#login-username", USER).await;
    browser
        .fill("#login-password", &format!("{}\n", stack.password))
        .await;
    browser
        .wait_js(
            "the home page after login",
            UI_TIMEOUT,
            "return location.hash.startsWith('#/sandboxes');",
        )
        .await;
    browser.open(&format!("/deployments/{id}")).await;
    browser.wait_for("#result-box[data-status=running]").await;
    browser.click("#tab-runtime-log").await;
    wait_state(&browser, "live").await;

    // A request the test makes shows up live; its ANSI codes are colour.
    stack.hit_service(&url, "/from-the-browser-test").await;
    wait_line(
        &browser,
        "the request's line",
        "request GET /from-the-browser-test",
    )
    .await;
    stack
        .hit_service(&url, "/colour-%1B%5B31mred%1B%5B0m")
        .await;
    wait_line(
        &browser,
        "the coloured line",
        "request GET /colour-\u{1b}[31mred\u{1b}[0m",
    )
    .await;
    browser
        .wait_js(
            "red drawn as colour",
            UI_TIMEOUT,
            "const s = document.querySelector('#runtime-log .ansi-fg-1'); return s !== null && s.textContent === 'red';",
        )
        .await;
    browser.screenshot("runtime-log").await;

    // The search goes to the agent: only matching lines come back.
    stack.hit_service(&url, "/alpha-path").await;
    stack.hit_service(&url, "/beta-path").await;
    browser.fill("#runtime-search", "beta-path\n").await;
    wait_line(&browser, "the matching line", "request GET /beta-path").await;
    wait_state(&browser, "live").await;
    assert_eq!(runtime_lines(&browser).await, ["request GET /beta-path"]);

    // Not following: the log so far, then the response ends.
    browser.click("#runtime-follow").await;
    wait_state(&browser, "ended").await;
    assert_eq!(runtime_lines(&browser).await, ["request GET /beta-path"]);

    // Following again, then leaving the tab: the agent's stream ends.
    browser.click("#runtime-follow").await;
    wait_state(&browser, "live").await;
    stack.wait_agent_log_streams(&token, 1).await;
    browser.click("#tab-build-log").await;
    stack.wait_agent_log_streams(&token, 0).await;
    browser.close().await;
}
