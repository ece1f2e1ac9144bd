//! Faults on real processes: NATS and the control plane
//! restarted mid-deployment, Docker refusing to run a container. Every
//! deployment still ends terminal and no acked event is lost.

use std::time::Duration;

use sdp_api::ErrorBody;
use sdp_bus::Status;

use crate::common::*;

/// Waits until the deployment is past `fetching` (building, slowly).
async fn wait_building(stack: &Stack, token: &str, id: &str) {
    let client = stack.client_with(token);
    sdp_testkit::wait_for("deployment to be building", DEPLOY_TIMEOUT, || async {
        let d = client.deployment(id).await.ok()?;
        (d.status == Status::Building).then_some(())
    })
    .await;
}

/// Every persisted event of a deployment, in seq order.
fn persisted_seqs(stack: &Stack, id: &str) -> Vec<u64> {
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("db");
    let mut stmt = db
        .prepare("SELECT seq FROM events WHERE deployment_id = ?1 ORDER BY seq")
        .expect("query");
    stmt.query_map([id], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_mid_deployment_loses_no_event() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    wait_building(&stack, &token, &id).await;

    stack.nats.kill();
    // Restart once the control plane has seen NATS go.
    let readyz = stack.url("/readyz");
    sdp_testkit::wait_for(
        "the control plane to see NATS down",
        Duration::from_secs(15),
        || {
            let readyz = readyz.clone();
            async move {
                let response = reqwest::get(readyz).await.ok()?;
                (response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE).then_some(())
            }
        },
    )
    .await;
    stack.nats.restart();

    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    // The viewer gets every event once, in order, and so does SQLite.
    let events = stack.ws_events(&token, &id, 0).await;
    let seqs = seqs(&events);
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{events:#?}"
    );
    assert_eq!(statuses(&events).last(), Some(&Status::Running));
    let last = *seqs.last().expect("events");
    sdp_testkit::wait_for("every event persisted", Duration::from_secs(30), || async {
        (persisted_seqs(&stack, &id) == (1..=last).collect::<Vec<_>>()).then_some(())
    })
    .await;
    // And the platform works on: a new deployment after the restart.
    let again = stack.deploy(&token, "alpha", "main").await;
    assert_eq!(
        stack.wait_settled(&token, &again).await.status,
        Status::Running
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restarted_mid_deployment_viewers_resume_without_gaps() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "alpha", BRANCH).await;

    // A viewer reads until the build starts, then loses the control plane.
    let mut seen = Vec::new();
    stack
        .ws_follow(&token, &id, 0, |event| {
            let building = event.body.status() == Some(Status::Building);
            seen.push(event);
            !building
        })
        .await;
    stack.kill_control_plane();
    // Start it again once the old one no longer answers.
    let readyz = stack.url("/readyz");
    sdp_testkit::wait_for(
        "the control plane to be gone",
        Duration::from_secs(15),
        || {
            let readyz = readyz.clone();
            async move { reqwest::get(readyz).await.is_err().then_some(()) }
        },
    )
    .await;
    stack.start_control_plane().await;

    // Sessions survive the restart (stored hashed in SQLite).
    let after = seen.last().expect("events").seq;
    let rest = stack.ws_events(&token, &id, after).await;
    let mut all = seen.clone();
    all.extend(rest);
    let seqs = seqs(&all);
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap or duplicate: {all:#?}"
    );
    assert_eq!(statuses(&all).last(), Some(&Status::Running), "{all:#?}");
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running);

    // The credential was in memory only: deploying needs a new login.
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            serde_json::json!({ "repo": REPO, "branch": BRANCH }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{body}");
    let refused: ErrorBody = serde_json::from_value(body).expect("an error answer");
    assert_eq!(refused.error.code, "credential_expired");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_reconciles_its_containers() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    let keep = stack.deploy(&token, "keep", BRANCH).await;
    let gone = stack.deploy(&token, "gone", BRANCH).await;
    for id in [&keep, &gone] {
        assert_eq!(stack.wait_settled(&token, id).await.status, Status::Running);
    }
    let client = stack.client_with(&token);
    let keep_url = client
        .deployment(&keep)
        .await
        .expect("keep's deployment")
        .url
        .expect("url");

    // The agent dies; meanwhile `gone` is torn down, which it cannot hear.
    stack.kill_agent();
    sdp_testkit::wait_for("agent offline", Duration::from_secs(30), || async {
        let agents = client.agents().await.ok()?;
        agents.iter().all(|a| !a.online).then_some(())
    })
    .await;
    let response = stack
        .http()
        .delete(stack.url("/api/sandboxes/gone"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    assert_eq!(
        client
            .deployment(&gone)
            .await
            .expect("gone's deployment")
            .status,
        Status::Stopped
    );
    assert_eq!(
        sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id).len(),
        2
    );

    // The restarted agent converges: gone's container goes, keep's stays.
    stack.start_agent().await;
    let label = |id: &str| {
        let out = std::process::Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{index .Config.Labels \"sdp.deployment\"}}",
                id,
            ])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let left = sdp_testkit::wait_for(
        "reconcile to remove the stopped container",
        Duration::from_secs(30),
        || async {
            let containers = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
            (containers.len() == 1).then_some(containers)
        },
    )
    .await;
    assert_eq!(label(&left[0]), keep);
    let answer = stack.get_service(&keep_url).await;
    assert_eq!(answer["branch"], BRANCH);
    stack.shutdown().await;
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// An agent stopped (SIGSTOP) past the heartbeat timeout: the control plane
/// fails its deployment. Woken (SIGCONT), the agent learns it, stops the
/// build, makes no container of it, and its late events do not flip the
/// failed deployment back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_agent_learns_its_deployment_failed_and_stops_it() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let client = stack.client_with(&token);
    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "stalled", BRANCH).await;
    wait_building(&stack, &token, &id).await;
    let pid = stack.agent_pid().expect("agent pid");

    signal(pid, "-STOP");
    let failed = stack.wait_settled(&token, &id).await;
    assert_eq!(failed.status, Status::Failed, "{failed:?}");
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("heartbeat")),
        "{failed:?}"
    );
    signal(pid, "-CONT");

    // Awake, it hears that the deployment is no longer its own.
    let agent_id = stack.agent_id.clone();
    sdp_testkit::wait_for(
        "the woken agent to drop the failed deployment",
        Duration::from_secs(60),
        || async {
            let agents = client.agents().await.ok()?;
            let me = agents.into_iter().find(|a| a.id == agent_id)?;
            (me.online && !me.running.contains(&id)).then_some(())
        },
    )
    .await;
    assert!(
        sdp_testkit::containers_with_label("sdp.deployment", &id).is_empty(),
        "no container of the failed deployment"
    );
    let after = client.deployment(&id).await.expect("the deployment");
    assert_eq!(
        after.status,
        Status::Failed,
        "late events flipped it: {after:?}"
    );
    let ended = stack.process_output().into_iter().any(|(name, text)| {
        name.starts_with("agent") && text.contains("the control plane settled these")
    });
    assert!(
        ended,
        "the agent logged that it stopped the abandoned deployment"
    );

    // And it works on.
    let again = stack.deploy(&token, "stalled", "main").await;
    assert_eq!(
        stack.wait_settled(&token, &again).await.status,
        Status::Running
    );
    stack.shutdown().await;
}
