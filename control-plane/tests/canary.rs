//! The git credential is written nowhere: a canary password is
//! used for login, deploys (good and failing), and then searched for in
//! every file under the data dirs and the NATS store (SQLite rows and
//! JetStream messages live there), in every process's output, and in
//! `docker inspect` of every container.

mod common;

use common::*;
use sdp_bus::Status;
use serde_json::json;

use sdp_testkit::util::files_containing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_password_is_written_nowhere() {
    let canary = format!("canary-{}", sdp_testkit::unique_id("pw"));
    let stack = Stack::start_with(StackOptions {
        password: canary.clone(),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;

    let ok = stack.deploy(&token, "alpha", BRANCH).await;
    let failed = stack.deploy(&token, "beta", "no-such-branch").await;
    assert_eq!(
        stack.wait_settled(&token, &ok).await.status,
        Status::Running
    );
    assert_eq!(
        stack.wait_settled(&token, &failed).await.status,
        Status::Failed
    );
    // A wrong password on login and a refused request, for the error paths.
    let _ = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": USER, "password": format!("{canary}-wrong") }))
        .send()
        .await;
    let _ = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": "ghost", "branch": "main" }),
        )
        .await;
    // Staleness fetches the moved branch into the agent's store with it.
    stack.fixture.push_revision(BRANCH, "2");
    let (status, staleness) = stack.get(&token, "/api/sandboxes/alpha/staleness").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{staleness}");
    assert_eq!(staleness["services"][0]["behind"], 1, "{staleness}");
    // Let the persister and the logs catch up with the last events.
    let _ = stack.ws_events(&token, &failed, 0).await;

    let needle = canary.as_bytes();
    for dir in [
        stack.cp_data.path(),
        stack.agent_data.path(),
        stack.repos.path(),
        stack.nats.store_dir(),
    ] {
        let hits = files_containing(dir, needle);
        assert!(hits.is_empty(), "canary found in {hits:?}");
    }
    let output = stack.process_output();
    assert!(!output.is_empty());
    for (name, text) in output {
        assert!(!text.contains(&canary), "canary in the output of {name}");
    }
    for container in sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id) {
        let inspect = std::process::Command::new("docker")
            .args(["inspect", &container])
            .output()
            .expect("docker inspect");
        assert!(
            !String::from_utf8_lossy(&inspect.stdout).contains(&canary),
            "canary in docker inspect of {container}"
        );
    }
    // Control: the canary is really in use (the git server's probe repo
    // accepted it), so the search above could have found it.
    assert!(stack.git.requests() > 0);
    stack.shutdown().await;
}
