//! The team-scale run: what a backend/QA team of 50 puts on SDP in a day.
//!
//! `SDP_BENCH_TEAM_SANDBOXES` (300) sandboxes of one template (the PHP
//! gateway and two Go services, `users` and `orders`) are deployed whole in
//! waves of `SDP_BENCH_TEAM_WAVE` (50) over `SDP_BENCH_TEAM_AGENTS` (3)
//! micro agents and one gateway agent, while one user polls the three hot
//! reads (REST latency "during the waves"). Then an idle window
//! (`SDP_BENCH_TEAM_IDLE_SECS`, 30) with every sandbox up; the dashboard's
//! sandboxes page in headless Chromium; a day's activity compressed
//! (redeploys followed by WebSocket viewers, route flips, runtime-log
//! followers, the reaper expiring a sixth of the sandboxes, a sixth torn
//! down); and a mass teardown after which no container, worktree, port
//! file or route of a team sandbox may be left.
//!
//! Prints one table; docs/BENCHMARKS.md keeps its before and after.
//! Run: `scripts/bench.sh`, or alone (release binaries built first):
//! `cargo bench -p sdp-control-plane --bench team`.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "support/mod.rs"]
mod support;

#[path = "../tests/browser/driver.rs"]
#[allow(dead_code)]
mod driver;

#[path = "team/activity.rs"]
mod activity;
#[path = "team/leftovers.rs"]
mod leftovers;
#[path = "team/probes.rs"]
mod probes;
#[path = "team/report.rs"]
mod report;
#[path = "team/waves.rs"]
mod waves;

use std::time::{Duration, Instant};

use common::extra_agent::ExtraAgent;
use common::{Stack, StackOptions};
use probes::{Heartbeats, Processes, Sampler};
use tokio_util::sync::CancellationToken;

fn main() {
    support::block_on(bench());
}

/// Sizes of the run, from the environment.
pub struct Sizes {
    sandboxes: usize,
    wave: usize,
    agents: usize,
    idle: Duration,
}

impl Sizes {
    fn from_env() -> Sizes {
        let sandboxes: usize = support::env_or("SDP_BENCH_TEAM_SANDBOXES", 300);
        Sizes {
            sandboxes,
            wave: support::env_or("SDP_BENCH_TEAM_WAVE", 50).min(sandboxes),
            agents: support::env_or("SDP_BENCH_TEAM_AGENTS", 3),
            idle: Duration::from_secs(support::env_or("SDP_BENCH_TEAM_IDLE_SECS", 30)),
        }
    }

    /// A sixth of the sandboxes, for each kind of activity.
    fn sixth(&self) -> usize {
        (self.sandboxes / 6).max(1)
    }
}

async fn bench() {
    let sizes = Sizes::from_env();
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        control_plane_env: common::pairs(&[(
            "SDP_CONTROL_PLANE__SANDBOXES__REAP_INTERVAL",
            "5s".to_owned(),
        )]),
        ..StackOptions::bench()
    })
    .await;
    let token = stack.login().await;
    let mut extra = Vec::new();
    for _ in 1..sizes.agents {
        extra.push(ExtraAgent::start(&stack, &token).await);
    }
    let routing = stack.routing.as_ref().expect("gateway stack");
    let mut processes = vec![
        (
            "control plane".to_owned(),
            stack.control_plane_pid().expect("cp"),
        ),
        (
            "micro agent 1".to_owned(),
            stack.agent_pid().expect("agent"),
        ),
    ];
    for (n, agent) in extra.iter().enumerate() {
        processes.push((format!("micro agent {}", n + 2), agent.pid()));
    }
    processes.push((
        "gateway agent".to_owned(),
        routing.gateway_agent_pid().expect("gateway agent"),
    ));
    let processes = Processes(processes);
    let heartbeats_stop = CancellationToken::new();
    let heartbeats = Heartbeats::follow(&stack.nats_url, heartbeats_stop.clone()).await;

    waves::setup_template(&stack, &token).await;
    // Not pinned: the reaper expires some during the day.
    let names = common::team::create_sandboxes(&stack, &token, sizes.sandboxes, false).await;

    let mut report = report::Report::new(&sizes);
    let sampler = Sampler::start(&processes);
    let rest_stop = CancellationToken::new();
    let (waves, rest) = tokio::join!(
        async {
            let measured = waves::deploy_in_waves(&stack, &token, &names, sizes.wave).await;
            rest_stop.cancel();
            measured
        },
        probes::probe_rest(&stack, &token, &names, rest_stop.clone()),
    );
    report.waves = Some((waves, rest, sampler.finish()));
    // The table so far, after each phase: a later failure keeps the
    // figures of the phases before it.
    report.print();
    let mut agent_ids = vec![stack.agent_id.clone()];
    agent_ids.extend(extra.iter().map(|agent| agent.id.clone()));
    agent_ids.push(routing.gateway_agent_id.clone());
    report.spread = agent_ids
        .into_iter()
        .map(|id| {
            let count = sdp_testkit::containers_with_label("sdp.agent", &id).len();
            (id, count)
        })
        .collect();

    // Idle, every sandbox up: what a quiet night costs.
    let beats_before = heartbeats.totals();
    let sampler = Sampler::start(&processes);
    let idle_started = Instant::now();
    tokio::time::sleep(sizes.idle).await;
    let idle_secs = idle_started.elapsed().as_secs_f64();
    let beats_after = heartbeats.totals();
    report.idle = Some(report::Idle {
        cost: sampler.finish(),
        secs: idle_secs,
        heartbeats: beats_after.0 - beats_before.0,
        heartbeat_bytes: beats_after.1 - beats_before.1,
        largest_heartbeat: beats_after.2,
        agents: heartbeats.agents(),
    });
    report.sqlite_bytes_full = leftovers::sqlite_bytes(stack.cp_data.path());

    report.dashboard = waves::dashboard_rows(&stack, sizes.sandboxes).await;
    report.print();

    let sampler = Sampler::start(&processes);
    let rest_stop = CancellationToken::new();
    let (day, rest) = tokio::join!(
        async {
            let day = activity::day(&stack, &token, &names, sizes.sixth()).await;
            rest_stop.cancel();
            day
        },
        probes::probe_rest(&stack, &token, &names[..sizes.sixth()], rest_stop.clone()),
    );
    report.day = Some((day, rest, sampler.finish()));
    report.print();

    let agents = leftovers::agent_dirs(&stack, &extra);
    let teardown = leftovers::tear_down_all(&stack, &token, &names).await;
    let left = leftovers::left_behind(&stack, &agents, &names);
    report.teardown = Some((teardown, left.clone()));
    report.sqlite_bytes_end = leftovers::sqlite_bytes(stack.cp_data.path());
    heartbeats_stop.cancel();
    report.print();
    assert!(left.is_empty(), "left after the teardown: {left:#?}");
    drop(extra);
    stack.shutdown().await;
}
