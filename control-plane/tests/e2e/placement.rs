//! Several agents of one kind: placement spreads sandboxes over
//! them, a redeploy goes back to the agent that holds the service (never
//! two containers of one (sandbox, service)), and when that agent dies the
//! service moves, and its stale container goes once the agent returns.

use sdp_api::Deployment;
use sdp_bus::Status;
use std::time::Duration;

use serde_json::Value;

use crate::common::extra_agent::ExtraAgent;
use crate::common::*;

/// Containers (running or not) of (sandbox, service) across every agent.
/// The containers of `sandbox`/`service` held by one of `agents` (this
/// test's own: another test's sandbox of the same name is not counted).
fn containers_of(agents: &[&str], sandbox: &str, service: &str) -> Vec<String> {
    let of_sandbox = sdp_testkit::containers_with_label("sdp.sandbox", sandbox);
    let of_agents: Vec<String> = agents
        .iter()
        .flat_map(|agent| sdp_testkit::containers_with_label("sdp.agent", agent))
        .collect();
    sdp_testkit::containers_with_label("sdp.service", service)
        .into_iter()
        .filter(|c| of_sandbox.contains(c) && of_agents.contains(c))
        .collect()
}

async fn deploy_running(stack: &Stack, token: &str, sandbox: &str, branch: &str) -> Deployment {
    let id = stack.deploy(token, sandbox, branch).await;
    let deployment = stack.wait_settled(token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");
    deployment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_spread_over_three_agents_and_redeploys_stay_with_their_holder() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let second = ExtraAgent::start(&stack, &token).await;
    let third = ExtraAgent::start(&stack, &token).await;
    let agents = [stack.agent_id.clone(), second.id.clone(), third.id.clone()];

    let mut placed = Vec::new();
    for n in 0..12 {
        let deployment = deploy_running(&stack, &token, &format!("spread{n}"), "main").await;
        placed.push(deployment.agent_id.as_deref().expect("agent").to_owned());
    }
    for agent in &agents {
        let count = placed.iter().filter(|a| *a == agent).count();
        assert_eq!(count, 4, "12 sandboxes over 3 idle agents: {placed:?}");
        assert_eq!(
            sdp_testkit::containers_with_label("sdp.agent", agent).len(),
            4,
            "{agent}'s containers"
        );
    }

    // Five redeploys of one service with new commits: always its holder,
    // one container after each, the newest commit answering.
    let holder = placed[0].clone();
    for round in 0..5 {
        let commit = stack.fixture.push_revision(BRANCH, &format!("r{round}"));
        let deployment = deploy_running(&stack, &token, "spread0", BRANCH).await;
        assert_eq!(
            deployment.agent_id.as_deref(),
            Some(holder.as_str()),
            "round {round}"
        );
        assert_eq!(deployment.commit.as_deref(), Some(commit.as_str()));
        assert_eq!(
            containers_of(&agents.each_ref().map(String::as_str), "spread0", REPO).len(),
            1,
            "round {round}: one container of spread0/users"
        );
        let answer = stack
            .get_service(&format!("{}/", deployment.url.as_deref().expect("url")))
            .await;
        assert_eq!(answer["commit"], commit.as_str(), "round {round}: {answer}");
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_moves_off_a_killed_agent_and_its_stale_container_goes_when_it_returns() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    // The stack's agent holds the sandbox: it is the only one at first.
    let first = deploy_running(&stack, &token, "moving", "main").await;
    assert_eq!(first.agent_id.as_deref(), Some(stack.agent_id.as_str()));
    let other = ExtraAgent::start(&stack, &token).await;

    stack.kill_agent();
    // The holder is gone (SIGKILL: its container keeps running): the next
    // deploy goes to the other agent.
    let moved = deploy_running(&stack, &token, "moving", BRANCH).await;
    assert_eq!(
        moved.agent_id.as_deref(),
        Some(other.id.as_str()),
        "{moved:?}"
    );
    let (_, old) = stack
        .get(&token, &format!("/api/deployments/{}", first.id.as_str()))
        .await;
    assert_eq!(old["status"], "stopped", "{old}");

    // Back, it reconciles: its stale container goes, nothing runs twice.
    stack.start_agent().await;
    sdp_testkit::wait_for(
        "the returned agent to remove its stale container",
        Duration::from_secs(60),
        || async {
            let left = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
            left.is_empty().then_some(())
        },
    )
    .await;
    assert_eq!(
        containers_of(&[&stack.agent_id, &other.id], "moving", REPO).len(),
        1
    );
    let answer = stack
        .get_service(&format!("{}/", moved.url.as_deref().expect("url")))
        .await;
    assert_eq!(answer["branch"], BRANCH);
    // And the service stays where it moved.
    let again = deploy_running(&stack, &token, "moving", BRANCH).await;
    assert_eq!(again.agent_id.as_deref(), Some(other.id.as_str()));
    assert_eq!(
        containers_of(&[&stack.agent_id, &other.id], "moving", REPO).len(),
        1
    );
    stack.shutdown().await;
}

/// Three hosts (three addresses of this machine): micro agents on two,
/// the gateway agent on the third. Each service lands on its own host and
/// publishes only on that host's address; the gateway reaches both across
/// hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_reaches_services_on_two_other_hosts() {
    let hosts = sdp_testkit::HostAddresses::add(3);
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        advertise: Some((hosts.addr(0), hosts.addr(1))),
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    crate::routing::setup(&stack, &token).await;
    let other = ExtraAgent::start_on(&stack, &token, Some(hosts.addr(2))).await;
    let host_of = |agent: &str| {
        if agent == other.id {
            hosts.addr(2)
        } else {
            assert_eq!(agent, stack.agent_id);
            hosts.addr(0)
        }
    };
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            serde_json::json!({ "name": "across", "template": "shop" }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    crate::routing::deploy_template(
        &stack,
        &token,
        "across",
        serde_json::json!({ "branches": { "users": BRANCH, "orders": "feature/y" } }),
    )
    .await;
    // The gateway answers from the sandbox's services on both hosts (its
    // re-applies settle first).
    crate::routing::through_gateway(
        &stack,
        &token,
        "across",
        "/users/1",
        crate::routing::from_sandbox(BRANCH),
    )
    .await;
    crate::routing::through_gateway(
        &stack,
        &token,
        "across",
        "/orders/1",
        crate::routing::from_sandbox("feature/y"),
    )
    .await;
    let client = stack.client_with(&token);
    let view = client.sandbox("across").await.expect("sandbox across");
    let mut placed = Vec::new();
    for repo in ["users", "orders", "gateway"] {
        let (url, host) = if repo == "gateway" {
            let url = view.gateway_url.as_deref().expect("gateway_url");
            (url.to_owned(), hosts.addr(1))
        } else {
            let id = view
                .services
                .iter()
                .find(|s| s.repo == repo)
                .and_then(|s| s.deployment_id.as_deref())
                .unwrap_or_else(|| panic!("a deployment of {repo} in {view:?}"));
            let deployment = client.deployment(id).await.expect("the deployment");
            let url = deployment.url.as_deref().expect("url").to_owned();
            (url, host_of(deployment.agent_id.as_deref().expect("agent")))
        };
        // The URL others use names the agent's host, and the container
        // publishes there and nowhere else.
        assert!(
            url.starts_with(&format!("http://{host}:")),
            "{repo}: {url} on {host}"
        );
        let port = url.rsplit(':').next().expect("port");
        let containers = containers_of(
            &[
                &stack.agent_id,
                &other.id,
                &stack.routing.as_ref().expect("gateway").gateway_agent_id,
            ],
            "across",
            repo,
        );
        assert_eq!(containers.len(), 1, "{repo}: {containers:?}");
        assert_eq!(
            sdp_testkit::published_addresses(&containers[0]),
            [format!("{host}:{port}")],
            "{repo}"
        );
        placed.push((repo, host, port.to_owned()));
    }
    assert_ne!(
        placed[0].1, placed[1].1,
        "users and orders on two hosts: {placed:?}"
    );
    // Published on one host's address only: at the same port, another
    // host's address has nothing, or another container (Docker allocates
    // ports per address), never users.
    let (_, users_host, users_port) = &placed[0];
    let elsewhere = if *users_host == hosts.addr(0) {
        hosts.addr(2)
    } else {
        hosts.addr(0)
    };
    let answer = stack
        .http()
        .get(format!("http://{elsewhere}:{users_port}/"))
        .send()
        .await;
    if let Ok(answer) = answer {
        let body: Value = answer.json().await.unwrap_or_default();
        assert_ne!(
            body["service"], "users",
            "users answers on {elsewhere} too: {body}"
        );
    }
    stack.shutdown().await;
}
