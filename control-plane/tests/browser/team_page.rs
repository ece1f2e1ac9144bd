//! The sandboxes page with a team's 300 sandboxes: every row, in order,
//! from the list requests alone (no request per sandbox). How fast is the
//! benches' business (`Browser::sandboxes_page_time`, `benches/rest_scale.rs`).

use serde_json::Value;

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};

const TEAM: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sandboxes_page_shows_a_teams_300_sandboxes_from_the_list_alone() {
    // With its agent: logging in checks the credential through one.
    let stack = Stack::start().await;
    let token = stack.login().await;
    team::create_template(&stack, &token, None).await;
    let names = team::create_sandboxes(&stack, &token, TEAM, true).await;
    let browser = Browser::start(&stack.base_url).await;
    browser.log_in(USER, &stack.password).await;

    // A fresh load; returns once the page marked 300 rows shown.
    browser.sandboxes_page_time(TEAM, UI_TIMEOUT).await;
    let rows = browser
        .js(
            "return [...document.querySelectorAll('#sandboxes-table tbody tr')].map((tr) => \
             [tr.dataset.sandbox, tr.querySelector('td a').textContent, \
              [...tr.querySelectorAll('.service-chip .name')].map((n) => n.textContent)]);",
        )
        .await;
    let rows: Vec<(String, String, Vec<String>)> =
        serde_json::from_value(rows).expect("rows of the table");
    assert_eq!(rows.len(), TEAM, "one row per sandbox, no more");
    let shown: Vec<&str> = rows.iter().map(|(key, _, _)| key.as_str()).collect();
    assert_eq!(shown, names, "every sandbox, by name");
    for (key, link, services) in &rows {
        assert_eq!(link, key, "the row's link names its sandbox");
        assert_eq!(
            services,
            &["gateway", "orders", "users"],
            "{key}: its template's services"
        );
    }

    // What the page asked for: the list (proving requests are seen at
    // all), nothing per sandbox.
    let requested = browser.requested_paths().await;
    assert!(
        requested.iter().any(|p| p == "/api/sandboxes"),
        "the list request is among those seen: {requested:#?}"
    );
    let per_sandbox: Vec<&String> = requested
        .iter()
        .filter(|p| p.starts_with("/api/sandboxes/") || p.starts_with("/api/deployments"))
        .collect();
    assert!(
        per_sandbox.is_empty(),
        "the page fetched per-sandbox details: {per_sandbox:#?}"
    );
    // The page's mark says what the table holds.
    let marked = browser
        .js("return performance.getEntriesByName('sdp:sandboxes-shown').map((e) => e.detail.rows);")
        .await;
    assert_eq!(marked, Value::from(vec![TEAM]));
    browser.close().await;
    stack.shutdown().await;
}
