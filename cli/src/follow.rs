//! Follows a deployment's WebSocket, `/ws/deployments/{id}?after=N`, to
//! its result. The server sends history then live events, each `seq` once
//! and in order, and closes (1000) after the result. When the socket drops
//! (the control plane restarts, the network blips) the follower reconnects
//! with `?after=<last seq seen>`, so nothing is missed or repeated; it
//! gives up after `reconnect_window` of failed attempts.

use std::time::{Duration, Instant};

use futures::StreamExt;
use sdp_api::ErrorBody;
use sdp_bus::{Event, EventBody, Status};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use crate::api::{Client, segment};
use crate::error::CliError;

/// The server pings every 30 s; silence much longer than that is a drop.
const IDLE_LIMIT: Duration = Duration::from_secs(75);
const NORMAL_CLOSE: u16 = 1000;
const POLICY_VIOLATION: u16 = 1008;

/// The `seq` of an event, read before the whole event (a newer server's
/// event this build cannot decode still counts).
#[derive(Deserialize)]
struct EventSeq {
    seq: u64,
}

/// What the follower tells its caller, in order.
pub enum Update<'a> {
    /// An event, each seq once. Events a newer server sends that this build
    /// cannot decode are skipped (their seq still counts).
    Event(&'a Event),
    /// The socket dropped; reconnecting.
    Dropped { reason: String },
    /// Reconnected, resuming after `after`.
    Resumed { after: u64 },
}

/// How a followed deployment ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub url: Option<String>,
    pub error: Option<String>,
    pub last_seq: u64,
}

pub struct Follower<'c> {
    client: &'c Client,
    id: String,
    /// The last seq seen: where a reconnect resumes.
    pub last_seq: u64,
    pub reconnect_window: Duration,
}

enum Ended {
    Result(Outcome),
    /// Closed normally with no result event left to send.
    Settled,
    Dropped(String),
}

impl<'c> Follower<'c> {
    pub fn new(client: &'c Client, id: &str, after: u64) -> Follower<'c> {
        Follower {
            client,
            id: id.to_owned(),
            last_seq: after,
            reconnect_window: Duration::from_secs(120),
        }
    }

    /// Follows to the result, handing every update to `on`.
    pub async fn run(&mut self, mut on: impl FnMut(Update<'_>)) -> Result<Outcome, CliError> {
        let mut dropped_since: Option<Instant> = None;
        let mut delay = Duration::from_millis(200);
        loop {
            let reason = match self.connect().await? {
                Err(reason) => reason,
                Ok(socket) => {
                    if dropped_since.take().is_some() {
                        on(Update::Resumed {
                            after: self.last_seq,
                        });
                    }
                    delay = Duration::from_millis(200);
                    match self.read(socket, &mut on).await? {
                        Ended::Result(outcome) => return Ok(outcome),
                        Ended::Settled => match self.settled_outcome().await? {
                            Some(outcome) => return Ok(outcome),
                            None => "the stream closed before the deployment settled".to_owned(),
                        },
                        Ended::Dropped(reason) => reason,
                    }
                }
            };
            let since = match dropped_since {
                Some(since) => since,
                None => {
                    on(Update::Dropped {
                        reason: reason.clone(),
                    });
                    *dropped_since.insert(Instant::now())
                }
            };
            if since.elapsed() >= self.reconnect_window {
                return Err(CliError::Stream {
                    id: self.id.clone(),
                    reason,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Opens the socket. The outer error is fatal; the inner one is a
    /// reason to retry.
    async fn connect(
        &self,
    ) -> Result<
        Result<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
            String,
        >,
        CliError,
    > {
        let url = self.client.ws_url(&format!(
            "/ws/deployments/{}?after={}",
            segment(&self.id),
            self.last_seq
        ));
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| CliError::Usage(format!("bad control plane URL: {e}")))?;
        if let Some(token) = self.client.token() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| CliError::Usage("the token holds invalid characters".to_owned()))?;
            request.headers_mut().insert("Authorization", value);
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Ok(socket)),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                if status >= 500 {
                    return Ok(Err(format!("HTTP {status}")));
                }
                let error = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok())
                    .map(|body| body.error);
                Err(CliError::api(
                    status,
                    error
                        .as_ref()
                        .map_or("http_error", |e| e.code.as_str())
                        .to_owned(),
                    error.map_or_else(
                        || format!("the WebSocket was refused (HTTP {status})"),
                        |e| e.message,
                    ),
                ))
            }
            Err(err) => Ok(Err(err.to_string())),
        }
    }

    async fn read<S>(
        &mut self,
        mut socket: tokio_tungstenite::WebSocketStream<S>,
        on: &mut impl FnMut(Update<'_>),
    ) -> Result<Ended, CliError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        loop {
            let message = match tokio::time::timeout(IDLE_LIMIT, socket.next()).await {
                Err(_) => return Ok(Ended::Dropped("no message for 75 s".to_owned())),
                Ok(None) => return Ok(Ended::Dropped("connection closed".to_owned())),
                Ok(Some(Err(err))) => return Ok(Ended::Dropped(err.to_string())),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    let Ok(EventSeq { seq }) = serde_json::from_str(&text) else {
                        continue;
                    };
                    if seq <= self.last_seq {
                        continue;
                    }
                    self.last_seq = seq;
                    let Ok(event) = sdp_bus::decode::<Event>(text.as_bytes()) else {
                        continue;
                    };
                    on(Update::Event(&event));
                    if let EventBody::Result {
                        status, url, error, ..
                    } = event.body
                    {
                        let _ = socket.close(None).await;
                        return Ok(Ended::Result(Outcome {
                            status,
                            url,
                            error,
                            last_seq: seq,
                        }));
                    }
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((0, String::new()));
                    return match code {
                        NORMAL_CLOSE => Ok(Ended::Settled),
                        POLICY_VIOLATION => Err(CliError::StreamAuth {
                            id: self.id.clone(),
                            reason,
                        }),
                        _ => Ok(Ended::Dropped(format!("closed ({code}): {reason}"))),
                    };
                }
                _ => {}
            }
        }
    }

    /// After a normal close with no result event: the deployment as REST
    /// sees it, if settled.
    async fn settled_outcome(&self) -> Result<Option<Outcome>, CliError> {
        let deployment = self.client.deployment(&self.id).await?;
        Ok(deployment.status.is_settled().then_some(Outcome {
            status: deployment.status,
            url: deployment.url,
            error: deployment.error,
            last_seq: self.last_seq,
        }))
    }
}
