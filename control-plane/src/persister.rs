//! The log persister: a durable JetStream consumer (`persister`) on
//! `DEPLOY_PROGRESS` that writes every event to SQLite and every log line
//! to `data_dir/logs/<id>.log`, acking a batch only after it is committed.
//!
//! Exactly once: events are keyed by `(deployment_id, seq)` (`INSERT OR
//! IGNORE`), and each log file is first truncated to the length the last
//! committed batch recorded, so a crash between writing the file and
//! committing cannot leave a line twice; the redelivered batch writes it
//! again. Each deployment's events are written strictly in seq order: one
//! that arrives before an earlier one (still held by a persister that
//! died, until its ack wait runs out) is redelivered a little later.
//!
//! Trust: an event is written only if it decodes (its deployment id is then
//! a subject token, never `../x`) and its body names the deployment its
//! subject names; anything else is acked, dropped and counted
//! ([`Refusal::EventRefused`]). The log file name is built from the id
//! once more checked to be one plain file name ([`log_file`]), so no event
//! can write outside `logs_dir`.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use rusqlite::{Connection, OptionalExtension, params};
use sdp_bus::{DeploymentId, Event, EventBody, Status, decode};
use tokio_util::sync::CancellationToken;

use crate::counters::{BusRefusals, Refusal};
use crate::store::{self, StoreError};

/// Most events written in one transaction.
const BATCH: usize = 1000;
/// Deliveries after which an event still behind a gap is written anyway.
const MAX_GAP_REDELIVERIES: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum PersisterError {
    #[error(transparent)]
    Connect(#[from] sdp_bus::nats::ConnectError),
    #[error(transparent)]
    Stream(#[from] sdp_bus::stream::EnsureStreamError),
    #[error("JetStream consumer failed: {0}")]
    Consumer(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write log file {path}")]
    LogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("persister task panicked")]
    Panicked,
}

/// Runs until `shutdown`; the durable consumer keeps the position, so a
/// restart resumes where the last acked batch ended. Refused events are
/// counted in `refusals`.
pub async fn run(
    nats: &sdp_bus::nats::NatsConfig,
    data_dir: &Path,
    refusals: BusRefusals,
    shutdown: CancellationToken,
) -> Result<(), PersisterError> {
    let client = sdp_bus::nats::connect(nats, "sdp-persister").await?;
    let js = jetstream::new(client);
    let stream = sdp_bus::stream::ensure_deploy_progress(&js, nats.stream_replicas).await?;
    let consumer = stream
        .get_or_create_consumer(
            sdp_bus::stream::PERSISTER_CONSUMER,
            pull::Config {
                durable_name: Some(sdp_bus::stream::PERSISTER_CONSUMER.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                // How soon an event held by a persister that died comes
                // back; later events of its deployment wait for it.
                ack_wait: Duration::from_secs(5),
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| PersisterError::Consumer(e.to_string()))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| PersisterError::Consumer(e.to_string()))?;
    let mut batches = messages.ready_chunks(BATCH);

    let logs_dir = data_dir.join("logs");
    std::fs::create_dir_all(&logs_dir).map_err(|source| PersisterError::LogFile {
        path: logs_dir.clone(),
        source,
    })?;
    let mut writer = Some(Writer {
        conn: store::open_connection(&data_dir.join("sdp.db"))?,
        logs_dir,
    });
    tracing::info!("persister consuming {}", sdp_bus::stream::DEPLOY_PROGRESS);

    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            batch = batches.next() => batch,
        };
        let Some(batch) = batch else {
            return Err(PersisterError::Consumer("message stream ended".into()));
        };
        // Each message with its event (None: malformed, acked and dropped:
        // retrying cannot fix it) and how often it has been delivered.
        let mut received = Vec::with_capacity(batch.len());
        for message in batch {
            match message {
                Ok(message) => {
                    let event = match decode::<Event>(&message.payload) {
                        Ok(event) if names_its_subject(&message.subject, &event) => Some(event),
                        Ok(event) => {
                            refusals.count(Refusal::EventRefused);
                            tracing::error!(
                                subject = %message.subject,
                                deployment = %event.deployment_id,
                                "dropping a progress event whose body names another deployment than its subject"
                            );
                            None
                        }
                        Err(err) => {
                            refusals.count(Refusal::EventRefused);
                            tracing::error!(
                                subject = %message.subject,
                                error = %err,
                                "dropping malformed progress event"
                            );
                            None
                        }
                    };
                    let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
                    received.push((message, event, delivered));
                }
                Err(err) => tracing::warn!(error = %err, "JetStream delivery error"),
            }
        }
        let events: Vec<(Event, i64)> = received
            .iter()
            .filter_map(|(_, event, delivered)| event.clone().map(|e| (e, *delivered)))
            .collect();
        let Some(mut w) = writer.take() else {
            return Err(PersisterError::Panicked);
        };
        let (w, result) = tokio::task::spawn_blocking(move || {
            let result = w.write(&events);
            (w, result)
        })
        .await
        .map_err(|_| PersisterError::Panicked)?;
        writer = Some(w);
        match result {
            Ok(deferred) => {
                for (message, event, _) in received {
                    let later = event.is_some_and(|e| deferred.contains(&(e.deployment_id, e.seq)));
                    let ack = if later {
                        // An earlier event is still in flight (e.g. held by a
                        // persister that died): write this one after it.
                        message
                            .ack_with(AckKind::Nak(Some(Duration::from_millis(250))))
                            .await
                    } else {
                        message.ack().await
                    };
                    if let Err(err) = ack {
                        tracing::warn!(error = %err, "ack failed; the event will be redelivered");
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "persisting a batch failed; it will be redelivered");
                for (message, _, _) in received {
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
        }
    }
}

struct Writer {
    conn: Connection,
    logs_dir: PathBuf,
}

impl Writer {
    /// Writes a batch in one transaction, each deployment's events strictly
    /// in seq order; log lines go to their files before the commit (see the
    /// module doc for why that is safe). Returns the events deferred because
    /// an earlier seq of their deployment has not arrived yet.
    fn write(
        &mut self,
        events: &[(Event, i64)],
    ) -> Result<HashSet<(DeploymentId, u64)>, PersisterError> {
        let mut sorted: Vec<&(Event, i64)> = events.iter().collect();
        sorted.sort_by(|(a, _), (b, _)| (&a.deployment_id, a.seq).cmp(&(&b.deployment_id, b.seq)));
        let tx = self.conn.transaction().map_err(StoreError::from)?;
        let mut next_seq: HashMap<&str, u64> = HashMap::new();
        let mut deferred = HashSet::new();
        let mut lines: HashMap<&str, String> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (event, delivered) in sorted {
            let id = event.deployment_id.as_str();
            let next = match next_seq.get(id) {
                Some(next) => *next,
                None => {
                    let last: u64 = tx
                        .query_row(
                            "SELECT coalesce(max(seq), 0) FROM events WHERE deployment_id = ?1",
                            [id],
                            |row| row.get(0),
                        )
                        .map_err(StoreError::from)?;
                    last + 1
                }
            };
            if event.seq < next {
                continue; // already persisted: a redelivery
            }
            // A gap that does not close after many redeliveries is history
            // the stream no longer has: accept it rather than loop forever.
            if event.seq > next && *delivered < MAX_GAP_REDELIVERIES {
                deferred.insert((event.deployment_id.clone(), event.seq));
                continue;
            }
            next_seq.insert(id, event.seq + 1);
            let body = String::from_utf8(sdp_bus::encode(event)).unwrap_or_default();
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO events (deployment_id, seq, body) VALUES (?1, ?2, ?3)",
                    params![id, event.seq, body],
                )
                .map_err(StoreError::from)?;
            if inserted == 0 {
                continue;
            }
            apply(&tx, event).map_err(StoreError::from)?;
            let mut event_lines = event.body.log_lines().peekable();
            if event_lines.peek().is_some() {
                let buffer = lines.entry(id).or_insert_with(|| {
                    order.push(id);
                    String::new()
                });
                for (_, line) in event_lines {
                    buffer.push_str(line);
                    buffer.push('\n');
                }
            }
        }
        for id in order {
            let committed: u64 = tx
                .query_row(
                    "SELECT bytes FROM log_files WHERE deployment_id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(StoreError::from)?
                .unwrap_or(0);
            let Some(path) = log_file(&self.logs_dir, id) else {
                // Decoding refuses such ids: this is only defence in depth.
                tracing::error!(
                    deployment = id,
                    "not writing the log of an id that is not a file name"
                );
                continue;
            };
            let written = append_at(&path, committed, lines[id].as_bytes())
                .map_err(|source| PersisterError::LogFile { path, source })?;
            tx.execute(
                "INSERT INTO log_files (deployment_id, bytes) VALUES (?1, ?2) \
                 ON CONFLICT (deployment_id) DO UPDATE SET bytes = excluded.bytes",
                params![id, committed + written],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(deferred)
    }
}

/// Whether the event came on `deploy.progress.<its own deployment id>`.
fn names_its_subject(subject: &str, event: &Event) -> bool {
    sdp_bus::subject::progress_deployment_id(subject).as_ref() == Some(&event.deployment_id)
}

/// `logs_dir/<id>.log`, or `None` when `id` is not a subject token (and so
/// could be a path: `../x`, `a/b`, empty).
fn log_file(logs_dir: &Path, id: &str) -> Option<PathBuf> {
    sdp_bus::subject::is_token(id).then(|| logs_dir.join(format!("{id}.log")))
}

/// Truncates `path` to `committed` bytes, appends `data`, syncs; returns
/// the bytes written.
fn append_at(path: &Path, committed: u64, data: &[u8]) -> std::io::Result<u64> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    if file.metadata()?.len() != committed {
        file.set_len(committed)?;
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(committed))?;
    file.write_all(data)?;
    file.sync_data()?;
    Ok(data.len() as u64)
}

/// Applies an event's effect on its deployment row. The status moves only
/// as [`store::status::may_move`] allows: a late event from an agent
/// thought dead is kept in `events`, but cannot revive its deployment.
fn apply(tx: &rusqlite::Transaction<'_>, event: &Event) -> rusqlite::Result<()> {
    let id = event.deployment_id.as_str();
    let at = event
        .ts
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let now = store::now_rfc3339();
    tx.execute(
        "UPDATE deployments SET last_seq = max(last_seq, ?2), updated_at = ?3 WHERE id = ?1",
        params![id, event.seq, now],
    )?;
    // A test run's events (its id is no deployment's) move its own row.
    store::test_runs::apply_event(tx, event)?;
    let Some(status): Option<Status> = event.body.status() else {
        return Ok(());
    };
    let changed = tx.execute(
        &store::status::set_status_sql(status),
        params![id, status.as_str()],
    )?;
    if changed > 0 {
        tx.execute(
            "INSERT OR IGNORE INTO phases (deployment_id, phase, at) VALUES (?1, ?2, ?3)",
            params![id, status.as_str(), at],
        )?;
    }
    match &event.body {
        EventBody::Phase {
            commit: Some(commit),
            ..
        } => {
            tx.execute(
                "UPDATE deployments SET commit_sha = ?2 WHERE id = ?1",
                params![id, commit],
            )?;
        }
        EventBody::Result {
            url, error, commit, ..
        } if changed > 0 => {
            tx.execute(
                "UPDATE deployments SET url = ?2, error = ?3, commit_sha = coalesce(?4, commit_sha), \
                 finished_at = ?5 WHERE id = ?1",
                params![id, url, error, commit, at],
            )?;
            if let (Status::Running, Some(url)) = (status, url) {
                store::results::apply_running(tx, id, url, &now)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
