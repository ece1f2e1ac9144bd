//! The preview entry's choice of sandbox and its hold on a sleeping one,
//! against stand-in gateways (local HTTP servers recorded as the running
//! gateways of sandboxes): the bare preview host routes by `X-SDP-Sandbox`
//! or the `baggage` entry `sdp-sandbox`; a sandbox's own host wins over any
//! header; an unknown or invalid name is refused. A request for a sleeping
//! sandbox wakes it: a browser gets the "waking" page after 1 s, other
//! requests are held (many, one wake) and answered once it is healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode as AxumStatus, Uri};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

const DOMAIN: &str = "sdp.test";

/// A stand-in gateway: answers every path with its name, the path and
/// the sandbox headers it got, and 503 while `healthy` is false.
async fn fake_gateway(name: &'static str, healthy: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let healthy = healthy.clone();
        async move {
            let header = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let body = axum::Json(json!({
                "gateway": name,
                "path": uri.path(),
                "x_sdp_sandbox": header("x-sdp-sandbox"),
                "baggage": header("baggage"),
            }));
            if healthy.load(Ordering::SeqCst) {
                (AxumStatus::OK, body)
            } else {
                (AxumStatus::SERVICE_UNAVAILABLE, body)
            }
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn open_db(stack: &Stack) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("db");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    db
}

/// Records sandbox `name` (in `state`) whose running gateway is on `port`.
fn sandbox_on(db: &rusqlite::Connection, name: &str, n: u32, port: u16, state: &str) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    db.execute(
        "INSERT INTO sandboxes (name, owner, created_at, expires_at, power) \
         VALUES (?1, 'dev', ?2, '2999-01-01T00:00:00.000Z', ?3)",
        rusqlite::params![name, now, state],
    )
    .expect("sandbox");
    db.execute(
        "INSERT INTO deployments (id, sandbox, repo, branch, kind, status, url, created_by, \
         created_at, updated_at) VALUES (?1, ?2, 'gateway', 'main', 'gateway', 'running', ?3, \
         'dev', ?4, ?4)",
        rusqlite::params![
            format!("0190c0de-0000-7000-8000-00000000000{n}"),
            name,
            format!("http://127.0.0.1:{port}"),
            now
        ],
    )
    .expect("gateway deployment");
}

fn state_of(db: &rusqlite::Connection, name: &str) -> String {
    db.query_row(
        "SELECT power FROM sandboxes WHERE name = ?1",
        [name],
        |row| row.get(0),
    )
    .expect("state")
}

fn preview_stack() -> StackOptions {
    StackOptions {
        agent: false,
        control_plane_env: pairs(&[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", DOMAIN.into()),
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "http://127.0.0.1".into(),
            ),
        ]),
        ..StackOptions::default()
    }
}

/// GET `/hello` with Host `host` and the headers given.
async fn get(stack: &Stack, host: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = stack
        .http()
        .get(stack.url("/hello"))
        .header(reqwest::header::HOST, host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_preview_host_routes_by_header_and_a_sandboxs_host_wins() {
    let stack = Stack::start_with(preview_stack()).await;
    let up = Arc::new(AtomicBool::new(true));
    let alpha = fake_gateway("alpha", up.clone()).await;
    let beta = fake_gateway("beta", up.clone()).await;
    let db = open_db(&stack);
    sandbox_on(&db, "alpha", 1, alpha, "awake");
    sandbox_on(&db, "beta", 2, beta, "awake");
    let bare = format!("{DOMAIN}:8080");

    let (status, answer) = get(&stack, &bare, &[("X-SDP-Sandbox", "alpha")]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["gateway"], "alpha");
    assert_eq!(answer["path"], "/hello");
    assert_eq!(
        answer["x_sdp_sandbox"], "alpha",
        "the header reaches the gateway"
    );

    let baggage = "userId=7;prop=1, sdp-sandbox=beta;ttl=3, other=x";
    let (status, answer) = get(&stack, DOMAIN, &[("baggage", baggage)]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["gateway"], "beta");
    assert_eq!(
        answer["baggage"], baggage,
        "baggage is passed on for the services"
    );

    // Both: the dedicated header wins.
    let (_, answer) = get(
        &stack,
        DOMAIN,
        &[("X-SDP-Sandbox", "alpha"), ("baggage", "sdp-sandbox=beta")],
    )
    .await;
    assert_eq!(answer["gateway"], "alpha");

    // A sandbox's own host wins over any header: no header reaches another
    // sandbox through it.
    for headers in [
        [("X-SDP-Sandbox", "beta")].as_slice(),
        [("baggage", "sdp-sandbox=beta")].as_slice(),
        [("X-SDP-Sandbox", "ghost")].as_slice(),
    ] {
        let (status, answer) = get(&stack, &format!("alpha.{DOMAIN}"), headers).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}: {answer}");
        assert_eq!(answer["gateway"], "alpha", "{headers:?}");
    }

    // Unknown and invalid names are refused.
    let (status, answer) = get(&stack, DOMAIN, &[("X-SDP-Sandbox", "ghost")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "no_gateway");
    let (status, _) = get(&stack, DOMAIN, &[("baggage", "sdp-sandbox=ghost")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in [
        ("X-SDP-Sandbox", "../alpha"),
        ("baggage", "sdp-sandbox=Alpha%2F"),
    ] {
        let (status, answer) = get(&stack, DOMAIN, &[bad]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }

    // Headers do nothing on any other host: the control plane answers.
    let response = stack
        .http()
        .get(stack.url("/healthz"))
        .header("X-SDP-Sandbox", "alpha")
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.expect("text");
    assert!(!body.contains("alpha"), "{body}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_a_sleeping_sandbox_is_held_until_it_is_healthy() {
    let stack = Stack::start_with(preview_stack()).await;
    let healthy = Arc::new(AtomicBool::new(false));
    let port = fake_gateway("drowsy", healthy.clone()).await;
    let db = open_db(&stack);
    sandbox_on(&db, "drowsy", 3, port, "asleep");
    let host = format!("drowsy.{DOMAIN}");

    // A browser: the waking page after about a second.
    let started = Instant::now();
    let page = stack
        .http()
        .get(stack.url("/"))
        .header(reqwest::header::HOST, &host)
        .header(
            reqwest::header::ACCEPT,
            "text/html,application/xhtml+xml,*/*;q=0.8",
        )
        .send()
        .await
        .expect("the waking page");
    let waited = started.elapsed();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(10),
        "the page comes after about 1 s, not {waited:?}"
    );
    assert!(page.headers().contains_key(reqwest::header::RETRY_AFTER));
    assert!(
        page.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Waking sandbox drowsy") && html.contains("http-equiv=\"refresh\""),
        "{html}"
    );
    assert_eq!(state_of(&db, "drowsy"), "waking");

    // Other clients are held, many of them on the one wake, and answered
    // once the gateway is healthy.
    let held: Vec<_> = (0..5)
        .map(|n| {
            let (http, url, host) = (stack.http().clone(), stack.url("/hello"), host.clone());
            tokio::spawn(async move {
                let response = http
                    .get(url)
                    .header(reqwest::header::HOST, host)
                    .header("X-Request", n.to_string())
                    .send()
                    .await
                    .expect("held request");
                (response.status(), response.json::<Value>().await.ok())
            })
        })
        .collect();
    // Still waking while the gateway is not healthy: nothing answered yet.
    sdp_testkit::wait_for(
        "the wake to poll health",
        Duration::from_secs(10),
        || async { (state_of(&db, "drowsy") == "waking").then_some(()) },
    )
    .await;
    assert!(held.iter().all(|h| !h.is_finished()), "held until healthy");
    healthy.store(true, Ordering::SeqCst);
    for request in held {
        let (status, answer) = request.await.expect("joined");
        assert_eq!(status, StatusCode::OK, "{answer:?}");
        let answer = answer.expect("json");
        assert_eq!(answer["gateway"], "drowsy");
        assert_eq!(answer["path"], "/hello");
    }
    assert_eq!(state_of(&db, "drowsy"), "awake");
    let activity: Option<String> = db
        .query_row(
            "SELECT last_activity_at FROM sandboxes WHERE name = 'drowsy'",
            [],
            |row| row.get(0),
        )
        .expect("activity");
    assert!(activity.is_some(), "requests count as activity");
    stack.shutdown().await;
}
