//! The installed tree behind Debian's nginx with the shipped site: the
//! bundle installed with `--root`, the INSTALLED sdp-control-plane and
//! sdp-agent-micro run with the INSTALLED configs (env overrides for ports,
//! NATS URL, data dirs), a real nats-server, git server and Go fixture, and
//! `nginx -p <prefix>` as a child with a minimal nginx.conf that includes
//! the installed sdp.conf (upstream and listen rewritten to this test's
//! ports). Through nginx: the dashboard loads, login works, two clients
//! have login budgets of their own (the installed config trusts nginx's
//! `X-Forwarded-For`, and only nginx's), a body over 64 KiB is refused, a
//! (slow) deployment starts, and its WebSocket stream is gap-free across
//! `nginx -s reload` mid-stream, resumed with `?after=<last seq>`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use sdp_packaging::{TempDir, build_bundle, extract, run_ok};
use sdp_testkit::{
    ChildGuard, ContainerCleanup, GitServer, GoFixture, NatsServer, ReposDir, agent_micro_test_env,
    free_port, try_wait_for_blocking, unique_id, wait_for,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

const USER: &str = "dev";
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(240);

struct Nginx {
    prefix: TempDir,
    port: u16,
    _child: ChildGuard,
}

impl Nginx {
    /// nginx in the foreground with the installed site, its upstream
    /// pointed at `upstream_port`.
    fn start(site: &Path, upstream_port: u16) -> Nginx {
        let prefix = TempDir::new().expect("temp dir");
        let port = free_port();
        let shipped = std::fs::read_to_string(site).expect("installed site");
        let rewritten = rewrite_site(&shipped, upstream_port, port);
        std::fs::write(prefix.path().join("sdp.conf"), rewritten).expect("site");
        let p = prefix.path().display().to_string();
        // worker_shutdown_timeout: after a reload the old worker closes
        // the WebSockets it still holds within a second (without it, they
        // would stay open on the old worker until the client leaves).
        let conf = format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {p}/nginx.pid;\n\
             error_log {p}/error.log info;\nworker_shutdown_timeout 1s;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {p}/access.log;\n\
             client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
             fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n\
             scgi_temp_path {p}/scgi;\n  include {p}/sdp.conf;\n}}\n"
        );
        std::fs::write(prefix.path().join("nginx.conf"), conf).expect("nginx.conf");
        run_ok(Self::command(prefix.path()).arg("-t"));
        let mut cmd = Self::command(prefix.path());
        let log = |name: &str| std::fs::File::create(prefix.path().join(name)).expect("log");
        cmd.stdin(std::process::Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        let child = ChildGuard::spawn(cmd);
        Nginx {
            prefix,
            port,
            _child: child,
        }
    }

    fn command(prefix: &Path) -> Command {
        let mut cmd = Command::new("/usr/sbin/nginx");
        cmd.arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .arg("-e")
            .arg(prefix.join("error.log"));
        cmd
    }

    fn reload(&self) {
        run_ok(Self::command(self.prefix.path()).args(["-s", "reload"]));
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// SIGKILL of the master alone would orphan its workers: stop nginx (the
/// master stops its workers and exits), bounded, before the guard reaps it.
impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Self::command(self.prefix.path())
            .args(["-s", "stop"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        // Not a panic in a drop: the guard SIGKILLs what did not stop.
        let _ = try_wait_for_blocking(Duration::from_secs(10), || {
            (!self._child.is_running()).then_some(())
        });
    }
}

/// The shipped site with this test's ports: `server 127.0.0.1:8080;` and
/// every `listen 80;` rewritten, IPv6 listens dropped. Each rewrite must
/// hit, so a changed site fails here rather than testing something else.
fn rewrite_site(shipped: &str, upstream_port: u16, port: u16) -> String {
    assert_eq!(shipped.matches("server 127.0.0.1:8080;").count(), 1);
    assert_eq!(shipped.matches("listen 80;").count(), 2);
    shipped
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server 127.0.0.1:{upstream_port};"),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .lines()
        .filter(|line| !line.trim_start().starts_with("listen [::]:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Two clients behind nginx (loopback addresses of their own, as two
/// hosts would be) fail logins against budgets of their own, and one
/// cannot get a fresh budget by sending an `X-Forwarded-For` of its own.
async fn login_budgets_are_per_client(nginx: &Nginx, password: &str) {
    let client = |address: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(address))
            .build()
            .expect("client")
    };
    let (first, second) = (client([127, 0, 0, 2]), client([127, 0, 0, 3]));
    // Each attempt names another user, so only the address budget (3)
    // can refuse it.
    let login = |http: &reqwest::Client, username: String, forwarded: Option<&str>| {
        let mut request = http
            .post(nginx.url("/api/login"))
            .json(&json!({ "username": username, "password": "wrong" }));
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        async move {
            let response = request.send().await.expect("login");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    for i in 0..3 {
        let (status, body) = login(&first, format!("first-{i}"), None).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, body) = login(&first, "first-3".into(), None).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("address")),
        "{body}"
    );
    // A forwarded address of its own choosing does not help: nginx
    // appends the real one, and that is the one believed.
    let (status, body) = login(&first, "first-4".into(), Some("203.0.113.9")).await;
    assert_eq!(status, 429, "{body}");
    // The other client still has its budget, and logs in.
    let (status, body) = login(&second, "second-0".into(), None).await;
    assert_eq!(status, 401, "{body}");
    let response = second
        .post(nginx.url("/api/login"))
        .json(&json!({ "username": USER, "password": password }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status().as_u16(), 200);
}

fn spawn_installed(
    binary: &Path,
    args: &[&str],
    env: &[(&str, String)],
    logs: &Path,
    name: &str,
) -> ChildGuard {
    let open = |suffix: &str| {
        std::fs::File::create(logs.join(format!("{name}.{suffix}"))).expect("log file")
    };
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(open("out"))
        .stderr(open("err"));
    ChildGuard::spawn(cmd)
}

/// Prints the processes' logs when the test fails.
struct DumpOnPanic(PathBuf);
impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("---- {} ----", entry.path().display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_tree_behind_nginx_streams_across_a_reload() {
    sdp_testkit::init_tracing();
    let installed = Installed::new();
    let logs = TempDir::new().expect("temp dir");
    let _dump = DumpOnPanic(logs.path().to_path_buf());

    // Real parts.
    let password = unique_id("pw");
    let nats = NatsServer::start();
    let git = GitServer::start(USER, &password);
    let fixture = GoFixture::create(&git, "users", &["main", "feature/x"]);
    git.create_bare("probe");
    let repos = ReposDir::new();
    repos.add("users", &git.url("users"));
    let agent_id = unique_id("pk");
    let _containers = ContainerCleanup::agent(&agent_id);
    let cp_port = free_port();
    let _control_plane = installed.start_control_plane(&nats, &git, cp_port, logs.path());
    let _agent = installed.start_agent_micro(&nats, &repos, &agent_id, logs.path());
    let nginx = Nginx::start(&installed.site(), cp_port);
    let http = reqwest::Client::new();

    the_dashboard_loads_through(&nginx, &http).await;
    let token = login_through(&nginx, &http, &password).await;
    login_budgets_are_per_client(&nginx, &password).await;
    a_body_over_64_kib_is_refused(&nginx, &http, &token).await;

    fixture.push_slow_build("feature/x");
    let id = deploy_through(&nginx, &http, &token, "feature/x").await;
    let mut events = stream_until_a_reload_cuts_it(&nginx, &token, &id).await;
    let last = events
        .last()
        .and_then(|e| e["seq"].as_u64())
        .expect("a seq");
    resume_to_the_end(&nginx, &token, &id, last, &mut events).await;
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "gap or repeat across the reload");
    let result = events.last().expect("events");
    assert_eq!(result["body"]["type"], "result", "{result}");
    assert_eq!(result["body"]["status"], "running", "{result}");

    // REST through nginx agrees, and the data is in the installed data dir.
    let deployment: Value = http
        .get(nginx.url(&format!("/api/deployments/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("deployment")
        .json()
        .await
        .expect("deployment json");
    assert_eq!(deployment["status"], "running", "{deployment}");
    assert!(installed.cp_data().join("sdp.db").is_file());
}

/// The bundle, built and installed with `--role control,micro --root`.
struct Installed {
    root: TempDir,
}

impl Installed {
    fn new() -> Installed {
        let dist = TempDir::new().expect("temp dir");
        let tarball = build_bundle(dist.path(), None);
        let unpacked = TempDir::new().expect("temp dir");
        let bundle = extract(&tarball, unpacked.path());
        let root = TempDir::new().expect("temp dir");
        run_ok(
            Command::new(bundle.join("install.sh"))
                .args(["--role", "control,micro", "--root"])
                .arg(root.path()),
        );
        Installed { root }
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.root.path().join("opt/sdp/current/bin").join(name)
    }

    fn config(&self, name: &str) -> String {
        self.root
            .path()
            .join("etc/sdp")
            .join(name)
            .display()
            .to_string()
    }

    fn site(&self) -> PathBuf {
        self.root.path().join("etc/nginx/sites-available/sdp.conf")
    }

    fn cp_data(&self) -> PathBuf {
        self.root.path().join("var/lib/sdp/control-plane")
    }

    /// The installed control plane with its installed config, on
    /// `127.0.0.1:<port>`, with an address budget of 3 failed logins.
    fn start_control_plane(
        &self,
        nats: &NatsServer,
        git: &GitServer,
        port: u16,
        logs: &Path,
    ) -> ChildGuard {
        spawn_installed(
            &self.bin("sdp-control-plane"),
            &["--config", &self.config("control-plane.toml"), "serve"],
            &[
                ("SDP_CONTROL_PLANE__NATS__URL", nats.url()),
                ("SDP_CONTROL_PLANE__HTTP__ADDR", format!("127.0.0.1:{port}")),
                (
                    "SDP_CONTROL_PLANE__DATA_DIR",
                    self.cp_data().display().to_string(),
                ),
                (
                    "SDP_CONTROL_PLANE__AUTH__CREDENTIAL_CHECK_REPO",
                    git.url("probe"),
                ),
                // Small, so two clients' budgets show in a few logins.
                (
                    "SDP_CONTROL_PLANE__AUTH__THROTTLE_ADDRESS_FAILURES",
                    "3".into(),
                ),
            ],
            logs,
            "control-plane",
        )
    }

    /// The installed agent-micro with its installed config, as `agent_id`.
    fn start_agent_micro(
        &self,
        nats: &NatsServer,
        repos: &ReposDir,
        agent_id: &str,
        logs: &Path,
    ) -> ChildGuard {
        let data = self.root.path().join("var/lib/sdp/agent-micro");
        let mut env = vec![
            ("SDP_AGENT__NATS__URL", nats.url()),
            ("SDP_AGENT__AGENT__ID", agent_id.to_owned()),
            ("SDP_AGENT__DATA_DIR", data.display().to_string()),
            ("SDP_AGENT__REPOS_DIR", repos.path().display().to_string()),
        ];
        env.extend(agent_micro_test_env());
        spawn_installed(
            &self.bin("sdp-agent-micro"),
            &["--config", &self.config("agent-micro.toml")],
            &env,
            logs,
            "agent-micro",
        )
    }
}

/// The dashboard's page, through nginx.
async fn the_dashboard_loads_through(nginx: &Nginx, http: &reqwest::Client) {
    let page = wait_for(
        "the dashboard through nginx",
        Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), nginx.url("/"));
            async move {
                let response = http.get(url).send().await.ok()?;
                if !response.status().is_success() {
                    return None;
                }
                response.text().await.ok()
            }
        },
    )
    .await;
    assert!(page.contains("<html"), "not the dashboard: {page:.200}");
}

/// Logs in through nginx (once an agent can check the credential), with
/// a session cookie, and `/api/me` names the user. Returns the token.
async fn login_through(nginx: &Nginx, http: &reqwest::Client, password: &str) -> String {
    let token = wait_for("login through nginx", Duration::from_secs(60), || {
        let (http, url, password) = (http.clone(), nginx.url("/api/login"), password.to_owned());
        async move {
            let response = http
                .post(url)
                .json(&json!({ "username": USER, "password": password }))
                .send()
                .await
                .ok()?;
            if !response.status().is_success() {
                return None;
            }
            assert!(response.headers().get("set-cookie").is_some(), "no cookie");
            let body: Value = response.json().await.ok()?;
            body["token"].as_str().map(str::to_owned)
        }
    })
    .await;
    let me: Value = http
        .get(nginx.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("me json");
    assert_eq!(
        me["username"].as_str().or(me["user"].as_str()),
        Some(USER),
        "{me}"
    );
    token
}

/// nginx refuses a body over the control plane's 64 KiB.
async fn a_body_over_64_kib_is_refused(nginx: &Nginx, http: &reqwest::Client, token: &str) {
    let big = "x".repeat(70 * 1024);
    let response = http
        .post(nginx.url("/api/environments"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"big\",\"vars\":{{\"A\":\"{big}\"}}}}"))
        .send()
        .await
        .expect("big body");
    assert_eq!(response.status().as_u16(), 413);
}

/// Deploys `branch` of users to sandbox alpha through nginx; its id.
async fn deploy_through(
    nginx: &Nginx,
    http: &reqwest::Client,
    token: &str,
    branch: &str,
) -> String {
    let response = http
        .post(nginx.url("/api/sandboxes/alpha/deployments"))
        .bearer_auth(token)
        .json(&json!({ "repo": "users", "branch": branch }))
        .send()
        .await
        .expect("deploy");
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.expect("deploy body");
    body["id"].as_str().expect("id").to_owned()
}

/// The WebSocket request for deployment `id`'s events after `after`,
/// through nginx.
fn ws_request(
    nginx: &Nginx,
    token: &str,
    id: &str,
    after: u64,
) -> tungstenite::handshake::client::Request {
    let url = format!(
        "ws://127.0.0.1:{}/ws/deployments/{id}?after={after}",
        nginx.port
    );
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(url).expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// Follows deployment `id` from the start; at the first `building` event,
/// reloads nginx, which cuts the stream before the result. The events seen.
async fn stream_until_a_reload_cuts_it(nginx: &Nginx, token: &str, id: &str) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(nginx, token, id, 0))
        .await
        .expect("ws connect through nginx");
    let mut reloaded = false;
    let first = tokio::time::timeout(DEPLOY_TIMEOUT, async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(tungstenite::Message::Text(text)) => {
                    let event: Value = serde_json::from_str(&text).expect("event");
                    let building = event["body"]["phase"] == "building";
                    events.push(event);
                    if building && !reloaded {
                        nginx.reload();
                        reloaded = true;
                    }
                }
                Ok(tungstenite::Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the first stream neither ended nor dropped");
    assert!(reloaded, "never saw `building`: {events:?}");
    assert!(
        !events.iter().any(|e| e["body"]["type"] == "result"),
        "the deployment ended before the reload cut the stream; events: {events:?}"
    );
    assert_ne!(first, Some(1000), "closed normally before the result");
    events
}

/// Resumes deployment `id`'s stream after seq `last` through the reloaded
/// nginx, adding to `events` until it closes normally.
async fn resume_to_the_end(
    nginx: &Nginx,
    token: &str,
    id: &str,
    last: u64,
    events: &mut Vec<Value>,
) {
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(nginx, token, id, last))
        .await
        .expect("ws reconnect through nginx");
    let close = tokio::time::timeout(DEPLOY_TIMEOUT, async {
        while let Some(message) = socket.next().await {
            match message.expect("ws message after the reload") {
                tungstenite::Message::Text(text) => {
                    events.push(serde_json::from_str(&text).expect("event"));
                }
                tungstenite::Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("the resumed stream did not end in time");
    assert_eq!(close, Some(1000), "events: {events:?}");
}
