//! The `sdp` command line against a real stack: the binary is
//! run as a process, its login prompt driven through a pty, its output and
//! exit codes checked against what the REST API says.

use sdp_bus::Status;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

/// `sdp`, built beside the other binaries (`cargo build --workspace --bins`).
fn sdp_binary() -> PathBuf {
    let binary = agent_binary().with_file_name("sdp");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        binary.display()
    );
    binary
}

/// One user's `sdp`: its own config dir (where the login is stored) and
/// the control plane's URL in `SDP_URL`. Nothing else of the test's
/// environment leaks in.
pub(crate) struct Sdp {
    home: TempDir,
    url: String,
    extra_env: Vec<(String, String)>,
}

impl Sdp {
    pub(crate) fn new(url: &str) -> Sdp {
        Sdp {
            home: TempDir::new().expect("temp dir"),
            url: url.to_owned(),
            extra_env: Vec::new(),
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.home.path().join("config")
    }

    fn session_file(&self) -> PathBuf {
        self.config_dir().join("sdp").join("session.json")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(sdp_binary());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("SDP_URL", &self.url)
            .envs(self.extra_env.iter().cloned());
        command
    }

    /// Runs `sdp args…` with stdin closed and stdout/stderr piped (so not a
    /// terminal), bounded by the deploy timeout.
    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = tokio::process::Command::from(self.command(args));
        command
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn sdp");
        if let Some(text) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        tokio::time::timeout(DEPLOY_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("sdp {args:?} did not finish in time"))
            .expect("sdp output")
    }

    /// Logs in with the password on stdin (the pty path has its own test).
    pub(crate) async fn login(&self, password: &str) {
        let out = self
            .run_with_stdin(
                &["login", "--username", USER, "--password-stdin"],
                Some(&format!("{password}\n")),
            )
            .await;
        assert_eq!(code(&out), 0, "login failed: {}", show(&out));
    }
}

pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", show(out)))
}

/// Runs `command` on a pty until it exits; what the terminal showed and
/// the exit code.
async fn run_in_pty(command: std::process::Command) -> (String, i32) {
    tokio::task::spawn_blocking(move || {
        let timeout = DEPLOY_TIMEOUT.as_millis() as u64;
        let mut session = rexpect::session::spawn_command(command, Some(timeout)).expect("pty");
        let shown = session.exp_eof().expect("the command ends");
        let code = match session.process().wait().expect("wait") {
            rexpect::process::WaitStatus::Exited(_, code) => code,
            other => panic!("ended with {other:?}: {shown}"),
        };
        (shown, code)
    })
    .await
    .expect("pty task")
}

/// Whether `text` holds an SGR (colour, bold, dim) escape sequence.
fn has_sgr(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|params| {
            let end = params
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(params.len());
            params[end..].starts_with('m')
        })
    })
}

fn assert_no_ansi(out: &Output) {
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "escape sequences in piped output: {}",
        show(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_login_through_a_pty_whoami_logout_and_tap() {
    let stack = Stack::start().await;
    let sdp = Sdp::new(&stack.base_url);

    // Not logged in yet: the auth exit code, and JSON on stdout with -o json.
    let out = sdp.run(&["whoami", "-o", "json"]).await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert_eq!(json(&out)["error"]["code"], "not_logged_in");

    // The password prompt, on a real terminal: typed, not echoed.
    let mut command = sdp.command(&["login"]);
    command.env("TERM", "dumb");
    let password = stack.password.clone();
    let transcript = tokio::task::spawn_blocking(move || {
        let mut session = rexpect::session::spawn_command(command, Some(30_000)).expect("pty");
        let mut transcript = session.exp_string("Username: ").expect("username prompt");
        session.send_line(USER).expect("type username");
        transcript.push_str(
            &session
                .exp_string("Password for dev: ")
                .expect("password prompt"),
        );
        session.send_line(&password).expect("type password");
        transcript.push_str(&session.exp_eof().expect("login ends"));
        let status = session.process().wait().expect("wait");
        (transcript, status)
    })
    .await
    .expect("pty task");
    let (transcript, status) = transcript;
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 0)),
        "login exited {status:?}: {transcript}"
    );
    assert!(transcript.contains("Logged in to"), "{transcript}");
    assert!(
        !transcript.contains(&stack.password),
        "the password was echoed: {transcript}"
    );

    // The token is stored 0600 in the config dir, and the password is not.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(sdp.session_file()).expect("session file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let stored = std::fs::read_to_string(sdp.session_file()).expect("read session");
    assert!(!stored.contains(&stack.password), "password stored");
    let stored: Value = serde_json::from_str(&stored).expect("session JSON");
    assert_eq!(stored["username"], USER);
    assert!(stored["token"].as_str().is_some_and(|t| t.len() >= 32));

    let out = sdp.run(&["whoami"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains(USER), "{}", show(&out));
    let out = sdp.run(&["whoami", "-o", "json"]).await;
    assert_eq!(json(&out)["username"], USER);

    // SDP_TOKEN overrides the stored token.
    let mut other = Sdp::new(&stack.base_url);
    other
        .extra_env
        .push(("SDP_TOKEN".into(), stack.login().await));
    let out = other.run(&["whoami", "-o", "json"]).await;
    assert_eq!(json(&out)["username"], USER, "{}", show(&out));

    // `sdp agents` sees the agent and its Go toolchains (at least the
    // host's Go 1.19); `sdp tap` prints its heartbeat as JSON.
    let out = sdp.run(&["agents", "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let agents = json(&out);
    let agent = agents
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["id"] == stack.agent_id.as_str())
        .unwrap_or_else(|| panic!("{}", show(&out)))
        .clone();
    assert!(
        agent["toolchains"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.starts_with("go 1.19.")))),
        "{agent}"
    );
    let out = sdp.run(&["agents"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(
        stdout(&out).contains("TOOLCHAINS") && stdout(&out).contains("go 1.19."),
        "{}",
        show(&out)
    );
    let mut tapper = Sdp::new(&stack.base_url);
    tapper
        .extra_env
        .push(("SDP_NATS_URL".into(), stack.nats.url()));
    let out = tapper
        .run(&["tap", "agent.heartbeat.>", "--count", "1"])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let line: Value = serde_json::from_str(stdout(&out).trim()).expect("a JSON line");
    assert!(
        line["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("agent.heartbeat.micro.")),
        "{line}"
    );
    assert_eq!(line["data"]["kind"], "micro", "{line}");

    // Logout ends the session on the server and removes the file.
    let token = stored["token"].as_str().expect("token").to_owned();
    let out = sdp.run(&["logout"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(!sdp.session_file().exists(), "session file left behind");
    let (status, _) = stack.get(&token, "/api/me").await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    let out = sdp.run(&["whoami"]).await;
    assert_eq!(code(&out), 3, "{}", show(&out));

    // A wrong password is an auth error too.
    let out = sdp
        .run_with_stdin(
            &["login", "--username", USER, "--password-stdin"],
            Some("wrong-password\n"),
        )
        .await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert!(!sdp.session_file().exists());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_follows_to_running_and_routes_change() {
    let stack = Stack::start().await;
    let mut sdp = Sdp::new(&stack.base_url);
    sdp.extra_env.push(("NO_COLOR".into(), "1".into()));
    sdp.login(&stack.password).await;
    let token = stack.login().await;

    let out = sdp.run(&["sandbox", "create", "alpha"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = sdp.run(&["sandbox", "ls", "-o", "json"]).await;
    assert_eq!(json(&out)[0]["name"], "alpha", "{}", show(&out));

    // Deploy and follow: a line per phase, the URL at the end, exit 0.
    let out = sdp
        .run(&["deploy", "alpha", &format!("{REPO}@{BRANCH}")])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_no_ansi(&out);
    let err = stderr(&out);
    for phase in ["queued", "fetching", "building", "starting"] {
        assert!(
            err.contains(&format!("{REPO}@{BRANCH} {phase}\n")),
            "no {phase} line: {}",
            show(&out)
        );
    }
    let (_, history) = stack.get(&token, "/api/deployments?sandbox=alpha").await;
    let first_id = history[0]["id"].as_str().expect("id").to_owned();
    // (REST may trail the WebSocket by a moment: wait for the persister.)
    let first = stack.wait_settled(&token, &first_id).await;
    assert_eq!(first.status, Status::Running);
    let url = first.url.as_deref().expect("url");
    assert!(
        stdout(&out).contains(url),
        "URL not printed: {}",
        show(&out)
    );
    assert!(stdout(&out).contains("running"), "{}", show(&out));
    assert!(err.contains(&format!("running at {url}")), "{}", show(&out));
    eprintln!(
        "---- transcript of `sdp deploy` ----\n{err}{}",
        stdout(&out)
    );

    // The same with -o json: one parseable document on stdout.
    let out = sdp
        .run(&["-o", "json", "deploy", "alpha", &format!("{REPO}@{BRANCH}")])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let doc = json(&out);
    let deployed = &doc["deployments"][0];
    assert_eq!(deployed["status"], "running", "{doc}");
    assert_eq!(deployed["repo"], REPO);
    let second_url = deployed["url"].as_str().expect("url").to_owned();
    assert!(doc.get("error").is_none(), "{doc}");
    let second_id = deployed["id"].as_str().expect("id").to_owned();

    // A REPO without a branch redeploys the branch the sandbox has; a
    // timeout stops following with its own code and leaves it running.
    let out = sdp
        .run(&["-o", "json", "deploy", "alpha", REPO, "--timeout", "1ms"])
        .await;
    assert_eq!(code(&out), 5, "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["error"]["code"], "timed_out", "{doc}");
    assert_eq!(doc["deployments"][0]["branch"], BRANCH, "{doc}");
    let third = doc["deployments"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        stack.wait_settled(&token, &third).await.status,
        Status::Running
    );

    // History and show agree with the API.
    let out = sdp
        .run(&["history", "--sandbox", "alpha", "-o", "json"])
        .await;
    let list = json(&out);
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
    assert_eq!(list[1]["id"], second_id.as_str());
    let out = sdp.run(&["history", "--sandbox", "alpha"]).await;
    assert_eq!(stdout(&out).lines().count(), 4, "{}", show(&out));
    assert_no_ansi(&out);
    let out = sdp.run(&["sandbox", "show", "alpha"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains(&third), "{}", show(&out));

    // Routes: the sandbox's own service, then a manual target, then reset.
    let users_route = |routes: &Value| {
        routes
            .as_array()
            .and_then(|r| r.iter().find(|r| r["service"] == REPO).cloned())
            .unwrap_or(Value::Null)
    };
    let before = users_route(&json(&sdp.run(&["routes", "alpha", "-o", "json"]).await));
    assert_eq!(before["source"], "sandbox", "{before}");
    let manual = "http://manual.example:9000";
    let out = sdp.run(&["routes", "set", "alpha", REPO, manual]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains(manual), "{}", show(&out));
    let (_, api_routes) = stack.get(&token, "/api/sandboxes/alpha/routes").await;
    let route = users_route(&api_routes);
    assert_eq!(route["source"], "manual", "{api_routes}");
    assert_eq!(route["target"], manual);
    let out = sdp.run(&["routes", "reset", "alpha", REPO]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let (_, api_routes) = stack.get(&token, "/api/sandboxes/alpha/routes").await;
    let route = users_route(&api_routes);
    assert_eq!(route["source"], "sandbox", "{api_routes}");
    assert_ne!(route["target"], manual);
    assert_eq!(
        users_route(&json(&sdp.run(&["routes", "alpha", "-o", "json"]).await)),
        route
    );
    // Resetting again: nothing manual left, a not-found exit.
    let out = sdp.run(&["routes", "reset", "alpha", REPO]).await;
    assert_eq!(code(&out), 7, "{}", show(&out));

    // Pin, unpin, renew: what the API answers.
    let out = sdp.run(&["sandbox", "pin", "alpha", "-o", "json"]).await;
    assert_eq!(json(&out)["pinned"], true, "{}", show(&out));
    let out = sdp.run(&["sandbox", "unpin", "alpha", "-o", "json"]).await;
    assert_eq!(json(&out)["pinned"], false, "{}", show(&out));
    let out = sdp
        .run(&[
            "sandbox",
            "renew",
            "alpha",
            "--ttl-hours",
            "5",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(json(&out)["ttl_hours"], 5, "{}", show(&out));

    // No gateway deployed: `open` says so with the not-found code.
    let out = sdp.run(&["open", "alpha", "-o", "json"]).await;
    assert_eq!(code(&out), 7, "{}", show(&out));
    assert_eq!(json(&out)["error"]["code"], "no_gateway");
    let _ = second_url;

    // Removing the sandbox tears it down; then it is not found.
    let out = sdp.run(&["sandbox", "rm", "alpha"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = sdp.run(&["sandbox", "show", "alpha"]).await;
    assert_eq!(code(&out), 7, "{}", show(&out));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_broken_build_exits_failed_with_the_compiler_error() {
    let stack = Stack::start().await;
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    stack.fixture.push_broken("main");

    let out = sdp.run(&["deploy", "beta", &format!("{REPO}@main")]).await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    assert_no_ansi(&out);
    let err = stderr(&out);
    assert!(
        err.contains("main.go:") && err.contains("syntax error"),
        "the compiler's error is not shown: {}",
        show(&out)
    );
    assert!(
        err.contains(&format!("✗ {REPO}@main failed")),
        "{}",
        show(&out)
    );

    // On a terminal: a spinner per phase, colour unless NO_COLOR is set.
    let target = format!("{REPO}@main");
    let mut command = sdp.command(&["deploy", "beta", &target]);
    command.env("TERM", "xterm");
    let (shown, exit) = run_in_pty(command).await;
    assert_eq!(exit, 1, "{shown}");
    assert!(shown.contains("syntax error"), "{shown}");
    assert!(has_sgr(&shown), "no colour on a terminal: {shown:?}");
    let mut command = sdp.command(&["deploy", "beta", &target]);
    command.env("TERM", "xterm").env("NO_COLOR", "1");
    let (shown, exit) = run_in_pty(command).await;
    assert_eq!(exit, 1, "{shown}");
    // (rexpect reads the terminal byte by byte, so `✗` arrives mangled.)
    assert!(shown.contains(&format!("{target} failed")), "{shown}");
    assert!(!has_sgr(&shown), "colour despite NO_COLOR: {shown:?}");

    let out = sdp
        .run(&["deploy", "beta", &format!("{REPO}@main"), "-o", "json"])
        .await;
    assert_eq!(code(&out), 1, "{}", show(&out));
    let doc = json(&out);
    assert_eq!(doc["error"]["code"], "deployment_failed", "{doc}");
    assert!(doc["error"]["message"].as_str().is_some(), "{doc}");
    assert_eq!(doc["deployments"][0]["status"], "failed", "{doc}");
    assert!(
        doc["deployments"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("go build")),
        "{doc}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_logs_follow_resumes_after_a_control_plane_restart() {
    use tokio::io::AsyncBufReadExt;

    let mut stack = Stack::start().await;
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let token = stack.login().await;
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "alpha", BRANCH).await;

    let mut command = tokio::process::Command::from(sdp.command(&["logs", &id, "-f"]));
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn sdp logs");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut stdout_lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let reader = {
        let lines = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout_lines.next_line().await {
                lines.lock().expect("lines").push(line);
            }
        })
    };
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr_pipe, &mut text).await;
        text
    });

    // Kill the control plane once the follower has printed log lines and
    // the build is still going.
    let path = format!("/api/deployments/{id}");
    sdp_testkit::wait_for("log lines while building", DEPLOY_TIMEOUT, || async {
        let (_, d) = stack.get(&token, &path).await;
        (d["status"] == "building" && !lines.lock().expect("lines").is_empty()).then_some(())
    })
    .await;
    let before = lines.lock().expect("lines").len();
    stack.kill_control_plane();
    let readyz = stack.url("/readyz");
    sdp_testkit::wait_for(
        "the control plane to be gone",
        Duration::from_secs(15),
        || {
            let readyz = readyz.clone();
            async move { reqwest::get(readyz).await.is_err().then_some(()) }
        },
    )
    .await;
    stack.start_control_plane().await;

    let status = tokio::time::timeout(DEPLOY_TIMEOUT, child.wait())
        .await
        .expect("sdp logs -f did not end")
        .expect("wait");
    reader.await.expect("reader");
    let err = stderr_task.await.expect("stderr");
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.contains("reconnecting"), "no drop reported: {err}");
    assert!(err.contains("resuming after event"), "no resume: {err}");
    assert!(err.contains("running"), "{err}");

    // Every line once, in order: exactly the deployment's whole log.
    let seen = lines.lock().expect("lines").clone();
    assert!(seen.len() >= before);
    let log = stack
        .http()
        .get(stack.url(&format!("/api/deployments/{id}/logs")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logs")
        .text()
        .await
        .expect("log text");
    assert_eq!(seen, log.lines().collect::<Vec<_>>(), "stderr: {err}");

    // And `sdp logs ID` without -f prints the same log.
    let out = sdp.run(&["logs", &id]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(stdout(&out), log);

    // The restart dropped the git credential (memory only): deploying is
    // an auth error until the next login.
    let target = format!("{REPO}@{BRANCH}");
    let out = sdp.run(&["-o", "json", "deploy", "alpha", &target]).await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert_eq!(json(&out)["error"]["code"], "credential_expired");
    sdp.login(&stack.password).await;

    // --detach returns at once; cancel; following it ends "cancelled".
    stack.fixture.push_slow_build(BRANCH);
    let out = sdp
        .run(&["-o", "json", "deploy", "alpha", &target, "--detach"])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let doc = json(&out);
    let detached = doc["deployments"][0]["id"].as_str().expect("id").to_owned();
    assert_ne!(doc["deployments"][0]["status"], "running", "{doc}");
    let path = format!("/api/deployments/{detached}");
    sdp_testkit::wait_for(
        "the detached deployment to build",
        DEPLOY_TIMEOUT,
        || async {
            let (_, d) = stack.get(&token, &path).await;
            (d["status"] == "building").then_some(())
        },
    )
    .await;
    let out = sdp.run(&["cancel", &detached]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let out = sdp.run(&["logs", &detached, "-f"]).await;
    assert_eq!(code(&out), 4, "{}", show(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", show(&out));
    assert_eq!(
        stack.wait_settled(&token, &detached).await.status,
        Status::Cancelled
    );
    let out = sdp.run(&["cancel", &detached]).await;
    assert_eq!(code(&out), 7, "cancelling twice: {}", show(&out));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_usage_auth_and_network_errors_have_their_codes() {
    // No stack needed: a port nobody listens on.
    let url = format!("http://127.0.0.1:{}", sdp_testkit::free_port());
    let mut sdp = Sdp::new(&url);
    sdp.extra_env.push(("NO_COLOR".into(), "1".into()));

    let out = sdp.run(&["deploy"]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert_no_ansi(&out);
    let out = sdp.run(&["no-such-command"]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let out = sdp
        .run(&["-o", "json", "deploy", "alpha", "Users@-x"])
        .await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert_eq!(json(&out)["error"]["code"], "usage");
    let out = sdp.run(&["history", "--limit", "many"]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));

    // Not logged in.
    let out = sdp.run(&["sandbox", "ls"]).await;
    assert_eq!(code(&out), 3, "{}", show(&out));
    assert_no_ansi(&out);

    // Logged in (a token from the environment) but nobody answers.
    sdp.extra_env.push(("SDP_TOKEN".into(), "t".repeat(43)));
    let out = sdp.run(&["-o", "json", "agents"]).await;
    assert_eq!(code(&out), 6, "{}", show(&out));
    assert_eq!(json(&out)["error"]["code"], "unreachable");

    // Help and completions work and carry the exit-code table.
    let out = sdp.run(&["--help"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains("Exit codes:"), "{}", show(&out));
    let out = sdp.run(&["completions", "bash"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stdout(&out).contains("_sdp"), "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_runtime_logs_tail_grep_follow_and_conflict() {
    use tokio::io::AsyncBufReadExt;

    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    let url = deployment.url.as_deref().expect("url").to_owned();
    for path in ["/cli-1", "/cli-2"] {
        let response = stack
            .http()
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("service");
        assert!(response.status().is_success());
    }
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    // Docker copies a container's output to its log a moment after the
    // service wrote it.
    sdp_testkit::wait_for(
        "the last request in the runtime log",
        Duration::from_secs(10),
        || async {
            let out = sdp
                .run(&["logs", "--runtime", "--grep", "/cli-2", &id])
                .await;
            (code(&out) == 0 && !stdout(&out).is_empty()).then_some(())
        },
    )
    .await;

    let out = sdp.run(&["logs", "--runtime", "--tail", "1", &id]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(stdout(&out), "request GET /cli-2\n");
    let out = sdp
        .run(&["logs", "--runtime", "--grep", "/cli-1", &id])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(stdout(&out), "request GET /cli-1\n");
    // --tail without --runtime is a usage error; a bad value the server's 400.
    let out = sdp.run(&["logs", "--tail", "1", &id]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let out = sdp
        .run(&["logs", "--runtime", "--since", "yesterday", &id])
        .await;
    assert_eq!(code(&out), 2, "{}", show(&out));

    // -f: new lines as they come, until interrupted; the agent's stream
    // then ends.
    let mut follow = tokio::process::Command::from(sdp.command(&[
        "logs",
        "--runtime",
        "-f",
        "--tail",
        "0",
        &id,
    ]));
    follow
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = follow.spawn().expect("spawn sdp");
    let mut stdout_lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (line_sender, mut lines) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout_lines.next_line().await {
            if line_sender.send(line).is_err() {
                return;
            }
        }
    });
    stack.wait_agent_log_streams(&token, 1).await;
    stack
        .wait_follow_attached(&url, "/cli-attach-", &mut lines)
        .await;
    stack.hit_service(&url, "/cli-live").await;
    let line = tokio::time::timeout(Duration::from_secs(20), lines.recv())
        .await
        .expect("a line within 20 s")
        .expect("a line");
    assert_eq!(line, "request GET /cli-live");
    child.kill().await.expect("kill sdp");
    stack.wait_agent_log_streams(&token, 0).await;

    // A deployment that is no longer running (replaced): the 409's exit
    // code, 7.
    let second = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &second).await.status,
        Status::Running
    );
    sdp_testkit::wait_for(
        "the first to be stopped",
        Duration::from_secs(20),
        || async {
            let (_, first) = stack.get(&token, &format!("/api/deployments/{id}")).await;
            (first["status"] == "stopped").then_some(())
        },
    )
    .await;
    let out = sdp.run(&["logs", "--runtime", &id]).await;
    assert_eq!(code(&out), 7, "{}", show(&out));
    assert!(stderr(&out).contains("stopped"), "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_env_lists_sets_and_unsets_a_services_sandbox_env() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let (status, body) = stack
        .post(&token, "/api/templates", serde_json::json!({
            "name": "envs",
            "services": [{ "repo": REPO, "branch": "main", "overrides": { "env": { "B": "template", "T": "t" } } }],
        }))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            serde_json::json!({ "name": "envbox", "template": "envs" }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let mut sdp = Sdp::new(&stack.base_url);
    sdp.extra_env.push(("NO_COLOR".into(), "1".into()));
    sdp.login(&stack.password).await;

    // Set (a value may hold '='), then list as a table: the sandbox's
    // over the template's.
    let out = sdp.run(&["env", "envbox", REPO, "A=1", "B=x=y"]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert!(stderr(&out).contains("saved"), "{}", show(&out));
    let out = sdp.run(&["env", "envbox", REPO]).await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let table = stdout(&out);
    let row = |key: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(row("A"), ["A", "1", "sandbox"], "{table}");
    assert_eq!(row("B"), ["B", "x=y", "sandbox"], "{table}");
    assert_eq!(row("T"), ["T", "t", "template"], "{table}");

    // Unset, in JSON: what the API answers.
    let out = sdp
        .run(&["-o", "json", "env", "envbox", REPO, "--unset", "A"])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    assert_eq!(json(&out)["env"], serde_json::json!({ "B": "x=y" }));
    let (_, api) = stack
        .get(
            &token,
            &format!("/api/sandboxes/envbox/services/{REPO}/env"),
        )
        .await;
    assert_eq!(api["env"], serde_json::json!({ "B": "x=y" }), "{api}");

    // Refused input: a reserved key is a usage error naming it; an
    // unknown service is not found.
    let out = sdp
        .run(&["-o", "json", "env", "envbox", REPO, "PORT=1"])
        .await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let message = json(&out)["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("\"PORT\""), "{message}");
    let out = sdp.run(&["env", "envbox", "nope"]).await;
    assert_eq!(code(&out), 7, "{}", show(&out));
    let out = sdp.run(&["env", "envbox", REPO, "NOEQUALS"]).await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    stack.shutdown().await;
}
