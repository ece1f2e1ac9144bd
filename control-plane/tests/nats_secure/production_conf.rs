//! The shipped configs parse (`nats-server -t`): `production.conf` with its
//! paths pointed at temp files, and `auth.conf` refuses to load without
//! every password.
//!
//! `production.conf` sets `jetstream.sync_interval`, which nats-server
//! 2.10 introduced. On an older server (Debian's 2.9.10 here) the test
//! checks that this is the only option it rejects, then parses the file
//! without that line.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::harness::{USERS, gen_certs, nats_dir, new_password};

const TLS_DIR: &str = "/etc/nats/tls/";
const STORE_DIR: &str = "/var/lib/nats/jetstream";

/// `nats-server -t -c config` with the given environment.
fn check(config: &Path, env: &[(String, String)]) -> Output {
    Command::new("nats-server")
        .arg("-t")
        .arg("-c")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .output()
        .expect("run nats-server -t")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// (major, minor) of the installed nats-server.
fn server_version() -> (u32, u32) {
    let output = Command::new("nats-server")
        .arg("--version")
        .output()
        .expect("nats-server --version");
    let version = String::from_utf8_lossy(&output.stdout).into_owned();
    let numbers: Vec<u32> = version
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or_default()
        .split('.')
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [major, minor, ..] => (major, minor),
        _ => panic!("cannot read the nats-server version from {version:?}"),
    }
}

fn passwords() -> Vec<(String, String)> {
    USERS
        .iter()
        .map(|(_, var)| ((*var).to_owned(), new_password()))
        .collect()
}

/// A temp dir holding certificates, a link to the real `auth.conf`, and
/// `production.conf` with its paths pointed into the dir.
fn production_copy() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let tls = dir.path().join("tls");
    gen_certs(&tls);
    std::os::unix::fs::symlink(nats_dir().join("auth.conf"), dir.path().join("auth.conf"))
        .expect("link auth.conf");
    let original =
        std::fs::read_to_string(nats_dir().join("production.conf")).expect("read production.conf");
    for needle in [TLS_DIR, STORE_DIR, "include \"auth.conf\"", "sync_interval"] {
        assert!(
            original.contains(needle),
            "production.conf lacks {needle:?}"
        );
    }
    let copy = original
        .replace(TLS_DIR, &format!("{}/", tls.display()))
        .replace(STORE_DIR, &dir.path().join("store").display().to_string());
    let path = dir.path().join("production.conf");
    std::fs::write(&path, &copy).expect("write production.conf copy");
    (dir, path, copy)
}

#[test]
fn production_conf_parses() {
    let (_dir, path, copy) = production_copy();
    let env = passwords();
    let output = check(&path, &env);
    let version = server_version();
    if version >= (2, 10) {
        assert!(output.status.success(), "{}", text(&output));
        return;
    }
    // 2.9: only sync_interval may be unknown.
    let said = text(&output);
    assert!(
        !output.status.success(),
        "2.9 accepted sync_interval?\n{said}"
    );
    assert!(
        said.contains("unknown field \"sync_interval\"") && said.lines().count() <= 2,
        "production.conf has more than sync_interval that nats-server {version:?} rejects:\n{said}"
    );
    eprintln!(
        "note: nats-server {}.{} predates sync_interval (2.10); checking production.conf \
         without that line. Production needs nats-server >= 2.10.23.",
        version.0, version.1
    );
    let kept: Vec<&str> = copy
        .lines()
        .filter(|line| !line.trim_start().starts_with("sync_interval"))
        .collect();
    assert_eq!(
        kept.len() + 1,
        copy.lines().count(),
        "one sync_interval line"
    );
    std::fs::write(&path, kept.join("\n")).expect("write");
    let output = check(&path, &env);
    assert!(
        output.status.success() && text(&output).contains("is valid"),
        "{}",
        text(&output)
    );
}

#[test]
fn nats_server_refuses_to_start_without_every_password() {
    let (_dir, path, copy) = production_copy();
    let kept: String = copy
        .lines()
        .filter(|line| !line.trim_start().starts_with("sync_interval"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&path, kept).expect("write");
    for (missing, var) in USERS {
        let env: Vec<(String, String)> = passwords()
            .into_iter()
            .filter(|(name, _)| name != var)
            .collect();
        let output = check(&path, &env);
        assert!(
            !output.status.success() && text(&output).contains(var),
            "without {var} ({missing}) nats-server must refuse the config:\n{}",
            text(&output)
        );
    }
}

#[test]
fn dev_conf_parses() {
    let output = check(&nats_dir().join("dev.conf"), &[]);
    assert!(output.status.success(), "{}", text(&output));
}

/// The three cluster node configs (`nats/cluster/n*.conf`) parse with the
/// same accounts as production, each with its own server name and the
/// routes to all three.
#[test]
fn cluster_node_confs_parse() {
    let mut env = passwords();
    env.push(("NATS_CLUSTER_PW".into(), new_password()));
    let version = server_version();
    let mut names = Vec::new();
    for node in 1..=3 {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let tls = dir.path().join("tls");
        gen_certs(&tls);
        std::os::unix::fs::symlink(nats_dir().join("auth.conf"), dir.path().join("auth.conf"))
            .expect("link auth.conf");
        let original = std::fs::read_to_string(nats_dir().join(format!("cluster/n{node}.conf")))
            .expect("read the node config");
        assert_eq!(
            original.matches("nats-route://").count(),
            3,
            "n{node}: routes"
        );
        let name = original
            .lines()
            .find_map(|l| l.trim().strip_prefix("server_name:"))
            .expect("server_name")
            .trim()
            .to_owned();
        names.push(name);
        let copy: String = original
            .replace(TLS_DIR, &format!("{}/", tls.display()))
            .replace(STORE_DIR, &dir.path().join("store").display().to_string())
            .lines()
            // 2.9 predates sync_interval (see production_conf_parses).
            .filter(|l| version >= (2, 10) || !l.trim_start().starts_with("sync_interval"))
            .map(|l| format!("{l}\n"))
            .collect();
        let path = dir.path().join(format!("n{node}.conf"));
        std::fs::write(&path, copy).expect("write");
        let output = check(&path, &env);
        assert!(
            output.status.success() && text(&output).contains("is valid"),
            "n{node}.conf: {}",
            text(&output)
        );
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "three distinct server names");
}
