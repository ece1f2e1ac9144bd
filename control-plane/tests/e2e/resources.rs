//! Sandbox resources end to end on real parts: a template declares a
//! postgres seeded from an SQL file of a fixture repo's branch, a mariadb
//! seeded the same way and a redis; the images are made by the test from
//! the host's Debian packages (`packaging/images/resource-rootfs.sh`).
//! Deploying the template starts them before the service, whose container
//! gets each URL under the template's variable. The seed data is there
//! (checked with the Debian clients psql, mariadb and redis-cli through
//! the URL's host and port), survives a redeploy of the service and a
//! restart of the agent (same container), a reset drops it and seeds
//! anew on the same URL (also through `sdp resource reset`, after `sdp
//! resource ls`); the password is shown to the owner only; the
//! sandbox's deletion removes containers and volumes.

use std::process::Command;

use sdp_api::{
    NewSandbox, RepoBranch, ResourceSpec, ResourceState, SandboxResource, TemplateBody,
    TemplateDeploy,
};
use sdp_bus::{ResourceEngine, ResourceSeed, Status};
use sdp_testkit::{ensure_resource_image, unique_id};

use crate::common::*;

/// The fixture branch the seeds are committed to.
const SEED_BRANCH: &str = BRANCH;
const PG_SEED: &str = "CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL);\n\
     INSERT INTO people (name) VALUES ('ada'), ('grace');\n";
const MARIA_SEED: &str = "CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(20));\n\
     INSERT INTO items VALUES (1, 'seeded');\n";

/// `scheme://user:password@host:port/db` → (password, host, port).
pub(crate) fn url_parts(url: &str) -> (String, String, String) {
    let rest = url.split_once("://").expect("scheme").1;
    let (userinfo, hostpart) = rest.split_once('@').expect("userinfo");
    let password = userinfo.split_once(':').expect("password").1.to_owned();
    let hostport = hostpart.split('/').next().expect("host");
    let (host, port) = hostport.rsplit_once(':').expect("port");
    (password, host.to_owned(), port.to_owned())
}

/// Runs a Debian client with argv only; the password goes by env.
pub(crate) fn client(program: &str, args: &[&str], env: (&str, &str)) -> String {
    let out = Command::new(program)
        .args(args)
        .env(env.0, env.1)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn psql(url: &str, sql: &str) -> String {
    let (password, host, port) = url_parts(url);
    client(
        "psql",
        &[
            "-h", &host, "-p", &port, "-U", "sdp", "-d", "app", "-tAc", sql,
        ],
        ("PGPASSWORD", &password),
    )
}

fn find<'a>(resources: &'a [SandboxResource], name: &str) -> &'a SandboxResource {
    resources
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("resource {name} in {resources:?}"))
}

pub(crate) fn resource_containers(agent_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=sdp.agent={agent_id}"),
            "--filter",
            "label=sdp.resource",
        ])
        .output()
        .expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

pub(crate) fn resource_volumes(agent_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=sdp.agent={agent_id}"),
        ])
        .output()
        .expect("docker volume ls");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The env of the container a deployment started (`KEY=VALUE` items).
pub(crate) fn container_env(deployment: &str) -> Vec<String> {
    let containers = sdp_testkit::containers_with_label("sdp.deployment", deployment);
    assert_eq!(containers.len(), 1, "one container of {deployment}");
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            &containers[0],
        ])
        .output()
        .expect("docker inspect");
    serde_json::from_slice(&out.stdout).expect("env JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_databases_survive_redeploys_and_restarts_and_reset_seeds_anew() {
    let images: Vec<(String, String)> = [
        ("SDP_AGENT__RESOURCES__POSTGRES_IMAGE", "postgres"),
        ("SDP_AGENT__RESOURCES__MARIADB_IMAGE", "mariadb"),
        ("SDP_AGENT__RESOURCES__REDIS_IMAGE", "redis"),
    ]
    .into_iter()
    .map(|(key, engine)| (key.to_owned(), ensure_resource_image(engine)))
    .collect();
    let mut stack = Stack::start_with(StackOptions {
        agent: false,
        ..StackOptions::default()
    })
    .await;
    stack.agent_extra_env = images;
    stack.start_agent().await;
    stack.fixture.push_file(SEED_BRANCH, "db/seed.sql", PG_SEED);
    stack
        .fixture
        .push_file(SEED_BRANCH, "db/maria.sql", MARIA_SEED);

    let owner = stack.login_as(USER).await;
    let other = stack.login_as("eve").await;
    let template = unique_id("res-tpl");
    let sandbox = unique_id("res");
    let seed = |path: &str| {
        Some(ResourceSeed::Repo {
            repo: REPO.to_owned(),
            branch: SEED_BRANCH.to_owned(),
            path: path.to_owned(),
        })
    };
    let spec = |name: &str, engine, env_var: &str, seed| ResourceSpec {
        name: name.to_owned(),
        engine,
        env_var: env_var.to_owned(),
        seed,
    };
    owner
        .create_template(&TemplateBody {
            name: Some(template.clone()),
            environment: None,
            gateway: None,
            services: vec![RepoBranch {
                repo: REPO.to_owned(),
                branch: "main".to_owned(),
                overrides: Default::default(),
            }],
            resources: vec![
                spec(
                    "db",
                    ResourceEngine::Postgres,
                    "DATABASE_URL",
                    seed("db/seed.sql"),
                ),
                spec(
                    "maria",
                    ResourceEngine::Mariadb,
                    "MYSQL_URL",
                    seed("db/maria.sql"),
                ),
                spec("cache", ResourceEngine::Redis, "REDIS_URL", None),
            ],
            ..Default::default()
        })
        .await
        .expect("create template");
    owner
        .create_sandbox(&NewSandbox {
            name: sandbox.clone(),
            template: Some(template.clone()),
            ..NewSandbox::default()
        })
        .await
        .expect("create sandbox");

    let started = owner
        .deploy_template(&sandbox, &TemplateDeploy::default())
        .await
        .expect("deploy template");
    let first = started.deployments[0].id.to_string();
    wait_for_status(&owner, &first, Status::Running).await;

    let resources = owner.resources(&sandbox).await.expect("resources");
    assert_eq!(resources.len(), 3, "{resources:?}");
    for resource in &resources {
        assert_eq!(resource.state, ResourceState::Ready, "{resource:?}");
        assert!(resource.size_bytes > 0, "{resource:?}");
    }
    let db_url = find(&resources, "db").url.clone().expect("db url");
    assert!(db_url.starts_with("postgres://sdp:"), "{db_url}");
    let env = container_env(&first);
    assert!(env.contains(&format!("DATABASE_URL={db_url}")), "{env:?}");
    for key in ["MYSQL_URL=mysql://", "REDIS_URL=redis://"] {
        assert!(env.iter().any(|kv| kv.starts_with(key)), "{key} in {env:?}");
    }
    // Anyone else sees the URL without its password.
    let seen = other.resources(&sandbox).await.expect("resources");
    let hidden = find(&seen, "db").url.clone().expect("url");
    assert!(hidden.contains(":***@"), "{hidden}");
    let (password, _, _) = url_parts(&db_url);
    assert!(!format!("{seen:?}").contains(&password));
    let err = other
        .reset_resource(&sandbox, "db")
        .await
        .expect_err("not the owner");
    assert_eq!(err.status(), Some(403), "{err}");

    // The seed is there; data written survives a redeploy of the service.
    assert_eq!(
        psql(&db_url, "SELECT name FROM people ORDER BY id"),
        "ada\ngrace"
    );
    psql(&db_url, "INSERT INTO people (name) VALUES ('added')");
    let maria_url = find(&resources, "maria").url.clone().expect("maria url");
    let (maria_pw, maria_host, maria_port) = url_parts(&maria_url);
    let maria = |sql: &str| {
        client(
            "mariadb",
            &[
                "-h",
                &maria_host,
                "-P",
                &maria_port,
                "-u",
                "sdp",
                "-N",
                "app",
                "-e",
                sql,
            ],
            ("MYSQL_PWD", &maria_pw),
        )
    };
    assert_eq!(maria("SELECT label FROM items"), "seeded");
    let redis_url = find(&resources, "cache").url.clone().expect("redis url");
    let (redis_pw, redis_host, redis_port) = url_parts(&redis_url);
    let redis = |args: &[&str]| {
        let mut argv = vec!["-h", &redis_host, "-p", &redis_port];
        argv.extend_from_slice(args);
        client("redis-cli", &argv, ("REDISCLI_AUTH", &redis_pw))
    };
    assert_eq!(redis(&["SET", "k", "v"]), "OK");
    assert_eq!(redis(&["GET", "k"]), "v");

    let containers = resource_containers(&stack.agent_id);
    assert_eq!(containers.len(), 3, "{containers:?}");
    stack
        .deploy_and_wait(&owner, &sandbox, "main", Status::Running)
        .await;
    assert_eq!(
        psql(&db_url, "SELECT name FROM people ORDER BY id"),
        "ada\ngrace\nadded"
    );

    // The agent restarts (and is reconciled): the same containers serve
    // the same data, and the next deploy gets the same URL.
    stack.kill_agent();
    stack.start_agent().await;
    let redeployed = stack
        .deploy_and_wait(&owner, &sandbox, "main", Status::Running)
        .await;
    assert_eq!(resource_containers(&stack.agent_id), containers);
    assert_eq!(
        psql(&db_url, "SELECT name FROM people ORDER BY id"),
        "ada\ngrace\nadded"
    );
    assert_eq!(redis(&["GET", "k"]), "v");
    let env = container_env(redeployed.id.as_str());
    assert!(env.contains(&format!("DATABASE_URL={db_url}")), "{env:?}");

    // A reset drops the data and seeds anew, on the same URL.
    let reset = owner.reset_resource(&sandbox, "db").await.expect("reset");
    assert_eq!(reset.state, ResourceState::Ready);
    assert_eq!(reset.url.as_deref(), Some(db_url.as_str()));
    assert_eq!(
        psql(&db_url, "SELECT name FROM people ORDER BY id"),
        "ada\ngrace"
    );

    // The CLI lists them and resets one.
    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp.run(&["resource", "ls", &sandbox]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    for word in [
        "db",
        "postgres",
        "ready",
        "DATABASE_URL",
        "maria",
        "cache",
        &db_url,
    ] {
        assert!(listed.contains(word), "{word} in {listed}");
    }
    let out = sdp.run(&["resource", "reset", &sandbox, "cache"]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    assert_eq!(
        redis(&["EXISTS", "k"]),
        "0",
        "the reset dropped redis's data"
    );

    // Deleting the sandbox removes its resources' containers and volumes.
    owner.delete_sandbox(&sandbox).await.expect("delete");
    assert!(resource_containers(&stack.agent_id).is_empty());
    assert!(resource_volumes(&stack.agent_id).is_empty());
    let logs = stack.process_output();
    for (file, text) in &logs {
        assert!(!text.contains(&password), "the password leaked into {file}");
    }
}

/// The figure of docs/BENCHMARKS.md "time to a seeded Postgres resource
/// ready": a reset is exactly that path (volume dropped, container made,
/// initdb, seed from the repo branch, first accepted connection), timed
/// from the API request to its answer. Run with
/// `cargo nextest run -p sdp-control-plane --test e2e resources::bench
/// --run-ignored only --no-capture` (`SDP_BENCH_ROUNDS`, default 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on purpose"]
async fn bench_seeded_postgres_ready() {
    let rounds: usize = std::env::var("SDP_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let stack = steps::start_with_postgres().await;
    stack.fixture.push_file(SEED_BRANCH, "db/seed.sql", PG_SEED);
    let owner = stack.login_as(USER).await;
    let template = unique_id("bench-tpl");
    let sandbox = unique_id("bench");
    owner
        .create_template(&TemplateBody {
            name: Some(template.clone()),
            environment: None,
            gateway: None,
            services: vec![RepoBranch {
                repo: REPO.to_owned(),
                branch: "main".to_owned(),
                overrides: Default::default(),
            }],
            resources: vec![ResourceSpec {
                name: "db".to_owned(),
                engine: ResourceEngine::Postgres,
                env_var: "DATABASE_URL".to_owned(),
                seed: Some(ResourceSeed::Repo {
                    repo: REPO.to_owned(),
                    branch: SEED_BRANCH.to_owned(),
                    path: "db/seed.sql".to_owned(),
                }),
            }],
            ..Default::default()
        })
        .await
        .expect("create template");
    owner
        .create_sandbox(&NewSandbox {
            name: sandbox.clone(),
            template: Some(template),
            ..NewSandbox::default()
        })
        .await
        .expect("create sandbox");
    // The first deploy makes it (and warms the repo's git store).
    let started = owner
        .deploy_template(&sandbox, &TemplateDeploy::default())
        .await
        .expect("deploy template");
    wait_for_status(&owner, started.deployments[0].id.as_str(), Status::Running).await;
    let mut times = Vec::new();
    for _ in 0..rounds {
        let at = std::time::Instant::now();
        let reset = owner.reset_resource(&sandbox, "db").await.expect("reset");
        times.push(at.elapsed());
        let url = reset.url.expect("url");
        assert_eq!(psql(&url, "SELECT count(*) FROM people"), "2");
    }
    times.sort();
    let median = times[times.len() / 2];
    println!("| seeded postgres resource, reset to ready ({rounds} rounds) | median | min | max |");
    println!("|---|---|---|---|");
    println!(
        "| drop volume + new container + initdb + seed + first connection | {:.2} s | {:.2} s | {:.2} s |",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    );
    owner.delete_sandbox(&sandbox).await.expect("delete");
}
