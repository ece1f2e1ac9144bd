//! The sandbox page of a sleeping sandbox: its state shows `asleep` with
//! a Wake button; the button wakes it (`POST …/wake`) and the page says so.

use std::time::Duration;

use reqwest::StatusCode;
use sdp_api::SandboxState;
use serde_json::json;

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};
use crate::flows::login;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_a_sleeping_sandbox_and_wakes_it() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[("SDP_CONTROL_PLANE__SANDBOXES__SLEEP_AFTER", "2s".into())]),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let (status, body) = stack
        .post(&token, "/api/sandboxes", json!({ "name": "dozy" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = stack.client_with(&token);
    sdp_testkit::wait_for("dozy to sleep", Duration::from_secs(30), || async {
        let view = client.sandbox("dozy").await.ok()?;
        (view.sandbox.state == SandboxState::Asleep).then_some(())
    })
    .await;

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.watch_controls().await;
    browser.go("/sandboxes/dozy").await;
    browser.wait_for("#sandbox-state[data-state=asleep]").await;
    assert_eq!(browser.text("#sandbox-state").await, "asleep");
    browser.wait_for("#wake-sandbox").await;
    browser.screenshot("sandbox-asleep").await;
    let woken = browser.responses("/api/sandboxes/dozy/wake").await;
    browser.click("#wake-sandbox").await;
    browser
        .wait_js(
            "the wake's answer",
            UI_TIMEOUT,
            "return !!document.querySelector('#sandbox-message .alert-ok');",
        )
        .await;
    assert!(
        browser.responses("/api/sandboxes/dozy/wake").await > woken,
        "the button asked for the wake"
    );
    assert!(
        browser.text("#sandbox-message").await.contains("Awake"),
        "the page says it woke"
    );
    let view = client.sandbox("dozy").await.expect("the sandbox");
    assert!(
        view.sandbox.last_activity_at.is_some(),
        "a wake counts as activity: {view:?}"
    );
    browser.close().await;
}
