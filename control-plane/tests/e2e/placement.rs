//! Several agents of one kind (issue 10): placement spreads sandboxes over
//! them, a redeploy goes back to the agent that holds the service (never
//! two containers of one (sandbox, service)), and when that agent dies the
//! service moves, and its stale container goes once the agent returns.

use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

/// A second (third…) `sdp-agent-micro` beside the stack's own, with its
/// own id and data dir, on the same repos.
struct ExtraAgent {
    id: String,
    _data: TempDir,
    _process: sdp_testkit::ChildGuard,
    _containers: sdp_testkit::ContainerCleanup,
}

impl ExtraAgent {
    async fn start(stack: &Stack, token: &str) -> ExtraAgent {
        let id = sdp_testkit::unique_id("p");
        let data = TempDir::new().expect("data dir");
        let mut env = stack.agent_env();
        for (key, value) in &mut env {
            match key.as_str() {
                "SDP_AGENT__ID" => *value = id.clone(),
                "SDP_DATA_DIR" => *value = data.path().display().to_string(),
                _ => {}
            }
        }
        let process = spawn_logged(
            stack.logs_dir.path(),
            &format!("agent-{id}"),
            &Stack::agent_binary(),
            &[],
            &env,
        );
        let agent = ExtraAgent {
            _containers: sdp_testkit::ContainerCleanup::new("sdp.agent", &id),
            id,
            _data: data,
            _process: process,
        };
        wait_online(stack, token, &agent.id).await;
        agent
    }
}

async fn wait_online(stack: &Stack, token: &str, id: &str) {
    sdp_testkit::wait_for(
        &format!("agent {id} online"),
        Duration::from_secs(30),
        || async {
            let (_, agents) = stack.get(token, "/api/agents").await;
            agents
                .as_array()?
                .iter()
                .any(|a| a["id"] == id && a["online"] == true)
                .then_some(())
        },
    )
    .await;
}

/// Containers (running or not) of (sandbox, service) across every agent.
fn containers_of(sandbox: &str, service: &str) -> Vec<String> {
    let of_sandbox = sdp_testkit::containers_with_label("sdp.sandbox", sandbox);
    sdp_testkit::containers_with_label("sdp.service", service)
        .into_iter()
        .filter(|c| of_sandbox.contains(c))
        .collect()
}

async fn deploy_running(stack: &Stack, token: &str, sandbox: &str, branch: &str) -> Value {
    let id = stack.deploy(token, sandbox, branch).await;
    let deployment = stack.wait_settled(token, &id).await;
    assert_eq!(deployment["status"], "running", "{deployment}");
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
        placed.push(deployment["agent_id"].as_str().expect("agent").to_owned());
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
        assert_eq!(deployment["agent_id"], holder.as_str(), "round {round}");
        assert_eq!(deployment["commit"], commit.as_str());
        assert_eq!(
            containers_of("spread0", REPO).len(),
            1,
            "round {round}: one container of spread0/users"
        );
        let answer = stack
            .get_service(&format!("{}/", deployment["url"].as_str().expect("url")))
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
    assert_eq!(first["agent_id"], stack.agent_id.as_str());
    let other = ExtraAgent::start(&stack, &token).await;

    stack.kill_agent();
    // The holder is gone (SIGKILL: its container keeps running): the next
    // deploy goes to the other agent.
    let moved = deploy_running(&stack, &token, "moving", BRANCH).await;
    assert_eq!(moved["agent_id"], other.id.as_str(), "{moved}");
    let (_, old) = stack
        .get(
            &token,
            &format!("/api/deployments/{}", first["id"].as_str().expect("id")),
        )
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
    assert_eq!(containers_of("moving", REPO).len(), 1);
    let answer = stack
        .get_service(&format!("{}/", moved["url"].as_str().expect("url")))
        .await;
    assert_eq!(answer["branch"], BRANCH);
    // And the service stays where it moved.
    let again = deploy_running(&stack, &token, "moving", BRANCH).await;
    assert_eq!(again["agent_id"], other.id.as_str());
    assert_eq!(containers_of("moving", REPO).len(), 1);
    stack.shutdown().await;
}

/// A sandbox's services placed on two micro agents: the gateway (on the
/// gateway agent) routes to both, across agents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_reaches_services_placed_on_different_agents() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    crate::routing::setup(&stack, &token).await;
    let other = ExtraAgent::start(&stack, &token).await;
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
    let (_, view) = stack.get(&token, "/api/sandboxes/across").await;
    let agent_of = |repo: &str| -> String {
        view["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["repo"] == repo))
            .and_then(|s| s["deployment_id"].as_str())
            .expect("deployment")
            .to_owned()
    };
    let users = stack
        .get(&token, &format!("/api/deployments/{}", agent_of("users")))
        .await
        .1;
    let orders = stack
        .get(&token, &format!("/api/deployments/{}", agent_of("orders")))
        .await
        .1;
    let placed = [
        users["agent_id"].as_str().expect("agent").to_owned(),
        orders["agent_id"].as_str().expect("agent").to_owned(),
    ];
    assert_ne!(placed[0], placed[1], "the two services on two agents");
    assert!(placed.contains(&other.id) && placed.contains(&stack.agent_id));
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
    stack.shutdown().await;
}
