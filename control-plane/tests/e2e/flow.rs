//! Deploy, watch over the WebSocket, redeploy, replay history.

use sdp_bus::Status;
use crate::common::*;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_watch_redeploy_and_replay() {
    let stack = Stack::start().await;
    let token = stack.login().await;

    // 1. Deploy feature/x into alpha and watch it live from the start.
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let events = stack.ws_events(&token, &id, 0).await;
    assert_eq!(
        statuses(&events),
        ["queued", "fetching", "building", "starting", "running"],
        "events: {events:#?}"
    );
    let seqs = seqs(&events);
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seq has a gap or repeat"
    );
    let building = events
        .iter()
        .position(|e| e["body"]["phase"] == "building")
        .expect("building");
    let starting = events
        .iter()
        .position(|e| e["body"]["phase"] == "starting")
        .expect("starting");
    assert!(
        events[building..starting].iter().any(is_log),
        "no build log lines between building and starting: {events:#?}"
    );
    let first_commit = stack.fixture.commit(BRANCH);
    let result = &events.last().expect("result")["body"];
    let url = result["url"].as_str().expect("url").to_owned();
    let answer = stack.get_service(&url).await;
    assert_eq!(answer["branch"], BRANCH);
    assert_eq!(answer["commit"], first_commit.as_str());
    assert_eq!(answer["revision"], "1");

    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running);
    assert_eq!(deployment.commit.as_deref(), Some(first_commit.as_str()));
    assert_eq!(deployment.url.as_deref(), Some(url.as_str()));
    let phases: Vec<&str> = deployment["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    assert_eq!(
        phases,
        ["queued", "fetching", "building", "starting", "running"]
    );

    // 2. A new commit, redeployed: the old container is replaced.
    let second_commit = stack.fixture.push_revision(BRANCH, "2");
    let second = stack.deploy(&token, "alpha", BRANCH).await;
    let events2 = stack.ws_events(&token, &second, 0).await;
    assert_eq!(
        statuses(&events2).last().map(String::as_str),
        Some("running"),
        "{events2:#?}"
    );
    let url2 = events2.last().expect("result")["body"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let answer = stack.get_service(&url2).await;
    assert_eq!(answer["commit"], second_commit.as_str());
    assert_eq!(answer["revision"], "2");
    let containers = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
    assert_eq!(
        containers.len(),
        1,
        "the old container was not replaced: {containers:?}"
    );
    if url2 != url {
        assert!(
            stack.http().get(&url).send().await.is_err(),
            "the old container still answers at {url}"
        );
    }

    // The first deployment's container was replaced: it is stopped now.
    let first_path = format!("/api/deployments/{id}");
    sdp_testkit::wait_for(
        "the replaced deployment to be stopped",
        std::time::Duration::from_secs(20),
        || async {
            let (_, first) = stack.get(&token, &first_path).await;
            (first["status"] == "stopped").then_some(())
        },
    )
    .await;

    // Metrics need no session and count what happened (once the persister
    // has recorded the second deployment's result).
    assert_eq!(
        stack.wait_settled(&token, &second).await.status,
        Status::Running
    );
    let metrics = stack
        .http()
        .get(stack.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.expect("text");
    assert!(
        metrics.contains(r#"sdp_deployments{status="running"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sdp_deployments{status="stopped"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sdp_agents{kind="micro",online="true"} 1"#),
        "{metrics}"
    );

    let (status, history) = stack.get(&token, "/api/deployments?sandbox=alpha").await;
    assert_eq!(status, StatusCode::OK);
    let history = history.as_array().expect("array").clone();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["id"], second.as_str(), "newest first");
    assert_eq!(history[0]["commit"], second_commit.as_str());
    assert_eq!(history[1]["id"], id.as_str());
    assert_eq!(history[1]["commit"], first_commit.as_str());
    let (_, filtered) = stack
        .get(&token, "/api/deployments?repo=users&status=running&limit=1")
        .await;
    assert_eq!(filtered.as_array().map(Vec::len), Some(1));
    let (status, _) = stack.get(&token, "/api/deployments?status=exploded").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 3. Late viewers: the whole history, or only what follows `after`.
    let late = stack.ws_events(&token, &id, 0).await;
    assert_eq!(late, events, "a late viewer must see the same events");
    let n = 3;
    let tail = stack.ws_events(&token, &id, n).await;
    assert_eq!(tail, events[n as usize..].to_vec());

    // The whole log as text holds every log line, in order.
    let log = stack
        .http()
        .get(stack.url(&format!("/api/deployments/{id}/logs")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logs")
        .text()
        .await
        .expect("text");
    assert_eq!(log.lines().collect::<Vec<_>>(), log_lines(&events));
    assert_line_numbers_exact(&events);

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_failures_reach_a_terminal_state() {
    let stack = Stack::start().await;
    let token = stack.login().await;

    // An unknown branch fails with a reason that says so.
    let id = stack.deploy(&token, "beta", "no-such-branch").await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Failed);
    let error = deployment.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("no-such-branch") && error.contains("does not exist"),
        "{error}"
    );

    // A broken build fails with the compiler's output in the log.
    stack.fixture.push_broken("main");
    let id = stack.deploy(&token, "beta", "main").await;
    let events = stack.ws_events(&token, &id, 0).await;
    assert_eq!(statuses(&events).last().map(String::as_str), Some("failed"));
    assert!(
        events.last().expect("result")["body"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("go build")),
        "{events:#?}"
    );

    // Cancel while it builds: cancelled, and cancelling again is a conflict.
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "beta", BRANCH).await;
    let (status, _) = stack
        .post(
            &token,
            &format!("/api/deployments/{id}/cancel"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Cancelled);
    let (status, body) = stack
        .post(
            &token,
            &format!("/api/deployments/{id}/cancel"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_fails_its_deployments_within_30s() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    // A slow build, so the agent dies mid-way.
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "gamma", BRANCH).await;
    let path = format!("/api/deployments/{id}");
    sdp_testkit::wait_for("deployment to start fetching", DEPLOY_TIMEOUT, || async {
        let (_, d) = stack.get(&token, &path).await;
        (d["status"] != "queued").then_some(())
    })
    .await;
    stack.kill_agent();
    let killed = std::time::Instant::now();
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Failed, "{deployment:?}");
    let error = deployment.error.as_deref().unwrap_or_default();
    assert!(error.contains("heartbeat"), "{error}");
    assert!(
        killed.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        killed.elapsed()
    );
    // Viewers see the end too.
    let events = stack.ws_events(&token, &id, 0).await;
    assert_eq!(statuses(&events).last().map(String::as_str), Some("failed"));
    let seqs = seqs(&events);
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    stack.shutdown().await;
}
