//! [`BaselineServer`]: stands for the shared environment on OpenShift. An
//! axum app on `0.0.0.0` (so containers reach it through the Docker
//! bridge gateway) on a [`ServerThread`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::server_thread::ServerThread;

/// Answers `GET /users/...` with `{"service":"users","source":"baseline",
/// "path":...}`, `GET /orders/...` likewise, `GET /healthz` with `ok`, and
/// anything else with 404. Drop stops it.
#[derive(Debug)]
pub struct BaselineServer {
    server: ServerThread,
    requests: Arc<AtomicUsize>,
}

impl BaselineServer {
    /// Starts on `0.0.0.0:<free port>`; the listener is bound before this
    /// returns.
    pub fn start() -> BaselineServer {
        Self::start_on("0.0.0.0:0")
    }

    /// Like [`BaselineServer::start`], on a given address (the compose
    /// stack's demo publishes a fixed port).
    pub fn start_on(addr: &str) -> BaselineServer {
        let requests = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&requests));
        BaselineServer {
            server: ServerThread::start("baseline", addr, app),
            requests,
        }
    }

    /// `http://<docker bridge gateway>:<port>`: the URL containers use.
    pub fn url(&self) -> String {
        format!(
            "http://{}:{}",
            crate::docker::docker_bridge_gateway(),
            self.server.port()
        )
    }

    /// `http://127.0.0.1:<port>`: the URL for the host.
    pub fn local_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Requests answered so far (every path, `/healthz` included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn handle(State(requests): State<Arc<AtomicUsize>>, request: Request) -> Response {
    requests.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path().to_owned();
    if request.method() != axum::http::Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    if path == "/healthz" {
        return ([(header::CONTENT_TYPE, "text/plain")], "ok").into_response();
    }
    let service = ["users", "orders"].into_iter().find(|service| {
        path.strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(service))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    match service {
        Some(service) => axum::Json(serde_json::json!({
            "service": service,
            "source": "baseline",
            "path": path,
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
