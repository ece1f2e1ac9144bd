//! Pages that refresh (polls, the deployment stream) keep their controls:
//! after a page is drawn, a refresh changes a button's, link's or field's
//! text and state, never the element. A re-created control loses the
//! click a person (or a test) aimed at it; the rollback test once failed
//! on exactly that ("stale element reference").

use sdp_bus::Status;
use std::time::Duration;

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};
use crate::flows::login;

/// Three polls of the slowest page (every 5 s) with room for a loaded
/// machine.
const POLLS_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until the page got `count` responses to `GET path_and_query`.
async fn wait_responses(browser: &Browser, path_and_query: &str, count: u64, timeout: Duration) {
    sdp_testkit::wait_for(
        &format!("{count} responses to {path_and_query}"),
        timeout,
        || async { (browser.responses(path_and_query).await >= count).then_some(()) },
    )
    .await;
}

async fn assert_kept(browser: &Browser, page: &str) {
    let replaced = browser.replaced_controls().await;
    assert!(
        replaced.is_empty(),
        "{page} re-created controls on a refresh: {replaced:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_keep_their_controls_across_refreshes() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "keep", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );
    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.watch_controls().await;

    // A settled deployment's page is drawn, then again for the stream's
    // replay and its result, then for the final row.
    browser.go(&format!("/deployments/{id}")).await;
    browser.wait_for("#rollback > .rollback").await;
    browser
        .wait_js(
            "the stream to end",
            DEPLOY_TIMEOUT,
            "return document.querySelector('#stream-state').dataset.state === 'ended';",
        )
        .await;
    wait_responses(&browser, &format!("/api/deployments/{id}"), 2, UI_TIMEOUT).await;
    assert_kept(&browser, "the deployment page").await;

    // Pages that poll: two refreshes after the first drawing (each poll
    // asks again only after it drew the last answer).
    let polled = [
        (
            "/sandboxes/keep",
            "/api/sandboxes/keep",
            "#services-table input[data-follow]",
        ),
        (
            "/deployments?sandbox=keep",
            "/api/deployments?sandbox=keep",
            "#deployments-table .rollback",
        ),
        (
            "/sandboxes",
            "/api/sandboxes",
            "#sandboxes-table tr[data-sandbox=keep] a",
        ),
        ("/agents", "/api/agents", "#agents-table tr[data-agent]"),
    ];
    for (hash, poll, control) in polled {
        let before = browser.responses(poll).await;
        browser.go(hash).await;
        browser.wait_for(control).await;
        wait_responses(&browser, poll, before + 3, POLLS_TIMEOUT).await;
        assert_kept(&browser, hash).await;
    }
    browser.close().await;
}
