//! The sandbox page's checks on the gateway stack: a badge by
//! each running service's branch ("up to date", then "behind by 1" after a
//! push), and "Check routes" with a green or red dot per route.

use sdp_bus::Status;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};

async fn ok(stack: &Stack, token: &str, path: &str, body: Value) -> Value {
    let (status, answer) = stack.post(token, path, body).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// A sandbox of the `shop` template with users deployed in it, orders on
/// the baseline and payments by hand to a closed port; waits until the
/// gateway runs with all three routes.
async fn sandbox_with_routes(stack: &Stack, token: &str) {
    let baseline = stack.routing.as_ref().expect("routing").baseline.url();
    ok(
        stack,
        token,
        "/api/environments",
        json!({ "name": "baseline", "vars": {
            "USERS_URL": baseline, "ORDERS_URL": baseline,
        }}),
    )
    .await;
    ok(stack, token, "/api/templates", json!({
        "name": "shop", "environment": "baseline",
        "gateway": { "repo": "gateway", "branch": "main" },
        "services": [{ "repo": "users", "branch": "main" }, { "repo": "orders", "branch": "main" }],
    }))
    .await;
    ok(
        stack,
        token,
        "/api/sandboxes",
        json!({ "name": "alpha", "template": "shop" }),
    )
    .await;
    let started = ok(
        stack,
        token,
        "/api/sandboxes/alpha/deploy",
        json!({ "branches": { "users": BRANCH }, "only": ["users"] }),
    )
    .await;
    for deployment in started["deployments"].as_array().expect("deployments") {
        let id = deployment["id"].as_str().expect("id");
        let settled = stack.wait_settled(token, id).await;
        assert!(
            matches!(settled.status, Status::Running | Status::Stopped),
            "{settled:?}"
        );
    }
    let response = stack
        .http()
        .put(stack.url("/api/sandboxes/alpha/routes/payments"))
        .bearer_auth(token)
        .json(&json!({ "target": "http://127.0.0.1:9/" }))
        .send()
        .await
        .expect("put route");
    assert_eq!(response.status(), StatusCode::OK);
    // The newest gateway runs with the sandbox route of users and the
    // manual one of payments.
    sdp_testkit::wait_for("the gateway with every route", DEPLOY_TIMEOUT, || async {
        let (_, list) = stack
            .get(token, "/api/deployments?sandbox=alpha&repo=gateway&limit=1")
            .await;
        let gateway = list.get(0)?;
        if gateway["status"] != "running" {
            return None;
        }
        let url = gateway["url"].as_str()?;
        let routes = stack
            .http()
            .get(format!("{url}/routes"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (routes.contains("127.0.0.1:9") && routes.contains("\"sandbox\"")).then_some(())
    })
    .await;
}

fn probe_dot(service: &str, state: &str) -> String {
    format!("#routes-table tr[data-service={service}] [data-probe={state}]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sandbox_staleness_badges_and_route_dots() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    sandbox_with_routes(&stack, &token).await;

    let browser = Browser::start(&stack.base_url).await;
    crate::flows::login(&browser, &stack, false).await;
    browser.open("/sandboxes/alpha").await;
    let users_badge = "#services-table tr[data-service=users] [data-staleness]";
    browser
        .wait_for("#services-table tr[data-service=users] [data-staleness=up_to_date]")
        .await;
    assert_eq!(browser.text(users_badge).await, "up to date");

    browser.click("#check-routes").await;
    browser.wait_for(&probe_dot("payments", "broken")).await;
    browser.wait_for(&probe_dot("users", "ok")).await;
    browser.wait_for(&probe_dot("orders", "ok")).await;
    let payments = browser.text(&probe_dot("payments", "broken")).await;
    assert!(
        payments.contains("connect: connection refused to 127.0.0.1:9"),
        "{payments}"
    );
    assert!(
        browser
            .text(&probe_dot("users", "ok"))
            .await
            .contains("HTTP 200")
    );
    assert!(
        browser
            .text(&probe_dot("orders", "ok"))
            .await
            .contains("HTTP 404")
    );
    let colours = browser
        .js(
            "return [...document.querySelectorAll('#routes-table .probe-dot')] \
             .map((d) => getComputedStyle(d).backgroundColor);",
        )
        .await;
    let colours: Vec<&str> = colours
        .as_array()
        .expect("colours")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(colours.len(), 3, "{colours:?}");
    assert!(
        colours.iter().filter(|c| **c != colours[0]).count() > 0,
        "green and red dots: {colours:?}"
    );
    browser
        .js("document.querySelector('#routes-table').scrollIntoView({block: 'center'}); return true;")
        .await;
    browser.screenshot("sandbox-checks").await;

    // A push: the page, opened again, says the branch is behind.
    stack.fixture.push_revision(BRANCH, "2");
    browser.open("/sandboxes").await;
    browser.open("/sandboxes/alpha").await;
    browser
        .wait_js(
            "the users badge to say behind by 1",
            UI_TIMEOUT + Duration::from_secs(30),
            "const b = document.querySelector('#services-table tr[data-service=users] [data-staleness=behind]'); \
             return b && b.textContent === 'behind by 1';",
        )
        .await;
    browser.close().await;
    stack.shutdown().await;
}
