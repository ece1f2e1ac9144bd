//! Stable sandbox links: a sandbox's gateway URL and its
//! preview link (`<sandbox>.<http.preview_domain>` through the control
//! plane) answer the same through service deploys, route changes and a
//! gateway redeploy; WebSocket upgrades pass through the preview entry.

use sdp_bus::Status;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use sdp_api::{DeploymentStarted, EffectiveRoute, ErrorBody, ListQuery, SandboxView};
use sdp_bus::{Route, RouteSource};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::cli::{Sdp, code, show};
use crate::common::*;
use crate::routing::{deploy_template, from_baseline, from_sandbox, setup};

const DOMAIN: &str = "sdp.test";

fn preview_options(gateway: bool) -> StackOptions {
    StackOptions {
        gateway,
        agent: gateway,
        control_plane_env: pairs(&[
            ("SDP_CONTROL_PLANE__HTTP__PREVIEW_DOMAIN", DOMAIN.into()),
            // The dashboard (127.0.0.1) and previews (*.sdp.test) are two
            // sites, as the start check asks.
            (
                "SDP_CONTROL_PLANE__HTTP__PUBLIC_URL",
                "http://127.0.0.1".into(),
            ),
        ]),
        ..StackOptions::default()
    }
}

/// GETs `path` on the control plane with Host `<sandbox>.sdp.test`.
async fn preview_get(stack: &Stack, sandbox: &str, path: &str) -> Option<(StatusCode, Value)> {
    let response = stack
        .http()
        .get(stack.url(path))
        .header(reqwest::header::HOST, format!("{sandbox}.{DOMAIN}"))
        .send()
        .await
        .ok()?;
    let status = response.status();
    Some((status, response.json().await.ok()?))
}

/// GETs `path` through the preview link until `check` accepts the answer.
async fn through_preview(
    stack: &Stack,
    sandbox: &str,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("{sandbox} preview {path}");
    sdp_testkit::wait_for(&what, Duration::from_secs(90), || async {
        let (_, answer) = preview_get(stack, sandbox, path).await?;
        check(&answer).then_some(answer)
    })
    .await
}

/// Waits until nothing of the sandbox is in flight and its gateway's
/// `routes.json` is the route table REST shows; returns the sandbox view.
pub(crate) async fn wait_converged(stack: &Stack, token: &str, sandbox: &str) -> SandboxView {
    let what = format!("{sandbox} to converge");
    let client = stack.client_with(token);
    let query = ListQuery {
        sandbox: Some(sandbox.to_owned()),
        limit: Some(500),
        ..ListQuery::default()
    };
    sdp_testkit::wait_for(&what, Duration::from_secs(120), || async {
        let deployments = client.deployments(&query).await.ok()?;
        let unsettled = deployments.iter().any(|d| {
            matches!(
                d.status,
                Status::Queued | Status::Fetching | Status::Building | Status::Starting
            )
        });
        if unsettled {
            return None;
        }
        let view = client.sandbox(sandbox).await.ok()?;
        let running = gateway_routes(stack, view.gateway_url.as_deref()?).await?;
        let desired = client.routes(sandbox).await.ok()?;
        (route_set(&running) == effective_route_set(&desired)).then_some(view)
    })
    .await
}

/// The `routes.json` a running gateway holds (the PHP fixture's
/// `GET /routes`), if it answers.
pub(crate) async fn gateway_routes(stack: &Stack, gateway_url: &str) -> Option<Vec<Route>> {
    stack
        .http()
        .get(format!("{gateway_url}/routes"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// (service, target, source) of each route, sorted.
pub(crate) fn route_set(routes: &[Route]) -> Vec<(String, String, RouteSource)> {
    let mut set: Vec<_> = routes
        .iter()
        .map(|r| (r.service.clone(), r.target.clone(), r.source))
        .collect();
    set.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    set
}

/// [`route_set`] of the route table REST shows.
pub(crate) fn effective_route_set(routes: &[EffectiveRoute]) -> Vec<(String, String, RouteSource)> {
    let mut set: Vec<_> = routes
        .iter()
        .map(|r| (r.service.clone(), r.target.clone(), r.source))
        .collect();
    set.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    set
}

async fn gateway_deployments(stack: &Stack, token: &str, sandbox: &str) -> usize {
    let query = ListQuery {
        sandbox: Some(sandbox.to_owned()),
        repo: Some("gateway".to_owned()),
        limit: Some(500),
        ..ListQuery::default()
    };
    stack
        .client_with(token)
        .deployments(&query)
        .await
        .expect("the gateway's deployments")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_keeps_its_urls_through_deploys_route_changes_and_a_gateway_redeploy() {
    let stack = Stack::start_with(preview_options(true)).await;
    let token = stack.login().await;
    setup(&stack, &token).await;
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "alpha", "template": "shop" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: SandboxView = serde_json::from_value(body).expect("a sandbox view");
    assert_eq!(
        created.preview_url.as_deref(),
        Some(format!("http://alpha.{DOMAIN}/").as_str())
    );
    // No gateway yet: the link says so.
    let (status, answer) = preview_get(&stack, "alpha", "/users/1")
        .await
        .expect("answer");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let refused: ErrorBody = serde_json::from_value(answer).expect("an error answer");
    assert_eq!(refused.error.code, "no_gateway");
    let (status, answer) = preview_get(&stack, "ghost", "/").await.expect("answer");
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    deploy_template(
        &stack,
        &token,
        "alpha",
        json!({ "branches": { "users": BRANCH }, "only": ["users"] }),
    )
    .await;
    let view = wait_converged(&stack, &token, "alpha").await;
    let first_url = view.gateway_url.clone().expect("gateway url");
    let preview_url = view.preview_url.clone();
    let users = through_preview(&stack, "alpha", "/users/1", from_sandbox(BRANCH)).await;
    assert_eq!(users["gateway"]["sandbox"], "alpha");
    through_preview(&stack, "alpha", "/orders/1", from_baseline).await;

    let same_urls = |view: &SandboxView, step: &str| {
        assert_eq!(
            view.gateway_url.as_deref(),
            Some(first_url.as_str()),
            "gateway URL after {step}"
        );
        assert_eq!(view.preview_url, preview_url, "preview URL after {step}");
    };

    // A service deployed into the sandbox: its route changes, the URLs not.
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": "orders", "branch": "feature/y" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    through_preview(&stack, "alpha", "/orders/1", from_sandbox("feature/y")).await;
    same_urls(
        &wait_converged(&stack, &token, "alpha").await,
        "a service deploy",
    );

    // A manual route, then its reset, with the CLI: the gateway answers
    // from where the routes say.
    let baseline = stack.routing.as_ref().expect("routing").baseline.url();
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp
        .run(&["routes", "set", "alpha", "users", &baseline])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    through_preview(&stack, "alpha", "/users/1", from_baseline).await;
    same_urls(
        &wait_converged(&stack, &token, "alpha").await,
        "a manual route",
    );
    let out = sdp.run(&["routes", "reset", "alpha", "users"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    through_preview(&stack, "alpha", "/users/1", from_sandbox(BRANCH)).await;
    same_urls(
        &wait_converged(&stack, &token, "alpha").await,
        "a route reset",
    );
    let out = sdp.run(&["open", "alpha"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("http://alpha.{DOMAIN}/")),
        "sdp open prints the preview link: {}",
        show(&out)
    );

    // A redeploy of a service on its kept port changes no route: the
    // gateway is not restarted for it.
    let gateways_before = gateway_deployments(&stack, &token, "alpha").await;
    stack.fixture.push_revision(BRANCH, "r2");
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );
    same_urls(
        &wait_converged(&stack, &token, "alpha").await,
        "a service redeploy",
    );
    assert_eq!(
        gateway_deployments(&stack, &token, "alpha").await,
        gateways_before,
        "no re-apply when the routes did not change"
    );

    // The gateway itself redeployed.
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": "gateway", "branch": "main" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let started: DeploymentStarted = serde_json::from_value(body).expect("a started deployment");
    let gateway = stack.wait_settled(&token, started.id.as_str()).await;
    assert_eq!(gateway.status, Status::Running, "{gateway:?}");
    assert_eq!(gateway.url.as_deref(), Some(first_url.as_str()));
    same_urls(
        &wait_converged(&stack, &token, "alpha").await,
        "a gateway redeploy",
    );
    through_preview(&stack, "alpha", "/users/1", from_sandbox(BRANCH)).await;

    // The dashboard stays on the control plane's own host.
    let page = stack
        .http()
        .get(stack.url("/"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(page.status(), StatusCode::OK);
    stack.shutdown().await;
}

/// A WebSocket echo server standing for a gateway that upgrades.
async fn echo_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_entry_carries_websocket_upgrades() {
    let stack = Stack::start_with(preview_options(false)).await;
    let (port, server) = echo_server().await;
    // A sandbox whose running gateway is the echo server.
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("db");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    db.execute(
        "INSERT INTO sandboxes (name, owner, created_at) VALUES ('ws', 'dev', ?1)",
        [&now],
    )
    .expect("sandbox");
    db.execute(
        "INSERT INTO deployments (id, sandbox, repo, branch, kind, status, url, created_by, \
         created_at, updated_at) VALUES ('0190c0de-0000-7000-8000-000000000001', 'ws', 'gateway', \
         'main', 'gateway', 'running', ?1, 'dev', ?2, ?2)",
        rusqlite::params![format!("http://127.0.0.1:{port}"), now],
    )
    .expect("gateway deployment");

    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(stack.ws_url("/echo"))
            .expect("request");
    request
        .headers_mut()
        .insert("Host", format!("ws.{DOMAIN}").parse().expect("host"));
    let (mut socket, response) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("upgrade in time")
    .expect("upgraded through the preview entry");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for n in 0..20 {
        let text = format!("hello {n}");
        socket
            .send(tungstenite::Message::text(text.clone()))
            .await
            .expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("echo in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(echoed.into_text().expect("text").as_str(), text);
    }
    socket.close(None).await.expect("close");
    server.abort();
    stack.shutdown().await;
}

/// The Set-Cookie headers a gateway answers `/cookies` with: the session
/// cookie in every spelling a browser would take, and one of its own.
const PLANTED: [&str; 6] = [
    "sdp_session=planted; Domain=sdp.test; Path=/",
    "SDP_SESSION=planted; domain=.sdp.test",
    "__Host-sdp_session=planted; Secure; Path=/",
    "=sdp_session=planted; Domain=sdp.test",
    " sdp_session =planted",
    "theme=dark; Path=/",
];

fn cookie_planting_gateway() -> String {
    let headers: String = PLANTED
        .iter()
        .map(|value| format!("    header('Set-Cookie: {value}', false);\n"))
        .collect();
    let planting = format!(
        "<?php\nif (parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) === '/cookies') {{\n\
         {headers}    header('Content-Type: text/plain');\n    echo 'cookies';\n    return true;\n}}\n"
    );
    sdp_testkit::php_gateway_source("cookies").replacen("<?php\n", &planting, 1)
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateways_session_cookies_never_reach_the_browser() {
    let stack = Stack::start_with(preview_options(true)).await;
    let token = stack.login().await;
    setup(&stack, &token).await;
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "alpha", "template": "shop" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let routing = stack.routing.as_ref().expect("gateway stack");
    routing
        .gateway
        .push_file("main", "index.php", &cookie_planting_gateway());
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": "gateway", "branch": "main" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let started: DeploymentStarted = serde_json::from_value(body).expect("a started deployment");
    let deployment = stack.wait_settled(&token, started.id.as_str()).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");

    // The gateway's own port answers with every cookie...
    let view = stack
        .client_with(&token)
        .sandbox("alpha")
        .await
        .expect("sandbox alpha");
    let gateway_url = view.gateway_url.as_deref().expect("gateway_url");
    let direct = stack
        .http()
        .get(format!("{gateway_url}/cookies"))
        .send()
        .await
        .expect("gateway");
    assert_eq!(set_cookies(&direct).len(), PLANTED.len(), "{direct:?}");

    // ...the preview link passes only its own.
    let response = stack
        .http()
        .get(stack.url("/cookies"))
        .header(reqwest::header::HOST, format!("alpha.{DOMAIN}"))
        .send()
        .await
        .expect("preview");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(set_cookies(&response), ["theme=dark; Path=/"]);
    assert_eq!(response.text().await.expect("body"), "cookies");
    stack.shutdown().await;
}
