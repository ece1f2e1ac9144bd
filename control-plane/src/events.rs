//! Events the control plane itself publishes on a deployment's progress
//! subject: the `failed` result when no agent could finish it, so viewers
//! and the persister see the end like any other.

use sdp_bus::{DeploymentId, Event, EventBody, Status, encode};

/// The agent id on events the control plane publishes.
pub const CONTROL_PLANE_ID: &str = "control-plane";

/// The newest event of a deployment on the stream (the source of truth:
/// SQLite lags it while the persister is behind or down). `Err` when the
/// stream cannot be asked.
pub async fn last_stream_event(
    client: &async_nats::Client,
    id: &DeploymentId,
) -> Result<Option<Event>, String> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let js = async_nats::jetstream::new(client.clone());
    let stream = js
        .get_stream(sdp_bus::stream::DEPLOY_PROGRESS)
        .await
        .map_err(|e| e.to_string())?;
    let subject = sdp_bus::subject::deploy_progress(id);
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(message) => Ok(sdp_bus::decode::<Event>(&message.payload).ok()),
        Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(err) => Err(err.to_string()),
    }
}

/// Publishes `result failed` with seq `last_seq + 1`. Best effort: the row
/// is already failed, so a lost publish costs only the live notice.
pub async fn publish_failure(client: &async_nats::Client, id: &str, last_seq: u64, reason: &str) {
    let Some(deployment_id) = DeploymentId::parse(id) else {
        return;
    };
    let event = Event {
        deployment_id,
        seq: last_seq + 1,
        ts: chrono::Utc::now(),
        agent_id: CONTROL_PLANE_ID.to_owned(),
        body: EventBody::Result {
            status: Status::Failed,
            url: None,
            error: Some(reason.to_owned()),
            commit: None,
            log_tail: Vec::new(),
            test: None,
        },
    };
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        sdp_bus::stream::event_msg_id(&event).as_str(),
    );
    let subject = sdp_bus::subject::deploy_progress(&event.deployment_id);
    match js
        .publish_with_headers(subject, headers, encode(&event).into())
        .await
    {
        Ok(ack) => {
            if let Err(err) = ack.await {
                tracing::warn!(deployment = id, error = %err, "failure event not acked");
            }
        }
        Err(err) => tracing::warn!(deployment = id, error = %err, "cannot publish failure event"),
    }
}
