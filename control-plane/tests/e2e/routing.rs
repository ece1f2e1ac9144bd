//! Sandboxes that route, on the real stack: agent-micro and
//! agent-gateway, the PHP gateway fixture in its own container, Go services
//! in theirs, and a baseline server standing for OpenShift.

use sdp_bus::Status;
use std::time::Duration;

use reqwest::StatusCode;
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
    sdp_testkit::wait_for(&what, Duration::from_secs(90), || async {
        let (_, view) = stack.get(token, &format!("/api/sandboxes/{sandbox}")).await;
        let url = view["gateway_url"].as_str()?.to_owned();
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
    let ids: Vec<String> = started["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
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
pub(crate) async fn latest_gateway(stack: &Stack, token: &str, sandbox: &str) -> Value {
    let (_, list) = stack
        .get(
            token,
            &format!("/api/deployments?sandbox={sandbox}&repo=gateway&limit=1"),
        )
        .await;
    list[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_to_sandbox_services_and_the_baseline() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    setup(&stack, &token).await;

    // Repos come from each agent's repos_dir, with their kind; branches
    // are listed with the user's credential.
    let (status, repos) = stack.get(&token, "/api/repos").await;
    assert_eq!(status, StatusCode::OK);
    let kind_of = |name: &str| {
        repos
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .map(|r| r["kind"].clone())
    };
    assert_eq!(kind_of("users"), Some(json!("micro")), "{repos}");
    assert_eq!(kind_of("orders"), Some(json!("micro")), "{repos}");
    assert_eq!(kind_of("gateway"), Some(json!("gateway")), "{repos}");
    let (status, branches) = stack.get(&token, "/api/repos/users/branches").await;
    assert_eq!(status, StatusCode::OK, "{branches}");
    let names: Vec<&str> = branches
        .as_array()
        .expect("branches")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["feature/x", "main"]);
    assert_eq!(branches[0]["commit"], stack.fixture.commit(BRANCH).as_str());
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
            stack.get(&token, "/api/sandboxes/alpha").await.1["gateway_url"]
                .as_str()
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
    let phases: Vec<&str> = gateway["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    assert!(
        !phases.contains(&"building") && !phases.contains(&"fetching"),
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
    let (_, alpha_deployments) = stack.get(&token, "/api/deployments?sandbox=alpha").await;
    for deployment in alpha_deployments.as_array().expect("array") {
        assert!(
            matches!(
                deployment["status"].as_str(),
                Some("stopped" | "failed" | "cancelled")
            ),
            "{deployment}"
        );
    }
    through_gateway(&stack, &token, "beta", "/users/1", from_sandbox("main")).await;
    stack.shutdown().await;
}
