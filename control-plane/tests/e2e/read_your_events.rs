//! Read-your-events: once the WebSocket has delivered an event,
//! REST shows it. Twenty deploys in a row, each read back the moment its
//! result arrives: the deployment (status, phases, URL, commit), the
//! sandbox view, and the route; and once the gateway has caught up, its
//! `routes.json` is the table REST shows.

use reqwest::StatusCode;
use sdp_bus::{EventBody, RouteSource, Status};
use serde_json::json;

use crate::common::*;
use crate::preview::{effective_route_set, gateway_routes, route_set, wait_converged};
use crate::routing::{deploy_template, setup};

const DEPLOYS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_after_a_result_on_the_websocket_shows_it() {
    let stack = Stack::start_with(StackOptions {
        gateway: true,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let client = stack.client_with(&token);
    setup(&stack, &token).await;
    let (status, body) = stack
        .post(
            &token,
            "/api/sandboxes",
            json!({ "name": "ryw", "template": "shop" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    deploy_template(&stack, &token, "ryw", json!({ "only": ["users"] })).await;
    wait_converged(&stack, &token, "ryw").await;

    for n in 0..DEPLOYS {
        let branch = if n % 2 == 0 { BRANCH } else { "main" };
        let id = stack.deploy(&token, "ryw", branch).await;
        let mut phases_seen = Vec::new();
        let mut result = None;
        stack
            .ws_follow(&token, &id, 0, |event| {
                match event.body {
                    EventBody::Phase { phase, .. } => phases_seen.push(phase),
                    EventBody::Result {
                        status,
                        url,
                        commit,
                        ..
                    } => result = Some((status, url, commit)),
                    _ => {}
                }
                true
            })
            .await;
        let (status, url, commit) = result.expect("a result event");
        assert_eq!(status, Status::Running, "deploy {n}: {url:?}");
        // Read at once: no waiting, no retry.
        let deployment = client.deployment(&id).await.expect("the deployment");
        let view = client.sandbox("ryw").await.expect("sandbox ryw");
        let routes = client.routes("ryw").await.expect("routes of ryw");

        assert_eq!(
            deployment.status,
            Status::Running,
            "deploy {n}: {deployment:?}"
        );
        assert_eq!(deployment.url, url, "deploy {n}");
        assert_eq!(deployment.commit, commit, "deploy {n}");
        assert_eq!(
            deployment.commit.as_deref(),
            Some(stack.fixture.commit(branch).as_str()),
            "deploy {n}"
        );
        let phases: Vec<Status> = deployment.phases.iter().map(|p| p.phase).collect();
        for phase in &phases_seen {
            assert!(
                phases.contains(phase),
                "deploy {n}: {phase} not in {phases:?}"
            );
        }
        let users = view
            .services
            .iter()
            .find(|s| s.repo == REPO)
            .expect("users in the view");
        assert_eq!(
            users.deployment_id.as_deref(),
            Some(id.as_str()),
            "deploy {n}: {view:?}"
        );
        assert_eq!(users.status, Some(Status::Running), "deploy {n}: {view:?}");
        assert_eq!(users.branch.as_deref(), Some(branch), "deploy {n}");
        let users_route = routes
            .iter()
            .find(|r| r.service == REPO)
            .expect("users route");
        assert_eq!(
            users_route.source,
            RouteSource::Sandbox,
            "deploy {n}: {routes:?}"
        );
        assert_eq!(
            Some(users_route.target.as_str()),
            url.as_deref(),
            "deploy {n}: {routes:?}"
        );

        // The gateway catches up with the same table.
        let view = wait_converged(&stack, &token, "ryw").await;
        let gateway_url = view.gateway_url.as_deref().expect("gateway url");
        let running = gateway_routes(&stack, gateway_url)
            .await
            .expect("routes.json");
        assert_eq!(
            route_set(&running),
            effective_route_set(&routes),
            "deploy {n}"
        );
    }
    stack.shutdown().await;
}
