//! A fake HTTP receiver for notifications, on a free loopback port in the
//! test's process: a stand-in for Bitbucket (Cloud or Data Center) and for
//! a webhook endpoint. It records every request (method, path,
//! `Authorization`, JSON body, when it came), refuses a wrong basic auth
//! with 401 when told which one to expect, and can answer the first N
//! requests with 503 or hold each answer back (Bitbucket down or slow).
//! It stops when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One request as it came.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub at: Instant,
    /// What it was answered.
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    fail_first: AtomicUsize,
    delay: Mutex<Duration>,
    expected_auth: Mutex<Option<String>>,
}

pub struct FakeReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl FakeReceiver {
    pub async fn start() -> FakeReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake receiver");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await;
        });
        FakeReceiver { addr, shared, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer the next `n` requests with 503.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_first.store(n, Ordering::SeqCst);
    }

    /// Hold every answer back this long.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("lock") = delay;
    }

    /// Refuse (401) a request whose `Authorization` is not this.
    pub fn expect_auth(&self, header: String) {
        *self.shared.expected_auth.lock().expect("lock") = Some(header);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }
}

impl Drop for FakeReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let delay = *shared.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let expected = shared.expected_auth.lock().expect("lock").clone();
    let failing = shared
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = if expected.is_some() && authorization != expected {
        StatusCode::UNAUTHORIZED
    } else if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::CREATED
    };
    shared.received.lock().expect("lock").push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at,
        answered: answered.as_u16(),
    });
    answered
}
