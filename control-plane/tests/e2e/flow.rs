//! Deploy, watch over the WebSocket, redeploy, replay history.

use reqwest::StatusCode;
use sdp_api::ListQuery;
use sdp_bus::Status;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_watch_redeploy_and_replay() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let client = stack.client_with(&token);

    // 1. Deploy feature/x into alpha and watch it live from the start.
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let events = stack.ws_events(&token, &id, 0).await;
    assert_eq!(
        statuses(&events),
        [
            Status::Queued,
            Status::Fetching,
            Status::Building,
            Status::Starting,
            Status::Running
        ],
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
        .position(|e| e.body.status() == Some(Status::Building))
        .expect("building");
    let starting = events
        .iter()
        .position(|e| e.body.status() == Some(Status::Starting))
        .expect("starting");
    assert!(
        events[building..starting].iter().any(is_log),
        "no build log lines between building and starting: {events:#?}"
    );
    let first_commit = stack.fixture.commit(BRANCH);
    let url = result_url(&events).expect("url").to_owned();
    let answer = stack.get_service(&url).await;
    assert_eq!(answer["branch"], BRANCH);
    assert_eq!(answer["commit"], first_commit.as_str());
    assert_eq!(answer["revision"], "1");

    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running);
    assert_eq!(deployment.commit.as_deref(), Some(first_commit.as_str()));
    assert_eq!(deployment.url.as_deref(), Some(url.as_str()));
    let phases: Vec<Status> = deployment.phases.iter().map(|p| p.phase).collect();
    assert_eq!(
        phases,
        [
            Status::Queued,
            Status::Fetching,
            Status::Building,
            Status::Starting,
            Status::Running
        ]
    );

    // 2. A new commit, redeployed: the old container is replaced.
    let second_commit = stack.fixture.push_revision(BRANCH, "2");
    let second = stack.deploy(&token, "alpha", BRANCH).await;
    let events2 = stack.ws_events(&token, &second, 0).await;
    assert_eq!(
        statuses(&events2).last(),
        Some(&Status::Running),
        "{events2:#?}"
    );
    let url2 = result_url(&events2).expect("url").to_owned();
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
    sdp_testkit::wait_for(
        "the replaced deployment to be stopped",
        std::time::Duration::from_secs(20),
        || async {
            let first = client.deployment(&id).await.ok()?;
            (first.status == Status::Stopped).then_some(())
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

    let history = client
        .deployments(&ListQuery {
            sandbox: Some("alpha".to_owned()),
            ..ListQuery::default()
        })
        .await
        .expect("the sandbox's deployments");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id.as_str(), second, "newest first");
    assert_eq!(history[0].commit.as_deref(), Some(second_commit.as_str()));
    assert_eq!(history[1].id.as_str(), id);
    assert_eq!(history[1].commit.as_deref(), Some(first_commit.as_str()));
    let filtered = client
        .deployments(&ListQuery {
            repo: Some("users".to_owned()),
            status: Some("running".to_owned()),
            limit: Some(1),
            ..ListQuery::default()
        })
        .await
        .expect("the running deployments");
    assert_eq!(filtered.len(), 1);
    let unknown = client
        .deployments(&ListQuery {
            status: Some("exploded".to_owned()),
            ..ListQuery::default()
        })
        .await
        .expect_err("an unknown status is refused");
    assert_eq!(
        unknown.status(),
        Some(StatusCode::BAD_REQUEST.as_u16()),
        "{unknown}"
    );

    // 3. Late viewers: the whole history, or only what follows `after`.
    let late = stack.ws_events(&token, &id, 0).await;
    assert_eq!(late, events, "a late viewer must see the same events");
    let n = 3;
    let tail = stack.ws_events(&token, &id, n).await;
    assert_eq!(tail, events[n as usize..].to_vec());

    // The whole log as text holds every log line, in order.
    let log = client.deployment_logs(&id).await.expect("logs");
    assert_eq!(log.lines().collect::<Vec<_>>(), log_lines(&events));
    assert_line_numbers_exact(&events);

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_failures_reach_a_terminal_state() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let client = stack.client_with(&token);

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
    assert_eq!(statuses(&events).last(), Some(&Status::Failed));
    assert!(
        result_error(&events).is_some_and(|e| e.contains("go build")),
        "{events:#?}"
    );

    // Cancel while it builds: cancelled, and cancelling again is a conflict.
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "beta", BRANCH).await;
    // 202 on the wire: the cancel is sent, not done.
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
    let again = client.cancel(&id).await.expect_err("cancelling again");
    assert_eq!(
        again.status(),
        Some(StatusCode::CONFLICT.as_u16()),
        "{again}"
    );

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_fails_its_deployments_within_30s() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    // A slow build, so the agent dies mid-way.
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "gamma", BRANCH).await;
    let client = stack.client_with(&token);
    sdp_testkit::wait_for("deployment to start fetching", DEPLOY_TIMEOUT, || async {
        let d = client.deployment(&id).await.ok()?;
        (d.status != Status::Queued).then_some(())
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
    assert_eq!(statuses(&events).last(), Some(&Status::Failed));
    let seqs = seqs(&events);
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    stack.shutdown().await;
}
