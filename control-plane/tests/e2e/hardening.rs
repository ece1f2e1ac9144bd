//! Container hardening: what `docker inspect` shows of a deployed
//! container, and that nothing planted in the mounted tree runs on the host.

use crate::common::*;
use sdp_bus::Status;

fn inspect(container: &str) -> serde_json::Value {
    let out = std::process::Command::new("docker")
        .args(["inspect", container])
        .output()
        .expect("docker inspect");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    all[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_are_locked_down_and_the_tree_cannot_reach_the_host() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    // A container of this service under the name agents used before
    // `sdp.<agent>.<sandbox>.<repo>`: found by its labels and replaced.
    let old_name = format!("sdp-{}-alpha-{REPO}", stack.agent_id);
    let old = sdp_testkit::docker_create_named(
        &old_name,
        &sdp_testkit::ensure_busybox_image(),
        &[
            ("sdp.agent", &stack.agent_id),
            ("sdp.sandbox", "alpha"),
            ("sdp.service", REPO),
        ],
    );
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );
    assert!(
        !sdp_testkit::docker_exists(&old),
        "the container of the old name was not replaced"
    );
    let containers = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
    assert_eq!(containers.len(), 1);
    let info = inspect(&containers[0]);
    assert_eq!(
        info["Name"],
        format!("/sdp.{}.alpha.{REPO}", stack.agent_id),
        "named so that no other (sandbox, repo) can collide"
    );
    let host = &info["HostConfig"];
    assert_eq!(host["PidsLimit"], 256, "the default pids limit");
    assert_eq!(host["ReadonlyRootfs"], false, "read-only root is opt-in");
    assert_eq!(host["Privileged"], false);
    assert!(
        host["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges"),
        "{host}"
    );
    assert!(host["CapDrop"].to_string().contains("ALL"), "{host}");
    assert!(host["Memory"].as_i64().unwrap_or(0) > 0, "no memory limit");
    assert!(host["NanoCpus"].as_i64().unwrap_or(0) > 0, "no CPU limit");
    let mounts = info["Mounts"].as_array().expect("mounts");
    assert!(!mounts.is_empty());
    for mount in mounts {
        assert_eq!(mount["RW"], false, "writable mount {mount}");
        assert!(
            !mount["Source"]
                .as_str()
                .unwrap_or_default()
                .contains("docker.sock"),
            "the Docker socket is mounted"
        );
    }
    assert_eq!(info["Config"]["Labels"]["sdp.deployment"], id.as_str());

    // From inside the container the tree cannot be written.
    let planted = std::process::Command::new("docker")
        .args([
            "exec",
            &containers[0],
            "/bin/sh",
            "-c",
            "echo x > /src/planted",
        ])
        .output()
        .expect("docker exec");
    assert!(
        !planted.status.success(),
        "the container wrote into its source mount"
    );

    // Even a tree that carries git config, hooks and an fsmonitor (as a
    // hostile branch could) runs nothing on the host at the next deploy.
    let marker = stack.agent_data.path().join("pwned");
    let worktree = stack
        .agent_data
        .path()
        .join("worktrees")
        .join("alpha")
        .join(REPO);
    assert!(worktree.is_dir());
    let git_dir = worktree.join(".git");
    std::fs::create_dir_all(git_dir.join("hooks")).expect("plant .git");
    let hook = format!("#!/bin/sh\ntouch {}\n", marker.display());
    for name in [
        "post-checkout",
        "post-merge",
        "pre-commit",
        "fsmonitor-watchman",
    ] {
        let path = git_dir.join("hooks").join(name);
        std::fs::write(&path, &hook).expect("plant hook");
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .expect("chmod");
    }
    std::fs::write(
        git_dir.join("config"),
        format!(
            "[core]\n\tfsmonitor = touch {}\n\thooksPath = hooks\n",
            marker.display()
        ),
    )
    .expect("plant config");
    stack.fixture.push_revision(BRANCH, "2");
    let again = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &again).await.status,
        Status::Running
    );
    assert!(
        !marker.exists(),
        "something planted in the tree ran on the host"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_refusing_the_container_fails_the_deployment_with_the_reason() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    // Restart the agent with a command the base image does not have.
    stack.kill_agent();
    stack.agent_extra_env = vec![(
        "SDP_AGENT__FLAVOUR__RUN_CMD".into(),
        "/no/such/binary".into(),
    )];
    stack.start_agent().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Failed, "{deployment:?}");
    let error = deployment.error.as_deref().unwrap_or_default();
    assert!(!error.is_empty());
    stack.shutdown().await;
}

/// `[container]` of the agent config: a pids limit, a capability given
/// back, another user, a read-only root with a tmpfs `/tmp`; a fork bomb
/// stops at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_section_confines_further() {
    let mut stack = Stack::start_with(StackOptions {
        agent: false,
        ..StackOptions::default()
    })
    .await;
    stack.agent_extra_env = pairs(&[
        ("SDP_AGENT__CONTAINER__PIDS_LIMIT", "32".into()),
        ("SDP_AGENT__CONTAINER__CAP_ADD", "NET_BIND_SERVICE".into()),
        ("SDP_AGENT__CONTAINER__USER", "65534:65534".into()),
        ("SDP_AGENT__CONTAINER__READ_ONLY_ROOT", "true".into()),
        ("SDP_AGENT__CONTAINER__TMP_SIZE", "8m".into()),
    ]);
    // The other user reads the mounted tree and build like anyone else:
    // the temp dir is 0700 to the test's user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        stack.agent_data.path(),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    stack.start_agent().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );
    let containers = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
    assert_eq!(containers.len(), 1);
    let info = inspect(&containers[0]);
    let host = &info["HostConfig"];
    assert_eq!(host["PidsLimit"], 32, "{host}");
    assert!(host["CapDrop"].to_string().contains("ALL"), "{host}");
    assert_eq!(
        host["CapAdd"],
        serde_json::json!(["NET_BIND_SERVICE"]),
        "{host}"
    );
    assert_eq!(host["ReadonlyRootfs"], true, "{host}");
    let tmpfs = host["Tmpfs"]["/tmp"].as_str().unwrap_or_default();
    assert!(
        tmpfs.contains("noexec") && tmpfs.contains("size=8388608"),
        "{host}"
    );
    assert_eq!(info["Config"]["User"], "65534:65534");

    let exec = |script: &str| {
        std::process::Command::new("docker")
            .args(["exec", &containers[0], "/bin/sh", "-c", script])
            .output()
            .expect("docker exec")
    };
    let id_out = exec("id -u");
    assert_eq!(String::from_utf8_lossy(&id_out.stdout).trim(), "65534");
    assert!(
        !exec("echo x > /planted").status.success(),
        "the root is writable"
    );
    assert!(
        exec("echo x > /tmp/ok").status.success(),
        "/tmp is not writable"
    );
    // More processes than the limit allows: forks fail, the host is fine.
    let bomb = exec("for i in $(seq 1 64); do sleep 30 & done; wait");
    let stderr = String::from_utf8_lossy(&bomb.stderr);
    assert!(
        stderr.contains("fork") || stderr.contains("Resource temporarily unavailable"),
        "64 sleeps under a limit of 32: {stderr}"
    );
    stack.shutdown().await;
}
