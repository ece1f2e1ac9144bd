//! Runtime logs: a running service's own output through
//! `GET /api/deployments/{id}/runtime-logs`, from the agent that runs it —
//! live and in order, `tail`, `since` and `q`, the stream ending on the agent
//! when the viewer leaves, and a loud container followed by a slow viewer.

use sdp_bus::Status;
use std::time::Duration;

use reqwest::StatusCode;
use sdp_testkit::wait_for;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::common::steps::read_to;
use crate::common::*;

fn runtime_path(id: &str, query: &str) -> String {
    format!("/api/deployments/{id}/runtime-logs?{query}")
}

/// GET as text; the status and the body.
async fn get_text(stack: &Stack, token: &str, path: &str) -> (StatusCode, String) {
    let response = stack
        .http()
        .get(stack.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

/// The `request …` lines the fixture printed, in order.
fn requests(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("request ")).collect()
}

/// A followed runtime log read in a task: its lines arrive on the
/// channel; aborting the task drops the response (the viewer leaves).
fn follow(
    stack: &Stack,
    token: &str,
    path: &str,
) -> (tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<String>) {
    let request = stack.http().get(stack.url(path)).bearer_auth(token);
    let (lines, received) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut response = request.send().await.expect("follow request");
        assert_eq!(response.status(), StatusCode::OK);
        let mut partial = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            partial.extend_from_slice(&chunk);
            while let Some(at) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line[..at]).into_owned();
                if lines.send(line).is_err() {
                    return;
                }
            }
        }
    });
    (reader, received)
}

/// The next `request …` line of a followed log, within a bound.
async fn next_request(lines: &mut mpsc::UnboundedReceiver<String>) -> String {
    let next = async {
        loop {
            let line = lines.recv().await.expect("the followed log ended");
            if line.starts_with("request ") {
                return line;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), next)
        .await
        .expect("no request line within 20 s")
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_log_follows_requests_live_with_tail_since_and_search() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let (status, _) = get_text(&stack, &token, &runtime_path("dnosuchdeployment", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    let url = deployment.url.as_deref().expect("url").to_owned();

    // Bad values are refused before any agent is asked; a session is needed.
    for query in [
        "tail=10001",
        "tail=-1",
        "since=yesterday",
        "since=99999999999",
        "follow=maybe",
        "colour=red",
        &format!("q={}", "x".repeat(257)),
    ] {
        let (status, body) = get_text(&stack, &token, &runtime_path(&id, query)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).expect("error JSON");
        assert_eq!(api_error(&body).code, "bad_request", "{query}");
    }
    let anonymous = stack
        .http()
        .get(stack.url(&runtime_path(&id, "")))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Requests made after `running` are in the log, in order.
    stack.hit_service(&url, "/before-1").await;
    stack.hit_service(&url, "/before-2").await;
    // Docker copies a container's output asynchronously: wait for both.
    let text = wait_for(
        "both requests in the runtime log",
        Duration::from_secs(10),
        || async {
            let (status, text) = get_text(&stack, &token, &runtime_path(&id, "")).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            (requests(&text).len() == 2).then_some(text)
        },
    )
    .await;
    assert!(text.starts_with("listening on :"), "{text}");
    assert_eq!(
        requests(&text),
        ["request GET /before-1", "request GET /before-2"]
    );
    let (_, text) = get_text(&stack, &token, &runtime_path(&id, "tail=1")).await;
    assert_eq!(text, "request GET /before-2\n");
    let (_, text) = get_text(&stack, &token, &runtime_path(&id, "q=%2Fbefore-1")).await;
    assert_eq!(text, "request GET /before-1\n");
    let (_, text) = get_text(&stack, &token, &runtime_path(&id, "q=no%20such%20text")).await;
    assert_eq!(text, "");

    // `since`: only what was written from that second on (unix seconds or
    // RFC 3339).
    let cutoff = now_secs() + 1;
    wait_for("the next second", Duration::from_secs(3), || async {
        (now_secs() >= cutoff).then_some(())
    })
    .await;
    stack.hit_service(&url, "/after-since").await;
    wait_for(
        "the request in the runtime log",
        Duration::from_secs(10),
        || async {
            let (_, text) = get_text(&stack, &token, &runtime_path(&id, "q=after-since")).await;
            (!text.is_empty()).then_some(())
        },
    )
    .await;
    let rfc3339 = chrono::DateTime::from_timestamp(cutoff, 0)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for since in [cutoff.to_string(), rfc3339] {
        let (status, text) = get_text(
            &stack,
            &token,
            &runtime_path(&id, &format!("since={since}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(
            requests(&text),
            ["request GET /after-since"],
            "since={since}"
        );
    }

    // Follow: each request's line arrives live, in order.
    // The heartbeat may have counted one of the short streams above.
    stack.wait_agent_log_streams(&token, 0).await;
    let (reader, mut lines) = follow(&stack, &token, &runtime_path(&id, "follow=true&tail=0"));
    stack.wait_agent_log_streams(&token, 1).await;
    stack
        .wait_follow_attached(&url, "/attach-", &mut lines)
        .await;
    for n in 1..=5 {
        let path = format!("/live-{n}");
        stack.hit_service(&url, &path).await;
        assert_eq!(
            next_request(&mut lines).await,
            format!("request GET {path}")
        );
    }
    // A search applies to a followed log too.
    let (searcher, mut found) = follow(
        &stack,
        &token,
        &runtime_path(&id, "follow=true&tail=0&q=%2Fwanted"),
    );
    stack.wait_agent_log_streams(&token, 2).await;
    let last = stack
        .wait_follow_attached(&url, "/wanted-attach-", &mut found)
        .await;
    read_to(&mut lines, &last).await;
    stack.hit_service(&url, "/unwanted-1").await;
    stack.hit_service(&url, "/wanted-1").await;
    assert_eq!(next_request(&mut found).await, "request GET /wanted-1");
    assert_eq!(next_request(&mut lines).await, "request GET /unwanted-1");
    assert_eq!(next_request(&mut lines).await, "request GET /wanted-1");

    // Closing the viewers stops their streams on the agent.
    reader.abort();
    searcher.abort();
    stack.wait_agent_log_streams(&token, 0).await;

    // Once replaced, the deployment is no longer running: 409.
    let second = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &second).await.status,
        Status::Running
    );
    wait_for(
        "the replaced deployment to be stopped",
        Duration::from_secs(20),
        || async {
            let first = stack.client_with(&token).deployment(&id).await.ok()?;
            (first.status == Status::Stopped).then_some(())
        },
    )
    .await;
    let (status, body) = get_text(&stack, &token, &runtime_path(&id, "")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let body: Value = serde_json::from_str(&body).expect("error JSON");
    assert_eq!(api_error(&body).code, "not_running");
    assert!(
        Some(api_error(&body).message.as_str()).is_some_and(|m| m.contains("stopped")),
        "{body}"
    );
    let (status, text) = get_text(&stack, &token, &runtime_path(&second, "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.starts_with("listening on :"), "{text}");

    // The agent refuses a deployment whose container is gone.
    for container in sdp_testkit::containers_with_label("sdp.deployment", &second) {
        sdp_testkit::docker_rm(&container);
    }
    let (status, body) = get_text(&stack, &token, &runtime_path(&second, "")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let body: Value = serde_json::from_str(&body).expect("error JSON");
    assert_eq!(api_error(&body).code, "not_running");
    assert!(
        Some(api_error(&body).message.as_str())
            .is_some_and(|m| m.contains("has no container on agent")),
        "{body}"
    );
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// What a slow viewer of a loud container saw.
struct SlowViewer {
    lines: u64,
    /// The number of the container's newest line at the end.
    written: u64,
    control_plane_kib: Vec<u64>,
    agent_kib: Vec<u64>,
}

/// Deploys a service printing `rate` lines/s and follows its runtime log
/// for `secs` at ~100 KiB/s (about 1,000 lines/s), sampling the RSS of the
/// control plane and the agent every second. Asserts the lines it read
/// are consecutive: backpressure slows the stream, it never drops lines.
async fn follow_a_loud_container_slowly(secs: u64, rate: u32) -> SlowViewer {
    let stack = Stack::start().await;
    let token = stack.login().await;
    stack.fixture.push_spew(BRANCH, rate);
    let id = stack.deploy(&token, "loud", BRANCH).await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    let cp = stack.control_plane_pid().expect("control plane");
    let agent = stack.agent_pid().expect("agent");

    let mut response = stack
        .http()
        .get(stack.url(&runtime_path(&id, "follow=true&tail=0")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("follow");
    assert_eq!(response.status(), StatusCode::OK);
    let mut report = SlowViewer {
        lines: 0,
        written: 0,
        control_plane_kib: vec![rss_kib(cp)],
        agent_kib: vec![rss_kib(agent)],
    };
    let started = tokio::time::Instant::now();
    let mut sampled = started;
    let mut last: Option<u64> = None;
    let mut partial = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("a chunk within 20 s")
            .expect("read")
            .expect("the stream ended");
        partial.extend_from_slice(&chunk);
        while let Some(at) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=at).collect();
            let text = String::from_utf8_lossy(&line);
            let Some(n) = text
                .strip_prefix("spew ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if let Some(last) = last {
                assert_eq!(n, last + 1, "a line was lost or reordered");
            }
            last = Some(n);
            report.lines += 1;
        }
        // A slow reader: ~100 KiB/s.
        tokio::time::sleep(Duration::from_micros(chunk.len() as u64 * 10)).await;
        if sampled.elapsed() >= Duration::from_secs(1) {
            sampled = tokio::time::Instant::now();
            report.control_plane_kib.push(rss_kib(cp));
            report.agent_kib.push(rss_kib(agent));
        }
    }
    assert!(report.lines > 0, "no spew line read");
    let (_, newest) = get_text(&stack, &token, &runtime_path(&id, "tail=1")).await;
    report.written = newest
        .strip_prefix("spew ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the newest line is a spew line");
    drop(response);
    stack.wait_agent_log_streams(&token, 0).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loud_container_reaches_a_slow_viewer_in_order_with_bounded_memory() {
    let report = follow_a_loud_container_slowly(6, 10_000).await;
    let first = report.control_plane_kib[0];
    let peak = report
        .control_plane_kib
        .iter()
        .copied()
        .max()
        .unwrap_or(first);
    // The window holds at most 8 batches of 64 KiB per viewer; 32 MiB is
    // far above that and far below an unbounded buffer of 10k lines/s
    // (~1 MiB/s written, ~0.1 MiB/s read).
    assert!(
        peak.saturating_sub(first) < 32 * 1024,
        "control-plane RSS grew from {first} to {peak} KiB"
    );
}

/// `scripts/bench-runtime-logs.sh`: the figures of docs/BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench-runtime-logs.sh"]
async fn bench_runtime_logs_slow_viewer_rss() {
    let secs = std::env::var("SDP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let report = follow_a_loud_container_slowly(secs, 10_000).await;
    let summary = |kib: &[u64]| {
        let first = kib.first().copied().unwrap_or(0);
        let peak = kib.iter().copied().max().unwrap_or(0);
        let last = kib.last().copied().unwrap_or(0);
        serde_json::json!({ "start_kib": first, "peak_kib": peak, "end_kib": last, "samples": kib })
    };
    println!(
        "BENCH {}",
        serde_json::json!({
            "secs": secs,
            "container_lines_per_sec": 10_000,
            "lines_read": report.lines,
            "lines_written": report.written,
            "read_lines_per_sec": report.lines / secs.max(1),
            "control_plane": summary(&report.control_plane_kib),
            "agent": summary(&report.agent_kib),
        })
    );
}

/// A followed runtime log on a TCP connection of its own, read up to the
/// end of the response head; dropping it closes the connection (FIN) at
/// once, as a browser tab does. (An aborted reqwest read may keep its
/// pooled connection open while no bytes flow, so the server cannot tell
/// the viewer left.)
pub(crate) async fn raw_viewer(stack: &Stack, token: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = stack.base_url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = socket.read(&mut byte).await.expect("response head");
        assert_eq!(
            n,
            1,
            "connection closed in the head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    socket
}

/// An agent serves at most `MAX_STREAMS` runtime-log streams: the next
/// viewer gets 503 `busy` at once, and a slot frees when a viewer leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_serves_a_bounded_number_of_streams() {
    let max = u64::from(sdp_agentlib::runtime_logs::MAX_STREAMS);
    // One user opens them all: the control plane's per-user bound is
    // raised past the agent's (`authz.rs` tests that bound).
    let stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[(
            "SDP_CONTROL_PLANE__STREAMS__RUNTIME_LOGS_PER_USER",
            (max + 1).to_string(),
        )]),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );
    let path = runtime_path(&id, "follow=true&tail=0");
    let mut viewers = Vec::new();
    for _ in 0..max {
        viewers.push(raw_viewer(&stack, &token, &path).await);
    }
    stack.wait_agent_log_streams(&token, max).await;
    let response = stack
        .http()
        .get(stack.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("one more viewer");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(api_error(&body).code, "busy", "{body}");
    // One leaves: the next viewer is served.
    drop(viewers.pop());
    stack.wait_agent_log_streams(&token, max - 1).await;
    viewers.push(raw_viewer(&stack, &token, &path).await);
    stack.wait_agent_log_streams(&token, max).await;
    drop(viewers);
    stack.wait_agent_log_streams(&token, 0).await;
    stack.shutdown().await;
}
