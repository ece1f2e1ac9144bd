//! Autodeploy's REST names: `PUT /api/sandboxes/{name}/services/{repo}`
//! takes `{"autodeploy": …}` (and still `{"follow": …}`, its first name:
//! `webhooks.rs` posts that one), and every answer shows the service's
//! setting under both names.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// PUTs `body` as the service's autodeploy setting.
async fn put_service(stack: &Stack, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = stack
        .http()
        .put(stack.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PUT service");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autodeploy_is_set_under_its_new_name_and_shown_under_both() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    // A service planned by the sandbox's template: nothing is deployed.
    let (status, body) = stack
        .post(
            &token,
            "/api/templates",
            json!({ "name": "auto", "services": [{ "repo": REPO, "branch": "main" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "auto-a", "template": "auto" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/api/sandboxes/auto-a/services/{REPO}");
    let shown = |service: &Value| (service["autodeploy"].clone(), service["follow"].clone());

    let (status, service) = put_service(&stack, &token, &path, json!({ "autodeploy": true })).await;
    assert_eq!(status, StatusCode::OK, "{service}");
    assert_eq!(shown(&service), (json!(true), json!(true)), "{service}");
    let (_, sandbox) = stack.get(&token, "/api/sandboxes/auto-a").await;
    assert_eq!(
        shown(&sandbox["services"][0]),
        (json!(true), json!(true)),
        "{sandbox}"
    );

    // The first name turns it off again; both names show it.
    let (status, service) = put_service(&stack, &token, &path, json!({ "follow": false })).await;
    assert_eq!(status, StatusCode::OK, "{service}");
    assert_eq!(shown(&service), (json!(false), json!(false)), "{service}");
    let (_, sandbox) = stack.get(&token, "/api/sandboxes/auto-a").await;
    assert_eq!(
        shown(&sandbox["services"][0]),
        (json!(false), json!(false)),
        "{sandbox}"
    );

    // Anything else is still refused, naming both names.
    let (status, body) = put_service(&stack, &token, &path, json!({ "auto": true })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`autodeploy` or `follow`"), "{body}");
    stack.shutdown().await;
}
