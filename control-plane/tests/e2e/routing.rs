//! Sandboxes that route, on the real stack: agent-micro and
//! agent-gateway, the PHP gateway fixture in its own container, Go services
//! in theirs, and a baseline server standing for OpenShift.

use std::time::Duration;

use reqwest::StatusCode;
use sdp_api::{Deployment, ListQuery, TemplateDeployStarted};
use sdp_bus::Status;
use serde_json::{Value, json};

use crate::common::*;

pub(crate) async fn setup(stack: &Stack, token: &str) {
    let routing = stack.routing.as_ref().expect("gateway stack");
    let baseline = routing.baseline.url();
    let (status, body) = stack
        .post(
            token,
            "/api/environments",
            json!({ "name": "baseline", "vars": {
                "USERS_URL": baseline, "ORDERS_URL": baseline, "APP_ENV": "sandbox",
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = stack
        .post(token, "/api/templates", json!({
            "name": "shop", "environment": "baseline",
            "gateway": { "repo": "gateway", "branch": "main" },
            "services": [{ "repo": "users", "branch": "main" }, { "repo": "orders", "branch": "main" }],
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// GETs `path` through the sandbox's gateway until `check` accepts the
/// answer (re-applying the gateway takes a moment).
pub(crate) async fn through_gateway(
    stack: &Stack,
    token: &str,
    sandbox: &str,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("{sandbox} gateway {path}");
    let client = stack.client_with(token);
    sdp_testkit::wait_for(&what, Duration::from_secs(90), || async {
        let view = client.sandbox(sandbox).await.ok()?;
        let url = view.gateway_url?;
        let answer: Value = stack
            .http()
            .get(format!("{url}{path}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        check(&answer).then_some(answer)
    })
    .await
}

pub(crate) fn from_sandbox(branch: &'static str) -> impl Fn(&Value) -> bool {
    move |answer| answer["body"]["branch"] == branch
}

pub(crate) fn from_baseline(answer: &Value) -> bool {
    answer["body"]["source"] == "baseline"
}

pub(crate) async fn deploy_template(
    stack: &Stack,
    token: &str,
    sandbox: &str,
    body: Value,
) -> Vec<String> {
    let (status, started) = stack
        .post(token, &format!("/api/sandboxes/{sandbox}/deploy"), body)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let started: TemplateDeployStarted =
        serde_json::from_value(started).expect("a template deploy's answer");
    let ids: Vec<String> = started
        .deployments
        .iter()
        .map(|d| d.id.as_str().to_owned())
        .collect();
    for id in &ids {
        let deployment = stack.wait_settled(token, id).await;
        // A re-apply waits for the gateway to settle (it never cancels
        // it), then may replace it (stopped).
        let replaced = deployment.status == Status::Stopped && deployment.kind == "gateway";
        assert!(
            deployment.status == Status::Running || replaced,
            "{deployment:?}"
        );
    }
    ids
}

/// The newest gateway deployment of a sandbox.
pub(crate) async fn latest_gateway(stack: &Stack, token: &str, sandbox: &str) -> Deployment {
    let query = ListQuery {
        sandbox: Some(sandbox.to_owned()),
        repo: Some("gateway".to_owned()),
        limit: Some(1),
        ..ListQuery::default()
    };
    let list = stack
        .client_with(token)
        .deployments(&query)
        .await
        .expect("the gateway's deployments");
    list.into_iter()
        .next()
        .unwrap_or_else(|| panic!("no gateway deployment in {sandbox}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_to_sandbox_services_and_the_baseline() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let client = stack.client_with(&token);
    setup(&stack, &token).await;

    // Repos come from each agent's repos_dir, with their kind; branches
    // are listed with the user's credential.
    let repos = client.repos().await.expect("repos");
    let kind_of = |name: &str| {
        repos
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.kind.as_str())
    };
    assert_eq!(kind_of("users"), Some("micro"), "{repos:?}");
    assert_eq!(kind_of("orders"), Some("micro"), "{repos:?}");
    assert_eq!(kind_of("gateway"), Some("gateway"), "{repos:?}");
    let branches = client.branches("users").await.expect("branches of users");
    let names: Vec<&str> = branches.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["feature/x", "main"]);
    assert_eq!(branches[0].commit, stack.fixture.commit(BRANCH));
    let (status, _) = stack.get(&token, "/api/repos/ghost/branches").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = stack.get(&token, "/api/repos/..%2Fetc/branches").await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
        "{status}"
    );

    for (name, pinned) in [("alpha", false), ("beta", true)] {
        let (status, body) = stack
            .post(
                &token,
                "/api/sandboxes",
                json!({ "name": name, "template": "shop", "pinned": pinned }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // 1. alpha runs users@feature/x only: /users from the sandbox, /orders
    //    from the baseline.
    deploy_template(
        &stack,
        &token,
        "alpha",
        json!({ "branches": { "users": BRANCH }, "only": ["users"] }),
    )
    .await;
    let users = through_gateway(&stack, &token, "alpha", "/users/42", from_sandbox(BRANCH)).await;
    assert_eq!(users["upstream_env"], "USERS_URL");
    assert_eq!(users["gateway"]["sandbox"], "alpha");
    assert_eq!(
        users["body"]["commit"],
        stack.fixture.commit(BRANCH).as_str()
    );
    assert_eq!(users["body"]["path"], "/users/42");
    let orders = through_gateway(&stack, &token, "alpha", "/orders/7", from_baseline).await;
    assert_eq!(orders["body"]["service"], "orders");
    let routes: Value = stack
        .http()
        .get(format!(
            "{}/routes",
            client
                .sandbox("alpha")
                .await
                .expect("sandbox alpha")
                .gateway_url
                .expect("gateway url")
        ))
        .send()
        .await
        .expect("routes")
        .json()
        .await
        .expect("routes.json");
    assert!(
        routes.to_string().contains("\"sandbox\""),
        "routes.json: {routes}"
    );

    // 2. orders deployed into alpha: /orders flips to the sandbox, and the
    //    gateway is recreated without a rebuild.
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes/alpha/deployments",
            json!({ "repo": "orders", "branch": "feature/y" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    through_gateway(
        &stack,
        &token,
        "alpha",
        "/orders/7",
        from_sandbox("feature/y"),
    )
    .await;
    let gateway = latest_gateway(&stack, &token, "alpha").await;
    let phases: Vec<Status> = gateway.phases.iter().map(|p| p.phase).collect();
    assert!(
        !phases.contains(&Status::Building) && !phases.contains(&Status::Fetching),
        "the gateway was rebuilt: {phases:?}"
    );

    // 3. A manual route for users → the gateway follows; deleting it
    //    returns to the sandbox.
    let baseline = stack.routing.as_ref().expect("routing").baseline.url();
    let response = stack
        .http()
        .put(stack.url("/api/sandboxes/alpha/routes/users"))
        .bearer_auth(&token)
        .json(&json!({ "target": baseline }))
        .send()
        .await
        .expect("put route");
    assert_eq!(response.status(), StatusCode::OK);
    through_gateway(&stack, &token, "alpha", "/users/42", from_baseline).await;
    let response = stack
        .http()
        .delete(stack.url("/api/sandboxes/alpha/routes/users"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete route");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    through_gateway(&stack, &token, "alpha", "/users/42", from_sandbox(BRANCH)).await;

    // 4. beta runs users@main at the same time: each gateway reaches its own.
    deploy_template(&stack, &token, "beta", json!({ "only": ["users"] })).await;
    through_gateway(&stack, &token, "beta", "/users/1", from_sandbox("main")).await;
    through_gateway(&stack, &token, "alpha", "/users/1", from_sandbox(BRANCH)).await;

    // 5. Deleting alpha leaves nothing of it; beta is untouched.
    let gateway_agent = stack
        .routing
        .as_ref()
        .expect("routing")
        .gateway_agent_id
        .clone();
    let alpha_containers = |agent: &str| {
        let out = std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=sdp.agent={agent}"),
                "--filter",
                "label=sdp.sandbox=alpha",
            ])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(alpha_containers(&stack.agent_id), 2, "users and orders");
    assert_eq!(alpha_containers(&gateway_agent), 1, "the gateway");
    let response = stack
        .http()
        .delete(stack.url("/api/sandboxes/alpha"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(alpha_containers(&stack.agent_id), 0);
    assert_eq!(alpha_containers(&gateway_agent), 0);
    let gateway_data = stack
        .routing
        .as_ref()
        .expect("routing")
        .gateway_agent_data
        .path()
        .to_owned();
    for root in [stack.agent_data.path(), gateway_data.as_path()] {
        assert!(
            !root.join("worktrees").join("alpha").exists(),
            "a worktree of alpha is left in {}",
            root.display()
        );
    }
    let (status, _) = stack.get(&token, "/api/sandboxes/alpha/routes").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let alpha_deployments = client
        .deployments(&ListQuery {
            sandbox: Some("alpha".to_owned()),
            ..ListQuery::default()
        })
        .await
        .expect("alpha's deployments");
    for deployment in &alpha_deployments {
        assert!(
            matches!(
                deployment.status,
                Status::Stopped | Status::Failed | Status::Cancelled
            ),
            "{deployment:?}"
        );
    }
    through_gateway(&stack, &token, "beta", "/users/1", from_sandbox("main")).await;
    stack.shutdown().await;
}
