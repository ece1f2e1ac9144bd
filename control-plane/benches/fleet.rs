//! The fleet load run: `SDP_BENCH_FLEET_DEPLOYS` (default 60)
//! deployments, one per sandbox, requested at once across
//! `SDP_BENCH_FLEET_AGENTS` (default 3) micro agents. Checks that every one
//! ends `running`, none is lost and none runs twice (exactly one container
//! per sandbox across all agents), then prints deploys/minute, dispatch
//! latency (request → 202, which is placement plus the agent's accept),
//! time to `running`, how the deployments spread, and the control plane's
//! RSS before and after.
//!
//! Run: `scripts/bench.sh` (builds the release binaries first), or alone:
//! `cargo bench -p sdp-control-plane --bench fleet`.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::extra_agent::ExtraAgent;
use support::{ms, percentile};

fn main() {
    support::block_on(bench());
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn bench() {
    let deploys: usize = support::env_or("SDP_BENCH_FLEET_DEPLOYS", 60);
    let agents: usize = support::env_or("SDP_BENCH_FLEET_AGENTS", 3);
    let stack = common::Stack::start_with(common::StackOptions::bench()).await;
    let token = stack.login().await;
    let mut extra = Vec::new();
    for _ in 1..agents {
        extra.push(ExtraAgent::start(&stack, &token).await);
    }
    // One deployment first, so the shared Go cache is warm: the run
    // measures dispatch and placement, not the first compile.
    let warm = stack.deploy(&token, "fleet-warm", common::BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &warm).await.status,
        sdp_bus::Status::Running
    );
    let pid = stack.control_plane_pid().expect("control plane");
    let rss_before = rss_kib(pid);

    let started = Instant::now();
    let requests = (0..deploys).map(|n| {
        let (stack, token) = (&stack, &token);
        async move {
            let sent = Instant::now();
            let id = stack
                .deploy(token, &format!("fleet-{n:02}"), common::BRANCH)
                .await;
            (n, id, sent.elapsed())
        }
    });
    let accepted = futures::future::join_all(requests).await;
    let mut dispatch: Vec<Duration> = accepted.iter().map(|(_, _, d)| *d).collect();
    let settled = futures::future::join_all(accepted.iter().map(|(_, id, _)| {
        let (stack, token) = (&stack, &token);
        async move {
            let deployment = stack.wait_settled(token, id).await;
            (deployment, started.elapsed())
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let rss_after = rss_kib(pid);

    let mut to_running: Vec<Duration> = Vec::new();
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for ((n, id, _), (deployment, at)) in accepted.iter().zip(&settled) {
        assert_eq!(
            deployment.status,
            sdp_bus::Status::Running,
            "{id}: {deployment:?}"
        );
        let sandbox = format!("fleet-{n:02}");
        let containers = sdp_testkit::containers_with_label("sdp.sandbox", &sandbox);
        assert_eq!(containers.len(), 1, "{sandbox}: {containers:?}");
        *spread
            .entry(
                deployment
                    .agent_id
                    .clone()
                    .unwrap_or_else(|| "?".to_owned()),
            )
            .or_default() += 1;
        to_running.push(*at);
    }
    let (_, listed) = stack
        .get(&token, &format!("/api/deployments?limit={}", deploys * 2))
        .await;
    let fleet = listed
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| {
            d["sandbox"]
                .as_str()
                .is_some_and(|s| s.starts_with("fleet-") && s != "fleet-warm")
        })
        .count();
    assert_eq!(
        fleet, deploys,
        "deployments recorded: none lost, none twice"
    );
    dispatch.sort();
    to_running.sort();
    let spread = spread
        .values()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" / ");
    println!("\n| {deploys} deployments at once over {agents} agents | value |");
    println!("|---|---|");
    println!("| all running, one container each | {deploys} of {deploys} |");
    println!(
        "| wall time to the last `running` | {:.1} s |",
        elapsed.as_secs_f64()
    );
    println!(
        "| deploys/minute | {:.0} |",
        deploys as f64 / elapsed.as_secs_f64() * 60.0
    );
    println!(
        "| dispatch latency (request → 202) p50 / p99 | {:.0} ms / {:.0} ms |",
        ms(percentile(&dispatch, 0.5)),
        ms(percentile(&dispatch, 0.99))
    );
    println!(
        "| time to `running` p50 / p99 | {:.1} s / {:.1} s |",
        percentile(&to_running, 0.5).as_secs_f64(),
        percentile(&to_running, 0.99).as_secs_f64()
    );
    println!("| spread over the agents | {spread} |");
    println!(
        "| control plane RSS before / after | {:.1} MB / {:.1} MB |",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    drop(extra);
    stack.shutdown().await;
}
