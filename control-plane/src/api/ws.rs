//! `WS /ws/deployments/{id}?after=N`: a deployment's events as on the bus,
//! history first, then live, each seq once and in order.
//!
//! History comes from the persister's SQLite copy; then a JetStream ordered
//! consumer on `deploy.progress.<id>` replays the stream and follows it,
//! skipping what was already sent. The socket closes (1000) after the
//! result event, or once the deployment is settled and nothing is left.
//!
//! Read-your-events: a phase or result event is forwarded only once the
//! persister has recorded it (and, with a running result, the service's
//! route), so a client that has seen it reads the same in REST. Log lines
//! are not held back. If the persister is down, an event waits at most
//! [`PERSIST_WAIT`], then goes anyway, and later ones of that viewer only
//! briefly until the persister catches up: viewers must not stall.

mod reorder;

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{FutureExt, SinkExt, StreamExt};
use sdp_bus::DeploymentId;
use serde::Deserialize;

use sdp_api::WsQuery;

use super::auth::token_from_headers;
use super::cookie::cookie_name;
use super::runtime_logs::open_stream;
use super::{ApiError, AppState};
use crate::user_streams::StreamKind;
use reorder::Reorder;

/// Events a viewer holds back behind a missing seq before it gives up and
/// closes (the client resumes with `?after=`, from history).
const MAX_AHEAD: usize = 4096;

/// WebSocket close code for a policy violation (no or expired session).
const POLICY_VIOLATION: u16 = 1008;
const NORMAL: u16 = 1000;
/// The longest a phase or result event waits for the persister.
const PERSIST_WAIT: Duration = Duration::from_secs(5);
/// The wait once one has timed out, until the persister catches up again.
const PERSIST_WAIT_BEHIND: Duration = Duration::from_millis(100);

/// The deployment's events as on the bus (`{deployment_id, seq, ts,
/// agent_id, body}`), history first, then live, as WebSocket text
/// messages. The session is checked after the upgrade: without one the
/// socket closes with 1008. It closes with 1000 after the result.
#[utoipa::path(
    get,
    path = "/ws/deployments/{id}",
    operation_id = "follow_deployment",
    tag = "deployments",
    params(
        ("id" = String, Path, description = "The deployment's id"),
        ("after" = Option<u64>, Query, description = "Only events with a greater seq (resume)"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake, or a bad `after` (`bad_request`)", body = super::openapi::ErrorBody),
        (status = 403, description = "The Origin is not allowed (`forbidden_origin`)", body = super::openapi::ErrorBody),
        (status = 426, description = "The connection cannot be upgraded (`upgrade_required`)", body = super::openapi::ErrorBody),
        (status = 429, description = "The caller holds as many deployment WebSockets as one user may (`too_many_streams`; `streams.websockets_per_user`)", body = super::openapi::ErrorBody),
    ),
)]
pub async fn deployment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !origin_allowed(&headers, &state.config.http.allowed_origins) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "this Origin may not open the deployment stream",
        )
        .into_response();
    }
    let Ok(Query(query)) = query else {
        return ApiError::bad_request("after must be a non-negative integer").into_response();
    };
    // Not a WebSocket handshake: the API's error shape, not axum's text.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let status = rejection.status();
            return ApiError::new(
                status,
                if status == StatusCode::UPGRADE_REQUIRED {
                    "upgrade_required"
                } else {
                    "bad_request"
                },
                "expected a WebSocket handshake (GET with Connection: upgrade, \
                 Upgrade: websocket, Sec-WebSocket-Version: 13, Sec-WebSocket-Key)",
            )
            .into_response();
        }
    };
    let session = token_from_headers(&headers, cookie_name(&state.config.http))
        .and_then(|token| state.sessions.lookup(&token).ok().flatten());
    // The per-user bound refuses the handshake itself, with a JSON answer
    // a client can show; the slot is held for the socket's life.
    let slot = match &session {
        Some(session) => match open_stream(&state, session, StreamKind::WebSocket) {
            Ok(slot) => Some(slot),
            Err(err) => return err.into_response(),
        },
        None => None,
    };
    let id = DeploymentId::parse(&id);
    upgrade
        // Viewers only read; small buffers keep idle viewers cheap.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(16 * 1024)
        .on_upgrade(move |socket| async move {
            match (session, id) {
                (None, _) => close(socket, POLICY_VIOLATION, "no session: log in first").await,
                (_, None) => close(socket, POLICY_VIOLATION, "unknown deployment").await,
                (Some(_), Some(id)) => {
                    let _slot = slot;
                    follow(socket, state, id, query.after).await
                }
            }
        })
}

/// A browser's Origin must be the control plane's own or an allowed one;
/// a client that sends none (not a browser) is let through to the session
/// check.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return headers.get(header::ORIGIN).is_none();
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let own = host.is_some_and(|host| {
        origin == format!("http://{host}") || origin == format!("https://{host}")
    });
    own || allowed.iter().any(|a| a == origin)
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        })))
        .await;
}

async fn follow(socket: WebSocket, state: AppState, id: DeploymentId, after: u64) {
    let _viewer = state.viewers.enter();
    let (mut sink, mut incoming) = socket.split();
    let mut last = after;

    // History from SQLite, while it is contiguous.
    let history = match state.store.events_after(id.as_str(), after) {
        Ok(history) => history,
        Err(err) => {
            tracing::error!(error = %err, "cannot read deployment history");
            Vec::new()
        }
    };
    for (seq, body) in history {
        if seq != last + 1 {
            break;
        }
        let ended = EventHead::read(body.as_bytes()).is_some_and(|h| h.body.kind == "result");
        if sink.feed(Message::Text(body.into())).await.is_err() {
            return;
        }
        last = seq;
        if ended {
            let _ = sink.send(close_frame(NORMAL, "deployment settled")).await;
            return;
        }
    }
    if sink.flush().await.is_err() {
        return;
    }

    let js = jetstream::new(state.nats.clone());
    let live = async {
        let stream = js.get_stream(sdp_bus::stream::DEPLOY_PROGRESS).await.ok()?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: sdp_bus::subject::deploy_progress(&id),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .ok()?;
        consumer.messages().await.ok()
    };
    let Some(mut live) = live.await else {
        let _ = sink
            .send(close_frame(1011, "event stream unavailable"))
            .await;
        return;
    };
    let mut persist_wait = PERSIST_WAIT;
    let mut order = Reorder::new(last, MAX_AHEAD);
    let mut check = tokio::time::interval(Duration::from_secs(3));
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            message = live.next() => {
                // Send what is ready in one flush: a syscall per event
                // would cap a busy build's log at the socket's pace.
                let mut ready = vec![message];
                while ready.len() < 512 {
                    match live.next().now_or_never() {
                        Some(message) => ready.push(message),
                        None => break,
                    }
                }
                for message in ready {
                    let Some(Ok(message)) = message else {
                        let _ = sink.send(close_frame(1011, "event stream ended")).await;
                        return;
                    };
                    let Some(head) = EventHead::read(&message.payload) else { continue };
                    // The payload goes out as it came, without a copy.
                    let Ok(text) = Utf8Bytes::try_from(message.payload.clone()) else { continue };
                    if order.push(head.seq, (head.body, text)).is_err() {
                        let _ = sink.send(close_frame(1011, "events out of order: reconnect")).await;
                        return;
                    }
                    while let Some((seq, (body, text))) = order.pop() {
                        if !body.is_log() {
                            if state.store.wait_persisted(id.as_str(), seq, persist_wait).await {
                                persist_wait = PERSIST_WAIT;
                            } else {
                                tracing::warn!(deployment = %id, seq, "forwarding an event the persister has not recorded yet");
                                // The persister is down or far behind: keep
                                // this viewer moving until it catches up.
                                persist_wait = PERSIST_WAIT_BEHIND;
                            }
                        }
                        if sink.feed(Message::Text(text)).await.is_err() {
                            return;
                        }
                        if body.kind == "result" {
                            let _ = sink.send(close_frame(NORMAL, "deployment settled")).await;
                            return;
                        }
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            incoming_message = incoming.next() => match incoming_message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = check.tick() => {
                // A deployment settled with no result event left to send
                // (e.g. failed by the watchdog while the bus was down).
                if let Ok(Some(d)) = state.store.deployment(id.as_str())
                    && d.status.is_settled() && d.last_seq <= order.last() {
                        let _ = sink.send(close_frame(NORMAL, "deployment settled")).await;
                        return;
                    }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The part of an event the bridge needs: its seq and body type, read
/// without building the whole event (the payload is forwarded as is).
#[derive(Deserialize)]
struct EventHead {
    v: u64,
    seq: u64,
    body: EventHeadBody,
}

#[derive(Deserialize)]
struct EventHeadBody {
    #[serde(rename = "type")]
    kind: String,
}

impl EventHeadBody {
    fn is_log(&self) -> bool {
        matches!(self.kind.as_str(), "log" | "logs")
    }
}

impl EventHead {
    fn read(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(payload)
            .ok()
            .filter(|head| head.v == sdp_bus::PROTOCOL_VERSION)
    }
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}
