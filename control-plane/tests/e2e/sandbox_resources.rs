//! Resources a sandbox declares itself, on real parts (redis: the quickest
//! engine to start): `sdp sandbox create --resource` next to a template's
//! resource, a clash of variables refused (400 naming both, nothing
//! made), both made by the deploy with their URLs in the service's env;
//! the published port bound to the advertised address only and a wrong
//! password refused; the size kept current by the periodic poll after
//! data is written; `sdp resource add` and `rm` (its container and volume
//! gone at once, its variable at the next deploy).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use sdp_api::{
    NewSandbox, RepoBranch, ResourceOrigin, ResourceSpec, ResourceState, TemplateBody,
    TemplateDeploy,
};
use sdp_bus::{ResourceEngine, Status};
use sdp_testkit::{ensure_resource_image, unique_id, wait_for};

use crate::common::*;
use crate::resources::{container_env, resource_containers, resource_volumes, url_parts};

fn redis_cli(url: &str, password: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let (_, host, port) = url_parts(url);
    let mut child = Command::new("redis-cli")
        .args(["-h", &host, "-p", &port])
        .args(args)
        .env("REDISCLI_AUTH", password)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    if let Some(bytes) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(bytes)
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("redis-cli output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `HostConfig.PortBindings` of the resource's container, as JSON.
fn port_bindings(container: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .HostConfig.PortBindings}}",
            container,
        ])
        .output()
        .expect("docker inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bindings JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxs_own_resources_are_made_measured_contained_and_removed() {
    let image = ensure_resource_image("redis");
    let mut stack = Stack::start_with(StackOptions {
        agent: false,
        control_plane_env: pairs(&[(
            "SDP_CONTROL_PLANE__SANDBOXES__RESOURCE_SIZE_INTERVAL",
            "1s".into(),
        )]),
        ..StackOptions::default()
    })
    .await;
    stack.agent_extra_env = vec![("SDP_AGENT__RESOURCES__REDIS_IMAGE".to_owned(), image)];
    stack.start_agent().await;
    let owner = stack.login_as(USER).await;
    let template = unique_id("own-tpl");
    let sandbox = unique_id("own");
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
                name: "cache".to_owned(),
                engine: ResourceEngine::Redis,
                env_var: "REDIS_URL".to_owned(),
                seed: None,
            }],
            ..Default::default()
        })
        .await
        .expect("create template");

    // A variable the template's resource sets already: 400 naming both,
    // and no sandbox.
    let err = owner
        .create_sandbox(&NewSandbox {
            name: sandbox.clone(),
            template: Some(template.clone()),
            resources: vec![ResourceSpec {
                name: "sessions".to_owned(),
                engine: ResourceEngine::Redis,
                env_var: "REDIS_URL".to_owned(),
                seed: None,
            }],
            ..NewSandbox::default()
        })
        .await
        .expect_err("a clash");
    assert_eq!(err.status(), Some(400), "{err}");
    for word in ["cache", "sessions", "REDIS_URL"] {
        assert!(err.to_string().contains(word), "{word} in {err}");
    }
    assert_eq!(
        owner.sandbox(&sandbox).await.expect_err("none").status(),
        Some(404)
    );

    // The CLI creates it with one of its own; listed pending until the
    // deploy makes both.
    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp
        .run(&[
            "sandbox",
            "create",
            &sandbox,
            "--template",
            &template,
            "--resource",
            "queue=redis:QUEUE_URL",
        ])
        .await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    let listed = owner.resources(&sandbox).await.expect("resources");
    let seen: Vec<_> = listed
        .iter()
        .map(|r| (r.name.as_str(), r.state, r.origin))
        .collect();
    assert_eq!(
        seen,
        [
            ("cache", ResourceState::Pending, ResourceOrigin::Template),
            ("queue", ResourceState::Pending, ResourceOrigin::Sandbox),
        ]
    );
    let started = owner
        .deploy_template(&sandbox, &TemplateDeploy::default())
        .await
        .expect("deploy template");
    let first = started.deployments[0].id.to_string();
    wait_for_status(&owner, &first, Status::Running).await;
    let listed = owner.resources(&sandbox).await.expect("resources");
    assert!(
        listed.iter().all(|r| r.state == ResourceState::Ready),
        "{listed:?}"
    );
    let queue = listed.iter().find(|r| r.name == "queue").expect("queue");
    let queue_url = queue.url.clone().expect("url");
    let env = container_env(&first);
    assert!(env.contains(&format!("QUEUE_URL={queue_url}")), "{env:?}");
    assert!(
        env.iter().any(|kv| kv.starts_with("REDIS_URL=redis://")),
        "{env:?}"
    );

    // Containment: published on the advertised address only; the right
    // password works, a wrong one and none are refused.
    let (password, host, _) = url_parts(&queue_url);
    let container = format!("sdp-resource.{}.{sandbox}.queue", stack.agent_id);
    let bindings = port_bindings(&container);
    let bound = bindings["6379/tcp"][0]["HostIp"].as_str().expect("HostIp");
    assert_eq!(bound, host, "{bindings}");
    assert_ne!(bound, "0.0.0.0");
    assert_eq!(
        redis_cli(&queue_url, &password, &["PING"], None).trim(),
        "PONG"
    );
    for wrong in ["0123456789abcdefABCDEF0123456789", ""] {
        let answer = redis_cli(&queue_url, wrong, &["PING"], None);
        assert!(!answer.contains("PONG"), "{answer}");
        assert!(
            answer.contains("WRONGPASS") || answer.contains("NOAUTH"),
            "{answer}"
        );
    }

    // The size is polled: 4 MiB written shows within a bound.
    let before = queue.size_bytes;
    let big = vec![b'x'; 4 << 20];
    let answer = redis_cli(&queue_url, &password, &["-x", "SET", "big"], Some(&big));
    assert_eq!(answer.trim(), "OK");
    let grown = wait_for("the polled size to grow", Duration::from_secs(30), || {
        let owner = &owner;
        let sandbox = &sandbox;
        async move {
            let listed = owner.resources(sandbox).await.ok()?;
            let queue = listed.into_iter().find(|r| r.name == "queue")?;
            (queue.size_bytes >= before + (3 << 20) && queue.size_at.is_some()).then_some(queue)
        }
    })
    .await;
    assert!(grown.size_bytes > before, "{grown:?}");

    // `sdp resource add` declares one more (pending); `rm` takes the
    // sandbox's own off: container and volume now, variable at the next
    // deploy.
    let out = sdp
        .run(&["resource", "add", &sandbox, "jobs=redis:JOBS_URL"])
        .await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    let listed = owner.resources(&sandbox).await.expect("resources");
    let jobs = listed.iter().find(|r| r.name == "jobs").expect("jobs");
    assert_eq!(jobs.state, ResourceState::Pending);
    let out = sdp.run(&["resource", "rm", &sandbox, "jobs"]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    assert_eq!(resource_containers(&stack.agent_id).len(), 2);
    let out = sdp.run(&["resource", "rm", &sandbox, "queue"]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    assert_eq!(resource_containers(&stack.agent_id).len(), 1);
    let volumes = resource_volumes(&stack.agent_id);
    assert!(
        !volumes.iter().any(|v| v.ends_with(".queue")),
        "{volumes:?}"
    );
    let err = owner
        .delete_resource(&sandbox, "cache")
        .await
        .expect_err("a template's");
    assert_eq!(err.status(), Some(404), "{err}");
    let again = owner
        .delete_resource(&sandbox, "queue")
        .await
        .expect_err("gone");
    assert_eq!(again.status(), Some(404), "{again}");
    let listed = owner.resources(&sandbox).await.expect("resources");
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["cache"]
    );
    let redeployed = stack
        .deploy_and_wait(&owner, &sandbox, "main", Status::Running)
        .await;
    let env = container_env(redeployed.id.as_str());
    assert!(
        !env.iter().any(|kv| kv.starts_with("QUEUE_URL=")),
        "{env:?}"
    );
    assert!(env.iter().any(|kv| kv.starts_with("REDIS_URL=")), "{env:?}");

    owner.delete_sandbox(&sandbox).await.expect("delete");
    assert!(resource_containers(&stack.agent_id).is_empty());
    assert!(resource_volumes(&stack.agent_id).is_empty());
}
