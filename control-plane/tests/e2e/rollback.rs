//! Deploying a chosen commit and rolling back (issue 12): deploy commit A,
//! then B, then redeploy A's deployment: A answers, and the history shows
//! three deployments with the newest live. A commit not on the branch is
//! refused after the fetch, before anything is built or replaced.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{Sdp, code, show};
use crate::common::*;

async fn deploy_commit(stack: &Stack, token: &str, commit: &str) -> (StatusCode, Value) {
    stack
        .post(
            token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": REPO, "branch": BRANCH, "commit": commit }),
        )
        .await
}

/// The phases a deployment went through, as the API shows them.
fn phase_names(deployment: &Value) -> Vec<String> {
    deployment["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["phase"].as_str().map(str::to_owned))
        .collect()
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", show(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_a_then_b_then_roll_back_to_a_and_refuse_a_commit_off_the_branch() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let sdp = Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let a = stack.fixture.commit(BRANCH);
    let b = stack.fixture.push_revision(BRANCH, "2");

    // A (an ancestor of the branch's head) by its id.
    let (status, started) = deploy_commit(&stack, &token, &a).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let first = started["id"].as_str().expect("id").to_owned();
    let deployment = stack.wait_settled(&token, &first).await;
    assert_eq!(deployment["status"], "running", "{deployment}");
    assert_eq!(deployment["commit"], a.as_str());
    assert_eq!(deployment["requested_commit"], a.as_str());
    let url = deployment["url"].as_str().expect("url").to_owned();
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
    let deployment = stack.wait_settled(&token, &second).await;
    assert_eq!(deployment["commit"], b.as_str(), "{deployment}");
    assert_eq!(stack.get_service(&url).await["commit"], b.as_str());

    // Roll back: A's deployment again.
    let (status, started) = stack
        .post(
            &token,
            &format!("/api/deployments/{first}/redeploy"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let third = started["id"].as_str().expect("id").to_owned();
    let deployment = stack.wait_settled(&token, &third).await;
    assert_eq!(deployment["status"], "running", "{deployment}");
    assert_eq!(deployment["commit"], a.as_str());
    assert_eq!(deployment["redeploy_of"], first.as_str());
    assert_eq!(deployment["live"], true);
    // The service keeps its port: the same URL answers with A again.
    assert_eq!(deployment["url"], url.as_str());
    let answer = stack.get_service(&url).await;
    assert_eq!(
        (&answer["commit"], &answer["revision"]),
        (&json!(a), &json!("1"))
    );

    // History: three, newest first, only the rollback live.
    let history = stack.get(&token, "/api/deployments?sandbox=alpha").await.1;
    let rows: Vec<(&str, &str, bool)> = history
        .as_array()
        .expect("array")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().expect("id"),
                d["status"].as_str().expect("status"),
                d["live"].as_bool().expect("live"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (third.as_str(), "running", true),
            (second.as_str(), "stopped", false),
            (first.as_str(), "stopped", false),
        ]
    );

    // A commit of another branch, and one nobody made: refused after the
    // fetch, with the reason; nothing was built, the rollback still runs.
    let head = &b[..7];
    for wanted in [stack.fixture.commit("main"), "0123456789".repeat(4)] {
        let (status, started) = deploy_commit(&stack, &token, &wanted).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        let id = started["id"].as_str().expect("id").to_owned();
        let refused = stack.wait_settled(&token, &id).await;
        assert_eq!(refused["status"], "failed", "{refused}");
        assert_eq!(
            refused["error"],
            format!(
                "commit {} is not on branch {BRANCH} (fetched head {head}): pick a commit from the branch's history",
                &wanted[..7]
            )
        );
        assert_eq!(phase_names(&refused), ["queued", "fetching", "failed"]);
        assert_eq!(refused["commit"], Value::Null);
        assert_eq!(refused["live"], false);
        assert_eq!(
            sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id),
            sdp_testkit::containers_with_label("sdp.deployment", &third),
            "a refused commit replaced the container"
        );
        assert_eq!(stack.get_service(&url).await["commit"], a.as_str());
        let live = stack
            .get(&token, &format!("/api/deployments/{third}"))
            .await
            .1;
        assert_eq!(live["live"], true, "{live}");

        // It recorded no commit: nothing to deploy again.
        let (status, body) = stack
            .post(
                &token,
                &format!("/api/deployments/{id}/redeploy"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let out = sdp.run(&["rollback", &id]).await;
        assert_eq!(code(&out), 7, "{}", show(&out));
    }

    // Malformed commits never reach an agent; unknown ids are 404.
    for bad in ["abc1234", &a.to_uppercase(), &format!("{a}0"), "HEAD~1"] {
        let (status, body) = deploy_commit(&stack, &token, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
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
    let (status, _) = stack
        .post(&token, "/api/deployments/dnope/redeploy", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let out = sdp.run(&["-o", "json", "rollback", "dnope"]).await;
    assert_eq!(code(&out), 7, "{}", show(&out));
    assert_eq!(stdout_json(&out)["error"]["code"], "not_found");
    let history = stack.get(&token, "/api/deployments?sandbox=alpha").await.1;
    assert_eq!(history.as_array().map(Vec::len), Some(5), "{history}");

    // Someone else may read the sandbox, not roll it back.
    stack.git.add_user("qa", "qa-password");
    let response = stack
        .http()
        .post(stack.url("/api/login"))
        .json(&json!({ "username": "qa", "password": "qa-password" }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let other: Value = response.json().await.expect("json");
    let other = other["token"].as_str().expect("token");
    let (status, body) = stack
        .post(
            other,
            &format!("/api/deployments/{first}/redeploy"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let history = stack.get(&token, "/api/deployments?sandbox=alpha").await.1;
    assert_eq!(history.as_array().map(Vec::len), Some(5), "{history}");

    // Once the sandbox is gone, its deployments cannot come back.
    let response = stack
        .http()
        .delete(stack.url("/api/sandboxes/alpha"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert!(response.status().is_success(), "{}", response.status());
    let (status, body) = stack
        .post(
            &token,
            &format!("/api/deployments/{first}/redeploy"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    stack.shutdown().await;
}
