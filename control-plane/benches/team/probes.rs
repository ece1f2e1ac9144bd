//! What the team bench watches while it runs: the processes' CPU and
//! memory, the REST latency a dashboard user sees, and the heartbeats on
//! the bus.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::common::Stack;
use super::support::{ProcStat, proc_stat};
pub use super::support::{ms, percentile};

/// The watched processes, by role.
#[derive(Clone)]
pub struct Processes(pub Vec<(String, u32)>);

/// One phase's cost per process: CPU share of a core, peak RSS.
#[derive(Clone, Debug, Default)]
pub struct PhaseCost {
    pub cpu_percent: f64,
    pub peak_rss_kib: u64,
    pub end_rss_kib: u64,
}

/// Samples RSS every 250 ms for peaks; CPU is the phase's tick delta.
pub struct Sampler {
    peaks: Arc<Mutex<BTreeMap<String, u64>>>,
    start: Vec<(String, ProcStat)>,
    started: Instant,
    stop: CancellationToken,
    processes: Processes,
}

impl Sampler {
    pub fn start(processes: &Processes) -> Sampler {
        let peaks = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = CancellationToken::new();
        let (task_peaks, task_stop, task_processes) =
            (peaks.clone(), stop.clone(), processes.clone());
        tokio::spawn(async move {
            loop {
                for (role, pid) in &task_processes.0 {
                    let rss = proc_stat(*pid).rss_kib;
                    let mut peaks = task_peaks.lock().expect("peaks");
                    let peak = peaks.entry(role.clone()).or_insert(0);
                    *peak = (*peak).max(rss);
                }
                tokio::select! {
                    () = task_stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        });
        Sampler {
            peaks,
            start: processes
                .0
                .iter()
                .map(|(role, pid)| (role.clone(), proc_stat(*pid)))
                .collect(),
            started: Instant::now(),
            stop,
            processes: processes.clone(),
        }
    }

    /// Ends the phase: each process's cost over it, by role.
    pub fn finish(self) -> BTreeMap<String, PhaseCost> {
        self.stop.cancel();
        let secs = self.started.elapsed().as_secs_f64();
        let peaks = self.peaks.lock().expect("peaks").clone();
        self.processes
            .0
            .iter()
            .zip(&self.start)
            .map(|((role, pid), (_, start))| {
                let now = proc_stat(*pid);
                let cpu = now.cpu_secs_since(start);
                let cost = PhaseCost {
                    cpu_percent: cpu / secs * 100.0,
                    peak_rss_kib: peaks.get(role).copied().unwrap_or(0).max(now.rss_kib),
                    end_rss_kib: now.rss_kib,
                };
                (role.clone(), cost)
            })
            .collect()
    }
}

/// Latencies of the three hot reads, taken in turn by one "user" while
/// something else runs.
#[derive(Default)]
pub struct RestLatency {
    pub by_endpoint: BTreeMap<&'static str, Vec<Duration>>,
    pub failures: usize,
}

pub const LIST: &str = "GET /api/sandboxes";
pub const ONE: &str = "GET /api/sandboxes/{name}";
pub const DEPLOYMENTS: &str = "GET /api/deployments?sandbox=";

/// Polls the three endpoints one after the other (a short pause between
/// rounds, as dashboards do) until `stop`, over sandboxes `names`.
pub async fn probe_rest(
    stack: &Stack,
    token: &str,
    names: &[String],
    stop: CancellationToken,
) -> RestLatency {
    let mut latency = RestLatency::default();
    let mut n = 0usize;
    while !stop.is_cancelled() {
        let name = &names[(n * 7919) % names.len()];
        n += 1;
        for (endpoint, path) in [
            (LIST, "/api/sandboxes".to_owned()),
            (ONE, format!("/api/sandboxes/{name}")),
            (DEPLOYMENTS, format!("/api/deployments?sandbox={name}")),
        ] {
            let sent = Instant::now();
            let response = stack
                .http()
                .get(stack.url(&path))
                .bearer_auth(token)
                .send()
                .await;
            let ok = match response {
                Ok(response) => {
                    let ok = response.status().is_success();
                    ok && response.bytes().await.is_ok()
                }
                Err(_) => false,
            };
            if ok {
                latency
                    .by_endpoint
                    .entry(endpoint)
                    .or_default()
                    .push(sent.elapsed());
            } else {
                latency.failures += 1;
            }
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    for samples in latency.by_endpoint.values_mut() {
        samples.sort();
    }
    latency
}

/// Per subject: (heartbeats, bytes, largest).
type Seen = BTreeMap<String, (u64, u64, u64)>;

/// Every heartbeat on the bus: count and bytes per agent.
#[derive(Clone, Default)]
pub struct Heartbeats(Arc<Mutex<Seen>>);

impl Heartbeats {
    /// Subscribes to `agent.heartbeat.>` until `stop`.
    pub async fn follow(nats_url: &str, stop: CancellationToken) -> Heartbeats {
        let client = async_nats::connect(nats_url).await.expect("nats");
        let mut beats = client
            .subscribe(sdp_bus::subject::AGENT_HEARTBEAT_ALL)
            .await
            .expect("subscribe");
        let seen = Heartbeats::default();
        let task_seen = seen.clone();
        tokio::spawn(async move {
            let _client = client;
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = beats.next() => message,
                };
                let Some(message) = message else { return };
                let size = message.payload.len() as u64;
                let mut seen = task_seen.0.lock().expect("heartbeats");
                let entry = seen.entry(message.subject.to_string()).or_default();
                entry.0 += 1;
                entry.1 += size;
                entry.2 = entry.2.max(size);
            }
        });
        seen
    }

    /// (heartbeats, bytes, largest) summed over agents.
    pub fn totals(&self) -> (u64, u64, u64) {
        let seen = self.0.lock().expect("heartbeats");
        seen.values()
            .fold((0, 0, 0), |(c, b, m), (count, bytes, max)| {
                (c + count, b + bytes, m.max(*max))
            })
    }

    pub fn agents(&self) -> usize {
        self.0.lock().expect("heartbeats").len()
    }
}
