//! What every bench's `main` shares: the runtime it runs on, a command that
//! must succeed, sizes read from the environment, percentiles, and a
//! process's CPU time and memory from `/proc`.

#![allow(dead_code)] // each bench uses its own part

use std::future::Future;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

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

/// The `p` (0..=1) percentile of `sorted` by nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Clock ticks per second of `/proc/<pid>/stat` (Linux's USER_HZ).
fn ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        run(Command::new("getconf").arg("CLK_TCK"))
            .parse()
            .expect("CLK_TCK")
    })
}

/// CPU time (ticks) and resident memory (KiB) of a process now.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStat {
    pub cpu_ticks: u64,
    pub rss_kib: u64,
}

impl ProcStat {
    /// CPU seconds used since `earlier`.
    pub fn cpu_secs_since(&self, earlier: &ProcStat) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / ticks_per_sec()
    }
}

/// What `/proc/<pid>` says of a process now (zeros once it is gone).
pub fn proc_stat(pid: u32) -> ProcStat {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parens.
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are the 14th and 15th fields, 12th and 13th here.
    let cpu_ticks = field(11) + field(12);
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ProcStat { cpu_ticks, rss_kib }
}
