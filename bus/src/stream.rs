//! The `DEPLOY_PROGRESS` JetStream stream: every deployment event, on file
//! storage, kept long enough for late WebSocket viewers (older history is
//! served from the persister's SQLite copy).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

pub const DEPLOY_PROGRESS: &str = "DEPLOY_PROGRESS";
/// The durable consumer of the log persister.
pub const PERSISTER_CONSUMER: &str = "persister";

pub fn deploy_progress_config(replicas: usize) -> stream::Config {
    stream::Config {
        num_replicas: replicas,
        name: DEPLOY_PROGRESS.to_owned(),
        subjects: vec![crate::subject::DEPLOY_PROGRESS_ALL.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::from_secs(7 * 24 * 3600),
        // A runaway build must not fill the disk: 4 GiB, oldest dropped first.
        max_bytes: 4 * 1024 * 1024 * 1024,
        // Whole-stream dedup by Nats-Msg-Id (`<deployment>.<seq>`), so an
        // agent retrying a publish after a lost ack does not store it twice.
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Creates the stream or brings its config (replicas included) up to date;
/// safe to call at every start.
pub async fn ensure_deploy_progress(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<stream::Stream, EnsureStreamError> {
    if !(1..=5).contains(&replicas) {
        return Err(EnsureStreamError(format!(
            "nats.stream_replicas must be 1 to 5, not {replicas}"
        )));
    }
    let config = deploy_progress_config(replicas);
    match js.get_stream(DEPLOY_PROGRESS).await {
        Ok(_) => {
            js.update_stream(config)
                .await
                .map_err(|e| EnsureStreamError(e.to_string()))?;
        }
        Err(_) => {
            js.create_stream(config)
                .await
                .map_err(|e| EnsureStreamError(e.to_string()))?;
        }
    };
    js.get_stream(DEPLOY_PROGRESS)
        .await
        .map_err(|e| EnsureStreamError(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create or update JetStream stream {DEPLOY_PROGRESS}: {0}")]
pub struct EnsureStreamError(String);

/// The `Nats-Msg-Id` of an event, for JetStream's duplicate window.
pub fn event_msg_id(event: &crate::Event) -> String {
    msg_id(&event.deployment_id, event.seq)
}

/// The `Nats-Msg-Id` of a deployment's event `seq`.
pub fn msg_id(deployment_id: &crate::DeploymentId, seq: u64) -> String {
    format!("{deployment_id}.{seq}")
}
