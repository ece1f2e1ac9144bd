//! The sandbox page's resources card: a template's postgres shows with its
//! state, size, variable and URL (its password for the owner); Reset asks
//! inline, then drops the data and seeds it anew, and the card says so.
//! The owner adds a resource of the sandbox's own (pending until the next
//! deploy) and removes it again.

use std::time::Duration;

use reqwest::StatusCode;
use sdp_bus::Status;
use serde_json::{Value, json};

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};
use crate::flows::login;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_a_sandboxs_resources_and_resets_one() {
    let stack = steps::start_with_postgres().await;
    stack.fixture.push_file(
        BRANCH,
        "seed.sql",
        "CREATE TABLE t (n int); INSERT INTO t VALUES (1);",
    );
    let token = stack.login().await;
    let (status, body) = stack
        .post(
            &token,
            "/api/templates",
            json!({
                "name": "respage",
                "services": [{ "repo": REPO, "branch": "main" }],
                "resources": [{
                    "name": "db", "engine": "postgres", "env_var": "DATABASE_URL",
                    "seed": { "from": "repo", "repo": REPO, "branch": BRANCH, "path": "seed.sql" },
                }],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "respage", "template": "respage" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(&token, "/api/sandboxes/respage/deploy", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["deployments"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let client = stack.client_with(&token);
    wait_for_status(&client, &id, Status::Running).await;

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.watch_controls().await;
    browser.go("/sandboxes/respage").await;
    let row = "#resources-table tr[data-resource=db]";
    browser.wait_for(row).await;
    let text = browser.text(row).await;
    assert!(text.contains("postgres"), "{text}");
    assert!(text.contains("DATABASE_URL"), "{text}");
    assert!(text.contains("postgres://sdp:"), "{text}");
    assert!(!text.contains("***"), "the owner sees the password: {text}");
    assert_eq!(browser.text(&format!("{row} [data-state]")).await, "ready");
    browser.screenshot("sandbox-resources").await;

    let (_, before) = stack.get(&token, "/api/sandboxes/respage/resources").await;
    let before_at = before[0]["updated_at"].clone();
    browser
        .click(&format!("{row} .confirm-wrap > .reset-resource"))
        .await;
    browser.click(&format!("{row} .confirm .solid")).await;
    browser.wait_for(".alert-ok").await;
    let after: Value =
        sdp_testkit::wait_for("the reset in the API", Duration::from_secs(30), || async {
            let (_, list) = stack.get(&token, "/api/sandboxes/respage/resources").await;
            (list[0]["updated_at"] != before_at && list[0]["state"] == "ready").then_some(list)
        })
        .await;
    assert_eq!(after[0]["url"], before[0]["url"], "the URL stays");
    browser
        .wait_js(
            "the card to show it ready",
            UI_TIMEOUT,
            &format!(
                "return document.querySelector({})?.textContent === 'ready';",
                json!(format!("{row} [data-state]"))
            ),
        )
        .await;

    // The owner's own resource: added by the form, removed by its button.
    browser.fill("#resource-name", "cache").await;
    browser.select("#resource-engine", "redis").await;
    browser.fill("#resource-env-var", "REDIS_URL").await;
    browser.click("#resource-add").await;
    let added = "#resources-table tr[data-resource=cache]";
    browser
        .wait_for(&format!("{added} [data-state=pending]"))
        .await;
    let (_, list) = stack.get(&token, "/api/sandboxes/respage/resources").await;
    assert_eq!(list[0]["name"], "cache", "{list}");
    assert_eq!(list[0]["origin"], "sandbox", "{list}");
    browser
        .click(&format!("{added} .confirm-wrap > .remove-resource"))
        .await;
    browser.click(&format!("{added} .confirm .solid")).await;
    browser
        .wait_js(
            "the card to drop it",
            UI_TIMEOUT,
            &format!("return !document.querySelector({});", json!(added)),
        )
        .await;
    let (_, list) = stack.get(&token, "/api/sandboxes/respage/resources").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
    stack.shutdown().await;
}
