//! Soak: concurrent deploys into many sandboxes, many WebSocket
//! viewers each, an agent bounced mid-way; afterwards every deployment is
//! terminal and the control plane's memory, open files and the container
//! count are back to flat. Bounded in count and time. `scripts/soak.sh`
//! runs it bigger (SDP_SOAK_DEPLOYS, SDP_SOAK_VIEWERS); CI runs the short
//! default.

use sdp_bus::Status;
use std::time::{Duration, Instant};

use crate::common::*;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmRSS in KiB, open file descriptors) of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_concurrent_deploys_viewers_and_an_agent_bounce() {
    let deploys = env_usize("SDP_SOAK_DEPLOYS", 6);
    let viewers = env_usize("SDP_SOAK_VIEWERS", 10);
    // One user is every viewer here: the per-user WebSocket bound is
    // raised to fit them.
    let mut stack = Stack::start_with(StackOptions {
        control_plane_env: pairs(&[(
            "SDP_CONTROL_PLANE__STREAMS__WEBSOCKETS_PER_USER",
            (deploys * viewers + 1).to_string(),
        )]),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;

    // Warm up (caches, connections), then take the baseline.
    let warm = stack.deploy(&token, "warmup", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &warm).await.status,
        Status::Running
    );
    let cp = stack.control_plane_pid().expect("control plane pid");
    let (rss_before, fds_before) = footprint(cp);
    let started = Instant::now();

    // Two identical rounds: the first sets the allocator's high-water mark,
    // the second must not grow past it (a leak would).
    let mut after_round = Vec::new();
    for round in 0..2 {
        let mut ids = Vec::new();
        for n in 0..deploys {
            ids.push(stack.deploy(&token, &format!("soak-{n}"), BRANCH).await);
        }
        let stack_ref = &stack;
        let token_ref = &token;
        let watchers = futures::future::join_all(ids.iter().flat_map(|id| {
            (0..viewers).map(move |_| async move { stack_ref.ws_events(token_ref, id, 0).await })
        }));
        let results = tokio::time::timeout(DEPLOY_TIMEOUT, watchers)
            .await
            .expect("viewers finished");

        // Bounce the agent, then deploy once more through the new process.
        stack.kill_agent();
        stack.start_agent().await;
        let after_bounce = stack.deploy(&token, "soak-0", BRANCH).await;

        let mut settled = Vec::new();
        for id in ids.iter().chain(std::iter::once(&after_bounce)) {
            settled.push(stack.wait_settled(&token, id).await.status.to_string());
        }
        // soak-0's first deployment may already be replaced (stopped) by
        // the one made after the bounce, which must run.
        assert_eq!(settled.last().map(String::as_str), Some("running"));
        if settled[0] == "stopped" {
            settled[0] = "running".into();
        }
        // Every viewer of a deployment saw the same, gap-free events.
        for (n, events) in results.iter().enumerate() {
            let seqs = seqs(events);
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "viewer {n}"
            );
            let first_of_its_deployment = &results[(n / viewers) * viewers];
            assert_eq!(
                events, first_of_its_deployment,
                "viewers of one deployment disagree"
            );
        }
        assert!(
            settled.iter().all(|s| s == "running"),
            "round {round}: {settled:?}"
        );

        // Tear everything down: containers back to the warmup's one.
        for n in 0..deploys {
            let response = stack
                .http()
                .delete(stack.url(&format!("/api/sandboxes/soak-{n}")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("teardown");
            assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
        }
        let containers = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
        assert_eq!(
            containers.len(),
            1,
            "only warmup's container should remain: {containers:?}"
        );
        after_round.push(footprint(cp));
    }

    // Open files are back to flat once sockets close; memory stays bounded.
    let (rss_after, fds_after) = sdp_testkit::wait_for(
        "open files back to flat",
        Duration::from_secs(30),
        || async {
            let (rss, fds) = footprint(cp);
            (fds <= fds_before + 4).then_some((rss, fds))
        },
    )
    .await;
    let (rss_round1, fds_round1) = after_round[0];
    eprintln!(
        "\nsoak: 2 rounds of {deploys} deploys x {viewers} viewers + an agent bounce each, {:.1}s\n\
         | control plane | before | after round 1 | after round 2 |\n|---|---|---|---|\n\
         | RSS KiB | {rss_before} | {rss_round1} | {rss_after} |\n\
         | open fds | {fds_before} | {fds_round1} | {fds_after} |\n",
        started.elapsed().as_secs_f64()
    );
    // Round 2 reuses what round 1 grew to (the allocator keeps freed
    // memory); growth past it would be a leak.
    assert!(
        rss_after <= rss_round1 + 8 * 1024,
        "RSS kept growing: {rss_before} -> {rss_round1} -> {rss_after} KiB"
    );
    stack.shutdown().await;
}
