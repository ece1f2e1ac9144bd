//! The Go flavour warms its build cache when the agent starts, and says so
//! in heartbeats: `warming`, then `warm` (or `failed: …`); a deployment's
//! build pauses it. Real nats-server, Docker engine, git server and go.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sdp_agentlib::{AgentConfig, GoFlavour};
use sdp_bus::{Heartbeat, decode, subject};
use sdp_testkit::{NatsServer, ReposDir, ensure_busybox_image, unique_id};
use tokio_util::sync::CancellationToken;

/// Compiling the standard library into an empty cache on 2 busy cores.
const WARM_TIMEOUT: Duration = Duration::from_secs(400);

/// Starts an agent and returns the `build_cache` of each heartbeat until
/// one is neither absent nor `warming`, and the toolchains that last one
/// listed.
async fn build_cache_states(
    flavour: GoFlavour,
    cache_dir: PathBuf,
) -> (Vec<Option<String>>, Vec<String>) {
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
    config.build.image = sdp_testkit::ensure_build_image();
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
    let mut toolchains;
    let deadline = tokio::time::Instant::now() + WARM_TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, beats.next())
            .await
            .unwrap_or_else(|_| panic!("not warm in time; heartbeats said {states:?}"))
            .expect("heartbeat stream");
        let heartbeat: Heartbeat = decode(&message.payload).expect("heartbeat decodes");
        let state = heartbeat.build_cache;
        toolchains = heartbeat.toolchains;
        let settled = state
            .as_deref()
            .is_some_and(|s| s != "warming" && s != "paused");
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
    (states, toolchains)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_show_the_build_cache_going_from_warming_to_warm() {
    // The cache the deploy tests share: warm-up is a quick check once the
    // standard library is in it, a full compile the first time.
    let cache = sdp_testkit::shared_go_cache();
    let (states, toolchains) = build_cache_states(GoFlavour::default(), cache.clone()).await;
    assert_eq!(
        states.first(),
        Some(&Some("warming".to_owned())),
        "{states:?}"
    );
    assert_eq!(states.last(), Some(&Some("warm".to_owned())), "{states:?}");
    // The standard library the sandboxes' caches are seeded from, one per
    // toolchain the agent has.
    assert!(
        toolchains.iter().any(|t| t.starts_with("go 1.")),
        "{toolchains:?}"
    );
    for label in &toolchains {
        let dir = label.replace("go ", "go-std-");
        assert!(cache.join(&dir).is_dir(), "{dir}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_without_go_reports_why_it_failed() {
    let cache = tempfile::tempdir().expect("cache dir");
    // A PATH with `nice` (the warm-up runs niced) but no `go`.
    let bin = tempfile::tempdir().expect("bin dir");
    std::os::unix::fs::symlink("/usr/bin/nice", bin.path().join("nice")).expect("link nice");
    // And no `go-1.*` where Debian puts them.
    let lib = tempfile::tempdir().expect("lib dir");
    let flavour = GoFlavour {
        path: bin.path().as_os_str().to_owned(),
        lib_dir: lib.path().to_path_buf(),
    };
    let (states, toolchains) = build_cache_states(flavour, cache.path().to_path_buf()).await;
    assert!(toolchains.is_empty(), "{toolchains:?}");
    let last = states.last().cloned().flatten().unwrap_or_default();
    assert!(
        last.starts_with("failed: go build std: ") && last.contains("go"),
        "{states:?}"
    );
}

/// The Go flavour, but its warm-up is a child that never ends by itself
/// (`sleep`), so the only way it starts a second time is being stopped for
/// a build and started again.
struct EndlessWarmUp {
    go: GoFlavour,
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
}

/// Counts a warm-up future dropped (and its child killed with it).
struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl sdp_agentlib::Flavour for EndlessWarmUp {
    fn kind(&self) -> &'static str {
        self.go.kind()
    }

    fn default_base_image(&self) -> &'static str {
        self.go.default_base_image()
    }

    fn container(&self, settings: &sdp_bus::ServiceSettings) -> sdp_agentlib::ContainerSpec {
        self.go.container(settings)
    }

    fn build<'a>(
        &'a self,
        ctx: &'a sdp_agentlib::BuildContext,
        events: &'a mut sdp_agentlib::EventSink,
    ) -> futures::future::BoxFuture<'a, Result<(), sdp_agentlib::DeployError>> {
        self.go.build(ctx, events)
    }

    fn warm_cache(
        &self,
        _builder: &sdp_agentlib::BuildBox,
        _cache_dir: &Path,
        _config: &AgentConfig,
    ) -> Option<futures::future::BoxFuture<'static, Result<(), String>>> {
        let (starts, stops) = (self.starts.clone(), self.stops.clone());
        Some(Box::pin(async move {
            starts.fetch_add(1, Ordering::SeqCst);
            let _dropped = CountDrop(stops);
            let mut sleep = tokio::process::Command::new("sleep");
            sleep.arg("3600").kill_on_drop(true);
            let status = sleep.status().await.map_err(|e| e.to_string())?;
            Err(format!("sleep ended: {status}"))
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_pauses_the_warm_up_and_it_resumes_after() {
    let world = common::World::start("pw-warm").await;
    let _fixture = sdp_testkit::GoFixture::create(&world.git, "users", &["main"]);
    let repos = ReposDir::new();
    repos.add("users", &world.git.url("users"));
    let (starts, stops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flavour = EndlessWarmUp {
        go: GoFlavour::default(),
        starts: starts.clone(),
        stops: stops.clone(),
    };
    let agent = common::TestAgent::start(
        &world,
        "warm",
        Arc::new(flavour),
        ensure_busybox_image(),
        repos,
        |config| config.health.path = "/healthz".into(),
    )
    .await;
    sdp_testkit::wait_for("the warm-up to start", Duration::from_secs(20), || async {
        (starts.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert_eq!(
        agent.wait_heartbeat(&world).await.build_cache.as_deref(),
        Some("warming")
    );

    let request = common::deploy_request("alpha", "users", "main", "pw-warm");
    let reply: sdp_bus::Reply<sdp_bus::DeployAccepted> = world
        .request(subject::deploy_request("micro"), &request)
        .await;
    reply.into_result().expect("accepted");
    let events = world.events_until_result(&request.deployment_id).await;
    assert!(
        matches!(
            events.last().map(|e| &e.body),
            Some(sdp_bus::EventBody::Result {
                status: sdp_bus::Status::Running,
                ..
            })
        ),
        "{events:#?}"
    );
    // The build stopped the warm-up (its child killed with the future);
    // once no build ran, it started again.
    sdp_testkit::wait_for(
        "the warm-up to start again",
        Duration::from_secs(20),
        || async { (starts.load(Ordering::SeqCst) == 2).then_some(()) },
    )
    .await;
    assert_eq!(
        stops.load(Ordering::SeqCst),
        1,
        "the first warm-up was stopped once"
    );
    agent.stop().await;
}
