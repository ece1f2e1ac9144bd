//! Log-pipeline bench, the way an agent runs a build: a child process
//! writes N lines (`awk`, as fast as the pipe takes them), the agent's own
//! reader (`sdp_agentlib::flavour::run_streaming`) hands them to its
//! `EventSink` (JetStream, acks), and they must reach a WebSocket viewer and
//! the persister's log file all, in order, once, numbered exactly.
//!
//! Two cases: one deployment of 100k lines (`SDP_BENCH_LINES`), and 20
//! deployments at once of 10k lines each (`SDP_BENCH_PARALLEL`,
//! `SDP_BENCH_PARALLEL_LINES`), flat out and then each at a steady
//! `SDP_BENCH_PACED_RATE` lines/s (5000). Line latency is from the moment
//! the agent read the line (the batch's `ts` is its first line's) to the
//! viewer. Flat out, the builds print everything within a fraction of a
//! second and the agents read it as fast: a line's latency is then how
//! long the backlog ahead of it takes to drain (lines over the pipeline's
//! throughput), so the latency target is read from the paced case, whose
//! output stays within the throughput, as loud builds' does in practice.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p sdp-control-plane --bench log_pipeline`

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use sdp_bus::{DeploymentId, EventBody};
use tokio_tungstenite::tungstenite;

fn main() {
    support::block_on(bench());
}

async fn bench() {
    let lines = support::env_or("SDP_BENCH_LINES", 100_000);
    let parallel = support::env_or("SDP_BENCH_PARALLEL", 20);
    let parallel_lines = support::env_or("SDP_BENCH_PARALLEL_LINES", 10_000);
    let stack = common::Stack::start_with(common::StackOptions::bench()).await;
    let token = stack.login().await;
    stack.wait_agents_warm(&token).await;

    let one = run(&stack, &token, 1, lines, None).await;
    println!("\n| log pipeline, one build of {lines} lines | measured | target |");
    println!("|---|---|---|");
    println!(
        "| to the WebSocket viewer | {:.0} lines/s | >= 250000 lines/s |",
        one.viewer_rate()
    );
    println!(
        "| to the log file | {:.0} lines/s | >= 250000 lines/s |",
        one.file_rate()
    );
    println!("| line latency p50 | {:.1} ms | |", one.percentile(0.50));
    println!(
        "| line latency p99 | {:.1} ms | <= 50 ms |",
        one.percentile(0.99)
    );
    println!(
        "| events on the wire | {} ({:.0} lines per event) | |",
        one.events,
        one.lines as f64 / one.events.max(1) as f64
    );
    println!("| every line once, in order, numbered exactly | yes | |");

    let many = run(&stack, &token, parallel, parallel_lines, None).await;
    println!(
        "\n| log pipeline, {parallel} builds at once, {parallel_lines} lines each | measured | target |"
    );
    println!("|---|---|---|");
    println!(
        "| to the WebSocket viewers, aggregate | {:.0} lines/s | >= 250000 lines/s |",
        many.viewer_rate()
    );
    println!(
        "| to the log files, aggregate | {:.0} lines/s | |",
        many.file_rate()
    );
    println!("| line latency p50 | {:.1} ms | |", many.percentile(0.50));
    println!("| line latency p99 | {:.1} ms | |", many.percentile(0.99));
    println!("| every viewer gap-free | yes ({parallel} viewers) | |");

    let rate = support::env_or("SDP_BENCH_PACED_RATE", 5000);
    let paced = run(&stack, &token, parallel, parallel_lines, Some(rate)).await;
    println!(
        "\n| log pipeline, {parallel} builds at once, {parallel_lines} lines each at {rate} lines/s | measured | target |"
    );
    println!("|---|---|---|");
    println!(
        "| to the WebSocket viewers, aggregate | {:.0} lines/s (offered {}) | |",
        paced.viewer_rate(),
        u64::from(rate) * parallel
    );
    println!("| line latency p50 | {:.1} ms | |", paced.percentile(0.50));
    println!(
        "| line latency p99 | {:.1} ms | <= 100 ms |",
        paced.percentile(0.99)
    );
    println!("| every viewer gap-free | yes ({parallel} viewers) | |");
    stack.shutdown().await;
}

struct Measured {
    lines: u64,
    events: u64,
    to_viewers: Duration,
    to_files: Duration,
    latencies_us: Vec<u64>,
}

impl Measured {
    fn viewer_rate(&self) -> f64 {
        self.lines as f64 / self.to_viewers.as_secs_f64()
    }

    fn file_rate(&self) -> f64 {
        self.lines as f64 / self.to_files.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.latencies_us.len() as f64 - 1.0) * p) as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// `builds` deployments at once, each writing `lines` lines, flat out or
/// at `pace` lines/s.
async fn run(
    stack: &common::Stack,
    token: &str,
    builds: u64,
    lines: u64,
    pace: Option<u32>,
) -> Measured {
    let ids: Vec<DeploymentId> = (0..builds).map(|_| DeploymentId::generate()).collect();
    // Viewers connect first and follow live.
    let mut viewers = Vec::new();
    for id in &ids {
        viewers.push(tokio::spawn(view(stack, token, id, lines).await));
    }
    let files: Vec<_> = ids
        .iter()
        .map(|id| {
            let file = stack.cp_data.path().join("logs").join(format!("{id}.log"));
            tokio::spawn(wait_file(file, lines))
        })
        .collect();
    let started = Instant::now();
    let mut agents = Vec::new();
    for id in &ids {
        agents.push(tokio::spawn(build(
            stack.nats.url(),
            id.clone(),
            lines,
            pace,
        )));
    }
    for agent in agents {
        agent.await.expect("agent");
    }
    let mut latencies_us = Vec::new();
    let mut events = 0;
    let mut to_viewers = Duration::ZERO;
    for viewer in viewers {
        let (viewer_latencies, viewer_events, done) =
            tokio::time::timeout(Duration::from_secs(300), viewer)
                .await
                .expect("viewer finished in time")
                .expect("viewer");
        latencies_us.extend(viewer_latencies);
        events += viewer_events;
        to_viewers = to_viewers.max(done - started);
    }
    let mut to_files = Duration::ZERO;
    for file in files {
        to_files = to_files.max(file.await.expect("file watcher") - started);
    }
    latencies_us.sort_unstable();
    Measured {
        lines: lines * builds,
        events,
        to_viewers,
        to_files,
        latencies_us,
    }
}

/// What an agent does for a build: run the command, stream its output
/// through the sink, publish the result.
async fn build(nats_url: String, id: DeploymentId, lines: u64, pace: Option<u32>) {
    let client = async_nats::connect(nats_url).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut sink = sdp_agentlib::EventSink::new(
        js,
        id,
        "bench".into(),
        tokio_util::sync::CancellationToken::new(),
    );
    let command = match pace {
        None => {
            let mut awk = tokio::process::Command::new("awk");
            awk.arg(format!(
                "BEGIN {{ for (n = 1; n <= {lines}; n++) printf \"line %07d of a long build: compiling package example.com/users/internal/p%d\\n\", n, n }}"
            ));
            awk
        }
        Some(rate) => {
            let mut python = tokio::process::Command::new("python3");
            python.args(["-c", PACED_WRITER, &lines.to_string(), &rate.to_string()]);
            python
        }
    };
    let status = sdp_agentlib::flavour::run_streaming(command, &mut sink)
        .await
        .expect("awk runs");
    assert!(status.success());
    sink.result(common::log_feed::running()).await;
    sink.flush().await;
}

/// Writes argv[1] lines at argv[2] lines/s: a flushed chunk every 10 ms,
/// each line due at its own time from the start.
const PACED_WRITER: &str = r#"
import sys, time
lines, rate = int(sys.argv[1]), int(sys.argv[2])
chunk = max(1, rate // 100)
start = time.monotonic()
n = 1
while n <= lines:
    for _ in range(min(chunk, lines - n + 1)):
        sys.stdout.write("line %07d of a long build: compiling package example.com/users/internal/p%d\n" % (n, n))
        n += 1
    sys.stdout.flush()
    wait = start + (n - 1) / rate - time.monotonic()
    if wait > 0:
        time.sleep(wait)
"#;

/// Connects a viewer; the returned future follows the deployment to its
/// result, checking every line arrives once, in order, numbered exactly.
/// Yields (per-line latencies in µs, events, when the result arrived).
async fn view(
    stack: &common::Stack,
    token: &str,
    id: &DeploymentId,
    lines: u64,
) -> impl std::future::Future<Output = (Vec<u64>, u64, Instant)> + use<> {
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(
        stack.ws_url(&format!("/ws/deployments/{id}")),
    )
    .expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    async move {
        let mut latencies_us = Vec::with_capacity(lines as usize);
        let mut next_seq = 1u64;
        let mut next_line = 1u64;
        while let Some(Ok(message)) = socket.next().await {
            let tungstenite::Message::Text(text) = message else {
                continue;
            };
            let event: sdp_bus::Event = serde_json::from_str(&text).expect("event");
            assert_eq!(event.seq, next_seq, "out of order or duplicate");
            next_seq += 1;
            let latency = (chrono::Utc::now() - event.ts)
                .num_microseconds()
                .unwrap_or(0)
                .max(0) as u64;
            if let EventBody::Logs { first_line, .. } = &event.body {
                assert_eq!(*first_line, next_line, "line numbers have a gap");
            }
            for (_, line) in event.body.log_lines() {
                let expected = format!("line {next_line:07} ");
                assert!(
                    line.starts_with(&expected),
                    "{line:?} is not line {next_line}"
                );
                next_line += 1;
                latencies_us.push(latency);
            }
            if matches!(event.body, EventBody::Result { .. }) {
                assert_eq!(next_line - 1, lines, "lines missing");
                return (latencies_us, next_seq - 1, Instant::now());
            }
        }
        panic!("the stream ended before the result");
    }
}

/// Waits until the log file holds `lines` lines; returns when (polling
/// every 5 ms, reading only what was appended since).
async fn wait_file(path: std::path::PathBuf, lines: u64) -> Instant {
    use std::io::{Read, Seek, SeekFrom};
    let start = Instant::now();
    let (mut offset, mut count) = (0u64, 0u64);
    loop {
        if let Ok(mut file) = std::fs::File::open(&path) {
            let mut appended = Vec::new();
            if file.seek(SeekFrom::Start(offset)).is_ok() && file.read_to_end(&mut appended).is_ok()
            {
                offset += appended.len() as u64;
                count += appended.iter().filter(|c| **c == b'\n').count() as u64;
            }
        }
        if count >= lines {
            assert_eq!(count, lines, "the log file has more lines than were sent");
            return Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "log file stuck at {count} lines"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
