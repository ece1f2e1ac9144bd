//! The agent in-process against a real nats-server, git smart-HTTP server,
//! `go` and Docker engine. Each test has its own NATS, git
//! server, repos dir, data dir and agent id; containers are removed by a
//! drop guard on the agent id label.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{TestAgent, USER, World, phases};
use futures::StreamExt;
use sdp_agentlib::GoFlavour;
use sdp_bus::{
    CredentialsVerified, DeployAccepted, DeployRequest, DeploymentId, Event, EventBody,
    GitCredential, Heartbeat, LogStream, Reply, RpcErrorCode, Secret, Status, Teardown,
    TeardownDone, VerifyCredentials, decode, encode, subject,
};
use sdp_testkit::{GoFixture, ReposDir, containers_with_label, ensure_busybox_image, wait_for};

const PASSWORD: &str = "canary-Pw-7f3a91";
const REPO: &str = "users";

/// One micro agent serving the `users` fixture.
struct Harness {
    agent_id: String,
    client: async_nats::Client,
    fixture: GoFixture,
    agent: TestAgent,
    world: World,
}

#[derive(Default)]
struct Options {
    base_image: Option<String>,
    health_timeout_secs: Option<u64>,
}

impl Harness {
    async fn start(options: Options) -> Harness {
        let world = World::start(PASSWORD).await;
        let fixture = GoFixture::create(&world.git, REPO, &["main", "feature/x"]);
        let repos = ReposDir::new();
        repos.add(REPO, &world.git.url(REPO));
        let base_image = options.base_image.unwrap_or_else(ensure_busybox_image);
        let agent = TestAgent::start(
            &world,
            "t",
            Arc::new(GoFlavour::default()),
            base_image,
            repos,
            |config| {
                config.health.path = "/healthz".into();
                if let Some(secs) = options.health_timeout_secs {
                    config.health.timeout_secs = secs;
                }
            },
        )
        .await;
        Harness {
            agent_id: agent.id.clone(),
            client: world.client.clone(),
            fixture,
            agent,
            world,
        }
    }

    /// Waits for a heartbeat.
    async fn wait_heartbeat(&self) -> Heartbeat {
        self.agent.wait_heartbeat(&self.world).await
    }

    fn request(&self, branch: &str, password: &str) -> DeployRequest {
        DeployRequest {
            env: BTreeMap::from([("USERS_URL".to_owned(), "http://users.baseline".to_owned())]),
            ..common::deploy_request("alpha", REPO, branch, password)
        }
    }

    async fn send(&self, request: &DeployRequest) -> Reply<DeployAccepted> {
        self.world
            .request(subject::deploy_request("micro"), request)
            .await
    }

    async fn deploy(&self, request: &DeployRequest) {
        let reply = self.send(request).await.into_result().expect("accepted");
        assert_eq!(reply.agent_id, self.agent_id);
    }

    /// Every event of `id` in the stream until (and with) its result.
    async fn events_until_result(&self, id: &DeploymentId) -> Vec<Event> {
        self.world.events_until_result(id).await
    }

    async fn stop(self) {
        self.agent.stop().await;
    }
}

fn check_seq(events: &[Event], id: &DeploymentId, agent_id: &str) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as u64 + 1, "seq gap or reorder: {events:#?}");
        assert_eq!(&event.deployment_id, id);
        assert_eq!(event.agent_id, agent_id);
    }
}

/// (status, url, error, commit, log_tail) of the last event, which must be
/// the only result.
fn result(
    events: &[Event],
) -> (
    Status,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
) {
    let results = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Result { .. }))
        .count();
    assert_eq!(results, 1, "exactly one result: {events:#?}");
    match &events.last().expect("events").body {
        EventBody::Result {
            status,
            url,
            error,
            commit,
            log_tail,
            ..
        } => (
            *status,
            url.clone(),
            error.clone(),
            commit.clone(),
            log_tail.clone(),
        ),
        other => panic!("last event is not a result: {other:?}"),
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// No file under `dir` (worktrees, git dirs, builds) holds `needle`.
fn assert_not_on_disk(dir: &std::path::Path, needle: &str) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(entry.expect("entry").path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the password was written to {}",
                path.display()
            );
        }
    }
}

fn assert_no_canary(events: &[Event]) {
    for event in events {
        let text = String::from_utf8(encode(event)).expect("utf8");
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_feature_branch_and_redeploy_replaces_container() {
    let h = Harness::start(Options::default()).await;
    let request = h.request("feature/x", PASSWORD);
    h.deploy(&request).await;
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    assert_eq!(
        phases(&events),
        [
            Status::Queued,
            Status::Fetching,
            Status::Building,
            Status::Starting
        ],
        "{events:#?}"
    );
    let (status, url, error, commit, _) = result(&events);
    assert_eq!(
        status,
        Status::Running,
        "error: {error:?}, events: {events:#?}"
    );
    let expected_commit = h.fixture.commit("feature/x");
    assert_eq!(commit.as_deref(), Some(expected_commit.as_str()));
    assert!(
        events
            .iter()
            .flat_map(|e| e.body.log_lines())
            .any(|(stream, line)| stream == LogStream::System && line.starts_with("$ go build")),
        "the build command is logged: {events:#?}"
    );
    assert!(events.iter().any(|e| matches!(&e.body, EventBody::Phase { phase: Status::Building, commit: Some(c) } if *c == expected_commit)));
    assert_no_canary(&events);
    assert_not_on_disk(h.agent.data.path(), PASSWORD);

    let url = url.expect("url");
    let body = get_json(&format!("{url}/hello")).await;
    assert_eq!(body["branch"], "feature/x");
    assert_eq!(body["commit"], expected_commit.as_str());
    assert_eq!(body["revision"], "1");
    assert_eq!(body["path"], "/hello");

    // Redeploy a new revision: the container is replaced.
    let new_commit = h.fixture.push_revision("feature/x", "2");
    let again = h.request("feature/x", PASSWORD);
    h.deploy(&again).await;
    let events = h.events_until_result(&again.deployment_id).await;
    check_seq(&events, &again.deployment_id, &h.agent_id);
    let (status, url, error, commit, _) = result(&events);
    assert_eq!(status, Status::Running, "error: {error:?}");
    assert_eq!(commit.as_deref(), Some(new_commit.as_str()));
    let body = get_json(&url.expect("url")).await;
    assert_eq!(body["revision"], "2");
    assert_eq!(body["commit"], new_commit.as_str());
    let containers = containers_with_label("sdp.agent", &h.agent_id);
    assert_eq!(
        containers.len(),
        1,
        "one container after a redeploy: {containers:?}"
    );
    assert_eq!(
        containers_with_label("sdp.deployment", again.deployment_id.as_str()),
        containers
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_branch_fails_with_a_reason() {
    let h = Harness::start(Options::default()).await;
    let request = h.request("no-such-branch", PASSWORD);
    h.deploy(&request).await;
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    let (status, _, error, _, _) = result(&events);
    assert_eq!(status, Status::Failed);
    let error = error.expect("error");
    assert!(
        error.contains("branch 'no-such-branch' does not exist in users"),
        "{error}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_and_never_leaks() {
    let h = Harness::start(Options::default()).await;
    let wrong = "wrong-Canary-55d1";
    let request = h.request("main", wrong);
    h.deploy(&request).await;
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    let (status, _, error, _, _) = result(&events);
    assert_eq!(status, Status::Failed);
    let error = error.expect("error");
    assert!(error.contains("refused your credential"), "{error}");
    for event in &events {
        let text = String::from_utf8(encode(event)).expect("utf8");
        assert!(!text.contains(wrong), "the password leaked: {text}");
    }
    assert_not_on_disk(h.agent.data.path(), wrong);
    // Asked once, refused once: no retry loop against the git server.
    assert!(
        h.world.git.auth_failures() <= 3,
        "auth failures: {}",
        h.world.git.auth_failures()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_base_image_fails_naming_docker_load() {
    let h = Harness::start(Options {
        base_image: Some("sdp-missing:0".into()),
        ..Options::default()
    })
    .await;
    let beat = h.wait_heartbeat().await;
    assert_eq!(beat.missing_images, ["sdp-missing:0"]);
    let request = h.request("main", PASSWORD);
    h.deploy(&request).await;
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    let (status, _, error, _, _) = result(&events);
    assert_eq!(status, Status::Failed);
    let error = error.expect("error");
    assert!(error.contains("docker load"), "{error}");
    assert!(error.contains("sdp-missing:0"), "{error}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_build() {
    let h = Harness::start(Options::default()).await;
    h.fixture.push_slow_build("main");
    let request = h.request("main", PASSWORD);
    let mut progress = h
        .client
        .subscribe(subject::deploy_progress(&request.deployment_id))
        .await
        .expect("subscribe");
    h.deploy(&request).await;
    // Wait for the building phase, then cancel.
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = progress.next().await {
            let event: Event = decode(&message.payload).expect("event");
            if matches!(
                event.body,
                EventBody::Phase {
                    phase: Status::Building,
                    ..
                }
            ) {
                return;
            }
        }
    })
    .await
    .expect("building phase in time");
    h.client
        .publish(
            subject::deploy_cancel(&request.deployment_id),
            encode(&sdp_bus::DeployCancel::default()).into(),
        )
        .await
        .expect("cancel");
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    let (status, url, error, _, _) = result(&events);
    assert_eq!(status, Status::Cancelled, "events: {events:#?}");
    assert_eq!(error.as_deref(), Some("cancelled"));
    assert!(url.is_none());
    assert!(
        !phases(&events).contains(&Status::Starting),
        "cancelled mid-build"
    );
    assert!(containers_with_label("sdp.deployment", request.deployment_id.as_str()).is_empty());
    // The build ran in a container, killed and removed with the build.
    assert!(
        containers_with_label("sdp.build.deployment", request.deployment_id.as_str()).is_empty(),
        "the cancelled build's container is gone"
    );
    // The job is settled: the next heartbeat lists nothing running.
    wait_for(
        "no running deployments",
        Duration::from_secs(10),
        || async { h.wait_heartbeat().await.running.is_empty().then_some(()) },
    )
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_credentials_ok_and_unauthorized() {
    let h = Harness::start(Options::default()).await;
    let verify = |password: &str| VerifyCredentials {
        probe_repo: h.world.git.url(REPO),
        credential: GitCredential {
            username: USER.into(),
            password: Secret::new(password),
        },
    };
    let ask = |request: VerifyCredentials| {
        let client = h.client.clone();
        async move {
            let response = tokio::time::timeout(
                Duration::from_secs(30),
                client.request(
                    subject::agent_rpc("micro", subject::VERIFY_CREDENTIALS),
                    encode(&request).into(),
                ),
            )
            .await
            .expect("in time")
            .expect("reply");
            decode::<Reply<CredentialsVerified>>(&response.payload).expect("decodes")
        }
    };
    assert_eq!(
        ask(verify(PASSWORD)).await.into_result(),
        Ok(CredentialsVerified {})
    );
    let refused = ask(verify("nope-canary-1"))
        .await
        .into_result()
        .expect_err("refused");
    assert_eq!(refused.code, RpcErrorCode::Unauthorized);
    assert!(!refused.message.contains("nope-canary-1"));
    let mut bad_scheme = verify(PASSWORD);
    bad_scheme.probe_repo = "file:///etc".into();
    let err = ask(bad_scheme).await.into_result().expect_err("refused");
    assert_eq!(err.code, RpcErrorCode::BadRequest);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_before_git() {
    let h = Harness::start(Options::default()).await;
    let before = h.world.git.requests();

    let request = h.request("--upload-pack=touch /tmp/pwned", PASSWORD);
    let err = h.send(&request).await.into_result().expect_err("refused");
    assert_eq!(err.code, RpcErrorCode::BadRequest);
    assert!(err.message.contains("branch"), "{}", err.message);

    let mut request = h.request("main", PASSWORD);
    request.repo = "../etc".into();
    let err = h.send(&request).await.into_result().expect_err("refused");
    assert_eq!(err.code, RpcErrorCode::BadRequest);

    let mut request = h.request("main", PASSWORD);
    request.repo = "unknown".into();
    let err = h.send(&request).await.into_result().expect_err("refused");
    assert_eq!(err.code, RpcErrorCode::BadRequest);
    assert!(err.message.contains("not on this agent"), "{}", err.message);
    assert!(!err.message.contains('/'), "no host path: {}", err.message);

    let mut request = h.request("main", PASSWORD);
    request.env.insert("BAD-KEY".into(), "x".into());
    let err = h.send(&request).await.into_result().expect_err("refused");
    assert_eq!(err.code, RpcErrorCode::BadRequest);

    // A payload that does not decode gets an error reply.
    let response = h
        .client
        .request(
            subject::deploy_request("micro"),
            "{\"v\":1,\"nope\":true}".into(),
        )
        .await
        .expect("reply");
    let reply: Reply<DeployAccepted> = decode(&response.payload).expect("decodes");
    assert_eq!(
        reply.into_result().expect_err("refused").code,
        RpcErrorCode::BadRequest
    );

    assert_eq!(h.world.git.requests(), before, "git was never asked");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let beat = h.wait_heartbeat().await;
    assert!(beat.running.is_empty());
    assert_eq!(beat.repos, [REPO]);
    assert!(beat.missing_images.is_empty());
    assert_eq!(beat.kind, "micro");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_build_fails_with_compiler_output() {
    let h = Harness::start(Options::default()).await;
    h.fixture.push_broken("main");
    let request = h.request("main", PASSWORD);
    h.deploy(&request).await;
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    let (status, _, error, commit, _) = result(&events);
    assert_eq!(status, Status::Failed);
    let error = error.expect("error");
    assert!(error.starts_with("go build exited with status "), "{error}");
    assert_eq!(commit.as_deref(), Some(h.fixture.commit("main").as_str()));
    assert!(
        events
            .iter()
            .flat_map(|e| e.body.log_lines())
            .any(|(stream, _)| stream == LogStream::Stderr),
        "compiler output is logged: {events:#?}"
    );
    h.stop().await;
}

/// Every log line of `events`, in order.
fn log_lines(events: &[Event]) -> Vec<(LogStream, String)> {
    events
        .iter()
        .flat_map(|e| e.body.log_lines())
        .map(|(stream, line)| (stream, line.to_owned()))
        .collect()
}

/// The lines after the `last output of container <name>:` system line.
fn last_words(events: &[Event], name: &str) -> Vec<(LogStream, String)> {
    let lines = log_lines(events);
    let header = format!("last output of container {name}:");
    let at = lines
        .iter()
        .position(|(stream, line)| *stream == LogStream::System && *line == header)
        .unwrap_or_else(|| panic!("no {header:?} in the log: {lines:#?}"));
    lines[at + 1..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_service_fails_with_its_last_output_in_the_log() {
    let h = Harness::start(Options::default()).await;
    let message = sdp_testkit::unique_id("fatal: USERS_DB is not set");
    h.fixture.push_crashing("main", &message, 3);
    let request = h.request("main", PASSWORD);
    h.deploy(&request).await;
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    let (status, _, error, _, log_tail) = result(&events);
    assert_eq!(status, Status::Failed);
    assert_eq!(
        error.as_deref(),
        Some("container exited with code 3 before its health check passed")
    );
    let name = format!("sdp.{}.alpha.{REPO}", h.agent_id);
    // Docker copies stdout and stderr apart: their order between the two
    // streams is not kept, only within each.
    let mut words = last_words(&events, &name);
    words.sort_by(|a, b| a.1.cmp(&b.1));
    let mut expected = vec![
        (LogStream::Stdout, "starting".to_owned()),
        (LogStream::Stderr, message.clone()),
    ];
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(words, expected, "{events:#?}");
    let mut log_tail = log_tail;
    log_tail.sort();
    let mut expected = vec!["starting".to_owned(), message];
    expected.sort();
    assert_eq!(
        log_tail, expected,
        "the result's log_tail holds the same lines, for the result box"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_never_healthy_shows_its_output_after_the_timeout() {
    let h = Harness::start(Options {
        health_timeout_secs: Some(2),
        ..Options::default()
    })
    .await;
    let line = sdp_testkit::unique_id("warming up forever");
    h.fixture.push_unhealthy("main", &line);
    let request = h.request("main", PASSWORD);
    h.deploy(&request).await;
    let events = h.events_until_result(&request.deployment_id).await;
    check_seq(&events, &request.deployment_id, &h.agent_id);
    let (status, _, error, _, _) = result(&events);
    assert_eq!(status, Status::Failed);
    assert_eq!(
        error.as_deref(),
        Some("health check of /healthz did not pass within 2s")
    );
    let name = format!("sdp.{}.alpha.{REPO}", h.agent_id);
    let words = last_words(&events, &name);
    assert_eq!(words, [(LogStream::Stdout, line)], "{events:#?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_deployment_supersedes_a_running_one() {
    let h = Harness::start(Options::default()).await;
    h.fixture.push_slow_build("main");
    let first = h.request("main", PASSWORD);
    let mut progress = h
        .client
        .subscribe(subject::deploy_progress(&first.deployment_id))
        .await
        .expect("subscribe");
    h.deploy(&first).await;
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = progress.next().await {
            let event: Event = decode(&message.payload).expect("event");
            if matches!(
                event.body,
                EventBody::Phase {
                    phase: Status::Building,
                    ..
                }
            ) {
                return;
            }
        }
    })
    .await
    .expect("building phase in time");
    let beat = h.wait_heartbeat().await;
    assert_eq!(beat.running, std::slice::from_ref(&first.deployment_id));
    assert_eq!(beat.capacity, 1);

    let second = h.request("feature/x", PASSWORD);
    h.deploy(&second).await;
    let events = h.events_until_result(&first.deployment_id).await;
    check_seq(&events, &first.deployment_id, &h.agent_id);
    let (status, _, error, _, _) = result(&events);
    assert_eq!(status, Status::Cancelled);
    assert_eq!(
        error.as_deref(),
        Some(format!("superseded by deployment {}", second.deployment_id).as_str())
    );
    let events = h.events_until_result(&second.deployment_id).await;
    check_seq(&events, &second.deployment_id, &h.agent_id);
    let (status, url, error, _, _) = result(&events);
    assert_eq!(status, Status::Running, "{error:?}");
    let body = get_json(&url.expect("url")).await;
    assert_eq!(body["branch"], "feature/x");
    h.stop().await;
}

/// Two sandboxes deploy one repo at once through the shared store; tearing
/// one down leaves the other running and able to redeploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_share_a_repo_and_survive_each_others_teardown() {
    let h = Harness::start(Options::default()).await;
    let alpha = h.request("main", PASSWORD);
    let mut beta = h.request("main", PASSWORD);
    beta.sandbox = "beta".into();
    h.deploy(&alpha).await;
    h.deploy(&beta).await;
    let (alpha_events, beta_events) = tokio::join!(
        h.events_until_result(&alpha.deployment_id),
        h.events_until_result(&beta.deployment_id)
    );
    for events in [&alpha_events, &beta_events] {
        let (status, _, error, commit, _) = result(events);
        assert_eq!(status, Status::Running, "error: {error:?}");
        assert_eq!(commit.as_deref(), Some(h.fixture.commit("main").as_str()));
        assert_no_canary(events);
    }
    // One of them fetched; the other found every object in the store.
    let nothing_new = |events: &[Event]| {
        events
            .iter()
            .flat_map(|e| e.body.log_lines())
            .any(|(_, line)| line.starts_with("nothing new to fetch"))
    };
    assert!(
        nothing_new(&alpha_events) != nothing_new(&beta_events),
        "exactly one deployment fetched: {alpha_events:#?} {beta_events:#?}"
    );
    let data = h.agent.data.path();
    assert!(data.join("stores/users.git/objects").is_dir());

    let teardown = Teardown {
        sandbox: "alpha".into(),
    };
    let reply = h
        .client
        .request(
            subject::agent_cmd(&h.agent_id, subject::TEARDOWN),
            encode(&teardown).into(),
        )
        .await
        .expect("teardown request");
    let done: Reply<TeardownDone> = decode(&reply.payload).expect("teardown reply");
    assert_eq!(done.into_result().expect("torn down").worktrees_removed, 1);
    assert!(!data.join("worktrees/alpha").exists());
    assert!(!data.join("gitdirs/alpha").exists());
    assert!(data.join("stores/users.git/objects").is_dir());

    // beta still serves, and redeploys a new commit incrementally.
    let (_, url, ..) = result(&beta_events);
    let body = get_json(&url.expect("beta url")).await;
    assert_eq!(body["revision"], "1");
    let new_commit = h.fixture.push_revision("main", "2");
    let mut again = h.request("main", PASSWORD);
    again.sandbox = "beta".into();
    h.deploy(&again).await;
    let events = h.events_until_result(&again.deployment_id).await;
    let (status, url, error, commit, _) = result(&events);
    assert_eq!(status, Status::Running, "error: {error:?}");
    assert_eq!(commit.as_deref(), Some(new_commit.as_str()));
    assert_eq!(get_json(&url.expect("url")).await["revision"], "2");
    assert_not_on_disk(data, PASSWORD);
    h.stop().await;
}
