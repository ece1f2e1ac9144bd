//! The sandbox page's "Notifications" card: a build status that Bitbucket
//! (a fake in the test, `common::fake_receiver`) refuses with 503 shows as
//! retrying with its last answer, then as delivered once Bitbucket is back.

use std::time::Duration;

use sdp_bus::Status;
use serde_json::json;

use crate::common::fake_receiver::FakeReceiver;
use crate::common::*;
use crate::driver::Browser;
use crate::flows::login;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_the_last_outcome_of_each_delivery() {
    let bitbucket = FakeReceiver::start().await;
    bitbucket.fail_next(1000);
    let secrets = tempfile::TempDir::new().expect("temp dir");
    let credential = secrets.path().join("service-credential");
    std::fs::write(&credential, "sdp-svc:svc-password\n").expect("write");
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[
            ("SDP_CONTROL_PLANE__BITBUCKET__FLAVOUR", "cloud".to_owned()),
            ("SDP_CONTROL_PLANE__BITBUCKET__API_URL", bitbucket.url()),
            ("SDP_CONTROL_PLANE__BITBUCKET__WORKSPACE", "team".to_owned()),
            (
                "SDP_CONTROL_PLANE__GIT__SERVICE_CREDENTIAL_FILE",
                credential.display().to_string(),
            ),
            ("SDP_CONTROL_PLANE__NOTIFY__BACKOFF", "1s".to_owned()),
            ("SDP_CONTROL_PLANE__NOTIFY__ATTEMPTS", "20".to_owned()),
        ]),
        ..StackOptions::default()
    })
    .await;
    let client = stack.login_as(USER).await;
    let sandbox = sdp_testkit::unique_id("nbb");
    stack
        .deploy_and_wait(&client, &sandbox, BRANCH, Status::Running)
        .await;

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.watch_controls().await;
    browser.go(&format!("/sandboxes/{sandbox}")).await;
    let pending = "#deliveries tr[data-delivery] [data-outcome=pending]";
    browser
        .wait_js(
            "a retrying delivery",
            Duration::from_secs(60),
            &format!(
                "const e = document.querySelector({}); return e && e.textContent.startsWith('retrying');",
                json!(pending)
            ),
        )
        .await;
    let row = browser.text("#deliveries tr[data-delivery]").await;
    assert!(row.contains("bitbucket cloud"), "{row}");
    assert!(row.contains("deployment.running"), "{row}");
    assert!(row.contains("503"), "the last answer: {row}");

    bitbucket.fail_next(0);
    browser
        .wait_js(
            "the delivery delivered",
            Duration::from_secs(60),
            "return document.querySelector('#deliveries [data-outcome=delivered]') !== null;",
        )
        .await;
    browser
        .js("document.querySelector('#deliveries-card').scrollIntoView(); return true;")
        .await;
    browser.screenshot("sandbox-notifications").await;
    assert!(bitbucket.received().iter().any(|r| r.answered == 201));
    browser.close().await;
    stack.shutdown().await;
}

/// An environment's webhooks set in its editor's card: saved as the API
/// then reads them, and a private host refused with the server's message
/// (nothing changed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sets_an_environments_webhooks_and_shows_a_refusal() {
    let stack = Stack::start().await;
    let client = stack.login_as(USER).await;
    let environment = sdp_testkit::unique_id("nbe");
    let (status, body) = stack
        .post(
            client.token().expect("token"),
            "/api/environments",
            json!({ "name": environment, "vars": {} }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.watch_controls().await;
    browser.go(&format!("/environments/{environment}")).await;
    let url_input = "#webhooks-table input.hook-url";
    browser.wait_for(url_input).await;
    // A public address: nothing to resolve, nothing sent (no sandbox).
    let url = "https://93.184.216.34/hooks/browser-secret";
    browser.fill(url_input, url).await;
    browser
        .click("#webhooks-table input.hook-event[value='deployment.failed']")
        .await;
    browser.click("#webhooks-save").await;
    browser
        .wait_js(
            "saved",
            Duration::from_secs(30),
            "const e = document.querySelector('#webhooks .alert-ok'); return e && e.textContent;",
        )
        .await;
    let saved = client.environment_notify(&environment).await.expect("read");
    assert_eq!(saved.targets.len(), 1);
    assert_eq!(saved.targets[0].url, url);
    assert_eq!(
        saved.targets[0].events,
        [sdp_api::NotifyEvent::DeploymentFailed]
    );

    browser.fill(url_input, "https://10.0.0.5/hook").await;
    browser.click("#webhooks-save").await;
    let shown = browser
        .wait_js(
            "the refusal",
            Duration::from_secs(30),
            "const e = document.querySelector('#webhooks .alert-error'); return e && e.textContent;",
        )
        .await;
    let shown = shown.as_str().unwrap_or_default().to_owned();
    assert!(
        shown.contains("10.0.0.5 is a private address")
            && shown.contains("notify.allowed_private_hosts"),
        "{shown}"
    );
    assert_eq!(
        client.environment_notify(&environment).await.expect("read"),
        saved,
        "nothing changed"
    );
    browser.expect_console_errors(&["400"]).await;
    browser.close().await;
    stack.shutdown().await;
}
