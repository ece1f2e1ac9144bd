//! The persister killed mid-deployment and restarted: every event and log
//! line ends up in SQLite and the log file exactly once, in order.

use sdp_bus::Status;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persister_killed_mid_deployment_loses_and_duplicates_nothing() {
    let mut stack = Stack::start_with(StackOptions {
        embedded_persister: false,
        ..StackOptions::default()
    })
    .await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;

    // Kill the persister as soon as it has written part of the deployment.
    let path = format!("/api/deployments/{id}");
    sdp_testkit::wait_for(
        "persister to write the first events",
        DEPLOY_TIMEOUT,
        || async {
            let (_, deployment) = stack.get(&token, &path).await;
            (deployment["last_seq"].as_u64() >= Some(2)).then_some(())
        },
    )
    .await;
    stack.kill_persister();

    // The deployment goes on without it; the WebSocket serves it from
    // JetStream.
    let events = stack.ws_events(&token, &id, 0).await;
    assert_eq!(
        statuses(&events).last(),
        Some(&Status::Running),
        "{events:#?}"
    );
    let (_, deployment) = stack.get(&token, &path).await;
    assert_ne!(
        deployment["status"], "running",
        "nothing should have persisted the end yet"
    );

    stack.start_persister();
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running);
    let last = events.last().expect("events").seq;
    sdp_testkit::wait_for("every event persisted", Duration::from_secs(30), || async {
        let d = stack.client_with(&token).deployment(&id).await.ok()?;
        (d.last_seq == last).then_some(())
    })
    .await;

    // SQLite: every seq once, in order, equal to what the bus carried.
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("open db");
    let mut stmt = db
        .prepare("SELECT seq, body FROM events WHERE deployment_id = ?1 ORDER BY seq")
        .expect("query");
    let rows: Vec<(u64, String)> = stmt
        .query_map([&id], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>()
    );
    let stored: Vec<sdp_bus::Event> = rows
        .iter()
        .map(|(_, body)| serde_json::from_str(body).expect("stored event"))
        .collect();
    assert_eq!(stored, events);

    // The log file: every line once, in order.
    let file = std::fs::read_to_string(stack.cp_data.path().join("logs").join(format!("{id}.log")))
        .expect("log file");
    assert_eq!(file.lines().collect::<Vec<_>>(), log_lines(&events));
    stack.shutdown().await;
}
