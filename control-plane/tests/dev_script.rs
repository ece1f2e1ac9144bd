//! `scripts/dev.sh` starts the whole platform and Ctrl-C stops all of it:
//! the test runs the real script in its own process group (as a terminal
//! would), sends SIGINT to the group, and waits until no process of the
//! group is left and its ports are closed. One run is as a user who is not
//! root, only in the `docker` group, with the CLI's `SDP_URL`, `SDP_TOKEN`
//! and `SDP_NATS_URL` exported, as a developer's shell would have them.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_testkit::{free_port, try_wait_for, unique_id, wait_for};
use serde_json::{Value, json};

/// The user the non-root run is made as when the test runs as root.
const TEST_USER: &str = "sdp-dev-test";

/// Ctrl-C once the platform is up. A base image tag that exists before
/// the start (here the PHP one, made from the busybox image) is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_running_platform() {
    let existing = sdp_testkit::ensure_busybox_image();
    let mut dev = DevScript::start_with(None, Some(&existing));
    dev.wait_for_output("SDP is running.", Duration::from_secs(240))
        .await;
    assert_eq!(
        image_id(&dev.images[1]),
        image_id(&existing),
        "{} was re-tagged",
        dev.images[1]
    );
    let processes = dev.group_processes();
    assert!(
        processes.len() >= 6,
        "expected bash, nats-server, demo git, control plane and both agents: {processes:?}"
    );
    dev.interrupt_and_expect_nothing_left().await;
}

/// Ctrl-C half-way through starting: what was started goes, and nothing
/// is started after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_startup_stops_what_was_started() {
    let mut dev = DevScript::start();
    dev.wait_for_output("==> control plane", Duration::from_secs(240))
        .await;
    dev.interrupt_and_expect_nothing_left().await;
    assert!(
        !dev.output().contains("SDP is running."),
        "the script went on starting after Ctrl-C:\n{}",
        dev.output()
    );
}

/// As a user who is not root and only in the `docker` group (the test's
/// own user when it is not root), with the CLI's variables exported: the
/// platform comes up, the dashboard answers, the demo login works, a demo
/// service deploys, and Ctrl-C leaves no process and no container of the
/// run's agents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_group_user_runs_it_with_the_cli_variables_exported() {
    let user = DevUser::ensure();
    let mut dev = DevScript::start_as(Some(&user));
    dev.wait_for_output("SDP is running.", Duration::from_secs(240))
        .await;
    let processes = dev.group_processes();
    for (pid, name) in &processes {
        assert_eq!(
            process_uid(*pid),
            Some(user.uid),
            "{name} ({pid}) runs as the user"
        );
    }

    let base = format!("http://127.0.0.1:{}", dev.ports[0]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let dashboard = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("dashboard");
    assert!(
        dashboard.status().is_success(),
        "dashboard: {}",
        dashboard.status()
    );
    let login: Value = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "demo", "password": "demo-password"}))
        .send()
        .await
        .expect("login")
        .error_for_status()
        .unwrap_or_else(|e| panic!("login: {e}\n{}", dev.report()))
        .json()
        .await
        .expect("login body");
    let token = login["token"].as_str().expect("a token").to_owned();

    // Something of the agents' to leave behind: Ctrl-C must remove it.
    let deploy = http
        .post(format!("{base}/api/sandboxes/alpha/deployments"))
        .bearer_auth(&token)
        .json(&json!({"repo": "users", "branch": "main"}))
        .send()
        .await
        .expect("deploy");
    assert_eq!(deploy.status(), reqwest::StatusCode::ACCEPTED, "deploy");
    wait_for("users running", Duration::from_secs(240), || async {
        let list: Value = http
            .get(format!("{base}/api/deployments?sandbox=alpha"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let status = list.as_array()?.first()?["status"].as_str()?.to_owned();
        assert!(
            !matches!(status.as_str(), "failed" | "cancelled"),
            "deployment {status}: {list}\n{}",
            dev.report()
        );
        (status == "running").then_some(())
    })
    .await;
    assert!(
        !dev.agent_containers().is_empty(),
        "the deployed service runs in a container of the dev agent"
    );

    dev.interrupt_and_expect_nothing_left().await;
    let left = dev.agent_containers();
    assert!(
        left.is_empty(),
        "containers of the dev agents left: {left:?}"
    );
}

/// The id of a local image.
fn image_id(image: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .expect("docker image inspect");
    assert!(out.status.success(), "no image {image}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The uid a process runs as (`Uid:` of its status: real uid first).
fn process_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Who runs the non-root `dev.sh`: [`TEST_USER`] (made if missing, put in
/// the `docker` group) when the test runs as root, else the test's user.
struct DevUser {
    uid: u32,
    gid: u32,
    /// Run through `setpriv` (the test is root).
    switch: bool,
}

impl DevUser {
    fn ensure() -> Self {
        let me = id(&["-u"], None).expect("id -u");
        if me != 0 {
            let groups = Command::new("id").arg("-nG").output().expect("id -nG");
            assert!(
                String::from_utf8_lossy(&groups.stdout)
                    .split_whitespace()
                    .any(|g| g == "docker"),
                "run this test as root or as a user in the docker group"
            );
            return Self {
                uid: me,
                gid: id(&["-g"], None).expect("id -g"),
                switch: false,
            };
        }
        if id(&["-u"], Some(TEST_USER)).is_none() {
            // Another test process may make it at the same moment: the
            // user existing afterwards is what counts.
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .args(["--groups", "docker", TEST_USER])
                .status();
        }
        let uid = id(&["-u"], Some(TEST_USER)).expect("the test user exists");
        let in_docker = Command::new("id")
            .args(["-nG", TEST_USER])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|g| g == "docker")
            });
        if !in_docker {
            let added = Command::new("usermod")
                .args(["-aG", "docker", TEST_USER])
                .status();
            assert!(added.is_ok_and(|s| s.success()), "usermod -aG docker");
        }
        assert_ne!(uid, 0);
        Self {
            uid,
            gid: id(&["-g"], Some(TEST_USER)).expect("gid"),
            switch: true,
        }
    }
}

/// `id <flag> [user]` as a number.
fn id(flag: &[&str], user: Option<&str>) -> Option<u32> {
    let out = Command::new("id")
        .args(flag)
        .args(user)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A `dev.sh` run in its own process group, on its own ports, directory,
/// agent ids and image tags, so it runs beside a developer's own. Dropping
/// it SIGKILLs the group and removes the images.
struct DevScript {
    pgid: u32,
    child: std::process::Child,
    out: PathBuf,
    ports: Vec<u16>,
    images: Vec<String>,
    suffix: String,
    _dir: tempfile::TempDir,
}

impl DevScript {
    fn start() -> Self {
        Self::start_with(None, None)
    }

    fn start_as(user: Option<&DevUser>) -> Self {
        Self::start_with(user, None)
    }

    /// As `user` if given: through `setpriv` when the test is root, with
    /// nothing of the test's environment but what is set here. The user
    /// may not reach into root's home or an unreadable checkout: the
    /// script and what it reads (scripts/, nats/dev.conf) are copied into
    /// the run's temp dir (handed to the user), and the binaries too if
    /// the user cannot run them where they were built (the dashboard is
    /// embedded in the control plane, debug builds too: run from a checkout
    /// the user cannot read, e.g. under a `mktemp -d`, it must still
    /// answer). With `php_image`, the run's PHP base image tag names that
    /// image before the start.
    fn start_with(user: Option<&DevUser>, php_image: Option<&str>) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = tempfile::Builder::new()
            .prefix("sdp-dev-script-")
            .tempdir()
            .expect("temp dir");
        let out = dir.path().join("dev.out");
        let stdout = std::fs::File::create(&out).expect("output file");
        let stderr = stdout.try_clone().expect("output file");
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let suffix = unique_id("t");
        let images = vec![format!("{suffix}-go:1"), format!("{suffix}-php:1")];
        if let Some(image) = php_image {
            let tagged = Command::new("docker")
                .args(["tag", image, &images[1]])
                .status();
            assert!(tagged.is_ok_and(|s| s.success()), "docker tag {image}");
        }
        let mut command = match user {
            None => {
                let mut command = Command::new("bash");
                command.arg(root.join("scripts/dev.sh")).current_dir(&root);
                command
            }
            Some(user) => user_command(user, &root, dir.path()),
        };
        command
            .env("SDP_DEV_DIR", dir.path().join("dev"))
            .env("SDP_DEV_HTTP_PORT", ports[0].to_string())
            .env("SDP_DEV_GIT_PORT", ports[1].to_string())
            .env("SDP_DEV_NATS_PORT", ports[2].to_string())
            .env("SDP_DEV_NATS_HTTP_PORT", ports[3].to_string())
            .env("SDP_DEV_AGENT_SUFFIX", &suffix)
            .env("SDP_DEV_GO_IMAGE", &images[0])
            .env("SDP_DEV_PHP_IMAGE", &images[1])
            // scripts/test.sh built the binaries.
            .env("SDP_DEV_SKIP_BUILD", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Its own group, like a job a terminal starts: Ctrl-C goes to the
        // whole group.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start dev.sh");
        Self {
            pgid: child.id(),
            child,
            out,
            ports,
            images,
            suffix,
            _dir: dir,
        }
    }

    /// Containers labelled for this run's agents.
    fn agent_containers(&self) -> Vec<String> {
        ["micro", "gateway"]
            .iter()
            .flat_map(|kind| {
                sdp_testkit::containers_with_label("sdp.agent", &format!("{kind}-{}", self.suffix))
            })
            .collect()
    }

    fn output(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.out) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The script's output and the end of every component's log.
    fn report(&self) -> String {
        let mut report = self.output();
        let logs = self._dir.path().join("dev/logs");
        for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            report.push_str(&format!("\n--- {}:\n", entry.path().display()));
            for line in tail.into_iter().rev() {
                report.push_str(line);
                report.push('\n');
            }
        }
        report
    }

    async fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let what = format!("dev.sh to print {needle:?}");
        wait_for(&what, timeout, || {
            let output = self.output();
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "dev.sh exited ({status}) before printing {needle:?}:\n{}",
                    self.report()
                );
            }
            std::future::ready(output.contains(needle).then_some(()))
        })
        .await;
    }

    /// The pids whose process group is the script's.
    fn group_processes(&self) -> Vec<(u32, String)> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid pgrp …`; comm may hold spaces.
            let Some((comm, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // A zombie waits only for its parent to reap it.
            if fields.first() == Some(&"Z") {
                continue;
            }
            if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(self.pgid) {
                let name = comm.split_once('(').map_or(comm, |(_, n)| n);
                found.push((pid, name.to_owned()));
            }
        }
        found
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.pgid)])
            .stderr(Stdio::null())
            .status();
    }

    async fn interrupt_and_expect_nothing_left(&mut self) {
        self.signal_group("-INT");
        let started = std::time::Instant::now();
        let bound = Duration::from_secs(10);
        let all_gone = try_wait_for(bound, || {
            // Reap the script itself so it does not linger as a zombie.
            let _ = self.child.try_wait();
            std::future::ready(self.group_processes().is_empty().then_some(()))
        })
        .await;
        if all_gone.is_none() {
            panic!(
                "{bound:?} after Ctrl-C these are still running: {:?}\noutput:\n{}",
                self.group_processes(),
                self.report()
            );
        }
        for port in &self.ports {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_err(),
                "port {port} still answers after Ctrl-C"
            );
        }
        let status = self.child.wait().expect("dev.sh status");
        assert!(!status.success(), "an interrupted dev.sh reports failure");
        eprintln!("dev.sh stopped {:?} after SIGINT", started.elapsed());
    }
}

impl Drop for DevScript {
    fn drop(&mut self) {
        self.signal_group("-KILL");
        let _ = self.child.wait();
        let _ = Command::new("docker")
            .arg("rmi")
            .args(&self.images)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `bash <copy>/scripts/dev.sh` run as `user` in `dir`, with a clean
/// environment: a normal user's `PATH` (no `~/.cargo/bin`: the script
/// needs no cargo with SDP_DEV_SKIP_BUILD=1; no sbin: nats-server is in
/// /usr/sbin), a home in `dir`, the binaries'
/// `CARGO_TARGET_DIR`, and the CLI's variables, which the servers must
/// ignore.
fn user_command(user: &DevUser, root: &Path, dir: &Path) -> Command {
    let checkout = dir.join("checkout");
    for file in ["scripts/dev.sh", "scripts/lib/deps.sh", "nats/dev.conf"] {
        let to = checkout.join(file);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(root.join(file), &to).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    let built = Path::new(env!("CARGO_BIN_EXE_sdp-control-plane"))
        .parent()
        .expect("the binaries' dir")
        .to_owned();
    let binaries = [
        "sdp-demo-git",
        "sdp-control-plane",
        "sdp-agent-micro",
        "sdp-agent-gateway",
    ];
    let target = if binaries.iter().all(|b| user_can_run(user, &built.join(b))) {
        built.parent().expect("the target dir").to_owned()
    } else {
        let copy = dir.join("target/debug");
        std::fs::create_dir_all(&copy).expect("mkdir");
        for binary in binaries {
            std::fs::copy(built.join(binary), copy.join(binary))
                .unwrap_or_else(|e| panic!("copy {binary}: {e}"));
        }
        dir.join("target")
    };
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    if user.switch {
        // The temp dir is the test's (0700, root): the user's from here on.
        let chown = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(dir)
            .status();
        assert!(chown.is_ok_and(|s| s.success()), "chown the temp dir");
    }
    let mut command = if user.switch {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--init-groups", "--", "bash"]);
        command
    } else {
        Command::new("bash")
    };
    command
        .arg(checkout.join("scripts/dev.sh"))
        .current_dir(&checkout)
        .env_clear()
        // A normal Debian user's (login.defs ENV_PATH): no sbin.
        .env(
            "PATH",
            "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games",
        )
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("CARGO_TARGET_DIR", &target)
        .env("SDP_URL", "http://127.0.0.1:9/")
        .env("SDP_TOKEN", "not-a-token")
        .env("SDP_NATS_URL", "nats://127.0.0.1:9");
    command
}

/// Whether `user` can run `path`: every directory on the way searchable
/// and the file executable by "others" (the user owns none of it), or the
/// test is that user.
fn user_can_run(user: &DevUser, path: &Path) -> bool {
    if !user.switch {
        return true;
    }
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let file_ok = mode(path).is_ok_and(|m| m & 0o005 == 0o005);
    file_ok
        && path
            .ancestors()
            .skip(1)
            .all(|dir| mode(dir).is_ok_and(|m| m & 0o001 != 0))
}
