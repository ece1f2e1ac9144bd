//! Deploying a chosen commit and rolling back: deploy commit A,
//! then B, then redeploy A's deployment: A answers, and the history shows
//! three deployments with the newest live. A commit not on the branch is
//! refused after the fetch, before anything is built or replaced.

use sdp_api::client::{Client, ClientError};
use sdp_api::{Deployment, DeploymentStarted, ListQuery, NewDeployment};
use sdp_bus::Status;
use serde_json::{Value, json};

use crate::cli::{Sdp, code, show};
use crate::common::*;

async fn deploy_commit(client: &Client, commit: &str) -> Result<DeploymentStarted, ClientError> {
    let body = NewDeployment {
        repo: REPO.to_owned(),
        branch: BRANCH.to_owned(),
        commit: Some(commit.to_owned()),
    };
    client.deploy("alpha", &body).await
}

/// The phases a deployment went through, as the API shows them.
fn phase_names(deployment: &Deployment) -> Vec<Status> {
    deployment.phases.iter().map(|p| p.phase).collect()
}

async fn history(client: &Client) -> Vec<Deployment> {
    let query = ListQuery {
        sandbox: Some("alpha".to_owned()),
        ..ListQuery::default()
    };
    client.deployments(&query).await.expect("history")
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", show(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_a_then_b_then_roll_back_to_a_and_refuse_a_commit_off_the_branch() {
    let stack = Stack::start().await;
    let client = stack.login_as(USER).await;
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let a = stack.fixture.commit(BRANCH);
    let b = stack.fixture.push_revision(BRANCH, "2");

    // A (an ancestor of the branch's head) by its id.
    let started = deploy_commit(&client, &a).await.expect("deploy A");
    let first = started.id.to_string();
    let deployment = wait_for_status(&client, &first, Status::Running).await;
    assert_eq!(deployment.commit.as_deref(), Some(a.as_str()));
    assert_eq!(deployment.requested_commit.as_deref(), Some(a.as_str()));
    let url = deployment.url.expect("url");
    let answer = stack.get_service(&url).await;
    assert_eq!(
        (&answer["commit"], &answer["revision"]),
        (&json!(a), &json!("1"))
    );

    // B, the head, with the command line's --commit.
    let out = sdp
        .run(&[
            "-o",
            "json",
            "deploy",
            "alpha",
            &format!("{REPO}@{BRANCH}"),
            "--commit",
            &b,
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", show(&out));
    let second = stdout_json(&out)["deployments"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deployment = wait_for_status(&client, &second, Status::Running).await;
    assert_eq!(deployment.commit.as_deref(), Some(b.as_str()));
    assert_eq!(stack.get_service(&url).await["commit"], b.as_str());

    // Roll back: A's deployment again.
    let started = client.redeploy(&first).await.expect("redeploy A");
    let third = started.id.to_string();
    let deployment = wait_for_status(&client, &third, Status::Running).await;
    assert_eq!(deployment.commit.as_deref(), Some(a.as_str()));
    assert_eq!(
        deployment.redeploy_of.as_ref().map(|id| id.as_str()),
        Some(first.as_str())
    );
    assert!(deployment.live);
    // The service keeps its port: the same URL answers with A again.
    assert_eq!(deployment.url.as_deref(), Some(url.as_str()));
    let answer = stack.get_service(&url).await;
    assert_eq!(
        (&answer["commit"], &answer["revision"]),
        (&json!(a), &json!("1"))
    );

    // History: three, newest first, only the rollback live.
    let rows: Vec<(String, Status, bool)> = history(&client)
        .await
        .into_iter()
        .map(|d| (d.id.to_string(), d.status, d.live))
        .collect();
    assert_eq!(
        rows,
        [
            (third.clone(), Status::Running, true),
            (second.clone(), Status::Stopped, false),
            (first.clone(), Status::Stopped, false),
        ]
    );

    // A commit of another branch, and one nobody made: refused after the
    // fetch, with the reason; nothing was built, the rollback still runs.
    let head = &b[..7];
    for wanted in [stack.fixture.commit("main"), "0123456789".repeat(4)] {
        let started = deploy_commit(&client, &wanted).await.expect("deploy");
        let id = started.id.to_string();
        let refused = wait_for_status(&client, &id, Status::Failed).await;
        assert_eq!(
            refused.error.as_deref(),
            Some(
                format!(
                    "commit {} is not on branch {BRANCH} (fetched head {head}): pick a commit from the branch's history",
                    &wanted[..7]
                )
                .as_str()
            )
        );
        assert_eq!(
            phase_names(&refused),
            [Status::Queued, Status::Fetching, Status::Failed]
        );
        assert_eq!(refused.commit, None);
        assert!(!refused.live);
        assert_eq!(
            sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id),
            sdp_testkit::containers_with_label("sdp.deployment", &third),
            "a refused commit replaced the container"
        );
        assert_eq!(stack.get_service(&url).await["commit"], a.as_str());
        let live = client.deployment(&third).await.expect("rollback");
        assert!(live.live, "{live:?}");

        // It recorded no commit: nothing to deploy again.
        let err = client.redeploy(&id).await.expect_err("nothing to redeploy");
        assert_eq!(err.status(), Some(409), "{err}");
        let out = sdp.run(&["rollback", &id]).await;
        assert_eq!(code(&out), 7, "{}", show(&out));
    }

    // Malformed commits never reach an agent; unknown ids are 404.
    for bad in ["abc1234", &a.to_uppercase(), &format!("{a}0"), "HEAD~1"] {
        let err = deploy_commit(&client, bad).await.expect_err(bad);
        assert_eq!(
            (err.status(), err.code()),
            (Some(400), Some("bad_request")),
            "{bad}: {err}"
        );
    }
    let out = sdp
        .run(&[
            "deploy",
            "alpha",
            &format!("{REPO}@{BRANCH}"),
            "--commit",
            "abc1234",
        ])
        .await;
    assert_eq!(code(&out), 2, "{}", show(&out));
    let err = client.redeploy("dnope").await.expect_err("unknown id");
    assert_eq!(err.status(), Some(404), "{err}");
    let out = sdp.run(&["-o", "json", "rollback", "dnope"]).await;
    assert_eq!(code(&out), 7, "{}", show(&out));
    assert_eq!(stdout_json(&out)["error"]["code"], "not_found");
    assert_eq!(history(&client).await.len(), 5);

    // Someone else may read the sandbox, not roll it back.
    let other = stack.login_as("qa").await;
    let err = other.redeploy(&first).await.expect_err("not the owner");
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some("forbidden")),
        "{err}"
    );
    assert_eq!(history(&client).await.len(), 5);

    // Once the sandbox is gone, its deployments cannot come back.
    client.delete_sandbox("alpha").await.expect("delete alpha");
    let err = client.redeploy(&first).await.expect_err("sandbox gone");
    assert_eq!(err.status(), Some(409), "{err}");
    stack.shutdown().await;
}
