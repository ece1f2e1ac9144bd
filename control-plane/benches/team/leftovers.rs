//! The mass teardown and what it must leave: no container, volume or
//! network of a team sandbox on the engine, no worktree or port file of one
//! in an agent's data dir, no route of one in the control plane's database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::activity::{delete_all, wait_gone};
use super::common::Stack;
use super::common::extra_agent::ExtraAgent;

/// Every agent's data dir.
pub fn agent_dirs(stack: &Stack, extra: &[ExtraAgent]) -> Vec<PathBuf> {
    let mut dirs = vec![stack.agent_data.path().to_path_buf()];
    dirs.extend(extra.iter().map(|agent| agent.data_dir().to_path_buf()));
    if let Some(routing) = &stack.routing {
        dirs.push(routing.gateway_agent_data.path().to_path_buf());
    }
    dirs
}

/// Deletes every sandbox still there, at once; (how many, until all gone).
pub async fn tear_down_all(stack: &Stack, token: &str, names: &[String]) -> (usize, Duration) {
    let mut remaining = Vec::new();
    for name in names {
        let (status, _) = stack.get(token, &format!("/api/sandboxes/{name}")).await;
        if status.is_success() {
            remaining.push(name.clone());
        }
    }
    let started = Instant::now();
    delete_all(stack, token, &remaining).await;
    wait_gone(stack, token, &remaining).await;
    (remaining.len(), started.elapsed())
}

/// What is left of `names` anywhere, one line each.
pub fn left_behind(stack: &Stack, agent_dirs: &[PathBuf], names: &[String]) -> Vec<String> {
    let ours = |text: &str| names.iter().any(|name| text.contains(name.as_str()));
    let mut left = Vec::new();
    for (what, args) in [
        (
            "container",
            &["ps", "-a", "--format", "{{.Names}} {{.Labels}}"][..],
        ),
        (
            "volume",
            &["volume", "ls", "--format", "{{.Name}} {{.Labels}}"][..],
        ),
        (
            "network",
            &["network", "ls", "--format", "{{.Name}} {{.Labels}}"][..],
        ),
    ] {
        let out = Command::new("docker").args(args).output().expect("docker");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if ours(line) {
                left.push(format!("{what}: {line}"));
            }
        }
    }
    for dir in agent_dirs {
        walk(dir, 6, &mut |path| {
            let text = path.display().to_string();
            if ours(&text) {
                left.push(format!("file: {text}"));
            }
        });
    }
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("db");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    // Live state only: deployments, events and the audit trail are history
    // and stay.
    for table in [
        "routes",
        "sandboxes",
        "sandbox_resources",
        "sandbox_resource_specs",
        "service_env",
        "service_follows",
    ] {
        let count: i64 = db
            .query_row(
                &format!(
                    "SELECT count(*) FROM {table} WHERE {} LIKE 'team-%'",
                    key(table)
                ),
                [],
                |row| row.get(0),
            )
            .expect("count");
        if count > 0 {
            left.push(format!("{count} rows in {table}"));
        }
    }
    left
}

/// The column naming the sandbox in `table`.
fn key(table: &str) -> &'static str {
    if table == "sandboxes" {
        "name"
    } else {
        "sandbox"
    }
}

fn walk(dir: &Path, depth: usize, visit: &mut impl FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        visit(&path);
        if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, depth - 1, visit);
        }
    }
}

/// The database's size on disk, with its WAL.
pub fn sqlite_bytes(data_dir: &Path) -> u64 {
    ["sdp.db", "sdp.db-wal"]
        .iter()
        .filter_map(|file| std::fs::metadata(data_dir.join(file)).ok())
        .map(|meta| meta.len())
        .sum()
}
