//! The audit page: the entries a change left (with who, what and how it
//! ended), a filter by action, paging older and newer, and a secret's
//! value nowhere on the page.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};
use crate::flows::login;

/// The action cells of the table's rows.
const ACTIONS: &str = "return [...document.querySelectorAll('#audit-table tbody tr')]\
                       .map(r => r.children[2].textContent);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_lists_filters_and_pages_the_audit_trail() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let canary = sdp_testkit::unique_id("audit-canary");
    let sandbox = sdp_testkit::unique_id("aud");
    let env = sdp_testkit::unique_id("aud-env");
    let (status, body) = stack
        .post(&token, "/api/sandboxes", json!({ "name": sandbox }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/environments",
            json!({ "name": env, "secrets": { "API_TOKEN": canary } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for pinned in [true, false] {
        let response = stack
            .http()
            .patch(stack.url(&format!("/api/sandboxes/{sandbox}")))
            .bearer_auth(&token)
            .json(&json!({ "pinned": pinned }))
            .send()
            .await
            .expect("patch");
        assert_eq!(response.status(), StatusCode::OK);
    }

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.open("/audit").await;
    // The writer appends in the background: the page shows what is written.
    let actions = browser
        .wait_js(
            "the audit table with the environment's entry",
            UI_TIMEOUT,
            &format!(
                "const a = (() => {{ {ACTIONS} }})(); \
                 return a.includes('environment.create') ? a : null;"
            ),
        )
        .await;
    for action in ["login", "sandbox.create", "sandbox.update"] {
        assert!(
            actions
                .as_array()
                .expect("actions")
                .iter()
                .any(|a| a == action),
            "{action} in {actions}"
        );
    }
    let row = format!(
        "#audit-table tr:has(td:nth-child(3)) td:nth-child(5) a[href*={}]",
        json!(sandbox)
    );
    browser.wait_for(&row).await;
    let page = "return document.documentElement.outerHTML + \
                [...document.querySelectorAll('input')].map(i => i.value).join(' ');";
    assert!(!browser.js(page).await.to_string().contains(&canary));
    assert!(
        browser
            .text("#audit-table")
            .await
            .contains("secrets: API_TOKEN")
    );
    browser.screenshot("audit").await;

    // Filtered by action: only the two pin changes.
    browser.select("#audit-action", "sandbox.update").await;
    let filtered = browser
        .wait_js(
            "only sandbox.update rows",
            UI_TIMEOUT,
            &format!(
                "const a = (() => {{ {ACTIONS} }})(); \
                 return location.hash.includes('action=sandbox.update') && a.length > 0 \
                   && a.every(x => x === 'sandbox.update') ? a : null;"
            ),
        )
        .await;
    assert_eq!(filtered, json!(["sandbox.update", "sandbox.update"]));
    let messages = browser
        .js(
            "return [...document.querySelectorAll('#audit-table tbody tr')]\
             .map(r => r.children[7].textContent);",
        )
        .await;
    assert_eq!(messages, json!(["unpin", "pin"]));

    // Paging: two entries a page; older, then newer again.
    browser.open("/audit?limit=2").await;
    let ids = "return [...document.querySelectorAll('#audit-table tbody tr')]\
               .map(r => r.dataset.entry).join(',');";
    let first = browser
        .wait_js(
            "the first page",
            UI_TIMEOUT,
            "return !location.hash.includes('page=') && document.querySelectorAll('#audit-table tbody tr').length === 2 \
               && !document.querySelector('#audit-older').disabled \
               && [...document.querySelectorAll('#audit-table tbody tr')].map(r => r.dataset.entry).join(',');",
        )
        .await;
    browser.click("#audit-older").await;
    let second = browser
        .wait_js(
            "the second page",
            UI_TIMEOUT,
            &format!("return location.hash.includes('page=2') && (() => {{ {ids} }})();"),
        )
        .await;
    assert_ne!(first, second);
    assert!(
        !browser
            .js("return document.querySelector('#audit-newer').disabled;")
            .await
            .as_bool()
            .unwrap_or(true)
    );
    browser.click("#audit-newer").await;
    browser
        .wait_js(
            "the first page again",
            Duration::from_secs(20),
            &format!(
                "return !location.hash.includes('page=') && (() => {{ {ids} }})() === {first};"
            ),
        )
        .await;
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
    stack.shutdown().await;
}
