//! scripts/deploy.sh over a real sshd: Debian's `/usr/sbin/sshd -D` on a
//! free loopback port as a child, with a throwaway host key and user key
//! (ssh-keygen into a temp dir), `AuthorizedKeysFile` in that dir. deploy.sh
//! copies the bundle and runs its install.sh with the roles of each target
//! and `-- --root DIR`; the installed tree is checked, a second deploy
//! changes nothing, and a key the server does not know fails at once
//! (BatchMode: no prompt).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sdp_packaging::{TempDir, build_bundle, repo_root, run, run_ok, text};
use sdp_testkit::{ChildGuard, free_port, try_wait_for_blocking};

struct Sshd {
    dir: TempDir,
    port: u16,
    _child: ChildGuard,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = TempDir::new().expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        keygen(&d.join("stranger_key"));
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let port = free_port();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("host key");
        let mut fields = host_pub.split_whitespace();
        let (kind, key) = (fields.next().expect("type"), fields.next().expect("key"));
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .expect("known_hosts");
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {p}/host_key\nPidFile {p}/sshd.pid\n\
             AuthorizedKeysFile {p}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
            p = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        // sshd's privilege separation directory (the package's tmpfiles.d
        // makes it at boot).
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        run_ok(
            Command::new("/usr/sbin/sshd")
                .arg("-t")
                .arg("-f")
                .arg(d.join("sshd_config")),
        );
        let log = std::fs::File::create(d.join("sshd.log")).expect("log");
        let mut cmd = Command::new("/usr/sbin/sshd");
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let child = ChildGuard::spawn(cmd);
        // Listening once it says so (a probe connection would leave an
        // sshd child behind to time out).
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        let log = || std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
        try_wait_for_blocking(Duration::from_secs(20), || {
            log().contains(&listening).then_some(())
        })
        .unwrap_or_else(|| panic!("sshd did not listen: {}", log()));
        Sshd {
            dir,
            port,
            _child: child,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }
}

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "sdp-test", "-f"])
            .arg(path),
    );
}

/// deploy.sh with the test's key, port and known_hosts; the user's own ssh
/// config and known_hosts are kept out (`-F /dev/null`, HOME elsewhere).
fn deploy(
    sshd: &Sshd,
    key: &str,
    tarball: &Path,
    targets: &[&str],
    install: &[&str],
) -> std::process::Output {
    let home = sshd.path("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut cmd = Command::new(repo_root().join("scripts/deploy.sh"));
    cmd.arg("--bundle")
        .arg(tarball)
        .args(["-F", "/dev/null", "-i"])
        .arg(sshd.path(key))
        .args(["-p", &sshd.port.to_string(), "-o"])
        .arg(format!(
            "UserKnownHostsFile={}",
            sshd.path("known_hosts").display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
        .args(targets)
        .arg("--")
        .args(install)
        .env("HOME", &home)
        .env_remove("SSH_AUTH_SOCK");
    run(&mut cmd)
}

#[test]
fn deploy_over_ssh_installs_each_role() {
    let sshd = Sshd::start();
    let dist = TempDir::new().expect("temp dir");
    let tarball = build_bundle(dist.path(), None);
    let root = TempDir::new().expect("temp dir");
    let root_arg = root.path().display().to_string();
    let targets = ["control@root@127.0.0.1", "micro,gateway@root@127.0.0.1"];

    let out = deploy(
        &sshd,
        "user_key",
        &tarball,
        &targets,
        &["--root", &root_arg],
    );
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "deploy.sh failed ({}):\n{stdout}\n{stderr}\nsshd: {}",
        out.status,
        sshd.log()
    );
    assert!(
        stdout.contains("==> root@127.0.0.1: roles control"),
        "{stdout}"
    );
    assert!(
        stdout.contains("==> root@127.0.0.1: roles micro,gateway"),
        "{stdout}"
    );
    let r = root.path();
    for path in [
        "etc/sdp/control-plane.toml",
        "etc/sdp/agent-micro.toml",
        "etc/sdp/agent-gateway.toml",
        "etc/systemd/system/sdp-control-plane.service",
        "etc/systemd/system/sdp-agent-micro.service",
        "etc/systemd/system/sdp-agent-gateway.service",
        "etc/nginx/sites-available/sdp.conf",
        "opt/sdp/current/bin/sdp-control-plane",
        "opt/sdp/current/bin/sdp-agent-gateway",
    ] {
        assert!(r.join(path).exists(), "{path} missing:\n{stdout}");
    }
    assert!(r.join("var/lib/sdp/agent-gateway").is_dir());
    // The installed binaries are the bundle's, intact.
    run_ok(
        Command::new("sha256sum")
            .args(["--quiet", "--strict", "-c", "SHA256SUMS"])
            .current_dir(r.join("opt/sdp/current")),
    );

    // Deployed again: nothing changes on the host.
    let out = deploy(
        &sshd,
        "user_key",
        &tarball,
        &targets,
        &["--root", &root_arg],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("nothing changed").count(), 2, "{stdout}");

    // A key sshd does not know: refused at once, no prompt, non-zero exit.
    let started = std::time::Instant::now();
    let out = deploy(
        &sshd,
        "stranger_key",
        &tarball,
        &targets[..1],
        &["--root", &root_arg],
    );
    assert!(
        !out.status.success(),
        "a stranger's key got in: {:?}",
        text(&out)
    );
    assert!(
        text(&out).1.contains("Permission denied"),
        "{:?}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
