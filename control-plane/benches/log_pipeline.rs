//! DESIGN §10 log pipeline: N log lines of one deployment (100k by
//! default, `SDP_BENCH_LINES`) published the way an agent publishes them
//! (`sdp_agentlib::EventSink`, JetStream with acks) reach a WebSocket viewer
//! and the persister's log file all, in order, once. Reports lines/s and
//! line latency (publish → viewer) percentiles as a table.
//!
//! Run: `cargo build --workspace --bins && cargo bench -p sdp-control-plane --bench log_pipeline`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use sdp_bus::{DeploymentId, EventBody, LogStream, Status};
use tokio_tungstenite::tungstenite;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let lines: u64 = std::env::var("SDP_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let stack = common::Stack::start().await;
    let token = stack.login().await;
    let id = DeploymentId::generate();

    // The viewer connects first and follows live.
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
    let viewer = tokio::spawn(async move {
        let mut latencies_us = Vec::new();
        let mut next = 1u64;
        while let Some(Ok(message)) = socket.next().await {
            let tungstenite::Message::Text(text) = message else {
                continue;
            };
            let event: sdp_bus::Event = serde_json::from_str(&text).expect("event");
            assert_eq!(event.seq, next, "out of order or duplicate");
            next += 1;
            let latency = chrono::Utc::now() - event.ts;
            latencies_us.push(latency.num_microseconds().unwrap_or(0).max(0) as u64);
            if matches!(event.body, EventBody::Result { .. }) {
                break;
            }
        }
        (latencies_us, Instant::now())
    });

    let client = async_nats::connect(stack.nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut sink = sdp_agentlib::EventSink::new(
        js,
        id.clone(),
        "bench".into(),
        tokio_util::sync::CancellationToken::new(),
    );
    let started = Instant::now();
    for n in 0..lines {
        sink.log(
            LogStream::Stdout,
            format!(
                "line {n:07} of a long build: compiling package example.com/users/internal/p{n}"
            ),
        )
        .await;
    }
    sink.result(EventBody::Result {
        status: Status::Running,
        url: None,
        error: None,
        commit: None,
        log_tail: Vec::new(),
    })
    .await;
    sink.flush().await;
    let published = started.elapsed();

    let (mut latencies, viewer_done) = tokio::time::timeout(Duration::from_secs(300), viewer)
        .await
        .expect("viewer finished in time")
        .expect("viewer");
    let viewer_elapsed = viewer_done - started;
    let file = stack.cp_data.path().join("logs").join(format!("{id}.log"));
    let persisted = common_wait_file(&file, lines).await;
    let persisted_elapsed = started.elapsed().min(persisted);

    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    let rate = |d: Duration| lines as f64 / d.as_secs_f64();
    println!("\n| log pipeline, {lines} lines | measured | target |");
    println!("|---|---|---|");
    println!(
        "| agent publish (acked) | {:.0} lines/s | |",
        rate(published)
    );
    println!(
        "| to the WebSocket viewer | {:.0} lines/s | >= 50000 lines/s |",
        rate(viewer_elapsed)
    );
    println!(
        "| to the log file | {:.0} lines/s | >= 50000 lines/s |",
        rate(persisted_elapsed)
    );
    println!("| line latency p50 | {:.1} ms | |", pct(0.50));
    println!("| line latency p99 | {:.1} ms | <= 50 ms |", pct(0.99));
    println!("| in order, once | yes ({} events) | |", latencies.len());
    stack.shutdown().await;
}

/// Waits until the log file holds `lines` lines; returns when (since the
/// process started measuring, approximately, by polling every 20 ms).
async fn common_wait_file(path: &std::path::Path, lines: u64) -> Duration {
    let start = Instant::now();
    loop {
        let count = std::fs::read(path)
            .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
            .unwrap_or(0);
        if count >= lines {
            assert_eq!(count, lines, "the log file has more lines than were sent");
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "log file stuck at {count} lines"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
