//! The gateway flavour, service settings (`sdp.toml`), re-applying a build,
//! list_repos / list_branches and teardown, against a real nats-server,
//! git smart-HTTP server, `go`, `php`, composer and Docker engine.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{TestAgent, USER, World, get, phases, system_lines};
use sdp_agentlib::{GoFlavour, PhpFlavour};
use sdp_bus::{
    BranchList, DeployRequest, Event, EventBody, GitCredential, ListBranches, ListRepos, LogStream,
    RepoList, Route, RouteSource, RpcErrorCode, Secret, Status, Teardown, TeardownDone, encode,
    subject,
};
use sdp_testkit::{
    BaselineServer, GoFixture, PhpGatewayFixture, ReposDir, containers_with_label,
    docker_bridge_gateway, ensure_busybox_image, ensure_php_image,
};

const PASSWORD: &str = "canary-Pw-routing-42";
const SANDBOX: &str = "alpha";

impl TestAgent {
    /// A micro agent (Go, busybox) whose published ports containers reach
    /// through the Docker bridge.
    async fn micro(world: &World, repos: ReposDir) -> TestAgent {
        TestAgent::start(
            world,
            "r",
            Arc::new(GoFlavour::default()),
            ensure_busybox_image(),
            repos,
            |config| config.advertise_host = docker_bridge_gateway(),
        )
        .await
    }

    async fn gateway(world: &World, repos: ReposDir) -> TestAgent {
        TestAgent::start(
            world,
            "r",
            Arc::new(PhpFlavour),
            ensure_php_image(),
            repos,
            |config| config.health.path = "/healthz".into(),
        )
        .await
    }

    fn request(&self, repo: &str, branch: &str) -> DeployRequest {
        common::deploy_request(SANDBOX, repo, branch, PASSWORD)
    }

    /// Sends the request and waits for its result: (events, status, url,
    /// error).
    async fn deploy(
        &self,
        world: &World,
        request: &DeployRequest,
    ) -> (Vec<Event>, Status, Option<String>, Option<String>) {
        let outcome = self.deploy_and_wait(world, request).await;
        for event in &outcome.0 {
            let text = String::from_utf8(encode(event)).expect("utf8");
            assert!(!text.contains(PASSWORD), "the password leaked: {text}");
        }
        outcome
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = get(url).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url} ({status}): {e}: {body}"))
}

/// This agent's containers of `sandbox` (other tests use the same names).
fn sandbox_containers(agent_id: &str, sandbox: &str) -> Vec<String> {
    let theirs = containers_with_label("sdp.sandbox", sandbox);
    containers_with_label("sdp.agent", agent_id)
        .into_iter()
        .filter(|c| theirs.contains(c))
        .collect()
}

fn routes(users: &str, users_source: RouteSource, orders: &str) -> Vec<Route> {
    vec![
        Route {
            service: "orders".into(),
            target: orders.into(),
            source: RouteSource::Environment,
        },
        Route {
            service: "users".into(),
            target: users.into(),
            source: users_source,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_to_the_sandbox_and_the_baseline_and_reapplies() {
    let world = World::start(PASSWORD).await;
    let baseline = BaselineServer::start();
    let _users = GoFixture::create(&world.git, "users", &["main", "feature/x"]);
    let gateway_fixture = PhpGatewayFixture::create(&world.git, "api-gateway", &["main"]);
    let micro_repos = ReposDir::new();
    micro_repos.add("users", &world.git.url("users"));
    let gateway_repos = ReposDir::new();
    gateway_repos.add("api-gateway", &world.git.url("api-gateway"));
    let micro = TestAgent::micro(&world, micro_repos).await;
    let gateway = TestAgent::gateway(&world, gateway_repos).await;

    // The sandbox's users service.
    let users_request = micro.request("users", "feature/x");
    let (events, status, users_url, error) = micro.deploy(&world, &users_request).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    let users_url = users_url.expect("url");
    let users_commit = _users.commit("feature/x");

    // The gateway: users → the sandbox, orders → the baseline.
    let mut request = gateway.request("api-gateway", "main");
    request.env = BTreeMap::from([
        ("USERS_URL".to_owned(), users_url.clone()),
        ("ORDERS_URL".to_owned(), baseline.url()),
    ]);
    request.routes = routes(&users_url, RouteSource::Sandbox, &baseline.url());
    let (events, status, url, error) = gateway.deploy(&world, &request).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert_eq!(
        phases(&events),
        [
            Status::Queued,
            Status::Fetching,
            Status::Building,
            Status::Starting
        ]
    );
    let logs = system_lines(&events);
    assert!(
        logs.contains(
            &"$ composer install --no-dev --no-interaction --no-progress --no-scripts --no-plugins"
        ),
        "{logs:#?}"
    );
    let url = url.expect("url");
    let first_container = containers_with_label("sdp.agent", &gateway.id);
    assert_eq!(first_container.len(), 1);

    let users = get_json(&format!("{url}/users/x")).await;
    assert_eq!(users["gateway"]["sandbox"], SANDBOX);
    assert_eq!(users["gateway"]["revision"], "1");
    assert_eq!(users["upstream_env"], "USERS_URL");
    assert_eq!(users["target"], format!("{users_url}/users/x"));
    assert_eq!(users["status"], 200);
    assert_eq!(users["body"]["branch"], "feature/x");
    assert_eq!(users["body"]["commit"], users_commit.as_str());
    assert_eq!(users["body"]["path"], "/users/x");

    let before = baseline.requests();
    let orders = get_json(&format!("{url}/orders/x")).await;
    assert_eq!(orders["body"]["source"], "baseline");
    assert_eq!(orders["body"]["service"], "orders");
    assert!(baseline.requests() > before);

    let table = get_json(&format!("{url}/routes")).await;
    assert_eq!(
        table,
        serde_json::to_value(&request.routes).expect("routes json")
    );
    assert_eq!(table[1]["source"], "sandbox");
    let routes_file = gateway
        .data
        .path()
        .join("routes")
        .join(SANDBOX)
        .join("api-gateway.json");
    assert!(routes_file.is_file());

    // Re-apply: users now goes to the baseline; no fetch, no build, the
    // container is recreated with the new env and routes.
    let git_requests = world.git.requests();
    let mut again = gateway.request("api-gateway", "main");
    again.env = BTreeMap::from([
        ("USERS_URL".to_owned(), baseline.url()),
        ("ORDERS_URL".to_owned(), baseline.url()),
    ]);
    again.routes = routes(&baseline.url(), RouteSource::Environment, &baseline.url());
    again.reuse_build = true;
    let (events, status, url, error) = gateway.deploy(&world, &again).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert_eq!(phases(&events), [Status::Queued, Status::Starting]);
    let commit = gateway_fixture.commit("main");
    assert_eq!(
        events[1].body,
        EventBody::Logs {
            stream: LogStream::System,
            first_line: 1,
            lines: vec![format!("re-applying {commit}: reusing the build")],
        }
    );
    assert!(
        matches!(&events[2].body, EventBody::Phase { phase: Status::Starting, commit: Some(c) } if *c == commit)
    );
    assert!(
        matches!(&events.last().expect("result").body, EventBody::Result { commit: Some(c), .. } if *c == commit)
    );
    assert_eq!(world.git.requests(), git_requests, "no fetch");
    let url = url.expect("url");
    let users = get_json(&format!("{url}/users/x")).await;
    assert_eq!(users["body"]["source"], "baseline", "{users}");
    let table = get_json(&format!("{url}/routes")).await;
    assert_eq!(table[1]["source"], "environment");
    let second_container = containers_with_label("sdp.agent", &gateway.id);
    assert_eq!(second_container.len(), 1);
    assert_ne!(second_container, first_container, "recreated");

    // A new push does not change a re-apply: the recorded build of the
    // branch is reused (revision 1) until a full deploy fetches it.
    gateway_fixture.push_revision("main", "2");
    let mut other = gateway.request("api-gateway", "main");
    other.reuse_build = true;
    other.env = again.env.clone();
    let (events, status, url, error) = gateway.deploy(&world, &other).await;
    assert_eq!(status, Status::Running, "{error:?}");
    assert_eq!(phases(&events), [Status::Queued, Status::Starting]);
    let body = get_json(&format!("{}/users/x", url.expect("url"))).await;
    assert_eq!(body["gateway"]["revision"], "1");
    let full = gateway.request("api-gateway", "main");
    let (events, status, url, error) = gateway.deploy(&world, &full).await;
    assert_eq!(status, Status::Running, "{error:?}");
    assert_eq!(phases(&events).len(), 4);
    let (code, body) = get(&format!("{}/users/x", url.expect("url"))).await;
    assert_eq!(code, 502, "USERS_URL is unset in this request: {body}");
    assert!(body.contains("\"revision\":\"2\""), "{body}");

    gateway.stop().await;
    micro.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_without_composer_json_warns_and_runs() {
    let world = World::start(PASSWORD).await;
    let fixture = PhpGatewayFixture::create(&world.git, "gw", &["main"]);
    fixture.remove_file("main", "composer.json");
    let repos = ReposDir::new();
    repos.add("gw", &world.git.url("gw"));
    let gateway = TestAgent::gateway(&world, repos).await;
    let request = gateway.request("gw", "main");
    let (events, status, url, error) = gateway.deploy(&world, &request).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert!(
        system_lines(&events).contains(&"no composer.json: skipping composer install"),
        "{events:#?}"
    );
    let (code, body) = get(&format!("{}/healthz", url.expect("url"))).await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    gateway.stop().await;

    // composer.json but no build image on the host: a clear error.
    fixture.push_file(
        "main",
        "composer.json",
        sdp_testkit::php_fixture::GATEWAY_COMPOSER_JSON,
    );
    let repos = ReposDir::new();
    repos.add("gw", &world.git.url("gw"));
    let gateway = TestAgent::start(
        &world,
        "r",
        Arc::new(PhpFlavour),
        ensure_php_image(),
        repos,
        |config| {
            config.health.path = "/healthz".into();
            config.build.image = "sdp-test-no-such-build:1".into();
        },
    )
    .await;
    let (events, status, _, error) = gateway.deploy(&world, &gateway.request("gw", "main")).await;
    assert_eq!(status, Status::Failed, "{events:#?}");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("build image sdp-test-no-such-build:1 is not loaded")
            && error.contains("packaging/images/make-build-image.sh"),
        "{error}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdp_toml_is_honoured_and_unknown_keys_fail() {
    let world = World::start(PASSWORD).await;
    let fixture = GoFixture::create(&world.git, "users", &["main"]);
    fixture.move_main("main", "cmd/users");
    let commit = fixture.push_file(
        "main",
        "sdp.toml",
        "port = 9090\nhealth_path = \"/healthz\"\nmain_package = \"cmd/users\"\n",
    );
    let repos = ReposDir::new();
    repos.add("users", &world.git.url("users"));
    // The agent's own health path would fail: sdp.toml's wins.
    let micro = TestAgent::start(
        &world,
        "r",
        Arc::new(GoFlavour::default()),
        ensure_busybox_image(),
        repos,
        |config| {
            config.health.path = "/no-such-path-but-the-fixture-answers-all".into();
            config.service.port = Some(7070);
        },
    )
    .await;
    let (events, status, url, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    let logs = system_lines(&events);
    assert!(
        logs.iter().any(|l| l.starts_with("settings (sdp.toml")
            && l.contains("port 9090")
            && l.contains("health path /healthz")
            && l.contains("main package cmd/users")),
        "{logs:#?}"
    );
    assert!(
        logs.contains(&"$ go build -trimpath -mod=mod -o /sdp/app ./cmd/users"),
        "{logs:#?}"
    );
    assert!(
        logs.contains(&"health check of /healthz passed"),
        "{logs:#?}"
    );
    let container = containers_with_label("sdp.agent", &micro.id);
    let ports = std::process::Command::new("docker")
        .args(["port", &container[0]])
        .output()
        .expect("docker port");
    assert!(String::from_utf8_lossy(&ports.stdout).starts_with("9090/tcp"));
    let body = get_json(&format!("{}/x", url.expect("url"))).await;
    assert_eq!(body["commit"], commit.as_str());

    // Overrides beat sdp.toml.
    let mut request = micro.request("users", "main");
    request.overrides.port = Some(9191);
    let (_, status, url, error) = micro.deploy(&world, &request).await;
    assert_eq!(status, Status::Running, "{error:?}");
    let body = get_json(&format!("{}/y", url.expect("url"))).await;
    assert_eq!(body["path"], "/y");
    let ports = std::process::Command::new("docker")
        .args(["port", &containers_with_label("sdp.agent", &micro.id)[0]])
        .output()
        .expect("docker port");
    assert!(String::from_utf8_lossy(&ports.stdout).starts_with("9191/tcp"));

    // An unknown key fails the deployment, naming the key.
    fixture.push_file("main", "sdp.toml", "port = 9090\ncolour = \"red\"\n");
    let (_, status, _, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Failed);
    let error = error.expect("error");
    assert!(
        error.contains("sdp.toml") && error.contains("colour"),
        "{error}"
    );

    // A main package outside the tree is refused.
    fixture.push_file("main", "sdp.toml", "main_package = \"../../etc\"\n");
    let (events, status, _, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Failed);
    assert!(error.expect("error").contains("main_package"));
    assert!(!phases(&events).contains(&Status::Building));
    micro.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_repos_and_list_branches() {
    let world = World::start(PASSWORD).await;
    let fixture = GoFixture::create(&world.git, "users", &["main", "feature/x"]);
    let repos = ReposDir::new();
    repos.add("users", &world.git.url("users"));
    repos.add("orders", &world.git.url("orders"));
    repos.add("leaky", "https://jo:secret@example.invalid/leaky.git");
    repos.add("local", "file:///srv/local.git");
    // `orders` has a commit with an sdp.toml on its HEAD.
    let orders = repos.path().join("orders");
    std::fs::write(
        orders.join("sdp.toml"),
        "port = 9090\nroute_env = \"ORDERS_API_URL\"\n",
    )
    .expect("write");
    for args in [
        &["add", "sdp.toml"][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
            "commit",
            "-q",
            "-m",
            "settings",
        ][..],
    ] {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(&orders)
            .args(args)
            .status()
            .expect("git");
        assert!(status.success());
    }
    let micro = TestAgent::micro(&world, repos).await;

    let list: RepoList = world
        .request::<_, RepoList>(
            subject::agent_rpc("micro", subject::LIST_REPOS),
            &ListRepos {},
        )
        .await
        .into_result()
        .expect("repos");
    let names: Vec<&str> = list.repos.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["orders", "users"], "refused origins are skipped");
    let users = &list.repos[1];
    assert_eq!(users.kind, "micro");
    assert_eq!(users.remote, world.git.url("users"));
    assert_eq!(users.default_branch.as_deref(), Some("main"));
    assert_eq!(users.settings, sdp_bus::ServiceSettings::default());
    let orders = &list.repos[0];
    assert_eq!(orders.settings.port, 9090);
    assert_eq!(orders.settings.route_env_for("orders"), "ORDERS_API_URL");

    let ask = |repo: &str, password: &str| ListBranches {
        repo: repo.into(),
        credential: GitCredential {
            username: USER.into(),
            password: Secret::new(password),
        },
    };
    let subject = subject::agent_rpc("micro", subject::LIST_BRANCHES);
    let branches: BranchList = world
        .request::<_, BranchList>(subject.clone(), &ask("users", PASSWORD))
        .await
        .into_result()
        .expect("branches");
    assert_eq!(
        branches
            .branches
            .iter()
            .map(|b| (b.name.as_str(), b.commit.clone()))
            .collect::<Vec<_>>(),
        [
            ("feature/x", fixture.commit("feature/x")),
            ("main", fixture.commit("main"))
        ]
    );
    let refused = world
        .request::<_, BranchList>(subject.clone(), &ask("users", "wrong-canary-9"))
        .await
        .into_result()
        .expect_err("refused");
    assert_eq!(refused.code, RpcErrorCode::Unauthorized);
    assert!(!refused.message.contains("wrong-canary-9"));
    for repo in ["nope", "../etc", "leaky"] {
        let err = world
            .request::<_, BranchList>(subject.clone(), &ask(repo, PASSWORD))
            .await
            .into_result()
            .expect_err("bad request");
        assert_eq!(err.code, RpcErrorCode::BadRequest, "{repo}: {err}");
    }
    micro.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_removes_containers_and_dirs_and_is_idempotent() {
    let world = World::start(PASSWORD).await;
    let _fixture = GoFixture::create(&world.git, "users", &["main"]);
    let repos = ReposDir::new();
    repos.add("users", &world.git.url("users"));
    let micro = TestAgent::micro(&world, repos).await;
    let (_, status, _, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Running, "{error:?}");
    // Another sandbox stays.
    let mut other = micro.request("users", "main");
    other.sandbox = "beta".into();
    let (_, status, _, error) = micro.deploy(&world, &other).await;
    assert_eq!(status, Status::Running, "{error:?}");
    assert_eq!(sandbox_containers(&micro.id, SANDBOX).len(), 1);
    let data = micro.data.path().to_path_buf();
    assert!(data.join("worktrees").join(SANDBOX).join("users").is_dir());
    assert!(
        data.join("state")
            .join(SANDBOX)
            .join("users.json")
            .is_file()
    );
    assert!(data.join("ports").join(SANDBOX).join("users").is_file());

    let subject = subject::agent_cmd(&micro.id, subject::TEARDOWN);
    let teardown = Teardown {
        sandbox: SANDBOX.into(),
    };
    let done: TeardownDone = world
        .request::<_, TeardownDone>(subject.clone(), &teardown)
        .await
        .into_result()
        .expect("teardown");
    assert_eq!(
        done,
        TeardownDone {
            containers_removed: 1,
            worktrees_removed: 1
        }
    );
    assert!(sandbox_containers(&micro.id, SANDBOX).is_empty());
    assert_eq!(
        sandbox_containers(&micro.id, "beta").len(),
        1,
        "beta's stays"
    );
    for dir in ["worktrees", "gitdirs", "builds", "routes", "state", "ports"] {
        assert!(!data.join(dir).join(SANDBOX).exists(), "{dir} removed");
    }
    assert!(data.join("worktrees").join("beta").join("users").is_dir());

    let again: TeardownDone = world
        .request::<_, TeardownDone>(subject.clone(), &teardown)
        .await
        .into_result()
        .expect("idempotent");
    assert_eq!(again, TeardownDone::default());
    let err = world
        .request::<_, TeardownDone>(
            subject,
            &Teardown {
                sandbox: "../etc".into(),
            },
        )
        .await
        .into_result()
        .expect_err("bad name");
    assert_eq!(err.code, RpcErrorCode::BadRequest);
    micro.stop().await;
}

/// The host port of a URL `http://host:port`.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_keeps_its_host_port_and_a_taken_port_or_name_fails_clearly() {
    let world = World::start(PASSWORD).await;
    let fixture = GoFixture::create(&world.git, "users", &["main"]);
    let repos = ReposDir::new();
    repos.add("users", &world.git.url("users"));
    let micro = TestAgent::micro(&world, repos).await;

    let (_, status, first, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Running, "{error:?}");
    let first = first.expect("url");
    // A redeploy of a new commit and a re-apply of the build keep the URL.
    fixture.push_revision("main", "r2");
    let (_, status, url, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Running, "{error:?}");
    assert_eq!(
        url.as_deref(),
        Some(first.as_str()),
        "redeploy keeps the port"
    );
    let mut reapply = micro.request("users", "main");
    reapply.reuse_build = true;
    let (_, status, url, error) = micro.deploy(&world, &reapply).await;
    assert_eq!(status, Status::Running, "{error:?}");
    assert_eq!(
        url.as_deref(),
        Some(first.as_str()),
        "re-apply keeps the port"
    );
    // Even with its container gone (removed by hand), the port is kept.
    let port = port_of(&first);
    for id in sandbox_containers(&micro.id, SANDBOX) {
        sdp_testkit::docker_rm(&id);
    }
    let (_, status, url, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Running, "{error:?}");
    assert_eq!(url.as_deref(), Some(first.as_str()));

    // Taken by another process while the container is away: a clear
    // failure naming the port, never a silent new one.
    for id in sandbox_containers(&micro.id, SANDBOX) {
        sdp_testkit::docker_rm(&id);
    }
    let holder = std::net::TcpListener::bind(("0.0.0.0", port)).expect("hold the port");
    let (_, status, url, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Failed, "{url:?}");
    let error = error.expect("error");
    assert!(
        error.contains(&format!("host port {port}")) && error.contains("taken"),
        "{error}"
    );
    assert!(sandbox_containers(&micro.id, SANDBOX).len() <= 1);
    drop(holder);
    let (_, status, url, error) = micro.deploy(&world, &micro.request("users", "main")).await;
    assert_eq!(status, Status::Running, "{error:?}");
    assert_eq!(url.as_deref(), Some(first.as_str()), "the port is back");

    // A container SDP did not make holds the name: refused, and left alone.
    let other_sandbox = "held";
    let name = sdp_agentlib::docker::container_name(&micro.id, other_sandbox, "users");
    let guard_label = format!("foreign-{}", micro.id);
    let _foreign_cleanup = sdp_testkit::ContainerCleanup::new("sdp.test", &guard_label);
    let foreign = sdp_testkit::docker_create_named(
        &name,
        &ensure_busybox_image(),
        &[("sdp.test", &guard_label)],
    );
    let mut request = micro.request("users", "main");
    request.sandbox = other_sandbox.into();
    let (_, status, _, error) = micro.deploy(&world, &request).await;
    assert_eq!(status, Status::Failed);
    let error = error.expect("error");
    assert!(
        error.contains(&name) && error.contains("docker rm -f"),
        "{error}"
    );
    assert!(
        sdp_testkit::docker_exists(&foreign),
        "the foreign container stays"
    );
    sdp_testkit::docker_rm(&foreign);
    micro.stop().await;
}
