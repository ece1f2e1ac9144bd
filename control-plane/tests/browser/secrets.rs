//! The environments page with secret variables: a secret shows as set
//! (•••) and never by value, the editor keeps it when left empty and
//! replaces it when a new value is typed, and the page holds the value
//! nowhere (text, inputs, attributes).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::driver::Browser;
use crate::flows::login;

/// The environment as the API has it once `saved` holds (the page's save
/// is asynchronous).
async fn saved_when(
    stack: &Stack,
    token: &str,
    env: &str,
    saved: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/api/environments/{env}");
    sdp_testkit::wait_for("the page's save", Duration::from_secs(20), || async {
        let (_, environment) = stack.get(token, &path).await;
        saved(&environment).then_some(environment)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_secrets_as_set_and_replaces_them_without_reading_them() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let canary = sdp_testkit::unique_id("secret-canary");
    let env = sdp_testkit::unique_id("sec")
        .to_lowercase()
        .replace('_', "-");
    let (status, body) = stack
        .post(
            &token,
            "/api/environments",
            json!({ "name": env, "vars": { "MODE": "a" }, "secrets": { "API_TOKEN": canary } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.open("/environments").await;
    let row = format!("#environments-table tr[data-environment={}]", json!(env));
    let chip = format!("{row} .var-chip[data-key=API_TOKEN][data-secret=true]");
    browser.wait_for(&chip).await;
    assert!(browser.text(&chip).await.contains("•••"));
    let page = "return document.documentElement.outerHTML + \
                [...document.querySelectorAll('input')].map(i => i.value).join(' ');";
    let html = browser.js(page).await;
    assert!(
        !html.to_string().contains(&canary),
        "the secret is on the page"
    );

    // The editor: the secret's row is set, empty, its name fixed.
    browser.open(&format!("/environments/{env}")).await;
    browser.wait_for("#env-form").await;
    let rows = browser
        .js("return [...document.querySelectorAll('#vars-table tbody tr')].map(r => \
             [r.querySelector('input.key').value, r.querySelector('input.value').value, \
              r.querySelector('input.secret').checked, r.querySelector('input.key').readOnly].join(':'));")
        .await;
    assert_eq!(rows, json!(["MODE:a:false:false", "API_TOKEN::true:true"]));
    assert!(!browser.js(page).await.to_string().contains(&canary));
    browser.screenshot("environment-secrets").await;

    // Saved with the secret left empty: kept; the plain change applies.
    browser
        .fill("#vars-table tbody tr:nth-child(1) input.value", "b")
        .await;
    browser.click("#env-save").await;
    let saved = saved_when(&stack, &token, &env, |e| {
        e["vars"] == json!({ "MODE": "b" })
    })
    .await;
    // The page re-renders after its save, with a note; only then reopen.
    browser.wait_for(".alert-ok").await;
    assert_eq!(saved["secret_keys"], json!(["API_TOKEN"]));
    assert!(!saved.to_string().contains(&canary));

    // A new secret typed in a new row, and the old one removed.
    browser.open(&format!("/environments/{env}")).await;
    browser.wait_for("#env-form").await;
    browser.click("#add-var").await;
    browser
        .fill("#vars-table tbody tr:nth-child(3) input.key", "DB_PASSWORD")
        .await;
    browser
        .fill(
            "#vars-table tbody tr:nth-child(3) input.value",
            "typed-secret",
        )
        .await;
    let kind = browser
        .js("return document.querySelector('#vars-table tbody tr:nth-child(3) input.value').type + ':' + \
             document.querySelector('#vars-table tbody tr:nth-child(3) input.secret').checked;")
        .await;
    assert_eq!(
        kind,
        json!("password:true"),
        "a new secret-looking key starts secret"
    );
    browser
        .click("#vars-table tbody tr:nth-child(2) td.actions button")
        .await;
    browser.click("#env-save").await;
    let saved = saved_when(&stack, &token, &env, |e| {
        e["secret_keys"] == json!(["DB_PASSWORD"])
    })
    .await;
    assert_eq!(saved["vars"], json!({ "MODE": "b" }));
    assert!(!saved.to_string().contains("typed-secret"));
    browser.close().await;
}
