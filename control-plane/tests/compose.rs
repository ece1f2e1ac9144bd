//! The compose stack (`docker-compose.yml`, `scripts/compose.sh`) on the
//! real engine: `docker-compose --profile demo up -d --build` builds and
//! starts NATS, the control plane, both agents and the demo git server; a
//! login and deployments of the demo service and gateway reach `running`
//! and route through each other; `scripts/compose.sh down -v --rmi local`
//! leaves no container, network, volume or image of the project, and no
//! container the agents deployed. `up` on a running stack works too.
//!
//! Runs beside a developer's own stack: its own project name, host ports,
//! data dir and agent ids. Uses the binaries `scripts/test.sh` built; the
//! base images are made once (cold: a few minutes of debootstrap) and kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sdp_testkit::{free_port, unique_id, wait_for};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_up_deploys_the_demo_and_down_leaves_nothing() {
    let project = Project::new();

    let started = Instant::now();
    project.script(&["prepare"]);
    eprintln!("compose.sh prepare took {:?}", started.elapsed());
    let started = Instant::now();
    project.compose(&["--profile", "demo", "up", "-d", "--build"]);
    eprintln!("docker-compose up -d --build took {:?}", started.elapsed());

    let base = format!("http://127.0.0.1:{}", project.http_port);
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    wait_for("/readyz", Duration::from_secs(120), || async {
        let response = http.get(format!("{base}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;

    // The credential is checked by an agent against the demo git server's
    // probe repo: it works once an agent and the demo repos are up.
    wait_for("a demo login", Duration::from_secs(120), || async {
        let response = http
            .post(format!("{base}/api/login"))
            .json(&json!({"username": "demo", "password": "demo-password"}))
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    wait_for(
        "both agents listing the demo repos",
        Duration::from_secs(60),
        || async {
            let agents: Value = http
                .get(format!("{base}/api/agents"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let listed = |repo: &str| {
                agents.as_array().is_some_and(|agents| {
                    agents.iter().any(|a| {
                        a["online"] == true
                            && a["repos"]
                                .as_array()
                                .is_some_and(|r| r.contains(&json!(repo)))
                    })
                })
            };
            (listed("users") && listed("gateway")).then_some(())
        },
    )
    .await;

    let deployed = Instant::now();
    for (repo, branch) in [("users", "feature/x"), ("gateway", "main")] {
        let response = http
            .post(format!("{base}/api/sandboxes/alpha/deployments"))
            // A change sent with the session cookie names the dashboard's origin.
            .header(reqwest::header::ORIGIN, &base)
            .json(&json!({"repo": repo, "branch": branch}))
            .send()
            .await
            .expect("deploy request");
        assert_eq!(response.status(), StatusCode::ACCEPTED, "deploy {repo}");
    }
    let deployments = wait_for(
        "users and gateway running",
        Duration::from_secs(300),
        || async {
            let list: Value = http
                .get(format!("{base}/api/deployments?sandbox=alpha"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let list = list.as_array()?.clone();
            for d in &list {
                assert!(
                    !matches!(d["status"].as_str(), Some("failed" | "cancelled")),
                    "a deployment failed: {d}\n{}",
                    project.logs()
                );
            }
            let running = |repo: &str| {
                list.iter()
                    .any(|d| d["repo"] == repo && d["status"] == "running")
            };
            (running("users") && running("gateway")).then_some(list)
        },
    )
    .await;
    eprintln!("deployments running after {:?}", deployed.elapsed());
    // A gateway re-apply may be queued by now, with no agent yet.
    assert!(
        deployments
            .iter()
            .filter(|d| d["status"] == "running")
            .all(|d| d["agent_id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&project.suffix))),
        "deployed by the project's agents: {deployments:?}"
    );

    // The gateway container reaches the users container through the
    // advertised host address: the routes work across containers.
    let gateway_url = wait_for(
        "the sandbox's gateway_url",
        Duration::from_secs(60),
        || async {
            let sandbox: Value = http
                .get(format!("{base}/api/sandboxes/alpha"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            sandbox["gateway_url"].as_str().map(str::to_owned)
        },
    )
    .await;
    wait_for(
        "the gateway answering from users@feature/x",
        Duration::from_secs(120),
        || async {
            // Containers publish on the advertised address only.
            let body = reqwest::get(format!("{gateway_url}/users/1"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            body.contains("\"branch\":\"feature/x\"").then_some(())
        },
    )
    .await;
    assert!(
        !project.deployed_containers().is_empty(),
        "the agents' containers run on the host's engine"
    );

    let started = Instant::now();
    project.script(&["down", "-v", "--rmi", "local"]);
    eprintln!("compose.sh down took {:?}", started.elapsed());
    let left = project.leftovers();
    assert!(left.is_empty(), "left behind after down: {left:?}");
}

/// `scripts/compose.sh up` on a stack that is already up (what a developer
/// does after a rebuild or a change of settings: changed services are
/// recreated) works with compose 1.29 on this engine, and
/// `down -v --rmi local` then leaves no container, network, volume or
/// image of the project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_up_twice_then_down_leaves_nothing() {
    let mut project = Project::new();
    let base = format!("http://127.0.0.1:{}", project.http_port);
    for round in 1..=2 {
        if round == 2 {
            // The agents' config changes (same schemes, other order): the
            // second `up` recreates their containers, the path compose
            // 1.29 breaks on with newer engines.
            project
                .env
                .push(("SDP_COMPOSE_GIT_SCHEMES", "http,https".to_owned()));
        }
        let started = Instant::now();
        // `up` waits for /readyz itself and fails if it does not come.
        project.script(&["up"]);
        eprintln!("compose.sh up #{round} took {:?}", started.elapsed());
        let ready = reqwest::get(format!("{base}/readyz"))
            .await
            .expect("readyz");
        assert!(
            ready.status().is_success(),
            "up #{round}: /readyz {}",
            ready.status()
        );
    }
    let running = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", project.name),
    ]);
    assert_eq!(
        running.lines().count(),
        5,
        "one container per service after two ups:\n{running}\n{}",
        project.logs()
    );

    project.script(&["down", "-v", "--rmi", "local"]);
    let left = project.leftovers();
    assert!(left.is_empty(), "left behind after down: {left:?}");
}

/// One compose project on its own ports, data dir and agent ids; its
/// teardown runs again on drop (a failed test leaves nothing either).
struct Project {
    root: PathBuf,
    name: String,
    suffix: String,
    http_port: u16,
    env: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = tempfile::Builder::new()
            .prefix("sdp-compose-test-")
            .tempdir()
            .expect("temp dir");
        let name = unique_id("sdp-test");
        let suffix = unique_id("t");
        let [http_port, nats_port, git_port, baseline_port] = [(); 4].map(|()| free_port());
        let env = vec![
            ("COMPOSE_PROJECT_NAME", name.clone()),
            ("COMPOSE_PROFILES", "demo".to_owned()),
            ("SDP_COMPOSE_HTTP_PORT", http_port.to_string()),
            ("SDP_COMPOSE_NATS_PORT", nats_port.to_string()),
            ("SDP_COMPOSE_GIT_PORT", git_port.to_string()),
            ("SDP_COMPOSE_BASELINE_PORT", baseline_port.to_string()),
            (
                "SDP_COMPOSE_PROBE_REPO",
                format!("http://127.0.0.1:{git_port}/probe.git"),
            ),
            ("SDP_COMPOSE_DIR", dir.path().display().to_string()),
            ("SDP_COMPOSE_AGENT_SUFFIX", suffix.clone()),
            (
                "SDP_COMPOSE_ADVERTISE_HOST",
                sdp_testkit::docker_bridge_gateway(),
            ),
            // scripts/test.sh built the binaries.
            ("SDP_COMPOSE_SKIP_BUILD", "1".to_owned()),
        ];
        Project {
            root,
            name,
            suffix,
            http_port,
            env,
            _dir: dir,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .envs(self.env.iter().map(|(k, v)| (*k, v)));
        command
    }

    fn script(&self, args: &[&str]) {
        let mut command = self.command("bash");
        command.arg("scripts/compose.sh").args(args);
        check(&mut command);
    }

    fn compose(&self, args: &[&str]) {
        let mut command = self.command("docker-compose");
        command.args(args);
        check(&mut command);
    }

    fn logs(&self) -> String {
        let out = self
            .command("docker-compose")
            .args(["--profile", "demo", "logs", "--no-color", "--tail", "40"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        out.unwrap_or_else(|e| format!("(no logs: {e})"))
    }

    fn deployed_containers(&self) -> Vec<String> {
        ["micro", "gateway"]
            .iter()
            .flat_map(|kind| {
                sdp_testkit::containers_with_label("sdp.agent", &format!("{kind}-{}", self.suffix))
            })
            .collect()
    }

    /// Containers, networks, volumes and images of the project, and the
    /// containers its agents deployed.
    fn leftovers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let mut left = self.deployed_containers();
        // Compose labels what it creates, but not the images it builds:
        // those are named `<project>_<service>`.
        let images = format!("reference={}_*", self.name);
        for (what, filter) in [
            (&["ps", "-a"][..], &filter),
            (&["network", "ls"], &filter),
            (&["volume", "ls"], &filter),
            (&["images"], &images),
        ] {
            let out = docker(&[what, &["-q", "--filter", filter]].concat());
            left.extend(out.lines().map(|id| format!("{} {id}", what.join(" "))));
        }
        left
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Never panic in drop: the test may be unwinding already.
        let _ = self
            .command("bash")
            .args(["scripts/compose.sh", "down", "-v", "--rmi", "local"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for id in self.deployed_containers() {
            sdp_testkit::docker_rm(&id);
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn check(command: &mut Command) {
    let out = command.output().expect("command starts");
    assert!(out.status.success(), "{command:?} failed:\n{}", text(&out));
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
