//! The team bench's one table.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Sizes;
use super::activity::Day;
use super::probes::{DEPLOYMENTS, LIST, ONE, PhaseCost, RestLatency, ms, percentile};
use super::waves::Waves;

pub struct Idle {
    pub cost: BTreeMap<String, PhaseCost>,
    pub secs: f64,
    pub heartbeats: u64,
    pub heartbeat_bytes: u64,
    pub largest_heartbeat: u64,
    pub agents: usize,
}

pub struct Report {
    sandboxes: usize,
    wave: usize,
    agents: usize,
    pub waves: Option<(Waves, RestLatency, BTreeMap<String, PhaseCost>)>,
    /// Running containers per agent after the waves.
    pub spread: Vec<(String, usize)>,
    pub idle: Option<Idle>,
    pub sqlite_bytes_full: u64,
    pub dashboard: Option<Duration>,
    pub day: Option<(Day, RestLatency, BTreeMap<String, PhaseCost>)>,
    pub teardown: Option<((usize, Duration), Vec<String>)>,
    pub sqlite_bytes_end: u64,
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn row(name: &str, value: String, target: &str) {
    println!("| {name} | {value} | {target} |");
}

fn rest_rows(phase: &str, rest: &RestLatency) {
    for endpoint in [LIST, ONE, DEPLOYMENTS] {
        let samples = rest
            .by_endpoint
            .get(endpoint)
            .map_or(&[][..], Vec::as_slice);
        row(
            &format!(
                "`{endpoint}` p50 / p99 {phase} ({} requests)",
                samples.len()
            ),
            format!(
                "{:.1} ms / {:.1} ms",
                ms(percentile(samples, 0.5)),
                ms(percentile(samples, 0.99))
            ),
            "p99 <= 50 ms",
        );
    }
    if rest.failures > 0 {
        row(
            &format!("REST failures {phase}"),
            rest.failures.to_string(),
            "0",
        );
    }
}

fn cost_rows(phase: &str, cost: &BTreeMap<String, PhaseCost>, targets: &[(&str, &str)]) {
    for (role, cost) in cost {
        let target = targets
            .iter()
            .find(|(prefix, _)| role.starts_with(prefix))
            .map_or("", |(_, target)| target);
        row(
            &format!("{role} {phase}: CPU / peak RSS / RSS at end"),
            format!(
                "{:.1}% / {:.1} MB / {:.1} MB",
                cost.cpu_percent,
                mb(cost.peak_rss_kib),
                mb(cost.end_rss_kib)
            ),
            target,
        );
    }
}

impl Report {
    pub fn new(sizes: &Sizes) -> Report {
        Report {
            sandboxes: sizes.sandboxes,
            wave: sizes.wave,
            agents: sizes.agents,
            waves: None,
            spread: Vec::new(),
            idle: None,
            sqlite_bytes_full: 0,
            dashboard: None,
            day: None,
            teardown: None,
            sqlite_bytes_end: 0,
        }
    }

    pub fn print(&self) {
        println!(
            "\n| team scale: {} sandboxes × (gateway + 2 Go services), waves of {}, {} micro agents + 1 gateway agent | measured | target |",
            self.sandboxes, self.wave, self.agents
        );
        println!("|---|---|---|");
        if let Some((waves, rest, cost)) = &self.waves {
            row(
                "deployments running after the waves",
                format!(
                    "{} of {}",
                    waves.deployments - waves.not_running.len(),
                    waves.deployments
                ),
                "all",
            );
            for line in waves.not_running.iter().take(5) {
                row("  not running", line.clone(), "");
            }
            row(
                "time to all running",
                format!("{:.0} s", waves.elapsed.as_secs_f64()),
                "",
            );
            let slowest = waves.per_wave.iter().max().copied().unwrap_or_default();
            row(
                "slowest wave",
                format!("{:.0} s", slowest.as_secs_f64()),
                "",
            );
            row(
                "deploys/minute",
                format!(
                    "{:.0}",
                    waves.deployments as f64 / waves.elapsed.as_secs_f64() * 60.0
                ),
                "",
            );
            row(
                "dispatch (sandbox deploy request → 202) p50 / p99",
                format!(
                    "{:.0} ms / {:.0} ms",
                    ms(percentile(&waves.dispatch, 0.5)),
                    ms(percentile(&waves.dispatch, 0.99))
                ),
                "",
            );
            let spread: Vec<String> = self.spread.iter().map(|(_, n)| n.to_string()).collect();
            row("containers per agent", spread.join(" / "), "");
            rest_rows("during the waves", rest);
            cost_rows("during the waves", cost, &[]);
        }
        if let Some(idle) = &self.idle {
            cost_rows(
                &format!("idle {:.0} s", idle.secs),
                &idle.cost,
                &[
                    ("control plane", "<= 40 MB, <= 1%"),
                    ("micro", "<= 40 MB"),
                    ("gateway", "<= 40 MB"),
                ],
            );
            let rounds = idle.heartbeats as f64 / idle.agents.max(1) as f64;
            row(
                "heartbeats idle: count / mean size / largest",
                format!(
                    "{} / {:.0} B / {} B",
                    idle.heartbeats,
                    idle.heartbeat_bytes as f64 / idle.heartbeats.max(1) as f64,
                    idle.largest_heartbeat
                ),
                "",
            );
            if let Some(cp) = idle.cost.get("control plane") {
                let cpu_ms = cp.cpu_percent / 100.0 * idle.secs * 1000.0;
                row(
                    "control-plane CPU per heartbeat round (all idle work / rounds)",
                    format!("{:.2} ms", cpu_ms / rounds.max(1.0)),
                    "",
                );
            }
        }
        row(
            "SQLite size, all up / after teardown",
            format!(
                "{:.1} MB / {:.1} MB",
                self.sqlite_bytes_full as f64 / 1e6,
                self.sqlite_bytes_end as f64 / 1e6
            ),
            "",
        );
        row(
            &format!("dashboard sandboxes page shows {} rows", self.sandboxes),
            self.dashboard
                .map_or("not measured".to_owned(), |d| format!("{:.0} ms", ms(d))),
            "<= 1 s",
        );
        if let Some((day, rest, cost)) = &self.day {
            row(
                "the day, compressed: wall time",
                format!("{:.0} s", day.elapsed.as_secs_f64()),
                "",
            );
            row(
                "redeploys: viewers saw `running` / request → result p50 / p99",
                format!(
                    "{} of {} / {:.1} s / {:.1} s",
                    day.viewers_saw_running,
                    day.redeploys,
                    day.redeploy_p50.as_secs_f64(),
                    day.redeploy_p99.as_secs_f64()
                ),
                "all",
            );
            row(
                "route flips (PUT + DELETE) failed",
                format!("{} of {}", day.route_flip_failures, day.route_flips),
                "0",
            );
            row(
                "runtime-log followers that saw their request",
                format!("{} of {}", day.followers_got_line, day.followers),
                "all",
            );
            row(
                "reaper: expired sandboxes gone, with their containers",
                format!("{} in {:.0} s", day.expired, day.reaped_in.as_secs_f64()),
                "",
            );
            row(
                "teardowns: gone, with their containers",
                format!(
                    "{} in {:.0} s",
                    day.torn_down,
                    day.teardown_in.as_secs_f64()
                ),
                "",
            );
            rest_rows("during the day", rest);
            cost_rows("during the day", cost, &[]);
        }
        if let Some(((count, took), left)) = &self.teardown {
            row(
                "mass teardown of the rest",
                format!("{count} in {:.0} s", took.as_secs_f64()),
                "",
            );
            row(
                "containers, volumes, networks, worktrees, port files, routes left",
                left.len().to_string(),
                "0",
            );
        }
    }
}
