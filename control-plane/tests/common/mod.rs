//! A whole SDP stack for one test, on real parts: a nats-server, a git
//! smart-HTTP server with basic auth holding the Go fixture `users`, the
//! `sdp-control-plane` and `sdp-agent-micro` binaries as processes (their
//! output in files under `logs_dir`), Docker for containers. Every piece is
//! torn down when the [`Stack`] drops.

#![allow(dead_code)]

pub mod extra_agent;
pub mod fake_receiver;
pub mod log_feed;
// Setup and checks the browser and e2e tests share (suite-time).
pub mod steps;
// A team's sandboxes and their deployment history (benches, the
// dashboard's 300-row test).
pub mod team;

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use sdp_api::client::Client;
use sdp_api::{
    Deployment, ErrorBody, ErrorDetail, NewDeployment, NewEnvironment, NewSandbox, RepoBranch,
    TemplateBody,
};
use sdp_bus::{Event, EventBody, Status};
use sdp_testkit::{
    BaselineServer, ChildGuard, ContainerCleanup, GitServer, GoFixture, NatsServer,
    PhpGatewayFixture, ReposDir, ensure_busybox_image, unique_id, wait_for,
};
use serde_json::Value;
use tempfile::TempDir;
use tokio_tungstenite::tungstenite;

pub const USER: &str = "dev";
pub const REPO: &str = "users";
pub const BRANCH: &str = "feature/x";
/// Long enough for a cold `go build` of net/http on a 2-core machine.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);

pub struct StackOptions {
    pub agent: bool,
    pub embedded_persister: bool,
    pub password: String,
    /// Extra `SDP_CONTROL_PLANE__…` settings for the control plane.
    pub control_plane_env: Vec<(String, String)>,
    /// Also run agent-gateway with the PHP gateway fixture, a second Go
    /// service `orders` and a baseline server; agents then advertise the
    /// Docker bridge address so containers reach each other.
    pub gateway: bool,
    /// Run the components on a three-node NATS cluster (every node in
    /// `nats.url`, the stream at 3 replicas) instead of one server.
    pub nats_cluster: bool,
    /// `(micro, gateway)`: the addresses the stack's two agents advertise
    /// (and publish on) instead of the Docker bridge's, standing for two
    /// hosts (see `sdp_testkit::HostAddresses`).
    pub advertise: Option<(String, String)>,
    /// `RUST_LOG` for every process of the stack; `None`: debug, what a
    /// failed test's logs should hold. See [`StackOptions::bench`].
    pub rust_log: Option<String>,
}

impl StackOptions {
    /// For benches: the processes log at `info` as in production, or at
    /// `SDP_BENCH_LOG` when set. At debug the control plane logs a line per
    /// consumer pull, which under load is itself a cost the bench would
    /// measure. The stack waits for the agent's `agent started` line: keep
    /// `sdp_agentlib` at `info` or finer.
    pub fn bench() -> Self {
        Self {
            rust_log: Some(std::env::var("SDP_BENCH_LOG").unwrap_or_else(|_| "info".into())),
            ..Self::default()
        }
    }
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            agent: true,
            embedded_persister: true,
            password: unique_id("pw"),
            control_plane_env: Vec::new(),
            gateway: false,
            nats_cluster: false,
            advertise: None,
            rust_log: None,
        }
    }
}

pub struct Stack {
    pub nats: NatsServer,
    /// With `StackOptions::nats_cluster`: the cluster the components use
    /// (`nats` then stands idle).
    pub cluster: Option<sdp_testkit::NatsCluster>,
    /// What the components get as `nats.url`.
    pub nats_url: String,
    pub git: GitServer,
    pub fixture: GoFixture,
    pub repos: ReposDir,
    pub password: String,
    pub base_url: String,
    pub cp_data: TempDir,
    pub agent_data: TempDir,
    pub agent_id: String,
    pub logs_dir: TempDir,
    /// Set with `StackOptions::gateway`.
    pub routing: Option<Routing>,
    /// See [`StackOptions::advertise`].
    pub advertise: Option<(String, String)>,
    /// `RUST_LOG` for the agents (see [`StackOptions::rust_log`]).
    agent_log: String,
    /// Extra `SDP_AGENT__…` settings for the agent, read at `start_agent`.
    pub agent_extra_env: Vec<(String, String)>,
    pub cp_env: Vec<(String, String)>,
    control_plane: Option<ChildGuard>,
    persister: Option<ChildGuard>,
    agent: Option<ChildGuard>,
    _containers: ContainerCleanup,
    http: reqwest::Client,
}

/// The Go build cache shared by every test's agent, so only the first
/// build of the run is cold (the cache is concurrency-safe).
pub fn shared_go_cache() -> PathBuf {
    std::env::temp_dir().join("sdp-test-go-cache")
}

/// Warms the standard library in [`shared_go_cache`] once per run, as a
/// long-running agent has: every sandbox's Go cache is seeded from it.
pub async fn warm_shared_go_cache() {
    let cache = shared_go_cache();
    let mut config: sdp_agentlib::AgentConfig =
        sdp_bus::settings::load(None, Vec::<(String, String)>::new()).expect("config");
    config.agent.id = unique_id("warm");
    config.build.image = sdp_testkit::ensure_build_image();
    sdp_testkit::once_across_processes(
        &cache,
        "go-std-warm-per-toolchain",
        Duration::from_secs(600),
        || async {
            sdp_agentlib::flavour::warm_go_std(&config, &cache)
                .await
                .unwrap_or_else(|e| panic!("warming the Go cache: {e}"));
        },
    )
    .await;
}

/// Settings (`SDP_CONTROL_PLANE__…`, `SDP_AGENT__…`) as owned pairs.
pub fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Spawns `program` with only `env` (and `PATH`), its stdout and stderr
/// appended to `<logs_dir>/<name>.out` and `.err`; killed when the guard
/// drops.
pub fn spawn_logged(
    logs_dir: &std::path::Path,
    name: &str,
    program: &std::path::Path,
    args: &[&str],
    env: &[(String, String)],
) -> ChildGuard {
    let open = |suffix: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs_dir.join(format!("{name}.{suffix}")))
            .expect("log file")
    };
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stdin(std::process::Stdio::null())
        .stdout(open("out"))
        .stderr(open("err"));
    ChildGuard::spawn(command)
}

/// Everything the processes of [`spawn_logged`] printed, by file name.
pub fn process_outputs(logs_dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(logs_dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    let text = std::fs::read(entry.path()).unwrap_or_default();
                    (
                        entry.file_name().to_string_lossy().into_owned(),
                        String::from_utf8_lossy(&text).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// `sdp-agent-micro`, built beside this test binary.
pub fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let binary = dir.join("sdp-agent-micro");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        binary.display()
    );
    binary
}

/// Waits until `GET url` answers 2xx (a control plane's `/readyz`: NATS
/// connected, stream ensured).
pub async fn wait_ready(http: &reqwest::Client, url: &str, timeout: Duration) {
    wait_for("control plane ready", timeout, || {
        let (http, url) = (http.clone(), url.to_owned());
        async move {
            let response = http.get(url).send().await.ok()?;
            response.status().is_success().then_some(())
        }
    })
    .await;
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Stack {
        sdp_testkit::init_tracing();
        let nats = NatsServer::start();
        let cluster = options.nats_cluster.then(sdp_testkit::NatsCluster::start);
        let nats_url = cluster
            .as_ref()
            .map_or_else(|| nats.url(), sdp_testkit::NatsCluster::urls);
        let git = GitServer::start(USER, &options.password);
        let fixture = GoFixture::create(&git, REPO, &["main", BRANCH]);
        git.create_bare("probe");
        let repos = ReposDir::new();
        repos.add(REPO, &git.url(REPO));
        let cp_data = TempDir::new().expect("temp dir");
        let agent_data = TempDir::new().expect("temp dir");
        let agent_id = unique_id("t");
        let containers = ContainerCleanup::agent(&agent_id);

        let port = sdp_testkit::free_port();
        let mut cp_env = pairs(&[
            ("SDP_CONTROL_PLANE__NATS__URL", nats_url.clone()),
            ("SDP_CONTROL_PLANE__HTTP__ADDR", format!("127.0.0.1:{port}")),
            (
                "SDP_CONTROL_PLANE__DATA_DIR",
                cp_data.path().display().to_string(),
            ),
            ("SDP_CONTROL_PLANE__AUTH__PROBE_REPO", git.url("probe")),
            ("SDP_CONTROL_PLANE__AGENTS__HEARTBEAT_TIMEOUT", "6s".into()),
            (
                "SDP_CONTROL_PLANE__PERSISTER__EMBEDDED",
                options.embedded_persister.to_string(),
            ),
            (
                "RUST_LOG",
                options
                    .rust_log
                    .clone()
                    .unwrap_or_else(|| "debug,hyper=info,tower=info,h2=info".into()),
            ),
        ]);
        if options.nats_cluster {
            cp_env.push((
                "SDP_CONTROL_PLANE__NATS__STREAM_REPLICAS".into(),
                "3".into(),
            ));
        }
        cp_env.extend(options.control_plane_env);
        let mut stack = Stack {
            nats,
            cluster,
            nats_url,
            git,
            fixture,
            repos,
            password: options.password,
            base_url: format!("http://127.0.0.1:{port}"),
            cp_data,
            agent_data,
            agent_id,
            logs_dir: TempDir::new().expect("temp dir"),
            agent_extra_env: Vec::new(),
            routing: None,
            advertise: options.advertise,
            agent_log: options.rust_log.unwrap_or_else(|| "debug".into()),
            cp_env,
            control_plane: None,
            persister: None,
            agent: None,
            _containers: containers,
            http: reqwest::Client::new(),
        };
        if options.gateway {
            let gateway = PhpGatewayFixture::create(&stack.git, "gateway", &["main"]);
            let orders = GoFixture::create(&stack.git, "orders", &["main", "feature/y"]);
            stack.repos.add("orders", &stack.git.url("orders"));
            let gateway_repos = ReposDir::new();
            gateway_repos.add("gateway", &stack.git.url("gateway"));
            stack.routing = Some(Routing {
                gateway,
                orders,
                gateway_repos,
                baseline: BaselineServer::start(),
                gateway_agent_id: unique_id("g"),
                gateway_agent_data: TempDir::new().expect("temp dir"),
                gateway_agent: None,
                _gateway_containers: None,
            });
        }
        stack.start_control_plane().await;
        if !options.embedded_persister {
            stack.start_persister();
        }
        if options.agent {
            stack.start_agent().await;
        }
        if options.gateway {
            stack.start_gateway_agent().await;
        }
        stack
    }

    /// Starts `sdp-agent-gateway` (kind `gateway`) on the PHP base image.
    pub async fn start_gateway_agent(&mut self) {
        let routing = self.routing.as_ref().expect("a stack with a gateway");
        let env = pairs(&[
            ("SDP_AGENT__NATS__URL", self.nats_url.clone()),
            ("SDP_AGENT__AGENT__ID", routing.gateway_agent_id.clone()),
            (
                "SDP_AGENT__DATA_DIR",
                routing.gateway_agent_data.path().display().to_string(),
            ),
            (
                "SDP_AGENT__REPOS_DIR",
                routing.gateway_repos.path().display().to_string(),
            ),
            (
                "SDP_AGENT__ADVERTISE_HOST",
                self.advertise
                    .as_ref()
                    .map_or_else(sdp_testkit::docker_bridge_gateway, |(_, gateway)| {
                        gateway.clone()
                    }),
            ),
            (
                "SDP_AGENT__FLAVOUR__BASE_IMAGE",
                sdp_testkit::ensure_php_image(),
            ),
            ("SDP_AGENT__BUILD__IMAGE", sdp_testkit::ensure_build_image()),
            ("SDP_AGENT__GIT__ALLOWED_SCHEMES", "https,http".into()),
            ("SDP_AGENT__HEALTH__TIMEOUT_SECS", "30".into()),
            ("SDP_AGENT__HEALTH__PATH", "/healthz".into()),
            ("RUST_LOG", self.agent_log.clone()),
        ]);
        let binary = Self::agent_binary().with_file_name("sdp-agent-gateway");
        let child = self.spawn("agent-gateway", &binary, &[], &env);
        let id = routing.gateway_agent_id.clone();
        let cleanup = ContainerCleanup::agent(&id);
        if let Some(routing) = self.routing.as_mut() {
            routing.gateway_agent = Some(child);
            routing._gateway_containers = Some(cleanup);
        }
        let client = self.login_as(USER).await;
        wait_for("gateway agent heartbeat", Duration::from_secs(30), || {
            agent_online(&client, &id)
        })
        .await;
    }

    fn spawn(
        &self,
        name: &str,
        program: &std::path::Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> ChildGuard {
        spawn_logged(self.logs_dir.path(), name, program, args, env)
    }

    pub async fn start_control_plane(&mut self) {
        let program = PathBuf::from(env!("CARGO_BIN_EXE_sdp-control-plane"));
        self.control_plane = Some(self.spawn("control-plane", &program, &["serve"], &self.cp_env));
        let url = format!("{}/readyz", self.base_url);
        wait_ready(&self.http, &url, Duration::from_secs(30)).await;
    }

    pub fn control_plane_pid(&self) -> Option<u32> {
        self.control_plane.as_ref().map(ChildGuard::pid)
    }

    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(ChildGuard::pid)
    }

    /// SIGKILLs the control plane.
    pub fn kill_control_plane(&mut self) {
        self.control_plane = None;
    }

    /// The persister as its own process (`sdp-control-plane persist`).
    pub fn start_persister(&mut self) {
        let program = PathBuf::from(env!("CARGO_BIN_EXE_sdp-control-plane"));
        self.persister = Some(self.spawn("persister", &program, &["persist"], &self.cp_env));
    }

    /// SIGKILLs the persister process.
    pub fn kill_persister(&mut self) {
        self.persister = None;
    }

    pub fn agent_env(&self) -> Vec<(String, String)> {
        pairs(&[
            ("SDP_AGENT__NATS__URL", self.nats_url.clone()),
            ("SDP_AGENT__AGENT__ID", self.agent_id.clone()),
            (
                "SDP_AGENT__DATA_DIR",
                self.agent_data.path().display().to_string(),
            ),
            (
                "SDP_AGENT__REPOS_DIR",
                self.repos.path().display().to_string(),
            ),
            ("SDP_AGENT__ADVERTISE_HOST", self.advertise_host()),
            ("SDP_AGENT__FLAVOUR__BASE_IMAGE", ensure_busybox_image()),
            ("SDP_AGENT__BUILD__IMAGE", sdp_testkit::ensure_build_image()),
            (
                "SDP_AGENT__FLAVOUR__CACHE_DIR",
                shared_go_cache().display().to_string(),
            ),
            ("SDP_AGENT__GIT__ALLOWED_SCHEMES", "https,http".into()),
            ("SDP_AGENT__HEALTH__TIMEOUT_SECS", "30".into()),
            ("SDP_AGENT__HEALTH__PATH", "/healthz".into()),
            ("RUST_LOG", self.agent_log.clone()),
        ])
    }

    /// Where the micro agent's containers are reached: loopback, or the
    /// Docker bridge address when a gateway container must reach them.
    fn advertise_host(&self) -> String {
        if let Some((micro, _)) = &self.advertise {
            micro.clone()
        } else if self.routing.is_some() {
            sdp_testkit::docker_bridge_gateway()
        } else {
            "127.0.0.1".into()
        }
    }

    /// The `sdp-agent-micro` binary, built beside this test binary
    /// (`scripts/test.sh` builds every binary first).
    pub fn agent_binary() -> PathBuf {
        agent_binary()
    }

    pub async fn start_agent(&mut self) {
        let mut env = self.agent_env();
        if !self
            .agent_extra_env
            .iter()
            .any(|(key, _)| key == "SDP_AGENT__FLAVOUR__CACHE_DIR")
        {
            warm_shared_go_cache().await;
        }
        env.extend(self.agent_extra_env.iter().cloned());
        let starts_before = self.agent_starts();
        self.agent = Some(self.spawn("agent", &Self::agent_binary(), &[], &env));
        // After a restart the registry still holds the killed process's
        // fresh heartbeat, and login may be answered by another agent:
        // only the new process's own line says it subscribed (it logs
        // `agent started` once its subscriptions are in place).
        wait_for(
            "the agent process's start",
            Duration::from_secs(60),
            || async { (self.agent_starts() > starts_before).then_some(()) },
        )
        .await;
        // Login needs an agent to check the credential: it works once the
        // agent listens.
        let anonymous = self.client();
        let login = wait_for(
            "login through the agent",
            Duration::from_secs(30),
            || async { anonymous.login(USER, &self.password).await.ok() },
        )
        .await;
        let client = anonymous.with_token(login.token);
        wait_for("agent heartbeat", Duration::from_secs(30), || {
            agent_online(&client, &self.agent_id)
        })
        .await;
    }

    /// SIGKILLs the agent process: no goodbye, heartbeats just stop.
    /// How many agent processes started so far (`agent started` lines in
    /// `agent.out`; agents log at `info` or finer in every stack).
    fn agent_starts(&self) -> usize {
        std::fs::read(self.logs_dir.path().join("agent.out"))
            .map(|out| {
                String::from_utf8_lossy(&out)
                    .matches("agent started")
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn kill_agent(&mut self) {
        self.agent = None;
    }

    /// Everything the processes printed, by file name.
    pub fn process_output(&self) -> Vec<(String, String)> {
        process_outputs(self.logs_dir.path())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.replacen("http://", "ws://", 1))
    }

    /// A typed client of this stack's control plane, without a session.
    pub fn client(&self) -> Client {
        Client::with_http(self.http.clone(), &self.base_url, None)
    }

    /// The typed client with a session of `user`: [`USER`] with the git
    /// server's password, anyone else added to the git server first (with
    /// a password of their own).
    pub async fn login_as(&self, user: &str) -> Client {
        let password = if user == USER {
            self.password.clone()
        } else {
            let password = format!("{user}-{}", self.password);
            self.git.add_user(user, &password);
            password
        };
        let client = self.client();
        let login = client
            .login(user, &password)
            .await
            .unwrap_or_else(|err| panic!("login of {user}: {err}"));
        client.with_token(login.token)
    }

    /// Starts a deployment of [`REPO`] at `branch` with the typed client;
    /// waits until it reaches `status` (within [`DEPLOY_TIMEOUT`]) and
    /// returns it. A deployment that settles in another status fails the
    /// test, with its error.
    pub async fn deploy_and_wait(
        &self,
        client: &Client,
        sandbox: &str,
        branch: &str,
        status: Status,
    ) -> Deployment {
        let body = NewDeployment {
            repo: REPO.to_owned(),
            branch: branch.to_owned(),
            commit: None,
        };
        let started = client
            .deploy(sandbox, &body)
            .await
            .unwrap_or_else(|err| panic!("deploy of {REPO}@{branch} into {sandbox}: {err}"));
        wait_for_status(client, started.id.as_str(), status).await
    }

    /// Logs in with the git server's credential; returns the bearer token.
    pub async fn login(&self) -> String {
        let login = self
            .client()
            .login(USER, &self.password)
            .await
            .unwrap_or_else(|err| panic!("login failed: {err}"));
        login.token
    }

    /// The typed client with the session `token`.
    pub fn client_with(&self, token: &str) -> Client {
        self.client().with_token(token.to_owned())
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts a deployment; returns its id.
    pub async fn deploy(&self, token: &str, sandbox: &str, branch: &str) -> String {
        let body = NewDeployment {
            repo: REPO.to_owned(),
            branch: branch.to_owned(),
            commit: None,
        };
        let started = self
            .client_with(token)
            .deploy(sandbox, &body)
            .await
            .unwrap_or_else(|err| panic!("deploy refused: {err}"));
        started.id.as_str().to_owned()
    }

    /// Waits until the deployment's status (as the API reports it) is
    /// settled; returns the deployment.
    pub async fn wait_settled(&self, token: &str, id: &str) -> Deployment {
        let client = self.client_with(token);
        wait_for(
            &format!("deployment {id} to settle"),
            DEPLOY_TIMEOUT,
            || async {
                let deployment = client.deployment(id).await.ok()?;
                deployment.status.is_settled().then_some(deployment)
            },
        )
        .await
    }

    /// Follows the deployment's WebSocket until the server closes it;
    /// returns every event received.
    pub async fn ws_events(&self, token: &str, id: &str, after: u64) -> Vec<Event> {
        let mut events = Vec::new();
        self.ws_follow(token, id, after, |event| {
            events.push(event);
            true
        })
        .await;
        events
    }

    /// The deployment's WebSocket frames as sent, until the server closes
    /// it (for checks on the wire text itself).
    pub async fn ws_frames(&self, token: &str, id: &str, after: u64) -> Vec<String> {
        let mut frames = Vec::new();
        self.ws_follow_text(token, id, after, |frame| {
            frames.push(frame.to_owned());
            true
        })
        .await;
        frames
    }

    /// Follows the WebSocket, handing each event to `on_event` until it
    /// returns false or the server closes. Returns the close code, if any.
    pub async fn ws_follow(
        &self,
        token: &str,
        id: &str,
        after: u64,
        mut on_event: impl FnMut(Event) -> bool,
    ) -> Option<u16> {
        self.ws_follow_text(token, id, after, |text| {
            let event: Event =
                serde_json::from_str(text).unwrap_or_else(|err| panic!("event {text}: {err}"));
            on_event(event)
        })
        .await
    }

    /// [`Self::ws_follow`] on the frames' text.
    pub async fn ws_follow_text(
        &self,
        token: &str,
        id: &str,
        after: u64,
        mut on_frame: impl FnMut(&str) -> bool,
    ) -> Option<u16> {
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(
            self.ws_url(&format!("/ws/deployments/{id}?after={after}")),
        )
        .expect("ws request");
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        let read = async {
            while let Some(message) = socket.next().await {
                match message.expect("ws message") {
                    tungstenite::Message::Text(text) if !on_frame(&text) => return None,
                    tungstenite::Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
                    _ => {}
                }
            }
            None
        };
        tokio::time::timeout(DEPLOY_TIMEOUT, read)
            .await
            .expect("WebSocket did not close in time")
    }

    /// GETs `url` until it answers 200 with JSON.
    pub async fn get_service(&self, url: &str) -> Value {
        let http = self.http.clone();
        wait_for(
            &format!("service at {url}"),
            Duration::from_secs(20),
            || {
                let (http, url) = (http.clone(), url.to_owned());
                async move {
                    let response = http.get(url).send().await.ok()?;
                    if !response.status().is_success() {
                        return None;
                    }
                    response.json::<Value>().await.ok()
                }
            },
        )
        .await
    }

    pub async fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, text) in self.process_output() {
                let tail: Vec<&str> = text.lines().rev().take(60).collect();
                eprintln!("---- {name} (last lines) ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Waits until deployment `id` is in `status` (within [`DEPLOY_TIMEOUT`]);
/// returns it. Settling in another status fails the test at once.
pub async fn wait_for_status(client: &Client, id: &str, status: Status) -> Deployment {
    let deployment = wait_for(
        &format!("deployment {id} to be {status}"),
        DEPLOY_TIMEOUT,
        || async move {
            let deployment = client.deployment(id).await.ok()?;
            (deployment.status == status || deployment.status.is_settled()).then_some(deployment)
        },
    )
    .await;
    assert_eq!(
        deployment.status, status,
        "deployment {id} settled as {} instead: {:?}",
        deployment.status, deployment.error
    );
    deployment
}

/// A sandbox whose template routes through the PHP gateway (a stack with
/// `StackOptions::gateway`): environment `baseline` (`USERS_URL` and
/// `ORDERS_URL` at the baseline server), template `shop` (gateway
/// `gateway@main`, services `users@main` and `orders@main`), and the
/// sandbox `name` of it. Nothing is deployed yet.
pub async fn sandbox_with_gateway(stack: &Stack, client: &Client, name: &str) {
    let routing = stack.routing.as_ref().expect("a stack with a gateway");
    let baseline = routing.baseline.url();
    let vars = [
        ("USERS_URL", baseline.clone()),
        ("ORDERS_URL", baseline),
        ("APP_ENV", "sandbox".to_owned()),
    ];
    let environment = NewEnvironment {
        name: "baseline".to_owned(),
        vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        secrets: Default::default(),
    };
    client
        .create_environment(&environment)
        .await
        .expect("create environment baseline");
    let main = |repo: &str| RepoBranch {
        repo: repo.to_owned(),
        branch: "main".to_owned(),
        overrides: Default::default(),
    };
    let template = TemplateBody {
        name: Some("shop".to_owned()),
        environment: Some("baseline".to_owned()),
        gateway: Some(main("gateway")),
        services: vec![main("users"), main("orders")],
        tests: None,
        resources: Vec::new(),
    };
    client
        .create_template(&template)
        .await
        .expect("create template shop");
    let sandbox = NewSandbox {
        name: name.to_owned(),
        template: Some("shop".to_owned()),
        ..NewSandbox::default()
    };
    client
        .create_sandbox(&sandbox)
        .await
        .unwrap_or_else(|err| panic!("create sandbox {name}: {err}"));
}

/// The gateway side of a stack (see `StackOptions::gateway`).
pub struct Routing {
    pub gateway: PhpGatewayFixture,
    pub orders: GoFixture,
    pub gateway_repos: ReposDir,
    pub baseline: BaselineServer,
    pub gateway_agent_id: String,
    pub gateway_agent_data: TempDir,
    gateway_agent: Option<ChildGuard>,
    _gateway_containers: Option<ContainerCleanup>,
}

impl Routing {
    pub fn gateway_agent_pid(&self) -> Option<u32> {
        self.gateway_agent.as_ref().map(ChildGuard::pid)
    }
}

/// The API's error answer in `body` (a raw answer, kept raw for its
/// status code); fails the test if it is not the error shape.
pub fn api_error(body: &Value) -> ErrorDetail {
    serde_json::from_value::<ErrorBody>(body.clone())
        .unwrap_or_else(|err| panic!("not an error answer ({err}): {body}"))
        .error
}

/// Whether agent `id` is listed online.
async fn agent_online(client: &Client, id: &str) -> Option<()> {
    let agents = client.agents().await.ok()?;
    agents
        .iter()
        .any(|agent| agent.id == id && agent.online)
        .then_some(())
}

/// The status sequence (phases and result) of an event list.
pub fn statuses(events: &[Event]) -> Vec<Status> {
    events.iter().filter_map(|e| e.body.status()).collect()
}

/// Every log line the events carry, in order (`log` or `logs` events).
pub fn log_lines(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .flat_map(|e| e.body.log_lines().map(|(_, line)| line.to_owned()))
        .collect()
}

/// Each `logs` event's `first_line` is one past the lines before it, so a
/// viewer numbering lines from it agrees with the log file.
pub fn assert_line_numbers_exact(events: &[Event]) {
    let mut seen = 0u64;
    for event in events {
        match &event.body {
            EventBody::Log { .. } => seen += 1,
            EventBody::Logs {
                first_line, lines, ..
            } => {
                assert_eq!(
                    *first_line,
                    seen + 1,
                    "first_line of seq {} after {seen} lines",
                    event.seq
                );
                seen += lines.len() as u64;
            }
            _ => {}
        }
    }
    assert!(seen > 0, "no log lines at all");
}

/// Whether an event carries log lines.
pub fn is_log(event: &Event) -> bool {
    matches!(event.body, EventBody::Log { .. } | EventBody::Logs { .. })
}

pub fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// The result event's URL (the last event of a settled deployment).
pub fn result_url(events: &[Event]) -> Option<&str> {
    events.iter().rev().find_map(|e| match &e.body {
        EventBody::Result { url, .. } => url.as_deref(),
        _ => None,
    })
}

/// The result event's error.
pub fn result_error(events: &[Event]) -> Option<&str> {
    events.iter().rev().find_map(|e| match &e.body {
        EventBody::Result { error, .. } => error.as_deref(),
        _ => None,
    })
}
