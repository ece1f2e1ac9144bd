//! `scripts/dev.sh` starts the whole platform and Ctrl-C stops all of it:
//! the test runs the real script in its own process group (as a terminal
//! would), sends SIGINT to the group, and waits until no process of the
//! group is left and its ports are closed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_testkit::{free_port, unique_id, wait_for};

/// Ctrl-C once the platform is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_running_platform() {
    let mut dev = DevScript::start();
    dev.wait_for_output("SDP is running.", Duration::from_secs(240))
        .await;
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

/// A `dev.sh` run in its own process group, on its own ports, directory,
/// agent ids and image tags, so it runs beside a developer's own. Dropping
/// it SIGKILLs the group and removes the images.
struct DevScript {
    pgid: u32,
    child: std::process::Child,
    out: PathBuf,
    ports: Vec<u16>,
    images: Vec<String>,
    _dir: tempfile::TempDir,
}

impl DevScript {
    fn start() -> Self {
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
        let mut command = Command::new("bash");
        command
            .arg(root.join("scripts/dev.sh"))
            .current_dir(&root)
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
            _dir: dir,
        }
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
        loop {
            // Reap the script itself so it does not linger as a zombie.
            let _ = self.child.try_wait();
            let left = self.group_processes();
            if left.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < bound,
                "{bound:?} after Ctrl-C these are still running: {left:?}\noutput:\n{}",
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
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
