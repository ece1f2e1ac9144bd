//! Sessions: the cookie login sets, rotation at login, idle and absolute
//! expiry.

use std::time::Duration;

use reqwest::StatusCode;
use sdp_api::{LoginResponse, Me};
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_session_rotates_and_expires() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: vec![
            ("SDP_CONTROL_PLANE__AUTH__SESSION_IDLE".into(), "3s".into()),
            ("SDP_CONTROL_PLANE__AUTH__SESSION_MAX".into(), "6s".into()),
        ],
        ..StackOptions::default()
    })
    .await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let login = || async {
        browser
            .post(stack.url("/api/login"))
            .json(&json!({ "username": USER, "password": stack.password }))
            .send()
            .await
            .expect("login")
    };
    let response = login().await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.starts_with("sdp_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let first: LoginResponse = response.json().await.expect("a login answer");
    let me = browser.get(stack.url("/api/me")).send().await.expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    let me: Me = me.json().await.expect("a me answer");
    assert_eq!(me.username, USER);
    assert!(me.can_deploy, "{me:?}");

    // Logging in again rotates the token: the old one is dead.
    let second: LoginResponse = login().await.json().await.expect("a login answer");
    assert_ne!(first.token, second.token);
    let (status, _) = stack.get(&first.token, "/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Idle expiry: unused for longer than 3 s, the session ends.
    let token = second.token.clone();
    // Wait, without using the session (that would renew it), until its
    // last use is 3 s ago.
    let db = stack.cp_data.path().join("sdp.db");
    let hash = sdp_control_plane::sessions::hash_token(&token);
    sdp_testkit::wait_for(
        "the session to be idle for 3 s",
        Duration::from_secs(15),
        || {
            let (db, hash) = (db.clone(), hash.clone());
            async move {
                let db = rusqlite::Connection::open(db).ok()?;
                let last_seen: i64 = db
                    .query_row(
                        "SELECT last_seen FROM sessions WHERE token_hash = ?1",
                        [hash],
                        |row| row.get(0),
                    )
                    .ok()?;
                (chrono::Utc::now().timestamp() >= last_seen + 3).then_some(())
            }
        },
    )
    .await;
    let (status, body) = stack.get(&token, "/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The deployment stream closes an expired session with 1008.
    let id = sdp_bus::DeploymentId::generate();
    let code = stack.ws_follow(&token, id.as_str(), 0, |_| true).await;
    assert_eq!(code, Some(1008));

    // Absolute expiry: even a session in use ends after 6 s.
    let token = stack.login().await;
    let started = std::time::Instant::now();
    sdp_testkit::wait_for(
        "absolute session expiry",
        Duration::from_secs(15),
        || async {
            let (status, _) = stack.get(&token, "/api/me").await;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "ended after {:?}",
        started.elapsed()
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_user_and_per_address() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: vec![(
            "SDP_CONTROL_PLANE__AUTH__THROTTLE_ADDRESS_FAILURES".into(),
            "6".into(),
        )],
        ..StackOptions::default()
    })
    .await;
    let login = |username: &'static str, password: String| {
        let request = stack
            .http()
            .post(stack.url("/api/login"))
            .json(&json!({ "username": username, "password": password }));
        async move { request.send().await.expect("login") }
    };
    for _ in 0..3 {
        assert_eq!(
            login(USER, "wrong".into()).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Past 3 failures the user is refused without asking git, even with
    // the right password: Bitbucket's CAPTCHA (at 5) is never reached.
    let git_requests = stack.git.requests();
    let response = login(USER, stack.password.clone()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(api_error(&body).code, "throttled");
    assert!(Some(api_error(&body).message.as_str()).is_some_and(|m| m.contains("try again")));
    assert_eq!(
        stack.git.requests(),
        git_requests,
        "a throttled login reached git"
    );

    // Per address: failures spread over many users add up.
    for user in ["a", "b", "c"] {
        assert_eq!(
            login(user, "wrong".into()).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let response = login("d", "wrong".into()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_logins_reach_git_at_most_the_user_limit() {
    // The default per-user limit (3), below Bitbucket's CAPTCHA at 5.
    let stack = Stack::start().await;
    // The agent is up and checks credentials (one good login, which also
    // clears nothing: no failures yet).
    let _ = stack.login().await;
    let before = stack.git.wrong_credentials();
    let attempts = (0..20).map(|i| {
        let request = stack
            .http()
            .post(stack.url("/api/login"))
            .json(&json!({ "username": USER, "password": format!("wrong-{i}") }));
        async move { request.send().await.expect("login").status() }
    });
    let statuses = futures::future::join_all(attempts).await;
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let wrong = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(
        (wrong, refused),
        (3, 17),
        "three attempts take the user's slots, the rest are refused: {statuses:?}"
    );
    let reached = stack.git.wrong_credentials() - before;
    eprintln!("wrong credentials that reached git: {reached}");
    assert!(
        reached <= 3,
        "20 parallel wrong logins reached git with {reached} wrong credentials"
    );
    assert!(reached >= 1, "no wrong login reached git at all");
    stack.shutdown().await;
}
