//! Keyset paging over REST, the typed client and the CLI: more rows than
//! a page, rows added between pages (each original row exactly once, in
//! order), the `X-Next-Cursor` and `Link` headers, and 400 for a limit out
//! of range or a malformed or another list's cursor.

use std::collections::HashSet;

use reqwest::StatusCode;
use sdp_api::{ListQuery, NewDeployment, NewSandbox};
use serde_json::Value;

use crate::common::*;
use sdp_testkit::unique_id;

/// A repo no agent holds: the deploy is refused (503 `no_agent`) and
/// recorded as a failed deployment, which is all a list needs.
const NOWHERE: &str = "nowhere";

async fn failed_deploy(client: &sdp_api::client::Client, sandbox: &str) -> String {
    let body = NewDeployment {
        repo: NOWHERE.to_owned(),
        branch: "main".to_owned(),
        commit: None,
    };
    match client.deploy(sandbox, &body).await {
        Err(sdp_api::client::ClientError::Api {
            deployment_id: Some(id),
            ..
        }) => id,
        other => panic!("a deploy of a repo nobody holds: {other:?}"),
    }
}

/// One page by hand: the JSON items, `X-Next-Cursor`, `Link`.
async fn page(
    stack: &Stack,
    token: &str,
    path: &str,
) -> (Vec<Value>, Option<String>, Option<String>) {
    let response = stack
        .http()
        .get(stack.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let (next, link) = (header("x-next-cursor"), header("link"));
    let items: Vec<Value> = response.json().await.expect("a JSON array");
    (items, next, link)
}

async fn refused(stack: &Stack, token: &str, path: &str, naming: &str) {
    let (status, body) = stack.get(token, path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    assert_eq!(body["error"]["code"], "bad_request", "{path}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(naming), "{path}: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_by_cursor_with_rows_added_between_pages() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let client = stack.client_with(&token);
    let sandbox = unique_id("pg");

    // 250 deployments, then their order as one request of 500 has it.
    for _ in 0..250 {
        failed_deploy(&client, &sandbox).await;
    }
    let whole: Vec<String> = client
        .deployments(&ListQuery {
            sandbox: Some(sandbox.clone()),
            limit: Some(500),
            ..ListQuery::default()
        })
        .await
        .expect("one big page")
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(whole.len(), 250);

    // 40 at a time, three more deployed after each page: the 250 come
    // once each, newest first; the newer ones sort before the cursor.
    let first = format!("/api/deployments?sandbox={sandbox}&limit=40");
    let mut path = first.clone();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (items, next, link) = page(&stack, &token, &path).await;
        pages += 1;
        assert!(items.len() <= 40);
        seen.extend(
            items
                .iter()
                .map(|d| d["id"].as_str().expect("id").to_owned()),
        );
        for _ in 0..3 {
            failed_deploy(&client, &sandbox).await;
        }
        let Some(next) = next else {
            assert_eq!(link, None, "no Link on the last page");
            break;
        };
        let expected = format!("{first}&cursor={next}");
        assert_eq!(link, Some(format!("<{expected}>; rel=\"next\"")));
        path = expected;
    }
    assert_eq!(pages, 7, "250 rows, 40 a page");
    assert_eq!(seen, whole, "every row once, newest first");

    // The typed client and the CLI follow the cursors to the end.
    let everything = client
        .all_deployments(
            &ListQuery {
                sandbox: Some(sandbox.clone()),
                ..ListQuery::default()
            },
            None,
        )
        .await
        .expect("all");
    assert_eq!(everything.len(), 250 + 3 * pages);
    let limited = client
        .all_deployments(
            &ListQuery {
                sandbox: Some(sandbox.clone()),
                ..ListQuery::default()
            },
            Some(123),
        )
        .await
        .expect("123");
    assert_eq!(limited.len(), 123);
    {
        use crate::cli::{Sdp, code, show};
        let sdp = Sdp::new(&stack.base_url);
        sdp.login(&stack.password).await;
        let out = sdp
            .run(&["-o", "json", "history", "--sandbox", &sandbox])
            .await;
        assert_eq!(code(&out), 0, "{}", show(&out));
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("an array");
        assert_eq!(listed.len(), everything.len(), "every page");
        let out = sdp
            .run(&[
                "-o",
                "json",
                "history",
                "--sandbox",
                &sandbox,
                "--limit",
                "7",
            ])
            .await;
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("an array");
        assert_eq!(listed.len(), 7);
        let out = sdp
            .run(&["history", "--sandbox", &sandbox, "--limit", "3"])
            .await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 4, "a header and three rows: {text}");
    }

    // Sandboxes by name, 25 a page, two more made after each page (one
    // sorting before the cursor, one after): each original once, in order.
    let prefix = unique_id("pgs");
    let made: Vec<String> = (0..120).map(|n| format!("{prefix}-{:03}", n * 2)).collect();
    for name in &made {
        client
            .create_sandbox(&NewSandbox {
                name: name.clone(),
                template: None,
                environment: None,
                ttl_hours: None,
                pinned: false,
                resources: Vec::new(),
            })
            .await
            .expect("sandbox");
    }
    let mut path = "/api/sandboxes?limit=25".to_owned();
    let mut names = Vec::new();
    let mut odd = 1;
    loop {
        let (items, next, _) = page(&stack, &token, &path).await;
        names.extend(
            items
                .iter()
                .map(|s| s["name"].as_str().expect("name").to_owned()),
        );
        for n in [odd, 240 - odd] {
            let _ = client
                .create_sandbox(&NewSandbox {
                    name: format!("{prefix}-{n:03}"),
                    template: None,
                    environment: None,
                    ttl_hours: None,
                    pinned: false,
                    resources: Vec::new(),
                })
                .await;
        }
        odd += 2;
        match next {
            Some(next) => path = format!("/api/sandboxes?limit=25&cursor={next}"),
            None => break,
        }
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "by name, no repeat");
    let listed: HashSet<&String> = names.iter().collect();
    assert!(
        made.iter().all(|name| listed.contains(name)),
        "every sandbox"
    );
    // Without a limit a page holds 500: a client that knows nothing of
    // paging still sees them all.
    let (all, next, _) = page(&stack, &token, "/api/sandboxes").await;
    assert_eq!(next, None);
    assert!(all.len() > made.len(), "{}", all.len());

    // Out of range or not this list's: 400 naming the parameter.
    for path in [
        "/api/deployments?limit=0",
        "/api/deployments?limit=501",
        "/api/sandboxes?limit=0",
        "/api/deliveries?limit=501",
        "/api/audit?limit=501",
        "/api/sandboxes/alpha/test-runs?limit=0",
    ] {
        refused(&stack, &token, path, "limit").await;
    }
    let sandbox_cursor = format!("sbx1.{}", made[0]);
    for path in [
        "/api/deployments?cursor=garbage".to_owned(),
        format!("/api/deployments?cursor={sandbox_cursor}"),
        "/api/sandboxes?cursor=dep1.1.d1".to_owned(),
        "/api/audit?cursor=dlv1.3".to_owned(),
        "/api/deliveries?cursor=aud1.3".to_owned(),
        "/api/sandboxes/alpha/test-runs?cursor=dep1.1.d1".to_owned(),
        "/api/deployments?cursor=dep1.99999999999999.d1".to_owned(),
    ] {
        refused(&stack, &token, &path, "cursor").await;
    }
    stack.shutdown().await;
}
