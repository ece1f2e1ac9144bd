//! Staleness of running services: after a push to the deployed
//! branch the sandbox says "behind by N" with the new head, after the
//! deploy "up to date". Real git server, agent, NATS and Docker.

use sdp_api::{Deployment, ServiceStaleness, StalenessState};
use sdp_bus::Status;

use crate::common::*;

async fn staleness(stack: &Stack, token: &str, sandbox: &str) -> ServiceStaleness {
    let body = stack
        .client_with(token)
        .staleness(sandbox)
        .await
        .unwrap_or_else(|err| panic!("staleness of {sandbox}: {err}"));
    assert_eq!(body.sandbox, sandbox, "{body:?}");
    assert_eq!(body.services.len(), 1, "one running service: {body:?}");
    body.services[0].clone()
}

async fn deploy_running(stack: &Stack, token: &str, sandbox: &str) -> Deployment {
    let id = stack.deploy(token, sandbox, BRANCH).await;
    let deployment = stack.wait_settled(token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    deployment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_counts_pushes_and_clears_on_deploy() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let sandbox = "stale";

    // Nothing runs yet: nothing to judge; an unknown sandbox is 404.
    let ghost = stack
        .client_with(&token)
        .staleness("ghost")
        .await
        .expect_err("an unknown sandbox");
    assert_eq!(ghost.status(), Some(404), "{ghost}");

    let first = deploy_running(&stack, &token, sandbox).await;
    let deployed = first.commit.as_deref().expect("commit").to_owned();
    let service = staleness(&stack, &token, sandbox).await;
    assert_eq!(service.repo, REPO);
    assert_eq!(service.branch, BRANCH);
    assert_eq!(service.state, StalenessState::UpToDate, "{service:?}");
    assert_eq!(service.behind, Some(0), "{service:?}");
    assert_eq!(service.deployed_commit.as_deref(), Some(deployed.as_str()));
    assert_eq!(service.head.as_deref(), Some(deployed.as_str()));
    assert_eq!(service.deployment_id, first.id.as_str());

    // One push: behind by 1, with the new head.
    let pushed = stack.fixture.push_revision(BRANCH, "2");
    let service = staleness(&stack, &token, sandbox).await;
    assert_eq!(service.state, StalenessState::Behind, "{service:?}");
    assert_eq!(service.behind, Some(1), "{service:?}");
    assert_eq!(
        service.head.as_deref(),
        Some(pushed.as_str()),
        "{service:?}"
    );
    assert_eq!(service.deployed_commit.as_deref(), Some(deployed.as_str()));

    // The CLI says the same.
    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp.run(&["sandbox", "stale", sandbox]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("behind by 1"), "{text}");
    assert!(text.contains(&pushed[..12]), "{text}");

    // Another: the agent counts again (the store has the first already).
    let pushed = stack.fixture.push_revision(BRANCH, "3");
    let service = staleness(&stack, &token, sandbox).await;
    assert_eq!(service.behind, Some(2), "{service:?}");
    assert_eq!(
        service.head.as_deref(),
        Some(pushed.as_str()),
        "{service:?}"
    );

    // Deployed again: up to date, about the new deployment.
    let second = deploy_running(&stack, &token, sandbox).await;
    assert_eq!(second.commit.as_deref(), Some(pushed.as_str()));
    let service = staleness(&stack, &token, sandbox).await;
    assert_eq!(service.state, StalenessState::UpToDate, "{service:?}");
    assert_eq!(service.behind, Some(0), "{service:?}");
    assert_eq!(service.head.as_deref(), Some(pushed.as_str()));
    assert_eq!(service.deployment_id, second.id.as_str());

    // The branch rewritten (force-pushed to main's unrelated commit): it
    // moved, and the reason says the deployed commits are off it.
    let bare = stack.fixture.bare_path().to_owned();
    let main = stack.fixture.commit("main");
    let rewritten = std::process::Command::new("git")
        .arg("-C")
        .arg(&bare)
        .args(["update-ref", &format!("refs/heads/{BRANCH}"), &main])
        .status()
        .expect("git update-ref");
    assert!(rewritten.success());
    let service = staleness(&stack, &token, sandbox).await;
    assert_eq!(service.state, StalenessState::Behind, "{service:?}");
    assert_eq!(service.head.as_deref(), Some(main.as_str()), "{service:?}");
    assert_eq!(service.behind, Some(1), "main's one commit: {service:?}");
    assert!(
        service
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("rewritten") && r.contains("3 deployed commit(s)")),
        "{service:?}"
    );

    // The branch deleted on the remote: the head is unknown, with why.
    let deleted = std::process::Command::new("git")
        .arg("-C")
        .arg(&bare)
        .args(["update-ref", "-d", &format!("refs/heads/{BRANCH}")])
        .status()
        .expect("git update-ref");
    assert!(deleted.success());
    let service = staleness(&stack, &token, sandbox).await;
    assert_eq!(service.state, StalenessState::Unknown, "{service:?}");
    assert_eq!(service.head, None, "{service:?}");
    assert!(
        service
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("no longer exists")),
        "{service:?}"
    );

    // The credential never reaches the agent's logs.
    for (name, text) in stack.process_output() {
        assert!(!text.contains(&stack.password), "the password is in {name}");
    }
    stack.shutdown().await;
}
