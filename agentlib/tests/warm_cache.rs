//! The Go flavour warms its build cache when the agent starts, and says so
//! in heartbeats: `warming`, then `warm` (or `failed: …`). Real nats-server,
//! Docker engine and go.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sdp_agentlib::{AgentConfig, GoFlavour};
use sdp_bus::{Heartbeat, decode, subject};
use sdp_testkit::{NatsServer, ReposDir, ensure_busybox_image, unique_id};
use tokio_util::sync::CancellationToken;

/// Compiling the standard library into an empty cache on 2 busy cores.
const WARM_TIMEOUT: Duration = Duration::from_secs(400);

/// Starts an agent and returns the `build_cache` of each heartbeat until
/// one is neither absent nor `warming`.
async fn build_cache_states(flavour: GoFlavour, cache_dir: PathBuf) -> Vec<Option<String>> {
    sdp_testkit::init_tracing();
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let repos = ReposDir::new();
    let data = tempfile::tempdir().expect("data dir");
    let agent_id = unique_id("warm");
    let mut config: AgentConfig =
        sdp_bus::settings::load(None, Vec::<(String, String)>::new()).expect("config");
    config.nats = sdp_bus::nats::NatsConfig::with_url(nats.url());
    config.agent.id = agent_id.clone();
    config.data_dir = data.path().to_path_buf();
    config.repos_dir = repos.path().to_path_buf();
    config.flavour.base_image = Some(ensure_busybox_image());
    config.flavour.cache_dir = Some(cache_dir);
    // Subscribed before the agent starts: the first heartbeat is seen.
    let mut beats = client
        .subscribe(subject::agent_heartbeat("micro", &agent_id))
        .await
        .expect("subscribe");
    let shutdown = CancellationToken::new();
    let agent = tokio::spawn(sdp_agentlib::run(
        config,
        Arc::new(flavour),
        shutdown.clone(),
    ));
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + WARM_TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, beats.next())
            .await
            .unwrap_or_else(|_| panic!("not warm in time; heartbeats said {states:?}"))
            .expect("heartbeat stream");
        let heartbeat: Heartbeat = decode(&message.payload).expect("heartbeat decodes");
        let state = heartbeat.build_cache;
        let settled = state.as_deref().is_some_and(|s| s != "warming");
        states.push(state);
        if settled {
            break;
        }
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), agent)
        .await
        .expect("agent stops in time")
        .expect("agent task")
        .expect("agent ran without error");
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_show_the_build_cache_going_from_warming_to_warm() {
    // The cache the deploy tests share: warm-up is a quick check once the
    // standard library is in it, a full compile the first time.
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sdp-go-cache");
    let states = build_cache_states(GoFlavour::default(), cache.clone()).await;
    assert_eq!(
        states.first(),
        Some(&Some("warming".to_owned())),
        "{states:?}"
    );
    assert_eq!(states.last(), Some(&Some("warm".to_owned())), "{states:?}");
    assert!(cache.join("go-build").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_without_go_reports_why_it_failed() {
    let cache = tempfile::tempdir().expect("cache dir");
    // A PATH with `nice` (the warm-up runs niced) but no `go`.
    let bin = tempfile::tempdir().expect("bin dir");
    std::os::unix::fs::symlink("/usr/bin/nice", bin.path().join("nice")).expect("link nice");
    let flavour = GoFlavour {
        path: bin.path().as_os_str().to_owned(),
    };
    let states = build_cache_states(flavour, cache.path().to_path_buf()).await;
    let last = states.last().cloned().flatten().unwrap_or_default();
    assert!(
        last.starts_with("failed: go build std: ") && last.contains("go"),
        "{states:?}"
    );
}
