//! What every bench's `main` shares: the runtime it runs on, a command that
//! must succeed, and sizes read from the environment.

#![allow(dead_code)] // each bench uses its own part

use std::future::Future;
use std::process::Command;
use std::str::FromStr;

/// Runs `bench` to completion on a 2-worker runtime (the machine's cores).
pub fn block_on(bench: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench);
}

/// Runs `command`; panics with its stderr unless it succeeds. Its stdout,
/// trimmed.
pub fn run(command: &mut Command) -> String {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `name` parsed from the environment, else `default`.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
