//! Small helpers every test needs: ids, ports, tracing, bounded waiting.

use std::collections::HashSet;
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// A unique lowercase id for things a test creates, e.g. `"t-3f9a1c2b"`
/// for prefix `"t"` (prefix, `-`, 8 random hex digits). A prefix that
/// already ends in `-` gets no second one.
pub fn unique_id(prefix: &str) -> String {
    let prefix = prefix.to_lowercase();
    let sep = if prefix.is_empty() || prefix.ends_with('-') {
        ""
    } else {
        "-"
    };
    format!("{prefix}{sep}{:08x}", rand::random::<u32>())
}

/// A free TCP port on 127.0.0.1: bound once to check, then released.
///
/// Ports come from just below the kernel's ephemeral range (read from
/// `/proc/sys/net/ipv4/ip_local_port_range`), never from `bind(:0)`: an
/// ephemeral port, once released, is soon reused as the source port of some
/// outgoing connection or by another process's `bind(:0)`, which then makes
/// the test's own bind fail. A port is handed out at most once per process.
/// Falls back to `bind(:0)` if no such port is free.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let low = ephemeral_low.saturating_sub(12_000).max(10_000);
    if low + 1000 < ephemeral_low {
        for _ in 0..200 {
            let port = rand::random_range(low..ephemeral_low);
            if !handed_out.contains(&port) && can_bind(port) {
                handed_out.insert(port);
                return port;
            }
        }
    }
    loop {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local addr: {e}"))
            .port();
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Probes `port` with a bound but not listening `SO_REUSEADDR` socket: a
/// copy of it inherited by a child forked meanwhile by another thread (open
/// until that child's exec) then cannot block the caller's own listener the
/// way a listening probe would.
fn can_bind(port: u16) -> bool {
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
        return false;
    };
    socket.set_reuseaddr(true).is_ok()
        && socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .is_ok()
}

/// Installs a tracing subscriber once per process: env filter from
/// `RUST_LOG` (default `info`), output through the test harness writer.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Another subscriber may already be installed by the test itself.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// How often [`wait_for`] and its siblings look again.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Polls `check` every 50 ms until it returns `Some(v)` and returns `v`.
///
/// # Panics
/// With `"timed out after {timeout:?} waiting for {what}"` once `timeout`
/// has passed; use [`try_wait_for`] to say more on a timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    try_wait_for(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` every 50 ms until it returns `Some(v)` (then `Some(v)`)
/// or `timeout` has passed (then `None`): for a caller whose timeout
/// message needs what only it can gather (logs, the state it waited on).
/// `check` runs at least once, and once more at the deadline.
pub async fn try_wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Blocking twin of [`wait_for`], for sync code (a `Drop`, a `#[test]`
/// without a runtime, a helper that starts a process).
///
/// # Panics
/// With `"timed out after {timeout:?} waiting for {what}"` once `timeout`
/// has passed; use [`try_wait_for_blocking`] to say more on a timeout.
pub fn wait_for_blocking<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    try_wait_for_blocking(timeout, check)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Blocking twin of [`try_wait_for`]: `None` once `timeout` has passed.
pub fn try_wait_for_blocking<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Runs `work` once for every test process of a run that shares `dir`:
/// the first process to create `<dir>/<name>.lock` runs it and then writes
/// `<dir>/<name>.done`; the others wait (bounded by `timeout`) for that
/// file. A lock left by a killed process is waited out, then ignored.
/// For expensive shared setup such as warming the Go standard library
/// that every agent's sandboxes are seeded from.
pub async fn once_across_processes<F, Fut>(
    dir: &std::path::Path,
    name: &str,
    timeout: Duration,
    work: F,
) where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let done = dir.join(format!("{name}.done"));
    let lock = dir.join(format!("{name}.lock"));
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let deadline = Instant::now() + timeout;
    loop {
        if done.exists() {
            return;
        }
        let ours = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
            .is_ok();
        if ours || Instant::now() >= deadline {
            work().await;
            std::fs::write(&done, b"done\n")
                .unwrap_or_else(|e| panic!("write {}: {e}", done.display()));
            let _ = std::fs::remove_file(&lock);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every file under `dir` (symlinks not followed) whose bytes contain
/// `needle`: where a canary must not be.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}
