//! docs/AGENTS.md's JSON examples are made from the bus types: each block
//! between `<!-- example: NAME -->` and `<!-- /example -->` must be exactly
//! what encoding the value below gives (pretty-printed). Run with
//! `SDP_UPDATE_DOCS=1` to rewrite the blocks after changing a type.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use sdp_bus::*;

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("docs/AGENTS.md")
}

fn id() -> DeploymentId {
    DeploymentId::parse("d0193e1a2b3c4d5e6f708192a3b4c5d6e").expect("valid id")
}

fn ts(second: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, second)
        .single()
        .expect("valid time")
}

/// A payload as it travels: `"v": 1` added, pretty-printed.
fn wire<T: serde::Serialize>(message: &T) -> String {
    let value: serde_json::Value = serde_json::from_slice(&encode(message)).expect("JSON");
    serde_json::to_string_pretty(&value).expect("pretty JSON")
}

fn event(seq: u64, second: u32, body: EventBody) -> Event {
    Event {
        deployment_id: id(),
        seq,
        ts: ts(second),
        agent_id: "static-1".into(),
        body,
    }
}

fn credential() -> GitCredential {
    GitCredential {
        username: "jdoe".into(),
        password: Secret::new("app-password"),
    }
}

fn route() -> Route {
    Route {
        service: "users".into(),
        target: "http://10.0.0.5:32801".into(),
        source: RouteSource::Sandbox,
    }
}

/// Every example of docs/AGENTS.md, by name.
fn examples() -> Vec<(&'static str, String)> {
    let heartbeat = Heartbeat {
        agent_id: "static-1".into(),
        kind: "static".into(),
        host: "web-3".into(),
        version: "1.0.0".into(),
        running: vec![id()],
        missing_images: Vec::new(),
        capacity: 3,
        repos: vec!["site".into(), "docs".into()],
        started_at: Some(ts(0)),
        build_cache: None,
        log_streams: 0,
        toolchains: Vec::new(),
        serves: Some(Vec::new()),
    };
    let sdp_heartbeat = Heartbeat {
        agent_id: "micro-1".into(),
        kind: "micro".into(),
        running: Vec::new(),
        repos: vec!["users".into()],
        serves: Some(
            SERVES_BEFORE_ADVERTISING
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        ),
        ..heartbeat.clone()
    };
    let deploy_request = DeployRequest {
        deployment_id: id(),
        sandbox: "alpha".into(),
        repo: "site".into(),
        branch: "feature/x".into(),
        credential: credential(),
        env: BTreeMap::from([("APP_ENV".into(), "sandbox".into())]),
        routes: Vec::new(),
        overrides: ServiceOverrides::default(),
        reuse_build: false,
        commit: None,
    };
    let no_such_method = Reply::<()>::err(RpcError::new(
        RpcErrorCode::UnknownMethod,
        "agent static-1 does not serve probe",
    ));
    vec![
        ("heartbeat", wire(&heartbeat)),
        ("heartbeat_sdp", wire(&sdp_heartbeat)),
        ("deploy_request", wire(&deploy_request)),
        (
            "deploy_accepted",
            wire(&Reply::ok(DeployAccepted {
                agent_id: "static-1".into(),
            })),
        ),
        (
            "deploy_refused",
            wire(&Reply::<DeployAccepted>::err(RpcError::new(
                RpcErrorCode::BadRequest,
                "repo 'shop' is not on this agent",
            ))),
        ),
        (
            "event_phase",
            wire(&event(
                1,
                1,
                EventBody::Phase {
                    phase: Status::Queued,
                    commit: None,
                },
            )),
        ),
        (
            "event_logs",
            wire(&event(
                2,
                2,
                EventBody::Logs {
                    stream: LogStream::Stdout,
                    first_line: 1,
                    lines: vec!["copying site/ to /srv/alpha/site".into()],
                },
            )),
        ),
        (
            "event_result_running",
            wire(&event(
                3,
                3,
                EventBody::Result {
                    status: Status::Running,
                    url: Some("http://web-3.example.com:32811/".into()),
                    error: None,
                    commit: Some("4b825dc642cb6eb9a060e54bf8d69288fbee4904".into()),
                    log_tail: Vec::new(),
                    test: None,
                },
            )),
        ),
        (
            "event_result_failed",
            wire(&event(
                3,
                3,
                EventBody::Result {
                    status: Status::Failed,
                    url: None,
                    error: Some("branch feature/x does not exist".into()),
                    commit: None,
                    log_tail: Vec::new(),
                    test: None,
                },
            )),
        ),
        ("deploy_cancel", wire(&DeployCancel::default())),
        ("unknown_method", wire(&no_such_method)),
        (
            "reconcile",
            wire(&Reconcile {
                keep: vec![id()],
                abandon: Vec::new(),
            }),
        ),
        (
            "reconcile_done",
            wire(&Reply::ok(ReconcileDone {
                removed: vec!["d0193e0f0e0d0c0b0a09080706050403".into()],
                kept: 1,
            })),
        ),
        (
            "teardown",
            wire(&Teardown {
                sandbox: "alpha".into(),
            }),
        ),
        (
            "teardown_done",
            wire(&Reply::ok(TeardownDone {
                containers_removed: 2,
                worktrees_removed: 2,
            })),
        ),
        (
            "sleep",
            wire(&SandboxPower {
                sandbox: "alpha".into(),
            }),
        ),
        (
            "sleep_done",
            wire(&Reply::ok(SandboxPowered {
                changed: 3,
                unchanged: 0,
            })),
        ),
        (
            "container_logs",
            wire(&ContainerLogs {
                deployment_id: id(),
                stream_id: "s0193e1a2b".into(),
                tail: Some(100),
                since: None,
                follow: true,
                filter: None,
                window: 8,
            }),
        ),
        (
            "container_logs_started",
            wire(&Reply::ok(ContainerLogsStarted {})),
        ),
        (
            "log_batch",
            wire(&LogBatch {
                seq: 1,
                lines: vec!["GET / 200".into()],
                end: None,
            }),
        ),
        (
            "log_credit",
            wire(&LogCredit {
                acked: 1,
                stop: false,
            }),
        ),
        (
            "test_run",
            wire(&TestRunRequest {
                run_id: id(),
                sandbox: "alpha".into(),
                repo: "qa".into(),
                branch: "main".into(),
                credential: credential(),
                command: ["go", "run", "./cmd/junit", "-o", "report.xml", "./e2e/..."]
                    .map(str::to_owned)
                    .to_vec(),
                env: BTreeMap::from([
                    ("SDP_SANDBOX".to_owned(), "alpha".to_owned()),
                    (
                        "SDP_SERVICE_URL_USERS".to_owned(),
                        "http://10.0.0.5:32801".to_owned(),
                    ),
                ]),
                junit: Some("report.xml".into()),
            }),
        ),
        (
            "event_result_test",
            wire(&event(
                9,
                40,
                EventBody::Result {
                    status: Status::Stopped,
                    url: None,
                    error: Some("tests failed (exit code 1): 1 of 4 failed".into()),
                    commit: Some("4b825dc642cb6eb9a060e54bf8d69288fbee4904".into()),
                    log_tail: Vec::new(),
                    test: Some(TestOutcome {
                        passed: false,
                        exit_code: Some(1),
                        junit: Some(JunitSummary {
                            tests: 4,
                            failures: 1,
                            errors: 0,
                            skipped: 0,
                            failed: vec!["example.com/qa/e2e.TestCheckout".into()],
                        }),
                    }),
                },
            )),
        ),
        (
            "probe",
            wire(&Probe {
                sandbox: "alpha".into(),
                service: "gateway".into(),
                routes: vec![route()],
            }),
        ),
        (
            "probe_report",
            wire(&Reply::ok(ProbeReport {
                routes: vec![RouteCheck {
                    service: "users".into(),
                    target: "http://10.0.0.5:32801".into(),
                    source: RouteSource::Sandbox,
                    ok: true,
                    status: Some(200),
                    latency_ms: Some(12),
                    error: None,
                    hop: None,
                }],
            })),
        ),
        (
            "resource_ensure",
            wire(&sdp_bus::ResourceEnsure {
                sandbox: "alpha".into(),
                name: "db".into(),
                engine: sdp_bus::ResourceEngine::Postgres,
                password: sdp_bus::Secret::new("0123456789abcdefABCDEF0123456789"),
                seed: Some(sdp_bus::ResourceSeed::Repo {
                    repo: "users".into(),
                    branch: "feature/schema".into(),
                    path: "db/seed.sql".into(),
                }),
                credential: Some(GitCredential {
                    username: "dev".into(),
                    password: sdp_bus::Secret::new("app-password"),
                }),
                reset: false,
            }),
        ),
        (
            "resource_ready",
            wire(&Reply::ok(sdp_bus::ResourceReady {
                host: "10.0.0.5".into(),
                port: 32810,
                size_bytes: 41_943_040,
                created: true,
            })),
        ),
        (
            "resource_remove",
            wire(&sdp_bus::ResourceRemove {
                sandbox: "alpha".into(),
                name: "db".into(),
            }),
        ),
        (
            "resource_removed",
            wire(&Reply::ok(sdp_bus::ResourceRemoved { removed: 2 })),
        ),
        ("resource_sizes", wire(&sdp_bus::ResourceSizes {})),
        (
            "resource_size_list",
            wire(&Reply::ok(sdp_bus::ResourceSizeList {
                sizes: vec![sdp_bus::ResourceSize {
                    sandbox: "alpha".into(),
                    name: "db".into(),
                    size_bytes: 41_943_040,
                }],
            })),
        ),
        (
            "branch_status",
            wire(&BranchStatus {
                repo: "site".into(),
                credential: credential(),
                branches: vec![BranchCommit {
                    branch: "main".into(),
                    commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
                }],
            }),
        ),
        (
            "branch_status_list",
            wire(&Reply::ok(BranchStatusList {
                branches: vec![BranchMove {
                    branch: "main".into(),
                    commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
                    head: Some("9c1185a5c5e9fc54612808977ee8f548b2258d31".into()),
                    behind: Some(2),
                    reason: None,
                }],
            })),
        ),
        (
            "list_branches",
            wire(&ListBranches {
                repo: "site".into(),
                credential: credential(),
            }),
        ),
        (
            "branch_list",
            wire(&Reply::ok(BranchList {
                branches: vec![BranchInfo {
                    name: "main".into(),
                    commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
                }],
            })),
        ),
        ("list_repos", wire(&ListRepos {})),
        (
            "verify_credentials",
            wire(&VerifyCredentials {
                probe_repo: "https://git.example.com/scm/team/probe.git".into(),
                credential: credential(),
            }),
        ),
        (
            "credentials_verified",
            wire(&Reply::ok(CredentialsVerified {})),
        ),
    ]
}

const OPEN: &str = "<!-- example: ";
const CLOSE: &str = "<!-- /example -->";

/// The doc with every example block replaced by its value; fails on a
/// marker without its example.
fn rewritten(doc: &str, examples: &BTreeMap<&str, String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut rest = doc;
    let mut seen = Vec::new();
    while let Some(start) = rest.find(OPEN) {
        let after_open = start + OPEN.len();
        let name_end = after_open + rest[after_open..].find(" -->").expect("a closed marker");
        let name = &rest[after_open..name_end];
        let block_start = name_end + " -->".len();
        let close = block_start + rest[block_start..].find(CLOSE).expect("an end marker");
        let example = examples
            .get(name)
            .unwrap_or_else(|| panic!("docs/AGENTS.md names an unknown example {name}"));
        out.push_str(&rest[..block_start]);
        out.push_str(&format!("\n```json\n{example}\n```\n"));
        seen.push(name.to_owned());
        rest = &rest[close..];
    }
    out.push_str(rest);
    (out, seen)
}

#[test]
fn the_agents_doc_examples_are_what_the_bus_types_encode() {
    let path = doc_path();
    let doc = std::fs::read_to_string(&path).expect("docs/AGENTS.md");
    let examples: BTreeMap<&str, String> = examples().into_iter().collect();
    let (expected, seen) = rewritten(&doc, &examples);
    if std::env::var_os("SDP_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("rewrite docs/AGENTS.md");
    } else {
        assert!(
            doc == expected,
            "docs/AGENTS.md's examples differ from the bus types: run \
             `SDP_UPDATE_DOCS=1 cargo nextest run -p sdp-bus --test agents_doc` and read the diff"
        );
    }
    let missing: Vec<&&str> = examples
        .keys()
        .filter(|name| !seen.iter().any(|s| s == **name))
        .collect();
    assert!(missing.is_empty(), "examples not in the doc: {missing:?}");
}

#[test]
fn every_example_decodes_as_its_type() {
    // The doc shows what a reader accepts, not only what a writer makes.
    let examples: BTreeMap<&str, String> = examples().into_iter().collect();
    let heartbeat: Heartbeat = decode(examples["heartbeat"].as_bytes()).expect("heartbeat");
    assert_eq!(heartbeat.serves, Some(Vec::new()));
    let refused: Reply<DeployAccepted> =
        decode(examples["unknown_method"].as_bytes()).expect("reply");
    assert_eq!(
        refused.into_result().expect_err("an error").code,
        RpcErrorCode::UnknownMethod
    );
    let event: Event = decode(examples["event_result_running"].as_bytes()).expect("event");
    assert_eq!(event.body.status(), Some(Status::Running));
}
