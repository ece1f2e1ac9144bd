//! Snapshots of every message as it appears on the wire, and the codec's
//! version handling.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use sdp_bus::*;

fn id() -> DeploymentId {
    DeploymentId::parse("d0190aabbccddeeff00112233445566").expect("valid id")
}

fn ts() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn wire<T: serde::Serialize>(message: &T) -> serde_json::Value {
    serde_json::from_slice(&encode(message)).expect("encode gives JSON")
}

fn round_trip<T>(message: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let back: T = decode(&encode(message)).expect("decodes");
    assert_eq!(&back, message);
}

fn credential() -> GitCredential {
    GitCredential {
        username: "dev".into(),
        password: Secret::new("hunter2"),
    }
}

#[test]
fn deploy_request() {
    let message = DeployRequest {
        deployment_id: id(),
        sandbox: "alpha".into(),
        repo: "users".into(),
        branch: "feature/x".into(),
        credential: credential(),
        env: BTreeMap::from([("ORDERS_URL".into(), "http://orders".into())]),
        routes: vec![Route {
            service: "orders".into(),
            target: "http://orders".into(),
            source: RouteSource::Environment,
        }],
        overrides: ServiceOverrides {
            port: Some(9090),
            ..ServiceOverrides::default()
        },
        reuse_build: true,
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
    };
    insta::assert_json_snapshot!(wire(&message));
    round_trip(&message);
}

#[test]
fn deploy_accepted_and_replies() {
    let ok = Reply::ok(DeployAccepted {
        agent_id: "micro-1".into(),
    });
    let error: Reply<DeployAccepted> = Reply::err(RpcError::new(
        RpcErrorCode::BadRequest,
        "repo 'nope' is not on this agent",
    ));
    insta::assert_json_snapshot!("reply_ok", wire(&ok));
    insta::assert_json_snapshot!("reply_error", wire(&error));
    round_trip(&ok);
    round_trip(&error);
}

#[test]
fn deploy_cancel() {
    insta::assert_json_snapshot!(wire(&DeployCancel::default()));
    round_trip(&DeployCancel::default());
}

#[test]
fn events() {
    let bodies = [
        EventBody::Phase {
            phase: Status::Fetching,
            commit: None,
        },
        EventBody::Phase {
            phase: Status::Building,
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        },
        EventBody::Log {
            stream: LogStream::Stderr,
            line: "go: downloading nothing".into(),
        },
        EventBody::Result {
            status: Status::Running,
            url: Some("http://10.0.0.5:32768".into()),
            error: None,
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            log_tail: vec![],
            test: None,
        },
        EventBody::Result {
            status: Status::Failed,
            url: None,
            error: Some("health check timed out".into()),
            commit: None,
            log_tail: vec!["panic: boom".into()],
            test: None,
        },
        EventBody::Logs {
            stream: LogStream::Stdout,
            first_line: 42,
            lines: vec![
                "ok  example.com/users 0.01s".into(),
                "".into(),
                "done".into(),
            ],
        },
    ];
    for (n, body) in bodies.into_iter().enumerate() {
        let event = Event {
            deployment_id: id(),
            seq: n as u64 + 1,
            ts: ts(),
            agent_id: "micro-1".into(),
            body,
        };
        insta::assert_json_snapshot!(format!("event_{}", n + 1), wire(&event));
        round_trip(&event);
    }
}

#[test]
fn heartbeat() {
    let message = Heartbeat {
        agent_id: "micro-1".into(),
        kind: "micro".into(),
        host: "vm-micro".into(),
        version: "0.1.0".into(),
        running: vec![id()],
        missing_images: vec!["sdp-go-base:1".into()],
        capacity: 3,
        repos: vec!["users".into()],
        started_at: Some(ts()),
        build_cache: Some("warming".into()),
        log_streams: 0,
        toolchains: vec!["go 1.19.8".into(), "go 1.22.12".into()],
        serves: Some(vec!["deploy".into(), "reconcile".into()]),
    };
    insta::assert_json_snapshot!(wire(&message));
    round_trip(&message);
}

#[test]
fn verify_credentials() {
    let message = VerifyCredentials {
        probe_repo: "https://git.example.com/scm/team/probe.git".into(),
        credential: credential(),
    };
    insta::assert_json_snapshot!(wire(&message));
    round_trip(&message);
    let verified: Reply<CredentialsVerified> = Reply::ok(CredentialsVerified {});
    insta::assert_json_snapshot!("credentials_verified", wire(&verified));
}

#[test]
fn unknown_fields_are_ignored() {
    let payload = br#"{"v":1,"agent_id":"a","future_field":{"x":[1,2]}}"#;
    let accepted: DeployAccepted = decode(payload).expect("unknown field ignored");
    assert_eq!(accepted.agent_id, "a");
}

#[test]
fn unknown_major_version_is_refused() {
    let payload = br#"{"v":2,"agent_id":"a"}"#;
    let err = decode::<DeployAccepted>(payload).expect_err("v2 refused");
    assert!(matches!(err, CodecError::UnsupportedVersion(2)), "{err}");
    let err = decode::<DeployAccepted>(br#"{"agent_id":"a"}"#).expect_err("no v refused");
    assert!(matches!(err, CodecError::MissingVersion));
    assert!(decode::<DeployAccepted>(b"[1]").is_err());
    assert!(decode::<DeployAccepted>(b"\xff").is_err());
}

#[test]
fn secret_is_redacted_in_debug() {
    let shown = format!("{:?}", credential());
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn repo_and_branch_rpcs() {
    insta::assert_json_snapshot!("list_repos", wire(&ListRepos {}));
    let repos = Reply::ok(RepoList {
        repos: vec![RepoInfo {
            name: "users".into(),
            kind: "micro".into(),
            remote: "https://git.example.com/scm/team/users.git".into(),
            default_branch: Some("main".into()),
            settings: ServiceSettings {
                route_env: Some("USERS_URL".into()),
                ..ServiceSettings::default()
            },
        }],
    });
    insta::assert_json_snapshot!("repo_list", wire(&repos));
    round_trip(&repos);
    let request = ListBranches {
        repo: "users".into(),
        credential: credential(),
    };
    insta::assert_json_snapshot!("list_branches", wire(&request));
    round_trip(&request);
    let branches = Reply::ok(BranchList {
        branches: vec![BranchInfo {
            name: "feature/x".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
        }],
    });
    insta::assert_json_snapshot!("branch_list", wire(&branches));
    round_trip(&branches);
}

#[test]
fn teardown() {
    let request = Teardown {
        sandbox: "alpha".into(),
    };
    insta::assert_json_snapshot!("teardown", wire(&request));
    round_trip(&request);
    let done = Reply::ok(TeardownDone {
        containers_removed: 2,
        worktrees_removed: 2,
    });
    insta::assert_json_snapshot!("teardown_done", wire(&done));
    round_trip(&done);
}

#[test]
fn service_settings_defaults() {
    let settings: ServiceSettings = serde_json::from_str("{}").expect("defaults");
    assert_eq!(settings, ServiceSettings::default());
    assert_eq!(settings.port, 8080);
    assert_eq!(settings.health_path, "/");
    assert_eq!(settings.route_env_for("order-api"), "ORDER_API_URL");
    let mut settings = ServiceSettings::default();
    settings.apply(&ServiceOverrides {
        health_path: Some("/healthz".into()),
        ..ServiceOverrides::default()
    });
    assert_eq!(settings.health_path, "/healthz");
    assert_eq!(settings.port, 8080);
}

#[test]
fn reconcile() {
    let request = Reconcile {
        keep: vec![id()],
        abandon: Vec::new(),
    };
    insta::assert_json_snapshot!("reconcile", wire(&request));
    round_trip(&request);
    let done = Reply::ok(ReconcileDone {
        removed: vec!["d0190aabbccddeeff00112233445567".into()],
        kept: 1,
    });
    insta::assert_json_snapshot!("reconcile_done", wire(&done));
    round_trip(&done);
}

/// Today's agents send `logs` batches; a single-line `log` event (older
/// agents, and what the wire carried before batching) still reads, and
/// both give their lines the same way.
#[test]
fn single_line_log_events_still_read() {
    let old = r#"{"v":1,"deployment_id":"d0190a1b2c3d4e5f60718293a4b5c6d7","seq":3,"ts":"2026-01-02T03:04:05Z","agent_id":"micro-1","body":{"type":"log","stream":"stderr","line":"go: downloading nothing"}}"#;
    let event: Event = decode(old.as_bytes()).expect("a single-line log event reads");
    assert_eq!(
        event.body.log_lines().collect::<Vec<_>>(),
        vec![(LogStream::Stderr, "go: downloading nothing")]
    );
    let batch = EventBody::Logs {
        stream: LogStream::Stdout,
        first_line: 7,
        lines: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        batch.log_lines().collect::<Vec<_>>(),
        vec![(LogStream::Stdout, "a"), (LogStream::Stdout, "b")]
    );
    assert_eq!(batch.status(), None);
}

#[test]
fn heartbeat_of_an_agent_without_build_cache_decodes() {
    let old = r#"{"v":1,"agent_id":"micro-1","kind":"micro","host":"h","version":"0.1.0",
        "running":[],"missing_images":[],"capacity":2}"#;
    let heartbeat: Heartbeat = sdp_bus::decode(old.as_bytes()).expect("an older heartbeat decodes");
    assert_eq!(heartbeat.build_cache, None);
}

#[test]
fn runtime_log_stream() {
    let request = ContainerLogs {
        deployment_id: id(),
        stream_id: "r0190aabbccddeeff".into(),
        tail: Some(100),
        since: Some(1_795_000_000),
        follow: true,
        filter: Some("GET /orders".into()),
        window: 8,
    };
    insta::assert_json_snapshot!("container_logs", wire(&request));
    round_trip(&request);
    let started: Reply<ContainerLogsStarted> = Reply::ok(ContainerLogsStarted {});
    insta::assert_json_snapshot!("container_logs_started", wire(&started));
    round_trip(&started);
    let batch = LogBatch {
        seq: 3,
        lines: vec![
            "request GET /orders".into(),
            "\u{1b}[31mred\u{1b}[0m".into(),
        ],
        end: None,
    };
    insta::assert_json_snapshot!("log_batch", wire(&batch));
    round_trip(&batch);
    let last = LogBatch {
        seq: 4,
        lines: Vec::new(),
        end: Some("exited".into()),
    };
    insta::assert_json_snapshot!("log_batch_end", wire(&last));
    round_trip(&last);
    let credit = LogCredit {
        acked: 3,
        stop: false,
    };
    insta::assert_json_snapshot!("log_credit", wire(&credit));
    round_trip(&credit);
    let stop = LogCredit {
        acked: 3,
        stop: true,
    };
    insta::assert_json_snapshot!("log_credit_stop", wire(&stop));
    round_trip(&stop);
    assert_eq!(
        subject::runtime_logs_data("micro-1", "r01"),
        "agent.logs.micro-1.r01.data"
    );
    assert_eq!(
        subject::runtime_logs_credit("micro-1", "r01"),
        "agent.logs.micro-1.r01.credit"
    );
}

#[test]
fn branch_status() {
    let request = BranchStatus {
        repo: "users".into(),
        credential: credential(),
        branches: vec![BranchCommit {
            branch: "feature/x".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
        }],
    };
    insta::assert_json_snapshot!("branch_status", wire(&request));
    round_trip(&request);
    let reply = Reply::ok(BranchStatusList {
        branches: vec![
            BranchMove {
                branch: "feature/x".into(),
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                head: Some("89abcdef0123456789abcdef0123456789abcdef".into()),
                behind: Some(1),
                reason: None,
            },
            BranchMove {
                branch: "gone".into(),
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                head: None,
                behind: None,
                reason: Some("the branch no longer exists on the remote".into()),
            },
        ],
    });
    insta::assert_json_snapshot!("branch_status_list", wire(&reply));
    round_trip(&reply);
}

#[test]
fn probe() {
    let request = Probe {
        sandbox: "alpha".into(),
        service: "gateway".into(),
        routes: vec![Route {
            service: "users".into(),
            target: "http://172.17.0.1:32768".into(),
            source: RouteSource::Sandbox,
        }],
    };
    insta::assert_json_snapshot!("probe", wire(&request));
    round_trip(&request);
    let reply = Reply::ok(ProbeReport {
        routes: vec![
            RouteCheck {
                service: "users".into(),
                target: "http://172.17.0.1:32768".into(),
                source: RouteSource::Sandbox,
                ok: true,
                status: Some(200),
                latency_ms: Some(42),
                error: None,
                hop: None,
            },
            RouteCheck {
                service: "orders".into(),
                target: "http://127.0.0.1:1".into(),
                source: RouteSource::Manual,
                ok: false,
                status: None,
                latency_ms: Some(40),
                error: Some("connection refused to 127.0.0.1:1".into()),
                hop: Some(ProbeHop::Connect),
            },
        ],
    });
    insta::assert_json_snapshot!("probe_report", wire(&reply));
    round_trip(&reply);
}
