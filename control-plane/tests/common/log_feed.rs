//! A deployment whose events a test writes itself, with no agent behind it:
//! a row in the control plane's SQLite, then its events through the agent's
//! own `EventSink`, so everything downstream (persister, WebSocket bridge,
//! dashboard) sees what a long build would send.

use std::path::Path;

use sdp_agentlib::{EventSink, OutputLine};
use sdp_bus::{DeploymentId, EventBody, LogStream, Status};

/// Adds a `queued` deployment row for `id` in `sandbox`.
pub fn insert_deployment(cp_data: &Path, id: &DeploymentId, sandbox: &str) {
    let db = rusqlite::Connection::open(cp_data.join("sdp.db")).expect("open sdp.db");
    db.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    db.execute(
        "INSERT INTO deployments (id, sandbox, repo, branch, kind, status, created_by, created_at, updated_at) \
         VALUES (?1, ?2, 'users', 'feature/long-log', 'micro', 'queued', 'bench', ?3, ?3)",
        rusqlite::params![id.as_str(), sandbox, now],
    )
    .expect("insert deployment");
}

/// The text of line `n` of a fed log.
pub fn fed_line(n: u64) -> String {
    format!("line {n:07} of a long build: \x1b[32mok\x1b[0m example.com/users/internal/p{n}")
}

/// Publishes `queued`, `lines` log lines (in the batches a fast build
/// gives) and `running`, and waits for every ack.
pub async fn feed_log(nats_url: &str, id: &DeploymentId, lines: u64) {
    let client = async_nats::connect(nats_url).await.expect("nats");
    let mut sink = EventSink::new(
        async_nats::jetstream::new(client),
        id.clone(),
        "feed".into(),
        tokio_util::sync::CancellationToken::new(),
    );
    sink.phase(Status::Queued, None).await;
    let mut n = 1;
    while n <= lines {
        let chunk = (n..=lines.min(n + 4_999))
            .map(|n| OutputLine::now(LogStream::Stdout, fed_line(n)))
            .collect();
        sink.log_lines(chunk).await;
        n += 5_000;
    }
    sink.result(running()).await;
    sink.flush().await;
}

/// A `running` result with nothing else.
pub fn running() -> EventBody {
    EventBody::Result {
        status: Status::Running,
        url: None,
        error: None,
        commit: None,
        log_tail: Vec::new(),
        test: None,
    }
}
