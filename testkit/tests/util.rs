//! unique_id, free_port, wait_for and its twins, ChildGuard, ReposDir.

use std::process::Command;
use std::time::Duration;

use sdp_testkit::{
    ChildGuard, ReposDir, free_port, init_tracing, try_wait_for, try_wait_for_blocking, unique_id,
    wait_for, wait_for_blocking,
};

#[test]
fn unique_ids_are_prefixed_lowercase_hex_and_distinct() {
    let a = unique_id("T");
    let b = unique_id("t");
    assert_ne!(a, b);
    for id in [&a, &b] {
        let hex = id
            .strip_prefix("t-")
            .unwrap_or_else(|| panic!("bad id {id}"));
        assert_eq!(hex.len(), 8, "{id}");
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
    }
    assert!(unique_id("svc-").starts_with("svc-") && !unique_id("svc-").contains("--"));
}

#[test]
fn free_port_can_be_bound() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("port {port} not free: {e}"));
    let ports: std::collections::HashSet<u16> = (0..50).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 50, "a port was handed out twice");
}

#[tokio::test]
async fn wait_for_returns_the_value_once_ready() {
    init_tracing();
    let mut calls = 0;
    let v = wait_for("third call", Duration::from_secs(5), || {
        calls += 1;
        let ready = calls >= 3;
        async move { ready.then_some(42) }
    })
    .await;
    assert_eq!(v, 42);
}

#[tokio::test]
#[should_panic(expected = "timed out after 200ms waiting for never")]
async fn wait_for_panics_on_timeout() {
    wait_for("never", Duration::from_millis(200), || async { None::<()> }).await;
}

#[tokio::test]
async fn try_wait_for_hands_the_timeout_back_after_looking_again_at_the_deadline() {
    let mut calls = 0;
    let started = std::time::Instant::now();
    let outcome = try_wait_for(Duration::from_millis(200), || {
        calls += 1;
        async { None::<()> }
    })
    .await;
    assert_eq!(outcome, None);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(calls >= 2, "looked {calls} times");
}

#[test]
fn wait_for_blocking_returns_the_value_once_ready() {
    let mut calls = 0;
    let v = wait_for_blocking("third call", Duration::from_secs(5), || {
        calls += 1;
        (calls >= 3).then_some(42)
    });
    assert_eq!((v, calls), (42, 3));
}

#[test]
#[should_panic(expected = "timed out after 200ms waiting for never")]
fn wait_for_blocking_panics_on_timeout() {
    wait_for_blocking("never", Duration::from_millis(200), || None::<()>);
}

#[test]
fn try_wait_for_blocking_hands_the_timeout_back() {
    let started = std::time::Instant::now();
    assert_eq!(
        try_wait_for_blocking(Duration::from_millis(200), || None::<()>),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn child_guard_kills_on_drop() {
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let mut guard = ChildGuard::spawn(cmd);
    let pid = guard.pid();
    assert!(guard.is_running());
    drop(guard);
    // Reaped, so /proc entry is gone.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let mut guard = ChildGuard::spawn(cmd);
    guard.kill();
    assert!(!guard.is_running());
}

#[test]
fn repos_dir_inits_repos_with_origin() {
    let dir = ReposDir::new();
    dir.add("svc-a", "http://127.0.0.1:1/svc-a.git");
    let repo = dir.path().join("svc-a");
    assert!(repo.join(".git").is_dir());
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["remote", "get-url", "origin"])
        .output()
        .expect("git runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "http://127.0.0.1:1/svc-a.git"
    );
    let path = dir.path().to_path_buf();
    drop(dir);
    assert!(!path.exists());
}
