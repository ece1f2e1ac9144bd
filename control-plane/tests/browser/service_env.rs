//! The sandbox page's env editor: a service's Env button opens its env in
//! this sandbox (the template's shown beside it), rows are typed, added
//! and removed, Save writes it; the page's polls leave the open editor
//! (and what is typed into it) alone, and the button counts the keys.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};
use crate::flows::login;

/// The sandbox's env for the service as the API has it once `saved` holds
/// (the page's save is asynchronous).
async fn saved_when(stack: &Stack, token: &str, saved: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/sandboxes/envpage/services/{REPO}/env");
    sdp_testkit::wait_for("the page's save", Duration::from_secs(20), || async {
        let (_, env) = stack.get(token, &path).await;
        saved(&env).then_some(env)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_edits_a_services_env_on_the_sandbox_page() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let (status, body) = stack
        .post(&token, "/api/templates", json!({
            "name": "envpage",
            "services": [{ "repo": REPO, "branch": "main", "overrides": { "env": { "FROM_TEMPLATE": "t" } } }],
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "envpage", "template": "envpage" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.watch_controls().await;
    browser.go("/sandboxes/envpage").await;
    let button = format!("#services-table tr[data-service={REPO}] button[data-env={REPO}]");
    browser.wait_for(&button).await;
    assert_eq!(browser.text(&button).await, "Env");
    browser
        .js(&format!(
            "document.querySelector({}).__marked = true;",
            json!(button)
        ))
        .await;
    browser.click(&button).await;
    browser.wait_for("#service-env-form").await;
    assert!(
        browser
            .text("#service-env-template")
            .await
            .contains("FROM_TEMPLATE=t")
    );

    // Typed into, then a poll of the page: the editor and the text stay.
    let row =
        |n: u32, field: &str| format!("#service-env-table tbody tr:nth-child({n}) input.{field}");
    browser.fill(&row(1, "key"), "GREETING").await;
    browser.fill(&row(1, "value"), "hi").await;
    let poll = "/api/sandboxes/envpage";
    let before = browser.responses(poll).await;
    browser
        .wait_js(
            "a poll of the sandbox",
            UI_TIMEOUT,
            &format!(
                "return (window.__sdpWatch.responses[{}] || 0) > {before};",
                json!(poll)
            ),
        )
        .await;
    let typed = browser
        .js(&format!(
            "return document.querySelector({}).value;",
            json!(row(1, "value"))
        ))
        .await;
    assert_eq!(typed, json!("hi"), "a poll kept what was typed");

    // Another row, then Save.
    browser.click("#service-env-add").await;
    browser.fill(&row(2, "key"), "MODE").await;
    browser.fill(&row(2, "value"), "x=y").await;
    browser.click("#service-env-save").await;
    let saved = saved_when(&stack, &token, |e| {
        e["env"] == json!({ "GREETING": "hi", "MODE": "x=y" })
    })
    .await;
    assert_eq!(saved["template_env"], json!({ "FROM_TEMPLATE": "t" }));
    browser.wait_for(".alert-ok").await;
    browser
        .wait_js(
            "the button to count the keys",
            UI_TIMEOUT,
            &format!(
                "return document.querySelector({}).textContent === 'Env (2)';",
                json!(button)
            ),
        )
        .await;

    // A row removed: saved without it.
    browser
        .click("#service-env-table tbody tr:nth-child(1) td.actions button")
        .await;
    browser.click("#service-env-save").await;
    saved_when(&stack, &token, |e| e["env"] == json!({ "MODE": "x=y" })).await;
    browser.screenshot("sandbox-service-env").await;
    let kept = browser
        .js(&format!(
            "return document.querySelector({}).__marked === true;",
            json!(button)
        ))
        .await;
    assert_eq!(kept, json!(true), "the Env button is the one first drawn");
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
    stack.shutdown().await;
}
