//! The audit trail's writing side: [`Audit`], the handle every part that
//! records holds, and the writer task that appends rows in batches.
//!
//! Recording never waits on SQLite: an entry goes into a bounded channel
//! and the writer appends whatever has queued in one transaction. Only a
//! full channel (a writer thousands of rows behind) makes a request wait,
//! so the trail loses nothing. The writer ends once every handle is
//! dropped, after writing what is queued: that is the flush on shutdown.
//!
//! What a request did is noted while it runs ([`note`]): the HTTP layer
//! (`api::audit`) opens a note per changing request, the session
//! extractor and handlers fill in what only they know (the actor, a
//! sandbox named in the body), and the layer writes one row from it when
//! the answer is made.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sdp_api::{AuditAction, AuditOutcome};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::{NewAuditEntry, Store};

/// The actor of what a Bitbucket push webhook causes.
pub const BITBUCKET_PUSH: &str = "bitbucket-push";
/// The actor of what the control plane does on its own (the reaper).
pub const SYSTEM: &str = "system";

/// Rows queued before a recorder waits for the writer.
const QUEUE: usize = 4096;
/// Rows per transaction at most.
const BATCH: usize = 256;
/// Longest text kept in a field: a row never carries a request body.
const FIELD_MAX: usize = 256;

/// The handle that records: cheap to clone. [`Audit::off`] (the
/// default) records nothing: parts built before `run` starts the writer,
/// and their unit tests, hold that one.
#[derive(Clone, Default)]
pub struct Audit {
    queue: Option<mpsc::Sender<NewAuditEntry>>,
}

impl Audit {
    /// The handle and its writer, which the caller spawns.
    pub fn start(store: Store) -> (Self, impl std::future::Future<Output = ()>) {
        let (queue, rows) = mpsc::channel(QUEUE);
        (Self { queue: Some(queue) }, write(store, rows))
    }

    /// A handle that records nothing.
    pub fn off() -> Self {
        Self::default()
    }

    /// Records what the control plane did on its own (actor `system`, no
    /// address): a sandbox put to sleep or woken, a test run that ended, a
    /// notification delivered or given up.
    pub async fn record_system(
        &self,
        action: AuditAction,
        sandbox: &str,
        target: String,
        outcome: AuditOutcome,
        message: Option<String>,
    ) {
        self.record(NewAuditEntry {
            at: Utc::now(),
            actor: Some(SYSTEM.to_owned()),
            action,
            target: Some(target),
            sandbox: Some(sandbox.to_owned()),
            address: None,
            outcome,
            message,
        })
        .await;
    }

    /// Queues `entry`; waits only while the queue is full.
    pub async fn record(&self, mut entry: NewAuditEntry) {
        let Some(queue) = &self.queue else { return };
        for text in [
            &mut entry.actor,
            &mut entry.target,
            &mut entry.sandbox,
            &mut entry.address,
            &mut entry.message,
        ]
        .into_iter()
        .flatten()
        {
            truncate(text);
        }
        let entry = match queue.try_send(entry) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(entry)) => entry,
            Err(mpsc::error::TrySendError::Closed(entry)) => {
                tracing::error!(action = %entry.action, "audit writer stopped: entry lost");
                return;
            }
        };
        if queue.send(entry).await.is_err() {
            tracing::error!("audit writer stopped: entry lost");
        }
    }
}

fn truncate(text: &mut String) {
    if text.len() > FIELD_MAX {
        let mut end = FIELD_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

/// Appends what is queued, a batch per transaction, until every
/// [`Audit`] handle is gone and the queue is empty.
async fn write(store: Store, mut rows: mpsc::Receiver<NewAuditEntry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rows.recv_many(&mut batch, BATCH).await > 0 {
        let entries = std::mem::take(&mut batch);
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || store.append_audit(&entries)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "cannot append audit entries"),
            Err(err) => tracing::error!(error = %err, "audit writer failed"),
        }
    }
}

/// Deletes rows older than `keep_for`, now and every `interval`.
pub async fn prune(
    store: Store,
    keep_for: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(keep_for) = chrono::Duration::from_std(keep_for) else {
            return;
        };
        let cutoff = Utc::now() - keep_for;
        match store.prune_audit(cutoff) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "old audit entries removed"),
            Err(err) => tracing::warn!(error = %err, "audit retention failed"),
        }
    }
}

/// What one request did, as far as its handler knows.
#[derive(Clone, Debug, Default)]
pub struct Note {
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    pub target: Option<String>,
    pub sandbox: Option<String>,
    pub message: Option<String>,
}

tokio::task_local! {
    static NOTE: Arc<Mutex<Note>>;
}

/// Runs `request` with a note open; answers its result and the note.
pub async fn noted<F: std::future::Future>(request: F) -> (F::Output, Note) {
    let note = Arc::new(Mutex::new(Note::default()));
    let output = NOTE.scope(note.clone(), request).await;
    let note = note.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (output, note)
}

/// Fills in the open note; nothing outside a changing request.
pub fn note(fill: impl FnOnce(&mut Note)) {
    let _ = NOTE.try_with(|note| fill(&mut note.lock().unwrap_or_else(|e| e.into_inner())));
}

/// The caller, once known (the session, the name a login tried).
pub fn note_actor(actor: &str) {
    note(|note| note.actor = Some(actor.to_owned()));
}

/// The sandbox concerned, when the path does not name it.
pub fn note_sandbox(sandbox: &str) {
    note(|note| note.sandbox = Some(sandbox.to_owned()));
}

/// An entry for what the control plane or a push did on its own.
pub fn entry(
    actor: &str,
    action: AuditAction,
    sandbox: Option<&str>,
    target: Option<String>,
    outcome: AuditOutcome,
    message: Option<String>,
) -> NewAuditEntry {
    NewAuditEntry {
        at: Utc::now(),
        actor: Some(actor.to_owned()),
        action,
        target,
        sandbox: sandbox.map(str::to_owned),
        address: None,
        outcome,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_cut_on_a_char_boundary() {
        let mut text = "é".repeat(200);
        truncate(&mut text);
        assert!(text.len() <= FIELD_MAX + '…'.len_utf8());
        assert!(text.ends_with('…'));
        let mut short = "dev".to_owned();
        truncate(&mut short);
        assert_eq!(short, "dev");
    }

    #[tokio::test]
    async fn notes_stay_with_their_request() {
        note_actor("nobody"); // no note open: ignored
        let ((), first) = noted(async { note_actor("dev") }).await;
        let ((), second) = noted(async { note_sandbox("s1") }).await;
        assert_eq!(first.actor.as_deref(), Some("dev"));
        assert_eq!(first.sandbox, None);
        assert_eq!(second.actor, None);
        assert_eq!(second.sandbox.as_deref(), Some("s1"));
    }
}
