//! Idle cost at team scale: `SDP_BENCH_IDLE_SANDBOXES` (default 300)
//! sandboxes, each with the `users` Go service deployed and running on one
//! micro agent, then left alone. Over a window of
//! `SDP_BENCH_IDLE_WINDOW_SECS` (default 60) it measures what idling
//! costs: the control plane's and the agent's RSS and CPU (utime + stime
//! from `/proc/<pid>/stat`), the heartbeats' payload sizes (a subscriber on
//! `agent.heartbeat.>`), the control plane's CPU per heartbeat round, and
//! the SQLite file's size. Then it deletes every sandbox and checks that no
//! container of the agent is left.
//!
//! The components log at `info`, as in production (the test stack's
//! `debug` would be measured otherwise).
//!
//! Run: `scripts/bench.sh` (builds the release binaries first), or alone:
//! `cargo bench -p sdp-control-plane --bench idle`.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use support::proc_stat;

/// Deployments requested at once while filling the sandboxes.
const BATCH: usize = 20;

fn main() {
    support::block_on(bench());
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

async fn bench() {
    let sandboxes: usize = support::env_or("SDP_BENCH_IDLE_SANDBOXES", 300);
    let window = Duration::from_secs(support::env_or("SDP_BENCH_IDLE_WINDOW_SECS", 60));
    let info = || ("RUST_LOG".to_owned(), "info".to_owned());
    let mut stack = common::Stack::start_with(common::StackOptions {
        control_plane_env: vec![info()],
        agent: false,
        ..Default::default()
    })
    .await;
    stack.agent_extra_env.push(info());
    stack.start_agent().await;
    let token = stack.login().await;
    let client = stack.client_with(&token);

    let filling = Instant::now();
    let names: Vec<String> = (0..sandboxes).map(|n| format!("idle-{n:03}")).collect();
    for batch in names.chunks(BATCH) {
        let ids = futures::future::join_all(
            batch
                .iter()
                .map(|name| stack.deploy(&token, name, common::BRANCH)),
        )
        .await;
        for (name, id) in batch.iter().zip(&ids) {
            let deployment = stack.wait_settled(&token, id).await;
            assert_eq!(
                deployment.status,
                sdp_bus::Status::Running,
                "{name}: {deployment:?}"
            );
        }
    }
    let filled_in = filling.elapsed();
    let running = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id).len();
    assert_eq!(running, sandboxes, "one service container per sandbox");

    // Settle: the deploys' blocking threads expire, the reconciler's
    // first rounds pass, the persister catches up.
    tokio::time::sleep(Duration::from_secs(15)).await;

    let nats = async_nats::connect(&stack.nats_url).await.expect("nats");
    let mut beats = nats
        .subscribe(sdp_bus::subject::AGENT_HEARTBEAT_ALL)
        .await
        .expect("subscribe");
    let cp = stack.control_plane_pid().expect("control plane");
    let agent = stack.agent_pid().expect("agent");
    let (cp_from, agent_from) = (proc_stat(cp), proc_stat(agent));
    let window_start = Instant::now();
    let mut sizes: Vec<usize> = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(beat)) = tokio::time::timeout_at(deadline, beats.next()).await {
        sizes.push(beat.payload.len());
    }
    let (cp_to, agent_to) = (proc_stat(cp), proc_stat(agent));
    drop(beats);

    let secs = window_start.elapsed().as_secs_f64();
    let cp_cpu = cp_to.cpu_secs_since(&cp_from);
    let agent_cpu = agent_to.cpu_secs_since(&agent_from);
    let db = stack.cp_data.path().join("sdp.db");
    let db_wal = stack.cp_data.path().join("sdp.db-wal");
    assert!(!sizes.is_empty(), "heartbeats heard in the window");
    sizes.sort_unstable();
    let rounds = sizes.len();

    println!(
        "\n| idle, {sandboxes} sandboxes with a running Go service, one agent, {:.0} s window | measured | target |",
        secs
    );
    println!("|---|---|---|");
    println!(
        "| control plane RSS (end of window) | {:.1} MB | <= 40 MB |",
        mib(cp_to.rss_kib)
    );
    println!(
        "| control plane CPU | {:.2} % of a core | <= 1 % |",
        cp_cpu / secs * 100.0
    );
    println!(
        "| agent RSS (end of window) | {:.1} MB | <= 40 MB |",
        mib(agent_to.rss_kib)
    );
    println!(
        "| agent CPU | {:.2} % of a core | |",
        agent_cpu / secs * 100.0
    );
    println!(
        "| heartbeat payload min / max | {} B / {} B | |",
        sizes[0],
        sizes[rounds - 1]
    );
    println!("| heartbeat rounds in the window | {rounds} | |");
    println!(
        "| control plane CPU per heartbeat round | {:.2} ms | |",
        cp_cpu / rounds as f64 * 1000.0
    );
    println!(
        "| SQLite file (+ WAL) | {:.1} MB (+ {:.1} MB) | |",
        file_len(&db) as f64 / 1048576.0,
        file_len(&db_wal) as f64 / 1048576.0
    );
    println!(
        "| filling: {sandboxes} deploys, {BATCH} at a time | {:.0} s | |",
        filled_in.as_secs_f64()
    );

    for batch in names.chunks(BATCH) {
        let removed =
            futures::future::join_all(batch.iter().map(|name| client.delete_sandbox(name))).await;
        for (name, report) in batch.iter().zip(removed) {
            report.unwrap_or_else(|err| panic!("delete {name}: {err}"));
        }
    }
    let left = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
    assert!(left.is_empty(), "containers left: {left:?}");
    stack.shutdown().await;
}
