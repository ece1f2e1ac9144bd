//! Malformed and unknown-version messages on every subject are logged and
//! refused; no component crashes or stops working. Oversized WebSocket
//! frames close the socket.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_on_every_subject_crash_nothing() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(stack.wait_settled(&token, &id).await["status"], "running");

    // Let the persister catch up, then remember where the deployment is.
    let _ = stack.ws_events(&token, &id, 0).await;
    let before = sdp_testkit::wait_for("the result persisted", Duration::from_secs(20), || async {
        let (_, d) = stack.get(&token, &format!("/api/deployments/{id}")).await;
        (d["status"] == "running" && d["finished_at"].is_string()).then_some(d)
    })
    .await;
    let client = async_nats::connect(stack.nats.url())
        .await
        .expect("connect");
    let agent = stack.agent_id.clone();
    let subjects = [
        "deploy.request.micro".to_owned(),
        "agent.rpc.micro.verify_credentials".to_owned(),
        "agent.rpc.micro.list_repos".to_owned(),
        "agent.rpc.micro.list_branches".to_owned(),
        format!("agent.cmd.{agent}.teardown"),
        "agent.rpc.micro.branch_status".to_owned(),
        format!("agent.cmd.{agent}.probe"),
        format!("deploy.cancel.{id}"),
        format!("deploy.progress.{id}"),
        "deploy.progress.dbogus".to_owned(),
        format!("agent.heartbeat.micro.{agent}"),
    ];
    let payloads: [&[u8]; 6] = [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        br#"{"v":2,"deployment_id":"x"}"#,
        br#"{"v":1}"#,
        br#"[1,2,3]"#,
    ];
    let mut refused = 0;
    for subject in &subjects {
        for payload in payloads {
            // Subjects nobody answers get a plain publish.
            if subject.starts_with("agent.heartbeat.") || subject.starts_with("deploy.cancel.") {
                client
                    .publish(subject.clone(), payload.to_vec().into())
                    .await
                    .expect("publish");
                continue;
            }
            let request = client.request(subject.clone(), payload.to_vec().into());
            // Requests to request/reply subjects get an error reply; streams
            // ack (the persister drops it) or nobody answers.
            if let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_secs(5), request).await {
                let text = String::from_utf8_lossy(&reply.payload);
                // `{"v":1}` is a complete ListRepos: the one valid case.
                let valid = subject.ends_with("list_repos") && payload == br#"{"v":1}"#
                    // JetStream stores anything and acks; the persister drops it.
                    || subject.starts_with("deploy.progress.");
                if !valid {
                    assert!(text.contains("\"error\""), "{subject}: {text}");
                    refused += 1;
                }
            }
        }
    }
    client.flush().await.expect("flush");
    assert!(
        refused >= 20,
        "only {refused} malformed requests got an error reply"
    );

    // Everyone is still up and working.
    let ready = stack
        .http()
        .get(stack.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert!(ready.status().is_success());
    let again = stack.deploy(&token, "alpha", "main").await;
    let events = stack.ws_events(&token, &again, 0).await;
    assert_eq!(
        statuses(&events).last().map(String::as_str),
        Some("running")
    );
    let deployment = stack.wait_settled(&token, &again).await;
    assert_eq!(deployment["status"], "running");
    let (_, agents) = stack.get(&token, "/api/agents").await;
    assert_eq!(agents[0]["online"], true);
    // The bogus progress events were dropped, not stored: the first
    // deployment only moved to `stopped` because the new one replaced it.
    let (_, first) = stack.get(&token, &format!("/api/deployments/{id}")).await;
    assert_eq!(
        first["last_seq"], before["last_seq"],
        "a bogus event was stored"
    );
    assert_eq!(first["error"], before["error"]);
    assert!(
        matches!(first["status"].as_str(), Some("running" | "stopped")),
        "{first}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_websocket_frames_close_the_socket() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(
        stack.ws_url(&format!("/ws/deployments/{id}")),
    )
    .expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    let _ = socket
        .send(tungstenite::Message::text("x".repeat(1 << 20)))
        .await;
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(tungstenite::Message::Close(_)) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        true
    })
    .await
    .expect("the socket should close");
    assert!(closed);
    // The server is fine.
    let ready = stack
        .http()
        .get(stack.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert!(ready.status().is_success());
    stack.shutdown().await;
}
