//! Sessions no page can forge: a change that carries the
//! session cookie must come from the dashboard's origin, bodies must be
//! JSON, two session cookies are refused, the secure cookie is
//! `__Host-`, and a preview domain on the dashboard's own site stops the
//! start.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use serde_json::{Value, json};

use crate::common::*;

/// Logs in; returns the session cookie's `name=value` and the token.
async fn cookie_login(stack: &Stack) -> (String, String) {
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": USER, "password": stack.password }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    let pair = set_cookie.split(';').next().expect("pair").to_owned();
    (pair, body["token"].as_str().expect("token").to_owned())
}

async fn deployment_count(stack: &Stack, token: &str) -> usize {
    let (status, all) = stack.get(token, "/api/deployments?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    all.as_array().map_or(0, Vec::len)
}

async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_changes_need_the_dashboards_origin_and_json_bodies() {
    let stack = Stack::start().await;
    let (cookie, token) = cookie_login(&stack).await;
    let (status, body) = stack
        .post(&token, "/api/sandboxes", json!({ "name": "alpha" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deploy = json!({ "repo": REPO, "branch": BRANCH }).to_string();
    let http = stack.http();
    let with_cookie = |path: &str| {
        http.post(stack.url(path))
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, "application/json")
    };

    // The request a preview page could make: another origin (same site),
    // the victim's cookie; with JSON, with text/plain, with no body.
    for (origin, site) in [
        ("http://alpha.sdp.test", "same-site"),
        ("http://evil.invalid", "cross-site"),
        ("null", "cross-site"),
    ] {
        for request in [
            with_cookie("/api/sandboxes/alpha/deployments").body(deploy.clone()),
            http.post(stack.url("/api/sandboxes/alpha/deploy"))
                .header(COOKIE, &cookie)
                .header(CONTENT_TYPE, "text/plain")
                .body(deploy.clone()),
            http.post(stack.url("/api/sandboxes/alpha/deploy"))
                .header(COOKIE, &cookie),
            http.delete(stack.url("/api/sandboxes/alpha"))
                .header(COOKIE, &cookie),
        ] {
            let (status, body) = answer(
                request
                    .header(ORIGIN, origin)
                    .header("sec-fetch-site", site),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
            assert_eq!(body["error"]["code"], "forbidden_origin", "{body}");
        }
    }
    // Neither Origin nor Sec-Fetch-Site: not a page of the dashboard.
    let (status, body) =
        answer(with_cookie("/api/sandboxes/alpha/deployments").body(deploy.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = answer(
        with_cookie("/api/sandboxes/alpha/deployments")
            .header("sec-fetch-site", "same-site")
            .body(deploy.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Nothing changed.
    assert_eq!(deployment_count(&stack, &token).await, 0);
    let (status, _) = stack.get(&token, "/api/sandboxes/alpha").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the forged DELETE removed the sandbox"
    );

    // The dashboard's own page: its Origin, or Sec-Fetch-Site alone.
    let (status, body) = answer(
        with_cookie("/api/environments")
            .header(ORIGIN, &stack.base_url)
            .body(json!({ "name": "mine", "vars": {} }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = answer(
        http.put(stack.url("/api/environments/mine"))
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, "application/json")
            .header("sec-fetch-site", "same-origin")
            .body(json!({ "vars": { "A": "1" } }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // With the bearer token (which no page can add) beside the cookie,
    // the token authenticates: not a forgery, whatever the Origin.
    let (status, body) = answer(
        http.put(stack.url("/api/environments/mine"))
            .bearer_auth(&token)
            .header(COOKIE, format!("{cookie}; sdp_session=planted0123456789"))
            .header(CONTENT_TYPE, "application/json")
            .header(ORIGIN, "http://evil.invalid")
            .body(json!({ "vars": { "A": "2" } }).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Reads need no Origin.
    let (status, _) = answer(http.get(stack.url("/api/me")).header(COOKIE, &cookie)).await;
    assert_eq!(status, StatusCode::OK);

    // Bodies must be JSON, for the bearer token too; deploy_template
    // included, even when its body is empty.
    for (path, body) in [
        ("/api/sandboxes/alpha/deployments", deploy.clone()),
        ("/api/sandboxes/alpha/deploy", "{}".to_owned()),
        ("/api/sandboxes/alpha/deploy", String::new()),
        (
            "/api/environments",
            r#"{"name":"plain","vars":{}}"#.to_owned(),
        ),
    ] {
        for content_type in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
        ] {
            let (status, answer) = answer(
                http.post(stack.url(path))
                    .bearer_auth(&token)
                    .header(CONTENT_TYPE, content_type)
                    .body(body.clone()),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {content_type}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unsupported_media_type");
        }
    }
    // A body without a Content-Type is refused too.
    let (status, _) = answer(
        http.post(stack.url("/api/sandboxes/alpha/deploy"))
            .bearer_auth(&token)
            .body("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(deployment_count(&stack, &token).await, 0);
    let (status, _) = stack.get(&token, "/api/environments/plain").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a text/plain body created it"
    );
    // An optional body may be left out (no Content-Type at all): the
    // deploy is judged on its merits (this sandbox has no template).
    let (status, body) = answer(
        http.post(stack.url("/api/sandboxes/alpha/deploy"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("template")),
        "{body}"
    );

    // Two session cookies: neither is used.
    let planted = format!("{cookie}; sdp_session=planted0123456789");
    for request in [
        http.get(stack.url("/api/me")).header(COOKIE, &planted),
        http.post(stack.url("/api/sandboxes/alpha/deployments"))
            .header(COOKIE, &planted)
            .header(ORIGIN, &stack.base_url)
            .header(CONTENT_TYPE, "application/json")
            .body(deploy.clone()),
    ] {
        let (status, body) = answer(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("two session cookies")),
            "{body}"
        );
    }
    // Also as two Cookie headers.
    let (status, _) = answer(
        http.get(stack.url("/api/me"))
            .header(COOKIE, &cookie)
            .header(COOKIE, "sdp_session=planted0123456789"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(deployment_count(&stack, &token).await, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secure_session_cookie_is_host_prefixed() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[("SDP_CONTROL_PLANE__HTTP__SECURE_COOKIES", "true".into())]),
        ..StackOptions::default()
    })
    .await;
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": USER, "password": stack.password }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    assert!(
        attributes[0].starts_with("__Host-sdp_session="),
        "{set_cookie}"
    );
    for attribute in ["Secure", "Path=/", "HttpOnly", "SameSite=Strict"] {
        assert!(attributes.contains(&attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.to_ascii_lowercase().contains("domain="),
        "{set_cookie}"
    );
    let body: Value = response.json().await.expect("json");
    let token = body["token"].as_str().expect("token");
    let me = |cookie: String| {
        let request = stack
            .http()
            .get(stack.url("/api/me"))
            .header(COOKIE, cookie);
        async move { request.send().await.expect("me").status() }
    };
    assert_eq!(
        me(format!("__Host-sdp_session={token}")).await,
        StatusCode::OK
    );
    // The unprefixed name, which another host of the site could set, is
    // not the session cookie here.
    assert_eq!(
        me(format!("sdp_session={token}")).await,
        StatusCode::UNAUTHORIZED
    );
    // Beside the real one it is ignored, not a second session cookie.
    assert_eq!(
        me(format!("sdp_session=planted; __Host-sdp_session={token}")).await,
        StatusCode::OK
    );
    // Logout clears the prefixed cookie.
    let response = stack
        .http()
        .post(stack.url("/api/logout"))
        .header(COOKIE, format!("__Host-sdp_session={token}"))
        .header(ORIGIN, &stack.base_url)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = response.headers()["set-cookie"].to_str().expect("cookie");
    assert!(
        cleared.starts_with("__Host-sdp_session=;") && cleared.contains("Secure"),
        "{cleared}"
    );
    stack.shutdown().await;
}

#[test]
fn previews_on_the_dashboards_site_stop_the_start() {
    let check = |pairs: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sdp-control-plane"))
            .arg("--check-config")
            .env_clear()
            .envs(pairs.iter().copied())
            .output()
            .expect("run --check-config")
    };
    let output = check(&[
        ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", "sdp.internal"),
        (
            "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
            "https://sdp.internal",
        ),
    ]);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "http.preview_domain",
        "http.public_url",
        "http.preview_domain_is_separate_site",
    ] {
        assert!(stderr.contains(key), "{stderr}");
    }
    // No public_url to compare with: refused too, naming it.
    let output = check(&[(
        "SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN",
        "sdp-preview.example.net",
    )]);
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("http.public_url"));
    // The safe layout, and the operator's word.
    for pairs in [
        &[
            (
                "SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN",
                "sdp-preview.example.net",
            ),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "https://sdp.example.com",
            ),
        ][..],
        &[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", "sdp.co.uk"),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "https://dashboard.co.uk",
            ),
            (
                "SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN_IS_SEPARATE_SITE",
                "true",
            ),
        ],
    ] {
        let output = check(pairs);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{pairs:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
