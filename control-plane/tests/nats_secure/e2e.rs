//! The whole stack on the secured server: `sdp-control-plane`, the log
//! persister and `sdp-agent-micro` as processes, each connected with
//! `tls://`, the CA and its own user from `auth.conf`. Login (an
//! `agent.rpc` round trip), deploy (`deploy.request`, progress on
//! JetStream), the WebSocket bridge (ordered consumers) and the persister
//! (durable consumer, acks) all have to work, first with the persister as
//! its own process and user, then embedded in the control plane; the
//! server must log no permission violation at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use sdp_testkit::{
    ChildGuard, ContainerCleanup, GitServer, GoFixture, ReposDir, ensure_busybox_image, free_port,
    unique_id, wait_for,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite;

use super::harness::{MICRO_AGENT_ID, SecureNats};
use crate::common::{agent_binary, pairs, process_outputs, spawn_logged, wait_ready};

const USER: &str = "dev";
const REPO: &str = "users";
const SANDBOX: &str = "alpha";
/// A cold `go build` of net/http on a 2-core machine.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything one run owns; on a panic, prints every process's output (and
/// `SecureNats` the server's log, which names refused subjects).
/// Fields drop in order: processes first, then their containers, then the
/// servers they used.
struct Run {
    control_plane: Option<ChildGuard>,
    persister: Option<ChildGuard>,
    agent: Option<ChildGuard>,
    _containers: ContainerCleanup,
    nats: SecureNats,
    /// The git server's (and so the login's) password.
    password: String,
    git: GitServer,
    _fixture: GoFixture,
    repos: ReposDir,
    cp_data: TempDir,
    agent_data: TempDir,
    logs: TempDir,
    http_port: u16,
    http: reqwest::Client,
}

impl Drop for Run {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (name, text) in process_outputs(self.logs.path()) {
            eprintln!("---- {name} (last 80 lines) ----");
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Run {
    async fn new() -> Run {
        let nats = SecureNats::start().await;
        let password = unique_id("pw");
        let git = GitServer::start(USER, &password);
        let fixture = GoFixture::create(&git, REPO, &["main", "feature/x"]);
        git.create_bare("probe");
        let repos = ReposDir::new();
        repos.add(REPO, &git.url(REPO));
        // auth.conf has a user for agent id micro-1 only, so the id is fixed:
        // remove what an aborted earlier run may have left.
        let containers = ContainerCleanup::agent(MICRO_AGENT_ID);
        containers.remove_all();
        Run {
            nats,
            password,
            git,
            _fixture: fixture,
            repos,
            cp_data: TempDir::new().expect("temp dir"),
            agent_data: TempDir::new().expect("temp dir"),
            logs: TempDir::new().expect("temp dir"),
            http_port: free_port(),
            http: reqwest::Client::new(),
            control_plane: None,
            persister: None,
            agent: None,
            _containers: containers,
        }
    }

    /// The `[nats]` settings of a component connecting as `user`, under
    /// its binary's variable prefix (`SDP_CONTROL_PLANE`, `SDP_AGENT`).
    fn nats_env(&self, prefix: &str, user: &str) -> Vec<(String, String)> {
        [
            ("URL", self.nats.url()),
            ("USER", user.to_owned()),
            ("PASSWORD", self.nats.password(user).to_owned()),
            ("TLS_CA", self.nats.ca().display().to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (format!("{prefix}__NATS__{key}"), value))
        .collect()
    }

    fn control_plane_env(&self, user: &str, embedded_persister: bool) -> Vec<(String, String)> {
        let mut env = self.nats_env("SDP_CONTROL_PLANE", user);
        env.extend(pairs(&[
            (
                "SDP_CONTROL_PLANE__HTTP__ADDR",
                format!("127.0.0.1:{}", self.http_port),
            ),
            (
                "SDP_CONTROL_PLANE__DATA_DIR",
                self.cp_data.path().display().to_string(),
            ),
            ("SDP_CONTROL_PLANE__AUTH__PROBE_REPO", self.git.url("probe")),
            ("SDP_CONTROL_PLANE__AGENTS__HEARTBEAT_TIMEOUT", "6s".into()),
            (
                "SDP_CONTROL_PLANE__PERSISTER__EMBEDDED",
                embedded_persister.to_string(),
            ),
            ("RUST_LOG", "debug,hyper=info,tower=info,h2=info".into()),
        ]));
        env
    }

    fn spawn(
        &self,
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> ChildGuard {
        spawn_logged(self.logs.path(), name, program, args, env)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// Starts `sdp-control-plane serve` as `user` and waits for `/readyz`
    /// (NATS connected, stream ensured).
    async fn start_control_plane(&mut self, user: &str, embedded_persister: bool) {
        let program = PathBuf::from(env!("CARGO_BIN_EXE_sdp-control-plane"));
        let env = self.control_plane_env(user, embedded_persister);
        self.control_plane = Some(self.spawn("control-plane", &program, &["serve"], &env));
        wait_ready(&self.http, &self.url("/readyz"), START_TIMEOUT).await;
    }

    /// `sdp-control-plane persist` as user `persister`.
    fn start_persister(&mut self) {
        let program = PathBuf::from(env!("CARGO_BIN_EXE_sdp-control-plane"));
        let mut env = self.control_plane_env("persister", false);
        env.retain(|(key, _)| !key.starts_with("SDP_CONTROL_PLANE__HTTP__"));
        self.persister = Some(self.spawn("persister", &program, &["persist"], &env));
    }

    /// `sdp-agent-micro` with id micro-1 as user `agent-micro-1`.
    fn start_agent(&mut self) {
        let mut env = self.nats_env("SDP_AGENT", "agent-micro-1");
        env.extend(pairs(&[
            ("SDP_AGENT__AGENT__ID", MICRO_AGENT_ID.to_owned()),
            (
                "SDP_AGENT__DATA_DIR",
                self.agent_data.path().display().to_string(),
            ),
            (
                "SDP_AGENT__REPOS_DIR",
                self.repos.path().display().to_string(),
            ),
            ("SDP_AGENT__ADVERTISE_HOST", "127.0.0.1".into()),
            ("SDP_AGENT__FLAVOUR__BASE_IMAGE", ensure_busybox_image()),
            ("SDP_AGENT__BUILD__IMAGE", sdp_testkit::ensure_build_image()),
            (
                "SDP_AGENT__FLAVOUR__CACHE_DIR",
                std::env::temp_dir()
                    .join("sdp-test-go-cache")
                    .display()
                    .to_string(),
            ),
            ("SDP_AGENT__GIT__ALLOWED_SCHEMES", "https,http".into()),
            ("SDP_AGENT__HEALTH__TIMEOUT_SECS", "30".into()),
            ("SDP_AGENT__HEALTH__PATH", "/healthz".into()),
            ("RUST_LOG", "debug".into()),
        ]));
        self.agent = Some(self.spawn("agent", &agent_binary(), &[], &env));
    }

    /// Logs in (the control plane checks the credential through the agent,
    /// `agent.rpc.micro.verify_credentials`), retrying until the agent
    /// serves; returns the bearer token.
    async fn login(&self, password: &str) -> String {
        let (http, url) = (self.http.clone(), self.url("/api/login"));
        wait_for("login through the agent", START_TIMEOUT, || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let response = http
                    .post(url)
                    .json(&json!({ "username": USER, "password": password }))
                    .send()
                    .await
                    .ok()?;
                if response.status() != StatusCode::OK {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                body["token"].as_str().map(str::to_owned)
            }
        })
        .await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
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

    async fn wait_agent_online(&self, token: &str) {
        wait_for("agent micro-1 online", START_TIMEOUT, || async {
            let (_, agents) = self.get(token, "/api/agents").await;
            agents
                .as_array()?
                .iter()
                .any(|a| a["id"] == MICRO_AGENT_ID && a["online"] == true)
                .then_some(())
        })
        .await;
    }

    async fn deploy(&self, token: &str, branch: &str) -> String {
        let response = self
            .http
            .post(self.url(&format!("/api/sandboxes/{SANDBOX}/deployments")))
            .bearer_auth(token)
            .json(&json!({ "repo": REPO, "branch": branch }))
            .send()
            .await
            .expect("deploy request");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::ACCEPTED, "deploy refused: {body}");
        body["id"].as_str().expect("deployment id").to_owned()
    }

    /// Waits until the deployment is `running` (as the persister recorded
    /// it in SQLite); fails at once on another settled status.
    async fn wait_running(&self, token: &str, id: &str) -> Value {
        let path = format!("/api/deployments/{id}");
        let deployment = wait_for(
            &format!("deployment {id} to settle"),
            DEPLOY_TIMEOUT,
            || {
                let path = path.clone();
                async move {
                    let (_, deployment) = self.get(token, &path).await;
                    matches!(
                        deployment["status"].as_str(),
                        Some("running" | "failed" | "cancelled" | "stopped")
                    )
                    .then_some(deployment)
                }
            },
        )
        .await;
        assert_eq!(deployment["status"], "running", "{deployment:#}");
        deployment
    }

    fn ws_url(&self, id: &str, after: u64) -> String {
        format!(
            "ws://127.0.0.1:{}/ws/deployments/{id}?after={after}",
            self.http_port
        )
    }
}

/// Follows a deployment's WebSocket until the server closes it; returns
/// the events and the close frame (code, reason).
async fn ws_follow(url: String, token: String) -> (Vec<Value>, Option<(u16, String)>) {
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(url).expect("ws request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut socket, _) =
        tokio::time::timeout(START_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .expect("ws connect in time")
            .expect("ws connect");
    let mut events = Vec::new();
    let read = async {
        while let Some(message) = socket.next().await {
            match message.expect("ws message") {
                tungstenite::Message::Text(text) => {
                    events.push(serde_json::from_str::<Value>(&text).expect("event JSON"));
                }
                tungstenite::Message::Close(frame) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                _ => {}
            }
        }
        None
    };
    let close = tokio::time::timeout(DEPLOY_TIMEOUT, read)
        .await
        .expect("the WebSocket closes in time");
    (events, close)
}

fn final_status(events: &[Value]) -> Option<&str> {
    events
        .iter()
        .rev()
        .find(|e| e["body"]["type"] == "result")
        .and_then(|e| e["body"]["status"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_over_tls_with_a_user_per_component() {
    let mut run = Run::new().await;
    let password = run.password.clone();

    // 1. The persister as its own process and user.
    run.start_control_plane("control-plane", false).await;
    run.start_persister();
    run.start_agent();
    let token = run.login(&password).await;
    run.wait_agent_online(&token).await;

    let id = run.deploy(&token, "feature/x").await;
    // Watch live from the start: history from SQLite, the rest through a
    // JetStream ordered consumer.
    let live = tokio::spawn(ws_follow(run.ws_url(&id, 0), token.clone()));
    let deployment = run.wait_running(&token, &id).await;
    assert!(
        deployment["url"].as_str().is_some_and(|u| !u.is_empty()),
        "{deployment:#}"
    );
    let (events, close) = live.await.expect("ws task");
    assert_eq!(final_status(&events), Some("running"), "{events:#?}");
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every event once, in order");
    assert_eq!(close.map(|c| c.0), Some(1000));
    // After the last event: nothing in SQLite, so the bridge must open an
    // ordered consumer; 1011 would mean JetStream refused it.
    let last = *seqs.last().expect("events");
    let (tail, close) = ws_follow(run.ws_url(&id, last), token.clone()).await;
    assert!(tail.is_empty(), "{tail:#?}");
    assert_eq!(close.as_ref().map(|c| c.0), Some(1000), "{close:?}");

    assert!(
        run.persister.as_mut().is_some_and(|p| p.is_running()),
        "persister exited"
    );

    // 2. The persister embedded in the control plane, as its user.
    run.persister = None;
    run.control_plane = None;
    run.start_control_plane("control-plane", true).await;
    // The credential lived in the old process's memory only: log in again.
    let token = run.login(&password).await;
    run.wait_agent_online(&token).await;
    let second = run.deploy(&token, "main").await;
    run.wait_running(&token, &second).await;
    let (events, close) = ws_follow(run.ws_url(&second, 0), token.clone()).await;
    assert_eq!(final_status(&events), Some("running"), "{events:#?}");
    assert_eq!(close.map(|c| c.0), Some(1000));

    // 3. A runtime log: batches from the agent, credits back, as their users.
    let response = run
        .http
        .get(run.url(&format!("/api/deployments/{second}/runtime-logs")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("runtime log");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("runtime log text");
    assert!(text.starts_with("listening on :"), "{text}");

    for (name, child) in [
        ("control plane", run.control_plane.as_mut()),
        ("agent", run.agent.as_mut()),
    ] {
        assert!(child.is_some_and(|c| c.is_running()), "{name} exited");
    }
    let violations = run.nats.violations();
    assert!(
        violations.is_empty(),
        "the components did something auth.conf does not allow:\n{}",
        violations.join("\n")
    );
}
