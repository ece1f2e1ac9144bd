//! Each Go build takes the oldest toolchain of the agent its `go.mod`
//! allows (docs/GO_TOOLCHAINS.md): one sandbox holds a `go 1.19` service
//! and a `go 1.22` one (range over an int), each built by its own Go and
//! both answering; a `go.mod` asking for a Go the agent lacks fails before
//! any build container starts, naming the package to install. Real
//! nats-server, git server, Docker and the host's toolchains (Go 1.19 on
//! `PATH`, Go 1.22 in `/usr/lib/go-1.22`: `scripts/lib/go_toolchains.sh`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestAgent, World};
use sdp_agentlib::GoFlavour;
use sdp_bus::{Event, Status};
use sdp_testkit::{GoFixture, ReposDir, ensure_busybox_image};

const PASSWORD: &str = "toolchains-Pw-51c2";

/// The system lines of a deployment's log.
fn log_lines(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .flat_map(|e| e.body.log_lines().map(|(_, line)| line.to_owned()))
        .collect()
}

/// The build log's line naming the toolchain: `go 1.22.12 (go.mod asks …)`.
fn toolchain_line(events: &[Event]) -> String {
    log_lines(events)
        .into_iter()
        .find(|line| line.starts_with("go 1.") && line.contains("(go.mod asks"))
        .unwrap_or_else(|| panic!("no toolchain line in {:#?}", log_lines(events)))
}

async fn get_text(url: &str) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
}

/// Go 1.22 where Debian's backports package puts it: these tests need it.
fn require_go_1_22() {
    assert!(
        std::path::Path::new("/usr/lib/go-1.22/bin/go").is_file(),
        "these tests need Go 1.22 in /usr/lib/go-1.22: run sdp_install_go_toolchains (scripts/lib/go_toolchains.sh)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_of_a_sandbox_builds_with_the_go_its_go_mod_asks_for() {
    require_go_1_22();
    let world = World::start(PASSWORD).await;
    // `legacy`: the usual fixture, `go 1.19`. `modern`: `go 1.22`, and a
    // range over an int that no older Go compiles.
    let _legacy = GoFixture::create(&world.git, "legacy", &["main"]);
    let modern = GoFixture::create(&world.git, "modern", &["main"]);
    modern.push_go122_features("main");
    let repos = ReposDir::new();
    repos.add("legacy", &world.git.url("legacy"));
    repos.add("modern", &world.git.url("modern"));
    let agent = TestAgent::start(
        &world,
        "gotc",
        Arc::new(GoFlavour::default()),
        ensure_busybox_image(),
        repos,
        |config| config.health.path = "/healthz".into(),
    )
    .await;

    // The heartbeat lists both, oldest first.
    let toolchains = agent.wait_heartbeat(&world).await.toolchains;
    let position = |prefix: &str| {
        toolchains
            .iter()
            .position(|t| t.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in {toolchains:?}"))
    };
    assert!(
        position("go 1.19.") < position("go 1.22."),
        "{toolchains:?}"
    );

    for (repo, version, asks) in [
        ("legacy", "go 1.19.", "(go.mod asks >= 1.19)"),
        ("modern", "go 1.22.", "(go.mod asks >= 1.22)"),
    ] {
        let request = common::deploy_request("alpha", repo, "main", PASSWORD);
        let (events, status, url, error) = agent.deploy_and_wait(&world, &request).await;
        assert_eq!(status, Status::Running, "{repo}: {error:?} {events:#?}");
        let line = toolchain_line(&events);
        assert!(
            line.starts_with(version) && line.ends_with(asks),
            "{repo}: {line}"
        );
        // The build ran with that toolchain, read-only, on its PATH.
        let lines = log_lines(&events);
        assert!(
            lines.iter().any(|l| l.starts_with("$ go build")),
            "{repo}: {lines:#?}"
        );
        let url = url.expect("a running service has a URL");
        assert_eq!(get_text(&format!("{url}/healthz")).await, "ok", "{repo}");
        let body: serde_json::Value =
            serde_json::from_str(&get_text(&format!("{url}/hello")).await).expect("JSON");
        assert_eq!(body["service"], repo);
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_mod_asking_for_a_go_the_agent_lacks_fails_before_building() {
    require_go_1_22();
    let world = World::start(PASSWORD).await;
    let future = GoFixture::create(&world.git, "future", &["main"]);
    future.push_go_mod("main", "go 1.99");
    let repos = ReposDir::new();
    repos.add("future", &world.git.url("future"));
    let agent = TestAgent::start(
        &world,
        "gotc",
        Arc::new(GoFlavour::default()),
        ensure_busybox_image(),
        repos,
        |config| config.health.path = "/healthz".into(),
    )
    .await;

    let request = common::deploy_request("alpha", "future", "main", PASSWORD);
    let (events, status, url, error) = agent.deploy_and_wait(&world, &request).await;
    assert_eq!(status, Status::Failed, "{events:#?}");
    assert_eq!(url, None);
    let error = error.expect("a failed deployment says why");
    assert!(
        error.starts_with("go.mod asks for Go >= 1.99 but this agent has go 1.19.")
            && error.contains(", go 1.22.")
            && error.contains(
                "install golang-1.99-go (Debian backports) or add its GOROOT to go.toolchains"
            ),
        "{error}"
    );
    // Nothing was built: no build container said what it runs, and the
    // sandbox's build caches were never made.
    let lines = log_lines(&events);
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("build container:") || l.starts_with("$ go build")),
        "{lines:#?}"
    );
    assert!(
        !agent
            .data
            .path()
            .join("build-caches/alpha/go-build")
            .exists(),
        "the sandbox's Go cache was made"
    );
    agent.stop().await;
}

#[tokio::test]
async fn an_agent_whose_configured_toolchain_is_not_one_refuses_to_start() {
    let data = tempfile::tempdir().expect("data dir");
    let not_go = tempfile::tempdir().expect("a directory without bin/go");
    let mut config: sdp_agentlib::AgentConfig =
        sdp_bus::settings::load(None, Vec::<(String, String)>::new()).expect("config");
    config.data_dir = data.path().to_path_buf();
    config.go.toolchains = Some(vec![
        std::path::PathBuf::from("/usr/lib/go-1.19"),
        not_go.path().to_path_buf(),
    ]);
    let err = sdp_agentlib::run(
        config,
        Arc::new(GoFlavour::default()),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.starts_with("invalid configuration: go.toolchains: ")
            && message.contains(&not_go.path().display().to_string())
            && message.contains("is not a Go toolchain"),
        "{message}"
    );
}
