//! The harness both agent test binaries share: a [`World`] (a nats-server
//! with the `DEPLOY_PROGRESS` stream, a git smart-HTTP server) and
//! [`TestAgent`]s in-process, each with its own repos dir, data dir and id,
//! whose containers are removed on drop. What a test asserts about events
//! (log lines included) stays in the test.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use sdp_agentlib::{AgentConfig, AgentError, Flavour};
use sdp_bus::{
    DeployAccepted, DeployRequest, DeploymentId, Event, EventBody, GitCredential, Heartbeat, Reply,
    Secret, Status, decode, encode, subject,
};
use sdp_testkit::{ContainerCleanup, GitServer, NatsServer, ReposDir, unique_id};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

pub const USER: &str = "dev";
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);
/// Compiling the standard library into an empty cache on 2 busy cores.
pub const WARM_TIMEOUT: Duration = Duration::from_secs(600);

/// NATS, the git server, and what the agents share.
pub struct World {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub git: GitServer,
    pub nats: NatsServer,
}

impl World {
    /// NATS and a git server that lets [`USER`] in with `password`.
    pub async fn start(password: &str) -> World {
        sdp_testkit::init_tracing();
        let nats = NatsServer::start();
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let js = jetstream::new(client.clone());
        sdp_bus::stream::ensure_deploy_progress(&js, 1)
            .await
            .expect("stream");
        let git = GitServer::start(USER, password);
        World {
            client,
            js,
            git,
            nats,
        }
    }

    /// A request/reply round trip, bounded.
    pub async fn request<Req: Serialize, Res: DeserializeOwned>(
        &self,
        subject: String,
        body: &Req,
    ) -> Reply<Res> {
        let response = tokio::time::timeout(
            Duration::from_secs(60),
            self.client.request(subject, encode(body).into()),
        )
        .await
        .expect("reply in time")
        .expect("request");
        decode(&response.payload).expect("reply decodes")
    }

    /// Every event of `id` in the stream until (and with) its result; the
    /// seqs run 1, 2, … without a gap.
    pub async fn events_until_result(&self, id: &DeploymentId) -> Vec<Event> {
        let stream = self
            .js
            .get_stream(sdp_bus::stream::DEPLOY_PROGRESS)
            .await
            .expect("stream");
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject::deploy_progress(id),
                ..Default::default()
            })
            .await
            .expect("ordered consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + DEPLOY_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, messages.next())
                .await
                .unwrap_or_else(|_| panic!("no result for {id} in time; events: {events:#?}"))
                .expect("message stream")
                .expect("message");
            let event: Event = decode(&message.payload).expect("event decodes");
            let done = matches!(event.body, EventBody::Result { .. });
            events.push(event);
            if done {
                for (i, event) in events.iter().enumerate() {
                    assert_eq!(event.seq, i as u64 + 1, "seq gap: {events:#?}");
                }
                return events;
            }
        }
    }
}

/// One agent in-process with its own repos dir, data dir and id; its
/// containers are removed on drop.
pub struct TestAgent {
    pub id: String,
    pub kind: &'static str,
    pub data: tempfile::TempDir,
    _repos: ReposDir,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), AgentError>>>,
    _cleanup: ContainerCleanup,
}

impl TestAgent {
    /// Starts an agent of `flavour` serving `repos` from `base_image`, its
    /// id `<id_prefix>-…`; `tune` changes the config last. Returns once it
    /// heartbeats (so it has subscribed).
    pub async fn start(
        world: &World,
        id_prefix: &str,
        flavour: Arc<dyn Flavour>,
        base_image: String,
        repos: ReposDir,
        tune: impl FnOnce(&mut AgentConfig),
    ) -> TestAgent {
        let kind = flavour.kind();
        let data = tempfile::tempdir().expect("data dir");
        let id = unique_id(id_prefix);
        let cleanup = ContainerCleanup::agent(&id);
        let mut config: AgentConfig =
            sdp_bus::settings::load(None, Vec::<(String, String)>::new()).expect("config");
        config.nats = sdp_bus::nats::NatsConfig::with_url(world.nats.url());
        config.agent.id = id.clone();
        config.data_dir = data.path().to_path_buf();
        config.repos_dir = repos.path().to_path_buf();
        config.flavour.base_image = Some(base_image);
        config.build.image = sdp_testkit::ensure_build_image();
        // One build cache for all tests: the standard library compiles once
        // per machine, for these tests and the control plane's alike (Go's
        // cache is content-addressed and safe for concurrent use; a cache
        // under the target dir was cold in every fresh clone, as on CI).
        config.flavour.cache_dir = Some(sdp_testkit::shared_go_cache());
        config.git.allowed_schemes = vec!["https".into(), "http".into()];
        config.health.timeout_secs = 30;
        tune(&mut config);
        if kind == "micro"
            && let Some(cache) = config.flavour.cache_dir.clone()
        {
            // Every sandbox's Go cache is seeded from the warmed standard
            // library: warm it once per run, as a long-running agent has.
            let warm_config = config.clone();
            sdp_testkit::once_across_processes(
                &cache,
                "go-std-warm-per-toolchain",
                WARM_TIMEOUT,
                || async {
                    sdp_agentlib::flavour::warm_go_std(&warm_config, &cache)
                        .await
                        .unwrap_or_else(|e| panic!("warming the Go cache: {e}"));
                },
            )
            .await;
        }
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sdp_agentlib::run(config, flavour, shutdown.clone()));
        let agent = TestAgent {
            id,
            kind,
            data,
            _repos: repos,
            shutdown,
            task: Some(task),
            _cleanup: cleanup,
        };
        agent.wait_heartbeat(world).await;
        agent
    }

    /// Waits for this agent's next heartbeat.
    pub async fn wait_heartbeat(&self, world: &World) -> Heartbeat {
        let mut beats = world
            .client
            .subscribe(subject::agent_heartbeat(self.kind, &self.id))
            .await
            .expect("subscribe");
        let message = tokio::time::timeout(Duration::from_secs(20), beats.next())
            .await
            .expect("a heartbeat within 20s")
            .expect("heartbeat stream");
        decode(&message.payload).expect("heartbeat decodes")
    }

    /// Sends `request` to this agent's kind, checks this agent took it, and
    /// waits for its result: (events, status, url, error).
    pub async fn deploy_and_wait(
        &self,
        world: &World,
        request: &DeployRequest,
    ) -> (Vec<Event>, Status, Option<String>, Option<String>) {
        let reply: Reply<DeployAccepted> = world
            .request(subject::deploy_request(self.kind), request)
            .await;
        assert_eq!(reply.into_result().expect("accepted").agent_id, self.id);
        let events = world.events_until_result(&request.deployment_id).await;
        match &events.last().expect("events").body {
            EventBody::Result {
                status, url, error, ..
            } => {
                let (status, url, error) = (*status, url.clone(), error.clone());
                (events, status, url, error)
            }
            other => panic!("not a result: {other:?}"),
        }
    }

    /// Stops the agent and checks it ended without error, in time.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("agent stops in time")
                .expect("agent task")
                .expect("agent ran without error");
        }
    }
}

/// A deploy request of `repo`@`branch` into `sandbox` with [`USER`]'s
/// credential.
pub fn deploy_request(sandbox: &str, repo: &str, branch: &str, password: &str) -> DeployRequest {
    DeployRequest {
        deployment_id: DeploymentId::generate(),
        sandbox: sandbox.into(),
        repo: repo.into(),
        branch: branch.into(),
        credential: GitCredential {
            username: USER.into(),
            password: Secret::new(password),
        },
        env: BTreeMap::new(),
        routes: Vec::new(),
        overrides: Default::default(),
        reuse_build: false,
        commit: None,
    }
}

/// The phases of `events`, in order.
pub fn phases(events: &[Event]) -> Vec<Status> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Phase { phase, .. } => Some(*phase),
            _ => None,
        })
        .collect()
}

/// The system lines of a deployment's log.
pub fn system_lines(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .flat_map(|e| e.body.log_lines())
        .filter_map(|(stream, line)| (stream == sdp_bus::LogStream::System).then_some(line))
        .collect()
}

/// GET `url` (no proxy, bounded): status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}
