//! Bad input gets a clear error and leaves nothing behind.

use sdp_bus::Status;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly() {
    let mut stack = Stack::start().await;

    // Wrong password: 401, no cookie, no session.
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": USER, "password": "wrong" }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    let sessions: i64 = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db"))
        .expect("db")
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        sessions, 1,
        "only the session made while starting the stack"
    );

    // A NUL in the password is malformed input (400), not the agent
    // failing to check it (the schemathesis run once found a 502 here).
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": USER, "password": "a\u{0}b" }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // No session: 401 everywhere under /api.
    for path in ["/api/me", "/api/deployments", "/api/agents"] {
        let response = stack.http().get(stack.url(path)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let response = stack
        .http()
        .post(stack.url("/api/sandboxes/alpha/deployments"))
        .json(&json!({ "repo": REPO, "branch": "x".repeat(200_000) }))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "a 401 sent before the body was read must close the connection"
    );
    let response = stack.http().get(stack.url("/api/me")).send().await;
    assert_eq!(
        response.expect("the next request works").status(),
        StatusCode::UNAUTHORIZED
    );

    let token = stack.login().await;

    // Hostile branches and names: 400 before git runs.
    let git_requests = stack.git.requests();
    for (sandbox, repo, branch) in [
        ("alpha", REPO, "--upload-pack=touch /tmp/pwned"),
        ("alpha", REPO, "../x"),
        ("alpha", REPO, "a..b"),
        ("alpha", REPO, "x@{1}"),
        ("alpha", "../etc", BRANCH),
        ("alpha", "Users", BRANCH),
        ("a.b*", REPO, BRANCH),
        ("..x", REPO, BRANCH),
    ] {
        let (status, body) = stack
            .post(
                &token,
                &format!("/api/sandboxes/{sandbox}/deployments"),
                json!({ "repo": repo, "branch": branch }),
            )
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{sandbox} {repo} {branch}: {status} {body}"
        );
        if status == StatusCode::BAD_REQUEST {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{body}"
            );
        }
    }
    assert_eq!(
        stack.git.requests(),
        git_requests,
        "git ran for hostile input"
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let (_, all) = stack.get(&token, "/api/deployments").await;
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(0),
        "a refused request left a deployment"
    );

    // Malformed and oversized bodies.
    let response = stack
        .http()
        .post(stack.url("/api/sandboxes/alpha/deployments"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"repo\":\"users\",\"branch\":\"{}\"}}",
            "a".repeat(1 << 20)
        ))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The body was not read: the connection cannot be reused, and the
    // client must be told so, or its next request on it fails.
    assert_eq!(
        response.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "a 413 must close the connection"
    );
    let body: serde_json::Value = response.json().await.expect("413 is JSON");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let response = stack
        .http()
        .post(stack.url("/api/sandboxes/alpha/deployments"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": REPO }),
        )
        .await;
    assert!(status.is_client_error());
    let (status, _) = stack.get(&token, "/api/deployments/nope-../x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A repo no agent holds: no kind is guessed; 503 naming the repo.
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": "ghost", "branch": "main" }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "no_agent", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ghost")),
        "{body}"
    );

    // No agent: a clear error, and the deployment is failed with it.
    stack.kill_agent();
    sdp_testkit::wait_for("agent to go offline", Duration::from_secs(30), || async {
        let (_, agents) = stack.get(&token, "/api/agents").await;
        agents
            .as_array()?
            .iter()
            .all(|a| a["online"] == false)
            .then_some(())
    })
    .await;
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": REPO, "branch": BRANCH }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "no_agent");
    let id = body["error"]["deployment_id"]
        .as_str()
        .expect("deployment id");
    let (_, deployment) = stack.get(&token, &format!("/api/deployments/{id}")).await;
    assert_eq!(deployment["status"], "failed");
    assert!(
        deployment["error"]
            .as_str()
            .is_some_and(|e| e.contains("no micro agent"))
    );
    let events = stack.ws_events(&token, id, 0).await;
    assert_eq!(statuses(&events), [Status::Failed]);

    // No agent to check a login either.
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": USER, "password": stack.password }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Logout ends the session.
    let (status, _) = stack.post(&token, "/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = stack.get(&token, "/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_checks_session_and_origin() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = sdp_bus::DeploymentId::generate();
    let url = stack.ws_url(&format!("/ws/deployments/{id}"));

    // A foreign Origin is refused at the handshake.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .expect("req");
    request
        .headers_mut()
        .insert("Origin", "https://evil.example".parse().expect("h"));
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("h"),
    );
    let err = tokio_tungstenite::connect_async(request)
        .await
        .expect_err("foreign origin refused");
    assert!(err.to_string().contains("403"), "{err}");

    // No session: closed with 1008.
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    use futures::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("close in time");
    match message {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008)
        }
        other => panic!("expected a 1008 close, got {other:?}"),
    }
    stack.shutdown().await;
}
