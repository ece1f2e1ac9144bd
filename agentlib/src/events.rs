//! [`EventSink`]: the one ordered publisher of a deployment's events on
//! `deploy.progress.<id>` (JetStream).
//!
//! Each event gets the next `seq` and the `Nats-Msg-Id` header
//! `<id>.<seq>`, so a retried publish is stored once. Phases and results are
//! published and acked before the call returns; log lines are pipelined (up
//! to [`WINDOW`] unacked events) and their acks awaited in order. A failed
//! publish or ack is retried with the same seq — and every event after it
//! re-sent in order — until it is acked or `give_up` fires; a seq is never
//! skipped.
//!
//! Log lines travel as `logs` batches: [`EventSink::log_lines`] takes the
//! lines that are ready (the build's reader hands over all it has read
//! while the previous batch was being published), and cuts them into
//! events of one stream each, at most [`BATCH_LINES`] lines and
//! [`BATCH_BYTES`] bytes. No timer holds a line back: a slow build sends
//! each line at once, a fast one sends fewer, fuller messages — the batch
//! grows exactly as much as publishing lags behind.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sdp_bus::{DeploymentId, Event, EventBody, LogStream, Status};
use tokio_util::sync::CancellationToken;

/// Events in flight before the oldest ack is awaited.
pub const WINDOW: usize = 64;
/// Longer lines are cut (NATS payloads are bounded).
pub const MAX_LINE: usize = 16 * 1024;
/// Most lines in one `logs` event.
pub const BATCH_LINES: usize = 2000;
/// A `logs` event is closed once its lines reach this many bytes (well
/// under NATS's 1 MB payload, and a comfortable WebSocket frame).
pub const BATCH_BYTES: usize = 64 * 1024;

/// One line of output as read, with when it was read: a batch's event
/// carries the time of its first line, so latency is measured from the
/// moment the agent had the line.
#[derive(Clone, Debug)]
pub struct OutputLine {
    pub stream: LogStream,
    pub text: String,
    pub at: DateTime<Utc>,
}

impl OutputLine {
    pub fn now(stream: LogStream, text: impl Into<String>) -> Self {
        Self {
            stream,
            text: text.into(),
            at: Utc::now(),
        }
    }
}

struct Slot {
    seq: u64,
    /// The encoded event, made once: a retry re-sends these bytes.
    payload: Bytes,
    /// Handed to the server (its ack may still be outstanding).
    sent: bool,
    ack: Option<PublishAckFuture>,
}

pub struct EventSink {
    js: jetstream::Context,
    deployment_id: DeploymentId,
    agent_id: String,
    subject: String,
    seq: u64,
    /// Log lines emitted so far: the next batch's `first_line` - 1.
    lines: u64,
    /// Emitted, not yet acked, in seq order. Every method leaves an event
    /// here until its ack arrives, so dropping a call half-way (a cancelled
    /// step) loses nothing: the next call re-sends it.
    pending: VecDeque<Slot>,
    /// How many slots at the front of `pending` are sent (sending is in
    /// order, so they are a prefix): where `send_unsent` resumes.
    sent: usize,
    give_up: CancellationToken,
    gave_up: bool,
}

impl EventSink {
    pub fn new(
        js: jetstream::Context,
        deployment_id: DeploymentId,
        agent_id: String,
        give_up: CancellationToken,
    ) -> Self {
        let subject = sdp_bus::subject::deploy_progress(&deployment_id);
        Self {
            js,
            deployment_id,
            agent_id,
            subject,
            seq: 0,
            lines: 0,
            pending: VecDeque::new(),
            sent: 0,
            give_up,
            gave_up: false,
        }
    }

    /// The seq of the last event emitted.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn deployment_id(&self) -> &DeploymentId {
        &self.deployment_id
    }

    /// Publishes a phase change and waits for every event so far to be acked.
    pub async fn phase(&mut self, phase: Status, commit: Option<String>) {
        self.push(EventBody::Phase { phase, commit }).await;
        self.flush().await;
    }

    /// Publishes one log line (pipelined).
    pub async fn log(&mut self, stream: LogStream, line: impl Into<String>) {
        self.log_lines(vec![OutputLine::now(stream, line)]).await;
    }

    /// Publishes lines in order as `logs` events (pipelined): one event per
    /// run of one stream, cut at [`BATCH_LINES`] / [`BATCH_BYTES`].
    pub async fn log_lines(&mut self, lines: Vec<OutputLine>) {
        let mut lines = lines.into_iter().peekable();
        while let Some(first) = lines.next() {
            let (stream, at) = (first.stream, first.at);
            let mut bytes = first.text.len();
            let mut batch = vec![cut(first.text)];
            while let Some(next) = lines.next_if(|next| {
                next.stream == stream
                    && batch.len() < BATCH_LINES
                    && bytes + next.text.len().min(MAX_LINE) <= BATCH_BYTES
            }) {
                bytes += next.text.len();
                batch.push(cut(next.text));
            }
            let first_line = self.lines + 1;
            self.lines += batch.len() as u64;
            self.push_at(
                EventBody::Logs {
                    stream,
                    first_line,
                    lines: batch,
                },
                at,
            )
            .await;
        }
    }

    pub async fn system(&mut self, line: impl Into<String>) {
        self.log(LogStream::System, line).await;
    }

    /// Publishes the result and waits for every event to be acked.
    pub async fn result(&mut self, body: EventBody) {
        self.push(body).await;
        self.flush().await;
    }

    async fn push(&mut self, body: EventBody) {
        self.push_at(body, Utc::now()).await;
    }

    async fn push_at(&mut self, body: EventBody, ts: DateTime<Utc>) {
        if self.gave_up {
            return;
        }
        self.seq += 1;
        let event = Event {
            deployment_id: self.deployment_id.clone(),
            seq: self.seq,
            ts,
            agent_id: self.agent_id.clone(),
            body,
        };
        self.pending.push_back(Slot {
            seq: event.seq,
            payload: Bytes::from(sdp_bus::encode(&event)),
            sent: false,
            ack: None,
        });
        self.send_unsent().await;
        while self.pending.len() > WINDOW && !self.gave_up {
            self.settle_oldest().await;
        }
    }

    /// Waits until every event emitted so far is acked (or `give_up`).
    pub async fn flush(&mut self) {
        while !self.pending.is_empty() && !self.gave_up {
            self.settle_oldest().await;
        }
    }

    /// Hands every unsent event to the server, in order; stops at the first
    /// failure so that a later event never overtakes an earlier one.
    async fn send_unsent(&mut self) {
        while self.sent < self.pending.len() {
            let i = self.sent;
            let (seq, payload) = (self.pending[i].seq, self.pending[i].payload.clone());
            match self.publish(seq, payload).await {
                Some(ack) => {
                    self.pending[i].ack = Some(ack);
                    self.pending[i].sent = true;
                    self.sent += 1;
                }
                None => return,
            }
        }
    }

    async fn publish(&self, seq: u64, payload: Bytes) -> Option<PublishAckFuture> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            sdp_bus::stream::msg_id(&self.deployment_id, seq).as_str(),
        );
        match self
            .js
            .publish_with_headers(self.subject.clone(), headers, payload)
            .await
        {
            Ok(ack) => Some(ack),
            Err(err) => {
                tracing::warn!(deployment = %self.deployment_id, seq, error = %err, "publishing an event failed; will retry");
                None
            }
        }
    }

    /// Awaits the oldest event's ack; on failure re-sends it and everything
    /// after it, in order (JetStream drops those it already stored: same
    /// Nats-Msg-Id), with backoff.
    async fn settle_oldest(&mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            self.send_unsent().await;
            let Some(front) = self.pending.front_mut() else {
                return;
            };
            let acked = match (front.sent, front.ack.take()) {
                (true, Some(ack)) => match ack.await {
                    Ok(_) => true,
                    Err(err) => {
                        tracing::warn!(deployment = %self.deployment_id, error = %err, "event not acked; will retry");
                        false
                    }
                },
                _ => false,
            };
            if acked {
                self.pending.pop_front();
                self.sent = self.sent.saturating_sub(1);
                return;
            }
            for slot in &mut self.pending {
                slot.sent = false;
                slot.ack = None;
            }
            self.sent = 0;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.give_up.cancelled() => {
                    tracing::error!(deployment = %self.deployment_id, unacked = self.pending.len(), "giving up publishing events at shutdown");
                    self.pending.clear();
                    self.sent = 0;
                    self.gave_up = true;
                    return;
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Cuts a line longer than [`MAX_LINE`] at a char boundary, marking the cut.
fn cut(mut line: String) -> String {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str(" […]");
    }
    line
}
