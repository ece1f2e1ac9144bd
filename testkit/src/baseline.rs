//! [`BaselineServer`]: stands for the shared environment on OpenShift. An
//! axum server on `0.0.0.0` (so containers reach it through the Docker
//! bridge gateway) on its own thread and current-thread runtime.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

/// Answers `GET /users/...` with `{"service":"users","source":"baseline",
/// "path":...}`, `GET /orders/...` likewise, `GET /healthz` with `ok`, and
/// anything else with 404. Drop stops it.
#[derive(Debug)]
pub struct BaselineServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
        let listener = TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("cannot bind the baseline server on {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("cannot set listener non-blocking: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local addr: {e}"))
            .port();
        let requests = Arc::new(AtomicUsize::new(0));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let counter = Arc::clone(&requests);
        let thread = std::thread::Builder::new()
            .name(format!("baseline-{port}"))
            .spawn(move || serve(listener, counter, shutdown_rx))
            .unwrap_or_else(|e| panic!("cannot spawn the baseline server thread: {e}"));
        BaselineServer {
            port,
            requests,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// `http://<docker bridge gateway>:<port>`: the URL containers use.
    pub fn url(&self) -> String {
        format!(
            "http://{}:{}",
            crate::docker::docker_bridge_gateway(),
            self.port
        )
    }

    /// `http://127.0.0.1:<port>`: the URL for the host.
    pub fn local_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests answered so far (every path, `/healthz` included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for BaselineServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, requests: Arc<AtomicUsize>, shutdown: oneshot::Receiver<()>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "baseline server: cannot build runtime");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "baseline server: cannot register listener");
                return;
            }
        };
        let app = Router::new().fallback(handle).with_state(requests);
        let server = std::future::IntoFuture::into_future(axum::serve(listener, app));
        tokio::select! {
            res = server => if let Err(e) = res {
                tracing::error!(error = %e, "baseline server stopped");
            },
            _ = shutdown => {}
        }
    });
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
