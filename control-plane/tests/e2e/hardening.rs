//! Container hardening (issue 5): what `docker inspect` shows of a deployed
//! container, and that nothing planted in the mounted tree runs on the host.

use crate::common::*;

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
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(stack.wait_settled(&token, &id).await["status"], "running");
    let containers = sdp_testkit::containers_with_label("sdp.agent", &stack.agent_id);
    assert_eq!(containers.len(), 1);
    let info = inspect(&containers[0]);
    let host = &info["HostConfig"];
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
        stack.wait_settled(&token, &again).await["status"],
        "running"
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
    stack.agent_extra_env = vec![("SDP_FLAVOUR__RUN_CMD".into(), "/no/such/binary".into())];
    stack.start_agent().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment["status"], "failed", "{deployment}");
    let error = deployment["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty());
    stack.shutdown().await;
}
