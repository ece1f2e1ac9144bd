//! `agent.cmd.<agent_id>.container_logs`: a running container's own output,
//! streamed to the control plane with backpressure, never stored.
//!
//! One task per request: it finds the deployment's container on this agent
//! (labels `sdp.agent` and `sdp.deployment`), refuses when there is none or
//! it does not run, answers, then reads the output with bollard (stdout and
//! stderr, `tail`, `since`, `follow`), keeps the lines holding the filter (a
//! plain substring, matched here) and publishes them in [`LogBatch`]es on
//! `agent.logs.<agent_id>.<stream_id>.data`. At most `window` batches are
//! unacknowledged: with a slow viewer the task stops reading, Docker's pipe
//! fills, and nothing piles up in the agent or the control plane. The task
//! ends, dropping the Docker request, on a `stop` credit, when no credit
//! came for [`CREDIT_TIMEOUT`] (the control plane is gone), at the end of
//! the log or the container's exit, and at shutdown. Open streams are
//! counted in the heartbeat (`log_streams`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use sdp_bus::{
    ContainerLogs, ContainerLogsStarted, LogBatch, LogCredit, Reply, RpcError, RpcErrorCode,
    decode, encode, subject,
};
use tokio::time::Instant;

use crate::reply::{bad_request, respond};
use crate::state::Agent;

/// The most batches a control plane may leave unacknowledged.
pub const MAX_WINDOW: u32 = 64;
/// The longest `tail` served.
pub const MAX_TAIL: u32 = 10_000;
/// The longest filter accepted, in characters.
pub const MAX_FILTER: usize = 256;
/// A batch holds at most this many lines and bytes.
const BATCH_LINES: usize = 1000;
const BATCH_BYTES: usize = 64 * 1024;
/// A longer line is cut here (a container printing a huge blob without a
/// newline must not grow the agent).
const MAX_LINE: usize = 16 * 1024;
/// A quiet followed stream sends an empty batch this often, so an agent
/// whose control plane vanished without a stop notices.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// With batches unacknowledged and no credit for this long, the viewer is
/// taken to be gone.
pub const CREDIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams one agent serves at once: each holds a Docker log request, a
/// task and a subscription, so a session opening thousands must not take
/// the agent with it.
pub const MAX_STREAMS: u32 = 64;

pub(crate) async fn handle(agent: Arc<Agent>, message: async_nats::Message) {
    let request: ContainerLogs = match decode(&message.payload) {
        Ok(request) => request,
        Err(err) => {
            let body = Reply::<ContainerLogsStarted>::err(bad_request(format!(
                "cannot decode the container_logs request: {err}"
            )));
            respond(&agent, message.reply.clone(), &body).await;
            return;
        }
    };
    // Counted before opening, so concurrent requests see each other.
    let Some(_open) = OpenStream::count(&agent) else {
        let body = Reply::<ContainerLogsStarted>::err(RpcError::new(
            RpcErrorCode::Unavailable,
            format!(
                "this agent already serves {MAX_STREAMS} runtime-log streams: close one and try again"
            ),
        ));
        respond(&agent, message.reply.clone(), &body).await;
        return;
    };
    let opened = open(&agent, &request).await;
    let (output, credits) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            tracing::info!(deployment = %request.deployment_id, error = %err, "runtime log refused");
            respond(
                &agent,
                message.reply.clone(),
                &Reply::<ContainerLogsStarted>::err(err),
            )
            .await;
            return;
        }
    };
    respond(
        &agent,
        message.reply.clone(),
        &Reply::ok(ContainerLogsStarted {}),
    )
    .await;
    tracing::info!(deployment = %request.deployment_id, stream = %request.stream_id, follow = request.follow, "runtime log stream started");
    let mut stream = Stream {
        data: subject::runtime_logs_data(agent.agent_id(), &request.stream_id),
        window: u64::from(request.window),
        lines: Lines::new(request.filter.clone()),
        credits,
        sent: 0,
        acked: 0,
        last_credit: Instant::now(),
        next_keepalive: Instant::now() + KEEPALIVE,
        pending: Vec::new(),
        pending_bytes: 0,
        agent: agent.clone(),
    };
    let why = stream.run(output, request.follow).await;
    tracing::info!(deployment = %request.deployment_id, stream = %request.stream_id, %why, "runtime log stream ended");
}

/// Counts a stream in `Agent::log_streams` while it lives.
struct OpenStream(Arc<Agent>);

impl OpenStream {
    /// `None` when the agent already serves [`MAX_STREAMS`].
    fn count(agent: &Arc<Agent>) -> Option<Self> {
        agent
            .log_streams
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_STREAMS).then_some(n + 1)
            })
            .ok()?;
        Some(Self(agent.clone()))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.log_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

type Output = BoxStream<'static, Result<Bytes, bollard::errors::Error>>;

/// Checks the request, finds the running container, subscribes to the
/// credits (before answering, so no early stop is missed) and opens the
/// Docker log request.
async fn open(
    agent: &Agent,
    request: &ContainerLogs,
) -> Result<(Output, async_nats::Subscriber), RpcError> {
    if !subject::is_token(&request.stream_id) {
        return Err(bad_request("invalid stream id"));
    }
    if request.window == 0 || request.window > MAX_WINDOW {
        return Err(bad_request(format!("window must be 1 to {MAX_WINDOW}")));
    }
    if request.tail.is_some_and(|t| t > MAX_TAIL) {
        return Err(bad_request(format!("tail must be at most {MAX_TAIL}")));
    }
    if request
        .filter
        .as_ref()
        .is_some_and(|f| f.chars().count() > MAX_FILTER)
    {
        return Err(bad_request(format!(
            "the filter must be at most {MAX_FILTER} characters"
        )));
    }
    let since = match request.since {
        None => 0,
        Some(s) => i32::try_from(s)
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| bad_request("since is out of range"))?,
    };
    let container = agent
        .docker
        .deployment_container(agent.agent_id(), request.deployment_id.as_str())
        .await
        .map_err(|e| {
            RpcError::new(
                RpcErrorCode::Internal,
                format!("finding the container failed: {}", e.user_message()),
            )
        })?;
    let id = match container {
        None => {
            return Err(RpcError::new(
                RpcErrorCode::BadRequest,
                format!(
                    "deployment {} has no container on agent {}",
                    request.deployment_id,
                    agent.agent_id()
                ),
            ));
        }
        Some((_, false)) => {
            return Err(RpcError::new(
                RpcErrorCode::BadRequest,
                format!(
                    "the container of deployment {} is not running",
                    request.deployment_id
                ),
            ));
        }
        Some((id, true)) => id,
    };
    let credits = agent
        .client
        .subscribe(subject::runtime_logs_credit(
            agent.agent_id(),
            &request.stream_id,
        ))
        .await
        .map_err(|_| {
            RpcError::new(
                RpcErrorCode::Unavailable,
                "the agent cannot reach NATS properly",
            )
        })?;
    let output = agent
        .docker
        .output(&id, request.tail, since, request.follow);
    Ok((output, credits))
}

/// Why a stream ended.
type End = String;

struct Stream {
    agent: Arc<Agent>,
    data: String,
    window: u64,
    credits: async_nats::Subscriber,
    /// Batches published, and the highest acknowledged.
    sent: u64,
    acked: u64,
    last_credit: Instant,
    /// When a followed stream with nothing published sends a keepalive:
    /// moved on by every batch, not by every read (a filter may drop all
    /// the lines a chatty container writes).
    next_keepalive: Instant,
    /// Lines read and not yet published.
    pending: Vec<String>,
    pending_bytes: usize,
    lines: Lines,
}

impl Stream {
    /// Reads, filters and publishes until the stream ends; returns why.
    async fn run(&mut self, mut output: Output, follow: bool) -> End {
        let shutdown = self.agent.shutdown.clone();
        loop {
            let keepalive = tokio::time::sleep_until(self.next_keepalive);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    return self.finish("the agent is stopping").await.unwrap_or_else(|e| e);
                }
                credit = self.credits.next() => {
                    if let Err(end) = self.credit(credit) {
                        return end;
                    }
                }
                chunk = output.next() => {
                    match chunk {
                        Some(Ok(bytes)) => self.take(&bytes),
                        Some(Err(err)) => {
                            let why = format!("reading the container's output failed: {err}");
                            return self.finish(&why).await.unwrap_or_else(|e| e);
                        }
                        None => {
                            let why = if follow { "exited" } else { "eof" };
                            return self.finish(why).await.unwrap_or_else(|e| e);
                        }
                    }
                    // Take what is ready at once, up to a batch: a loud
                    // container fills batches, a quiet one sends each line.
                    while self.pending.len() < BATCH_LINES && self.pending_bytes < BATCH_BYTES {
                        match output.next().now_or_never() {
                            Some(Some(Ok(bytes))) => self.take(&bytes),
                            _ => break,
                        }
                    }
                    if !self.pending.is_empty()
                        && let Err(end) = self.flush().await
                    {
                        return end;
                    }
                }
                _ = keepalive, if follow => {
                    if self.sent > self.acked && self.last_credit.elapsed() > CREDIT_TIMEOUT {
                        return "no credit from the control plane".to_owned();
                    }
                    if let Err(end) = self.send(Vec::new(), None).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Queues the complete lines of `bytes` that pass the filter.
    fn take(&mut self, bytes: &[u8]) {
        let before = self.pending.len();
        self.lines.push(bytes, &mut self.pending);
        self.pending_bytes += self.pending[before..]
            .iter()
            .map(String::len)
            .sum::<usize>();
    }

    /// Publishes the queued lines in batches.
    async fn flush(&mut self) -> Result<(), End> {
        while !self.pending.is_empty() {
            let mut bytes = 0;
            let take = self
                .pending
                .iter()
                .take_while(|line| {
                    bytes += line.len();
                    bytes <= BATCH_BYTES
                })
                .count()
                .clamp(1, BATCH_LINES);
            let lines: Vec<String> = self.pending.drain(..take).collect();
            self.pending_bytes -= lines.iter().map(String::len).sum::<usize>();
            self.send(lines, None).await?;
        }
        Ok(())
    }

    /// The last line, the queued ones and the end marker.
    async fn finish(&mut self, why: &str) -> Result<End, End> {
        let before = self.pending.len();
        self.lines.finish(&mut self.pending);
        self.pending_bytes += self.pending[before..]
            .iter()
            .map(String::len)
            .sum::<usize>();
        self.flush().await?;
        self.send(Vec::new(), Some(why.to_owned())).await?;
        Ok(why.to_owned())
    }

    /// Waits for room in the window, then publishes one batch.
    async fn send(&mut self, lines: Vec<String>, end: Option<String>) -> Result<(), End> {
        while self.sent - self.acked >= self.window {
            let credit = tokio::select! {
                _ = self.agent.shutdown.cancelled() => return Err("the agent is stopping".to_owned()),
                credit = tokio::time::timeout(CREDIT_TIMEOUT, self.credits.next()) => credit,
            };
            match credit {
                Ok(credit) => self.credit(credit)?,
                Err(_) => return Err("no credit from the control plane".to_owned()),
            }
        }
        self.sent += 1;
        self.next_keepalive = Instant::now() + KEEPALIVE;
        let batch = LogBatch {
            seq: self.sent,
            lines,
            end,
        };
        self.agent
            .client
            .publish(self.data.clone(), Bytes::from(encode(&batch)))
            .await
            .map_err(|e| format!("cannot publish: {e}"))
    }

    /// Applies a credit message; `Err` when the stream must stop.
    fn credit(&mut self, message: Option<async_nats::Message>) -> Result<(), End> {
        let Some(message) = message else {
            return Err("the credit subscription ended".to_owned());
        };
        match decode::<LogCredit>(&message.payload) {
            Ok(credit) if credit.stop => Err("the viewer left".to_owned()),
            Ok(credit) => {
                self.acked = self.acked.max(credit.acked.min(self.sent));
                self.last_credit = Instant::now();
                Ok(())
            }
            Err(err) => {
                tracing::warn!(error = %err, "ignoring a malformed runtime-log credit");
                Ok(())
            }
        }
    }
}

/// Cuts a container's output into lines and keeps those holding the
/// filter. Docker hands out chunks as the container wrote them, so a line
/// may span chunks; a line longer than [`MAX_LINE`] is cut there (the rest
/// up to its newline is dropped) so one huge write cannot grow the agent.
struct Lines {
    filter: Option<String>,
    /// The start of a line whose newline has not come yet.
    partial: Vec<u8>,
}

impl Lines {
    fn new(filter: Option<String>) -> Self {
        Self {
            filter: filter.filter(|f| !f.is_empty()),
            partial: Vec::new(),
        }
    }

    /// Appends the lines `bytes` completes to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            self.extend(&rest[..at]);
            rest = &rest[at + 1..];
            self.line_done(out);
        }
        self.extend(rest);
    }

    /// The last line, if the output ended without a newline.
    fn finish(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() {
            self.line_done(out);
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn line_done(&mut self, out: &mut Vec<String>) {
        let raw = std::mem::take(&mut self.partial);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if line.ends_with('\r') {
            line.pop();
        }
        if self
            .filter
            .as_ref()
            .is_some_and(|f| !line.contains(f.as_str()))
        {
            return;
        }
        out.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(filter: Option<&str>, chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::new(filter.map(str::to_owned));
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk, &mut out);
        }
        lines.finish(&mut out);
        out
    }

    #[test]
    fn lines_may_span_chunks_and_end_without_a_newline() {
        assert_eq!(
            cut(None, &[b"one\ntw", b"o\r\n", b"\nthree"]),
            ["one", "two", "", "three"]
        );
    }

    #[test]
    fn the_filter_is_a_plain_substring() {
        let chunks: &[&[u8]] = &[b"GET /a\nGET /b\n.* $(rm -rf /)\n"];
        assert_eq!(cut(Some("/b"), chunks), ["GET /b"]);
        assert_eq!(cut(Some(".*"), chunks), [".* $(rm -rf /)"]);
        assert_eq!(cut(Some(""), chunks).len(), 3);
    }

    #[test]
    fn a_huge_line_is_cut_and_invalid_utf8_replaced() {
        let long = vec![b'x'; MAX_LINE * 3];
        let out = cut(None, &[&long, b"\n\xff ok\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1], "\u{fffd} ok");
    }
}
