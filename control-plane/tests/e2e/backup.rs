//! The control plane's single state, backed up online and restored
//! (docs/SCALING.md): `sdp-control-plane backup FILE` while it serves, then
//! the copy put in place of `sdp.db` and the control plane restarted.

use sdp_bus::Status;
use std::path::PathBuf;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_the_deployments() {
    let mut stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "kept", BRANCH).await;
    let before = stack.wait_settled(&token, &id).await;
    assert_eq!(before.status, Status::Running);
    sdp_testkit::wait_for("every event persisted", DEPLOY_TIMEOUT, || async {
        let d = stack.client_with(&token).deployment(&id).await.ok()?;
        (d.last_seq > 3).then_some(())
    })
    .await;

    let backups = tempfile::TempDir::new().expect("temp dir");
    let file = backups.path().join("sdp-backup.db");
    let program = PathBuf::from(env!("CARGO_BIN_EXE_sdp-control-plane"));
    let output = std::process::Command::new(&program)
        .arg("backup")
        .arg(&file)
        .env_clear()
        .envs(stack.cp_env.iter().cloned())
        .output()
        .expect("run backup");
    assert!(
        output.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A second backup to the same file is refused, not overwritten.
    let again = std::process::Command::new(&program)
        .arg("backup")
        .arg(&file)
        .env_clear()
        .envs(stack.cp_env.iter().cloned())
        .output()
        .expect("run backup");
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );

    // Something happens after the backup; the restore goes back before it.
    let later = stack.deploy(&token, "later", "main").await;
    stack.wait_settled(&token, &later).await;

    stack.kill_control_plane();
    let db = stack.cp_data.path().join("sdp.db");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(&file, &db).expect("restore the copy");
    stack.start_control_plane().await;
    let token = stack.login().await;
    let client = stack.client_with(&token);
    let restored = client
        .deployment(&id)
        .await
        .expect("the restored deployment");
    assert_eq!(restored.status, Status::Running, "{restored:?}");
    let phases =
        |d: &sdp_api::Deployment| -> Vec<_> { d.phases.iter().map(|p| (p.phase, p.at)).collect() };
    assert_eq!(phases(&restored), phases(&before));
    assert_eq!(restored.url, before.url);
    let missing = client
        .deployment(&later)
        .await
        .expect_err("not in the backup");
    assert_eq!(missing.status(), Some(404), "not in the backup: {missing}");
    let (_, logs) = (
        (),
        stack
            .http()
            .get(stack.url(&format!("/api/deployments/{id}/logs")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("logs")
            .text()
            .await
            .expect("text"),
    );
    assert!(!logs.is_empty(), "its log is served");
    stack.shutdown().await;
}
