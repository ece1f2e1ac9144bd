//! The control plane's end of a runtime-log stream (a running container's
//! own output, `GET /api/deployments/{id}/runtime-logs`). Nothing is
//! stored: lines go from the agent to the HTTP response.
//!
//! [`open`] subscribes to `agent.logs.<agent_id>.<stream_id>.data` (a
//! fresh random `stream_id`), asks the agent `agent.cmd.<agent_id>.container_logs`
//! and returns the lines as a stream of text chunks. Backpressure: the agent
//! may have [`WINDOW`] batches unacknowledged; a batch is acknowledged on
//! `agent.logs.<agent_id>.<stream_id>.credit` only when the HTTP body asks
//! for the next chunk, i.e. once hyper has taken the previous one, so a
//! slow reader holds at most [`WINDOW`] batches (64 KiB each) here. When the
//! body is dropped (the viewer left) a `stop` goes to the agent, which then
//! drops the Docker stream. A stream on which nothing, not even the agent's
//! keepalive, arrives for [`SILENCE`] ends.

use std::time::Duration;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use rand::RngCore;
use sdp_bus::{
    ContainerLogs, ContainerLogsStarted, DeploymentId, LogBatch, LogCredit, decode, encode, subject,
};

use crate::agent_client::{AgentCallError, AgentClient};

/// Batches the agent may send ahead of the viewer.
pub const WINDOW: u32 = 8;
/// The agent sends a keepalive every 10 s on a quiet stream; three missed
/// mean it is gone.
const SILENCE: Duration = Duration::from_secs(35);

/// What the viewer asked for.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub tail: Option<u32>,
    pub since: Option<i64>,
    pub follow: bool,
    pub filter: Option<String>,
}

/// Starts a stream of `deployment`'s container on `agent_id`; the agent's
/// refusal (no such container, not running) is an [`AgentCallError`].
pub async fn open(
    nats: &async_nats::Client,
    agents: &AgentClient,
    agent_id: &str,
    deployment: &DeploymentId,
    query: LogQuery,
    timeout: Duration,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, AgentCallError> {
    let stream_id = new_stream_id();
    let data = nats
        .subscribe(subject::runtime_logs_data(agent_id, &stream_id))
        .await
        .map_err(|err| AgentCallError::Request {
            method: subject::CONTAINER_LOGS,
            reason: err.to_string(),
        })?;
    let request = ContainerLogs {
        deployment_id: deployment.clone(),
        stream_id: stream_id.clone(),
        tail: query.tail,
        since: query.since,
        follow: query.follow,
        filter: query.filter,
        window: WINDOW,
    };
    let _: ContainerLogsStarted = agents
        .command(agent_id, subject::CONTAINER_LOGS, &request, timeout)
        .await?;
    let state = Follow {
        data,
        credit: Credit {
            nats: nats.clone(),
            subject: subject::runtime_logs_credit(agent_id, &stream_id),
            ended: false,
        },
        next_seq: 1,
        unacked: None,
    };
    Ok(futures::stream::unfold(state, Follow::next_chunk))
}

/// `r` + 128 random bits in hex: a subject token nobody can guess.
fn new_stream_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("r{}", hex::encode(bytes))
}

struct Follow {
    data: async_nats::Subscriber,
    credit: Credit,
    /// The seq the next batch must carry.
    next_seq: u64,
    /// The batch handed to the body last, acknowledged when the body asks
    /// for more.
    unacked: Option<u64>,
}

impl Follow {
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.credit.ended {
            return None;
        }
        if let Some(seq) = self.unacked.take() {
            self.credit.send(seq, false).await;
        }
        loop {
            let message = match tokio::time::timeout(SILENCE, self.data.next()).await {
                Ok(Some(message)) => message,
                Ok(None) | Err(_) => {
                    tracing::info!("runtime log stream: the agent went silent");
                    return None;
                }
            };
            let batch: LogBatch = match decode(&message.payload) {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::warn!(error = %err, "ignoring a malformed runtime-log batch");
                    continue;
                }
            };
            if batch.seq != self.next_seq {
                // Core NATS keeps one publisher's order; a gap means a batch
                // was lost (a slow-consumer drop): end rather than mislead.
                tracing::warn!(
                    expected = self.next_seq,
                    got = batch.seq,
                    "runtime log stream lost a batch"
                );
                return None;
            }
            self.next_seq += 1;
            if let Some(why) = &batch.end {
                tracing::debug!(%why, "runtime log stream ended by the agent");
                self.credit.ended = true;
            }
            if batch.lines.is_empty() {
                if self.credit.ended {
                    return None;
                }
                // A keepalive: acknowledged at once.
                self.credit.send(batch.seq, false).await;
                continue;
            }
            let size = batch.lines.iter().map(|l| l.len() + 1).sum();
            let mut text = String::with_capacity(size);
            for line in &batch.lines {
                text.push_str(line);
                text.push('\n');
            }
            self.unacked = Some(batch.seq);
            return Some((Ok(Bytes::from(text)), self));
        }
    }
}

/// Sends credits; tells the agent to stop when dropped before the end.
struct Credit {
    nats: async_nats::Client,
    subject: String,
    /// The agent sent its last batch: nothing to stop.
    ended: bool,
}

impl Credit {
    async fn send(&self, acked: u64, stop: bool) {
        let credit = LogCredit { acked, stop };
        if let Err(err) = self
            .nats
            .publish(self.subject.clone(), encode(&credit).into())
            .await
        {
            tracing::warn!(error = %err, "cannot send a runtime-log credit");
        }
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let (nats, subject) = (self.nats.clone(), std::mem::take(&mut self.subject));
        let stop = encode(&LogCredit {
            acked: 0,
            stop: true,
        });
        // Drop cannot wait; the runtime is there (bodies drop inside it).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(err) = nats.publish(subject, stop.into()).await {
                    tracing::warn!(error = %err, "cannot stop a runtime-log stream");
                }
            });
        }
    }
}
