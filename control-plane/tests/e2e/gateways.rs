//! One gateway per sandbox, always matching its routes: ten
//! sandboxes of one template deployed whole at once, with route changes
//! fired while they deploy. Every sandbox ends with exactly one running
//! gateway container whose env and `routes.json` are the route table REST
//! shows, on the URL it had first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use sdp_api::ListQuery;
use sdp_bus::{RouteSource, Status};
use serde_json::{Value, json};

use crate::common::*;
use crate::preview::{effective_route_set, gateway_routes, route_set, wait_converged};
use crate::routing::setup;

const SANDBOXES: usize = 10;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The gateway agent's containers of `sandbox`: (id, running, env).
fn gateway_containers(agent: &str, sandbox: &str) -> Vec<(String, bool, HashMap<String, String>)> {
    let ids = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=sdp.agent={agent}"),
        "--filter",
        &format!("label=sdp.sandbox={sandbox}"),
    ]);
    ids.lines()
        .map(|id| {
            let inspect: Value =
                serde_json::from_str(&docker(&["inspect", id])).expect("inspect JSON");
            let running = inspect[0]["State"]["Running"] == true;
            let env = inspect[0]["Config"]["Env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (id.to_owned(), running, env)
        })
        .collect()
}

/// The gateway URL `sandbox` shows now, if any.
async fn gateway_url(stack: &Stack, token: &str, sandbox: &str) -> Option<String> {
    let view = stack.client_with(token).sandbox(sandbox).await.ok()?;
    view.gateway_url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sandboxes_deployed_at_once_with_route_flips_end_with_one_matching_gateway_each() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    setup(&stack, &token).await;
    let baseline = stack.routing.as_ref().expect("routing").baseline.url();
    let gateway_agent = stack
        .routing
        .as_ref()
        .expect("routing")
        .gateway_agent_id
        .clone();
    let names: Vec<String> = (0..SANDBOXES).map(|n| format!("fleet{n}")).collect();
    for name in &names {
        let (status, body) = stack
            .post(
                &token,
                "/api/sandboxes",
                json!({ "name": name, "template": "shop" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // Every sandbox's whole template at once.
    let deploys = names.iter().map(|name| {
        let (stack, token) = (&stack, &token);
        async move {
            let (status, body) = stack
                .post(token, &format!("/api/sandboxes/{name}/deploy"), json!({}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{name}: {body}");
        }
    });
    futures::future::join_all(deploys).await;

    // While they deploy: the first gateway URL each sandbox shows, and
    // route flips: every sandbox gets a manual route for orders; the odd
    // ones have it reset again.
    let mut first_url: HashMap<String, String> = HashMap::new();
    for (n, name) in names.iter().enumerate() {
        let response = stack
            .http()
            .put(stack.url(&format!("/api/sandboxes/{name}/routes/orders")))
            .bearer_auth(&token)
            .json(&json!({ "target": baseline }))
            .send()
            .await
            .expect("put route");
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        if n % 2 == 1 {
            // Not a wait for anything: the reset comes a moment after the
            // change, while what the change started may still be going,
            // as a person flipping a route back would do it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let response = stack
                .http()
                .delete(stack.url(&format!("/api/sandboxes/{name}/routes/orders")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("reset route");
            assert_eq!(response.status(), StatusCode::NO_CONTENT, "{name}");
        }
        if let Some(url) = gateway_url(&stack, &token, name).await {
            first_url.insert(name.clone(), url);
        }
    }
    // Until each has shown one, keep looking while they converge.
    let first_url = RefCell::new(first_url);
    let all_shown = sdp_testkit::try_wait_for(DEPLOY_TIMEOUT, || async {
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !first_url.borrow().contains_key(*name))
            .collect();
        for name in missing {
            if let Some(url) = gateway_url(&stack, &token, name).await {
                first_url.borrow_mut().insert(name.clone(), url);
            }
        }
        (first_url.borrow().len() == names.len()).then_some(())
    })
    .await;
    let first_url = first_url.into_inner();
    if all_shown.is_none() {
        // Say why: the missing sandboxes' gateway deployments.
        let mut why = Vec::new();
        for name in names.iter().filter(|n| !first_url.contains_key(*n)) {
            let (_, gateways) = stack
                .get(
                    &token,
                    &format!("/api/deployments?sandbox={name}&repo=gateway"),
                )
                .await;
            let (_, view) = stack.get(&token, &format!("/api/sandboxes/{name}")).await;
            why.push(format!("{name}: {view}; gateway deployments: {gateways}"));
        }
        panic!(
            "no gateway URL in time for some of {names:?}: {first_url:?}\n{}",
            why.join("\n")
        );
    }

    let client = stack.client_with(&token);
    for (n, name) in names.iter().enumerate() {
        let view = wait_converged(&stack, &token, name).await;
        assert_eq!(
            view.gateway_url.as_deref(),
            Some(first_url[name].as_str()),
            "{name}: the gateway URL changed"
        );
        let routes = client.routes(name).await.expect("routes");
        let orders = routes
            .iter()
            .find(|r| r.service == "orders")
            .expect("orders route");
        let expected_source = if n % 2 == 1 {
            RouteSource::Sandbox
        } else {
            RouteSource::Manual
        };
        assert_eq!(orders.source, expected_source, "{name}: {routes:?}");

        let containers = gateway_containers(&gateway_agent, name);
        assert_eq!(
            containers.len(),
            1,
            "{name}: one gateway container: {containers:?}"
        );
        let (_, running, env) = &containers[0];
        assert!(running, "{name}: its gateway runs");
        for route in &routes {
            let key = route.env_key.as_str();
            assert_eq!(
                env.get(key).map(String::as_str),
                Some(route.target.as_str()),
                "{name}: {key} in the gateway's env"
            );
        }
        let running_routes = gateway_routes(&stack, &first_url[name])
            .await
            .expect("routes.json");
        assert_eq!(
            route_set(&running_routes),
            effective_route_set(&routes),
            "{name}"
        );
        // No gateway deployment failed on the way.
        let gateways = client
            .deployments(&ListQuery {
                sandbox: Some(name.clone()),
                repo: Some("gateway".to_owned()),
                limit: Some(500),
                ..ListQuery::default()
            })
            .await
            .expect("the gateway's deployments");
        for gateway in &gateways {
            assert!(
                matches!(gateway.status, Status::Running | Status::Stopped),
                "{name}: {gateway:?}"
            );
        }
    }
    stack.shutdown().await;
}
