//! How a service runs: `sdp.toml`'s command (with `${PORT}`), env and
//! working_dir; a template's overrides over them and the environment's env
//! under them; what is refused (reserved keys, a working_dir the checkout
//! lacks). The realistic fixture (cmd/, internal/, vendor/, web/, Go 1.22)
//! on a micro agent, and a gateway honouring the same keys. Real
//! nats-server, git server, go, php and Docker.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{TestAgent, World, get, phases, system_lines};
use sdp_agentlib::{GoFlavour, PhpFlavour};
use sdp_bus::{
    DeployAccepted, DeployRequest, DeploymentId, Event, Reply, RpcErrorCode, ServiceOverrides,
    Status, encode, subject,
};
use sdp_testkit::realistic_fixture::{
    REALISTIC_PORT, REALISTIC_SDP_TOML_GREETING, REALISTIC_STYLE_CSS,
};
use sdp_testkit::{
    PhpGatewayFixture, RealisticGoFixture, ReposDir, containers_with_label, ensure_busybox_image,
    ensure_php_image, realistic_sdp_toml,
};

const PASSWORD: &str = "canary-Pw-service-settings";
const SANDBOX: &str = "alpha";
const REPO: &str = "shop";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// Every event, encoded, is free of `secret`.
fn assert_absent(events: &[Event], secret: &str) {
    for event in events {
        let text = String::from_utf8(encode(event)).expect("utf8");
        assert!(!text.contains(secret), "{secret:?} is in the log: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realistic_service_runs_as_sdp_toml_says_and_overrides_and_refusals_apply() {
    let world = World::start(PASSWORD).await;
    let fixture = RealisticGoFixture::create(&world.git, REPO, &["main"]);
    let repos = ReposDir::new();
    repos.add(REPO, &world.git.url(REPO));
    let micro = TestAgent::start(
        &world,
        "svc",
        Arc::new(GoFlavour::default()),
        ensure_busybox_image(),
        repos,
        // The fixture's go.mod asks for Go >= 1.22: the agent picks it
        // from its toolchains (`/usr/lib/go-1.22` beside Debian's 1.19).
        |_| {},
    )
    .await;

    // (a) As sdp.toml says; the environment's GREETING is under sdp.toml's,
    // its DATABASE_URL (set nowhere else) comes through.
    let request = DeployRequest {
        env: env(&[
            ("GREETING", "from the environment"),
            ("DATABASE_URL", "postgres://db.environment/shop"),
        ]),
        ..common::deploy_request(SANDBOX, REPO, "main", PASSWORD)
    };
    let (events, status, url, error) = micro.deploy_and_wait(&world, &request).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    let url = url.expect("url");
    let logs = system_lines(&events);
    let port = REALISTIC_PORT;
    assert!(
        logs.iter().any(|l| l.starts_with("settings (sdp.toml")
            && l.contains(&format!("port {port}"))
            && l.contains("health path /status")
            && l.contains(&format!("command /sdp/app -listen=:{port}"))
            && l.contains("working dir web")
            && l.contains("env keys GREETING")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("go 1.22.") && l.ends_with("(go.mod asks >= 1.22)")),
        "built by Go 1.22, chosen from go.mod: {logs:#?}"
    );
    assert!(
        logs.contains(&"$ go build -trimpath -mod=vendor -o /sdp/app ./cmd/shop"),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.starts_with("starting container ")
            && l.ends_with(&format!(": /sdp/app -listen=:{port} in /src/web"))),
        "{logs:#?}"
    );
    assert!(
        logs.contains(&"health check of /status passed"),
        "{logs:#?}"
    );
    // Values are never logged, only keys.
    assert_absent(&events, REALISTIC_SDP_TOML_GREETING);
    assert_absent(&events, "postgres://db.environment");

    assert_eq!(get(&format!("{url}/status")).await, (200, "ok".to_owned()));
    let (code, page) = get(&format!("{url}/")).await;
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(&format!(
            "<h1 id=\"greeting\">{REALISTIC_SDP_TOML_GREETING}</h1>"
        )),
        "{page}"
    );
    assert_eq!(
        get(&format!("{url}/static/style.css")).await,
        (200, REALISTIC_STYLE_CSS.to_owned())
    );
    let info = get_json(&format!("{url}/api/info")).await;
    assert_eq!(info["greeting"], REALISTIC_SDP_TOML_GREETING);
    assert_eq!(info["database_url"], "postgres://db.environment/shop");
    assert_eq!(info["listen"], format!(":{port}"));
    assert_eq!(info["log_level"], "info");
    assert_eq!(info["cwd"], "/src/web");
    assert_eq!(info["sandbox"], SANDBOX);

    // (b) A template's overrides (command and env) beat sdp.toml's; the
    // environment stays under both. The build is reused: only the
    // container changes.
    let templated = DeployRequest {
        deployment_id: DeploymentId::generate(),
        overrides: ServiceOverrides {
            command: Some(vec![
                "/sdp/app".into(),
                "-listen=:${PORT}".into(),
                "-log-level=debug".into(),
            ]),
            env: env(&[("GREETING", "from the template")]),
            ..Default::default()
        },
        reuse_build: true,
        ..request.clone()
    };
    let (events, status, url, error) = micro.deploy_and_wait(&world, &templated).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert!(!phases(&events).contains(&Status::Building), "{events:#?}");
    let url = url.expect("url");
    let info = get_json(&format!("{url}/api/info")).await;
    assert_eq!(info["greeting"], "from the template");
    assert_eq!(info["log_level"], "debug");
    assert_eq!(info["listen"], format!(":{port}"));
    assert_eq!(info["database_url"], "postgres://db.environment/shop");

    // A working_dir the checkout lacks fails before Docker: the running
    // container stays.
    let running = containers_with_label("sdp.agent", &micro.id);
    let mut missing_dir = DeployRequest {
        deployment_id: DeploymentId::generate(),
        ..templated.clone()
    };
    missing_dir.overrides.working_dir = Some("web/nope".into());
    let (events, status, _, error) = micro.deploy_and_wait(&world, &missing_dir).await;
    assert_eq!(status, Status::Failed, "{events:#?}");
    let error = error.expect("error");
    assert!(
        error.contains("working_dir \"web/nope\" does not exist in the checkout"),
        "{error}"
    );
    assert_eq!(containers_with_label("sdp.agent", &micro.id), running);
    assert_eq!(get(&format!("{url}/status")).await.0, 200);

    // A reserved key in the request's env is refused before anything
    // starts, by name.
    for key in ["PORT", "SDP_COMMIT"] {
        let mut hostile = common::deploy_request(SANDBOX, REPO, "main", PASSWORD);
        hostile.env.insert(key.into(), "1".into());
        let reply: Reply<DeployAccepted> = world
            .request(subject::deploy_request("micro"), &hostile)
            .await;
        let err = reply.into_result().expect_err("refused");
        assert_eq!(err.code, RpcErrorCode::BadRequest);
        assert!(
            err.message
                .contains(&format!("env key \"{key}\" is reserved")),
            "{}",
            err.message
        );
    }

    // (c) A reserved key in sdp.toml fails the deployment before the build.
    let toml = realistic_sdp_toml(REPO).replace("[env]\n", "[env]\nPORT = \"80\"\n");
    fixture.push_file("main", "sdp.toml", &toml);
    let request = common::deploy_request(SANDBOX, REPO, "main", PASSWORD);
    let (events, status, _, error) = micro.deploy_and_wait(&world, &request).await;
    assert_eq!(status, Status::Failed, "{events:#?}");
    let error = error.expect("error");
    assert!(
        error.contains("invalid sdp.toml: env key \"PORT\" is reserved"),
        "{error}"
    );
    assert!(!phases(&events).contains(&Status::Building), "{events:#?}");
    micro.stop().await;
}

/// Answers every path with JSON of what the gateway container got.
const GATEWAY_PUBLIC_INDEX: &str = r#"<?php
header('Content-Type: application/json');
echo json_encode([
    'greeting' => getenv('GREETING'),
    'upstream' => getenv('USERS_URL'),
    'routes_file' => getenv('SDP_ROUTES_FILE'),
    'cwd' => getcwd(),
    'memory_limit' => ini_get('memory_limit'),
]);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_honours_command_env_and_working_dir() {
    let world = World::start(PASSWORD).await;
    let fixture = PhpGatewayFixture::create(&world.git, "gw", &["main"]);
    fixture.remove_file("main", "composer.json");
    fixture.push_file("main", "public/index.php", GATEWAY_PUBLIC_INDEX);
    fixture.push_file(
        "main",
        "sdp.toml",
        "working_dir = \"public\"\n\n[env]\nGREETING = \"gateway sdp.toml\"\n",
    );
    let repos = ReposDir::new();
    repos.add("gw", &world.git.url("gw"));
    let gateway = TestAgent::start(
        &world,
        "svcgw",
        Arc::new(PhpFlavour),
        ensure_php_image(),
        repos,
        |config| config.health.path = "/healthz".into(),
    )
    .await;

    // The default command serves public/index.php, from public/.
    let request = DeployRequest {
        env: env(&[
            ("GREETING", "from the environment"),
            ("USERS_URL", "http://users.baseline"),
        ]),
        ..common::deploy_request(SANDBOX, "gw", "main", PASSWORD)
    };
    let (events, status, url, error) = gateway.deploy_and_wait(&world, &request).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    let logs = system_lines(&events);
    assert!(
        logs.iter().any(|l| l.starts_with("starting container ")
            && l.ends_with(": php -S 0.0.0.0:8080 /app/public/index.php in /app/public")),
        "{logs:#?}"
    );
    let info = get_json(&format!("{}/anything", url.expect("url"))).await;
    assert_eq!(info["greeting"], "gateway sdp.toml");
    assert_eq!(info["upstream"], "http://users.baseline");
    assert_eq!(info["routes_file"], "/etc/sdp/routes.json");
    assert_eq!(info["cwd"], "/app/public");

    // A template's command and env over sdp.toml's.
    let request = DeployRequest {
        deployment_id: DeploymentId::generate(),
        overrides: ServiceOverrides {
            command: Some(
                [
                    "php",
                    "-d",
                    "memory_limit=77M",
                    "-S",
                    "0.0.0.0:${PORT}",
                    "/app/public/index.php",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            env: env(&[("GREETING", "gateway template")]),
            ..Default::default()
        },
        reuse_build: true,
        ..request
    };
    let (events, status, url, error) = gateway.deploy_and_wait(&world, &request).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    let info = get_json(&format!("{}/anything", url.expect("url"))).await;
    assert_eq!(info["greeting"], "gateway template");
    assert_eq!(info["memory_limit"], "77M");
    assert_eq!(info["upstream"], "http://users.baseline");
    gateway.stop().await;
}
