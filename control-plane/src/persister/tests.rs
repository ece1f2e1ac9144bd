//! The persister's writer against a temporary SQLite database and logs
//! dir: order, idempotence, deferral behind a gap, the status rules, and
//! the log file cut back to its committed length.

use chrono::Utc;
use sdp_bus::{DeploymentId, Event, EventBody, LogStream, Status};

use super::Writer;
use crate::store::{NewDeployment, Store, open_connection};

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    writer: Writer,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("sdp.db");
        let store = Store::open(&db).expect("store");
        let logs_dir = dir.path().join("logs");
        std::fs::create_dir_all(&logs_dir).expect("logs dir");
        let writer = Writer {
            conn: open_connection(&db).expect("connection"),
            logs_dir,
        };
        Fixture { dir, store, writer }
    }

    fn deployment(&self) -> DeploymentId {
        let id = DeploymentId::generate();
        self.store
            .insert_deployment(&NewDeployment {
                id: &id,
                sandbox: "alpha",
                repo: "users",
                branch: "main",
                kind: "micro",
                created_by: "dev",
                new_sandbox_ttl_hours: 72,
                reapply: false,
                commit: None,
                redeploy_of: None,
            })
            .expect("insert");
        id
    }

    /// Writes `events` (each delivered once); returns the deferred seqs.
    fn write(&mut self, events: &[Event]) -> Vec<u64> {
        let batch: Vec<(Event, i64)> = events.iter().map(|e| (e.clone(), 1)).collect();
        let mut deferred: Vec<u64> = self
            .writer
            .write(&batch)
            .expect("write")
            .into_iter()
            .map(|(_, seq)| seq)
            .collect();
        deferred.sort_unstable();
        deferred
    }

    fn log(&self, id: &DeploymentId) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join(format!("{id}.log")))
            .unwrap_or_default()
    }

    fn status(&self, id: &DeploymentId) -> Status {
        self.store
            .deployment(id.as_str())
            .expect("read")
            .expect("row")
            .status
    }

    fn live(&self, id: &DeploymentId) -> bool {
        self.store
            .deployment(id.as_str())
            .expect("read")
            .expect("row")
            .live
    }

    fn seqs(&self, id: &DeploymentId) -> Vec<u64> {
        self.store
            .events_after(id.as_str(), 0)
            .expect("events")
            .into_iter()
            .map(|(seq, _)| seq)
            .collect()
    }
}

fn event(id: &DeploymentId, seq: u64, body: EventBody) -> Event {
    Event {
        deployment_id: id.clone(),
        seq,
        ts: Utc::now(),
        agent_id: "a1".into(),
        body,
    }
}

fn phase(id: &DeploymentId, seq: u64, phase: Status) -> Event {
    event(
        id,
        seq,
        EventBody::Phase {
            phase,
            commit: None,
        },
    )
}

fn line(id: &DeploymentId, seq: u64, text: &str) -> Event {
    event(
        id,
        seq,
        EventBody::Log {
            stream: LogStream::Stdout,
            line: text.into(),
        },
    )
}

fn result(id: &DeploymentId, seq: u64, status: Status) -> Event {
    event(
        id,
        seq,
        EventBody::Result {
            status,
            url: (status == Status::Running).then(|| "http://10.0.0.1:3001".into()),
            error: None,
            commit: Some("abc123".into()),
            log_tail: Vec::new(),
            test: None,
        },
    )
}

#[test]
fn writes_events_lines_and_status_once() {
    let mut f = Fixture::new();
    let id = f.deployment();
    let batch = [
        phase(&id, 1, Status::Fetching),
        line(&id, 2, "go: downloading"),
        phase(&id, 3, Status::Building),
        line(&id, 4, "ok"),
        result(&id, 5, Status::Running),
    ];
    assert!(f.write(&batch).is_empty());
    assert_eq!(f.seqs(&id), [1, 2, 3, 4, 5]);
    assert_eq!(f.log(&id), "go: downloading\nok\n");
    let deployment = f.store.deployment(id.as_str()).expect("read").expect("row");
    assert_eq!(deployment.status, Status::Running);
    assert_eq!(deployment.url.as_deref(), Some("http://10.0.0.1:3001"));
    assert_eq!(deployment.commit.as_deref(), Some("abc123"));
    assert_eq!(deployment.last_seq, 5);
    assert!(deployment.finished_at.is_some());
    let phases: Vec<Status> = deployment.phases.iter().map(|p| p.phase).collect();
    assert_eq!(
        phases,
        [
            Status::Queued,
            Status::Fetching,
            Status::Building,
            Status::Running
        ]
    );

    // A redelivered batch (the ack was lost) changes nothing.
    assert!(f.write(&batch).is_empty());
    assert_eq!(f.seqs(&id), [1, 2, 3, 4, 5]);
    assert_eq!(f.log(&id), "go: downloading\nok\n");
}

#[test]
fn an_event_behind_a_gap_waits_for_the_earlier_one() {
    let mut f = Fixture::new();
    let id = f.deployment();
    assert!(f.write(&[line(&id, 1, "one")]).is_empty());
    // 3 arrives before 2: deferred, nothing written.
    assert_eq!(f.write(&[line(&id, 3, "three")]), [3]);
    assert_eq!(f.seqs(&id), [1]);
    assert_eq!(f.log(&id), "one\n");
    // Out of order within a batch is fine: sorted by seq.
    assert!(
        f.write(&[line(&id, 3, "three"), line(&id, 2, "two")])
            .is_empty()
    );
    assert_eq!(f.seqs(&id), [1, 2, 3]);
    assert_eq!(f.log(&id), "one\ntwo\nthree\n");
}

#[test]
fn a_gap_that_never_closes_is_accepted_after_many_deliveries() {
    let mut f = Fixture::new();
    let id = f.deployment();
    let late = (
        line(&id, 2, "after a lost event"),
        super::MAX_GAP_REDELIVERIES,
    );
    let deferred = f.writer.write(&[late]).expect("write");
    assert!(deferred.is_empty());
    assert_eq!(f.seqs(&id), [2]);
}

#[test]
fn a_settled_deployment_moves_only_from_running_to_stopped() {
    let mut f = Fixture::new();
    let failed = f.deployment();
    f.write(&[
        phase(&failed, 1, Status::Fetching),
        result(&failed, 2, Status::Failed),
    ]);
    assert_eq!(f.status(&failed), Status::Failed);
    // A late event from an agent thought dead is kept, but does not revive it.
    f.write(&[phase(&failed, 3, Status::Building)]);
    assert_eq!(f.status(&failed), Status::Failed);
    assert_eq!(f.seqs(&failed), [1, 2, 3]);

    let running = f.deployment();
    f.write(&[result(&running, 1, Status::Running)]);
    f.write(&[result(&running, 2, Status::Failed)]);
    assert_eq!(f.status(&running), Status::Running);
    f.write(&[result(&running, 3, Status::Stopped)]);
    assert_eq!(f.status(&running), Status::Stopped);
}

#[test]
fn the_log_file_is_cut_back_to_what_was_committed() {
    let mut f = Fixture::new();
    let id = f.deployment();
    f.write(&[line(&id, 1, "committed")]);
    // A crash after appending but before the commit left a line behind.
    let path = f.dir.path().join("logs").join(format!("{id}.log"));
    let mut text = std::fs::read_to_string(&path).expect("log");
    text.push_str("uncommitted\n");
    std::fs::write(&path, text).expect("write");
    f.write(&[line(&id, 2, "next")]);
    assert_eq!(f.log(&id), "committed\nnext\n");
}

#[test]
fn a_logs_batch_writes_every_line_and_mixes_with_single_lines() {
    let mut f = Fixture::new();
    let id = f.deployment();
    let batch = event(
        &id,
        2,
        EventBody::Logs {
            stream: LogStream::Stderr,
            first_line: 2,
            lines: vec!["two".into(), String::new(), "four".into()],
        },
    );
    assert!(f.write(&[line(&id, 1, "one"), batch.clone()]).is_empty());
    assert!(f.write(&[line(&id, 3, "five")]).is_empty());
    assert_eq!(f.log(&id), "one\ntwo\n\nfour\nfive\n");
    // Redelivered, the batch adds nothing.
    assert!(f.write(&[batch]).is_empty());
    assert_eq!(f.seqs(&id), [1, 2, 3]);
    assert_eq!(f.log(&id), "one\ntwo\n\nfour\nfive\n");
}

fn running_at(id: &DeploymentId, seq: u64, url: &str) -> Event {
    event(
        id,
        seq,
        EventBody::Result {
            status: Status::Running,
            url: Some(url.into()),
            error: None,
            commit: None,
            log_tail: Vec::new(),
            test: None,
        },
    )
}

#[test]
fn a_running_result_stops_the_older_one_and_routes_only_the_newest_service() {
    let mut f = Fixture::new();
    let routes = |f: &Fixture| -> Vec<(String, String)> {
        f.store
            .stored_routes("alpha")
            .expect("routes")
            .into_iter()
            .map(|r| (r.service, r.target))
            .collect()
    };
    let first = f.deployment();
    f.write(&[running_at(&first, 1, "http://h:1")]);
    assert_eq!(routes(&f), [("users".to_owned(), "http://h:1".to_owned())]);

    // A newer deployment exists: an older one reaching running takes no
    // route; the newer one running stops the first and takes it.
    let older = f.deployment();
    let newer = f.deployment();
    f.write(&[running_at(&older, 1, "http://h:2")]);
    assert_eq!(routes(&f), [("users".to_owned(), "http://h:1".to_owned())]);
    // Live: the newest running one, whatever is still in flight.
    assert_eq!(
        (f.live(&first), f.live(&older), f.live(&newer)),
        (false, true, false)
    );
    f.write(&[running_at(&newer, 1, "http://h:3")]);
    assert_eq!(routes(&f), [("users".to_owned(), "http://h:3".to_owned())]);
    assert_eq!(f.status(&first), Status::Stopped);
    assert_eq!(f.status(&older), Status::Stopped);
    assert_eq!(f.status(&newer), Status::Running);
    assert_eq!(
        (f.live(&first), f.live(&older), f.live(&newer)),
        (false, false, true)
    );

    // The gateway takes no route of its own.
    let gateway = DeploymentId::generate();
    f.store
        .insert_deployment(&NewDeployment {
            id: &gateway,
            sandbox: "alpha",
            repo: "gw",
            branch: "main",
            kind: sdp_bus::subject::KIND_GATEWAY,
            created_by: "dev",
            new_sandbox_ttl_hours: 72,
            reapply: true,
            commit: None,
            redeploy_of: None,
        })
        .expect("insert");
    f.write(&[running_at(&gateway, 1, "http://h:4")]);
    assert_eq!(routes(&f).len(), 1);
    assert!(
        f.store
            .deployment(gateway.as_str())
            .expect("row")
            .expect("gateway")
            .reapply
    );
}

#[test]
fn a_log_file_is_named_only_from_a_plain_id() {
    let logs = std::path::Path::new("/data/logs");
    assert_eq!(
        super::log_file(logs, "d0190a"),
        Some(logs.join("d0190a.log"))
    );
    for bad in ["../x", "../../name", "a/b", "", ".", "..", "/etc/x"] {
        assert_eq!(super::log_file(logs, bad), None, "{bad:?}");
    }
}

#[test]
fn an_event_is_believed_only_on_its_own_subject() {
    let id = DeploymentId::generate();
    let event = line(&id, 1, "x");
    assert!(super::names_its_subject(
        &sdp_bus::subject::deploy_progress(&id),
        &event
    ));
    let other = DeploymentId::generate();
    for subject in [
        sdp_bus::subject::deploy_progress(&other),
        format!("deploy.progress.{id}.x"),
        "deploy.progress".to_owned(),
    ] {
        assert!(!super::names_its_subject(&subject, &event), "{subject}");
    }
}
