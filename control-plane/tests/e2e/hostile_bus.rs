//! Malformed and unknown-version messages on every subject are logged and
//! refused; no component crashes or stops working. Oversized WebSocket
//! frames close the socket. Bodies that disagree with their subject (a
//! forged heartbeat, an acceptance in another agent's name, an event whose
//! deployment id is a path) are refused and counted in `/metrics`.

use std::time::Duration;

use sdp_api::NewDeployment;
use sdp_api::client::ClientError;
use sdp_bus::Status;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_on_every_subject_crash_nothing() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    assert_eq!(
        stack.wait_settled(&token, &id).await.status,
        Status::Running
    );

    // Let the persister catch up, then remember where the deployment is.
    let _ = stack.ws_events(&token, &id, 0).await;
    let api = stack.client_with(&token);
    let before = sdp_testkit::wait_for("the result persisted", Duration::from_secs(20), || async {
        let d = api.deployment(&id).await.ok()?;
        (d.status == Status::Running && d.finished_at.is_some()).then_some(d)
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
    assert_eq!(statuses(&events).last(), Some(&Status::Running));
    let deployment = stack.wait_settled(&token, &again).await;
    assert_eq!(deployment.status, Status::Running);
    let agents = api.agents().await.expect("agents");
    assert!(agents[0].online, "{agents:?}");
    // The bogus progress events were dropped, not stored: the first
    // deployment only moved to `stopped` because the new one replaced it.
    let first = api.deployment(&id).await.expect("the first deployment");
    assert_eq!(first.last_seq, before.last_seq, "a bogus event was stored");
    assert_eq!(first.error, before.error);
    assert!(
        matches!(first.status, Status::Running | Status::Stopped),
        "{first:?}"
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

/// `sdp_bus_refused_total{reason="<reason>"}` as `/metrics` shows it.
async fn refused(stack: &Stack, reason: &str) -> u64 {
    let text = stack
        .http()
        .get(stack.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let key = format!("sdp_bus_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&key))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics:\n{text}"))
}

async fn wait_refused(stack: &Stack, reason: &str, at_least: u64) {
    sdp_testkit::wait_for(
        &format!("{at_least} refusals of {reason}"),
        Duration::from_secs(20),
        || async { (refused(stack, reason).await >= at_least).then_some(()) },
    )
    .await;
}

fn heartbeat(agent_id: &str, kind: &str, repos: &[&str], capacity: u32) -> sdp_bus::Heartbeat {
    sdp_bus::Heartbeat {
        agent_id: agent_id.into(),
        kind: kind.into(),
        host: "forger".into(),
        version: "0".into(),
        running: Vec::new(),
        missing_images: Vec::new(),
        capacity,
        repos: repos.iter().map(|r| r.to_string()).collect(),
        started_at: None,
        build_cache: None,
        log_streams: 0,
        toolchains: Vec::new(),
        serves: None,
    }
}

/// Answers every request on `subject` with an acceptance in `name`'s name.
async fn accept_as(
    client: &async_nats::Client,
    subject: String,
    queue: Option<String>,
    name: String,
) {
    let mut requests = match queue {
        Some(queue) => client.queue_subscribe(subject, queue).await,
        None => client.subscribe(subject).await,
    }
    .expect("subscribe");
    let client = client.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let accepted = sdp_bus::Reply::ok(sdp_bus::DeployAccepted {
                agent_id: name.clone(),
            });
            if let Some(reply) = request.reply {
                let _ = client
                    .publish(reply, sdp_bus::encode(&accepted).into())
                    .await;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_heartbeats_accepts_and_events_are_refused_and_counted() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let client = async_nats::connect(stack.nats.url())
        .await
        .expect("connect");
    let api = stack.client_with(&token);
    let real = stack.agent_id.clone();
    sdp_testkit::wait_for("the agent online", Duration::from_secs(20), || async {
        let agents = api.agents().await.ok()?;
        (agents.first()?.id == real).then_some(())
    })
    .await;

    // Heartbeats: on the real agent's subject naming another agent, and on
    // another agent's subject naming the real one (as a gateway, with no
    // room): neither is believed.
    let forged = [
        (
            format!("agent.heartbeat.micro.{real}"),
            heartbeat("impostor", "micro", &[], 9),
        ),
        (
            "agent.heartbeat.micro.impostor".to_owned(),
            heartbeat(&real, "gateway", &[], 0),
        ),
    ];
    for (subject, beat) in &forged {
        client
            .publish(subject.clone(), sdp_bus::encode(beat).into())
            .await
            .expect("publish");
    }
    wait_refused(&stack, "heartbeat_forged", 2).await;
    let agents = api.agents().await.expect("agents");
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_eq!(agents[0].id, real);
    assert_eq!(agents[0].kind, "micro", "the real agent's record stands");

    // Accepts. A fake agent of its own kind heartbeats honestly, is chosen
    // by placement, and accepts in the real agent's name; another fake of
    // another kind has no room, so its deployments go to the queue group,
    // where it accepts in the name of an agent that does not heartbeat.
    let (placed_kind, queued_kind) = ("forgedplaced", "forgedqueued");
    let beats = [
        heartbeat("fake-placed", placed_kind, &["placedrepo"], 4),
        heartbeat("fake-queued", queued_kind, &["queuedrepo"], 0),
    ];
    let beating = tokio::spawn({
        let client = client.clone();
        async move {
            loop {
                for beat in &beats {
                    let subject = sdp_bus::subject::agent_heartbeat(&beat.kind, &beat.agent_id);
                    let _ = client.publish(subject, sdp_bus::encode(beat).into()).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    accept_as(
        &client,
        "agent.cmd.fake-placed.deploy".into(),
        None,
        real.clone(),
    )
    .await;
    accept_as(
        &client,
        sdp_bus::subject::deploy_request(queued_kind),
        Some(sdp_bus::subject::queue_group(queued_kind)),
        "ghost".into(),
    )
    .await;
    client.flush().await.expect("flush");
    sdp_testkit::wait_for("the fakes online", Duration::from_secs(20), || async {
        let agents = api.agents().await.ok()?;
        (agents.len() == 3).then_some(())
    })
    .await;
    for (repo, why) in [
        ("placedrepo", "it was sent to agent fake-placed"),
        ("queuedrepo", "it is not a live forgedqueued agent"),
    ] {
        let body = NewDeployment {
            repo: repo.to_owned(),
            branch: "main".to_owned(),
            commit: None,
        };
        let err = api
            .deploy("forged", &body)
            .await
            .expect_err("a forged acceptance");
        assert_eq!(
            err.status(),
            Some(reqwest::StatusCode::BAD_GATEWAY.as_u16()),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains(why), "{message}");
        let ClientError::Api {
            deployment_id: Some(id),
            ..
        } = err
        else {
            panic!("no failed deployment named: {message}");
        };
        let deployment = api.deployment(&id).await.expect("the failed deployment");
        assert_eq!(deployment.status, Status::Failed, "{deployment:?}");
        assert_ne!(
            deployment.agent_id.as_deref(),
            Some(real.as_str()),
            "{deployment:?}"
        );
    }
    assert_eq!(refused(&stack, "accept_forged").await, 2);
    beating.abort();

    // Events whose deployment id is a path, on core NATS and on JetStream,
    // and one whose body names another deployment than its subject.
    let before = refused(&stack, "event_refused").await;
    let event = |deployment_id: &str| {
        serde_json::to_vec(&serde_json::json!({
            "v": 1, "deployment_id": deployment_id, "seq": 1,
            "ts": "2026-11-27T12:00:00Z", "agent_id": real,
            "body": {"type": "log", "stream": "stdout", "line": "escaped"},
        }))
        .expect("json")
    };
    client
        .publish("deploy.progress.dcore", event("../x").into())
        .await
        .expect("publish");
    let js = async_nats::jetstream::new(client.clone());
    js.publish("deploy.progress.djs", event("../../escape").into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    js.publish("deploy.progress.dother", event("dsomeoneelse").into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    wait_refused(&stack, "event_refused", before + 3).await;
    let data = stack.cp_data.path();
    for escaped in [
        data.join("x.log"),
        data.parent().expect("parent").join("escape.log"),
        data.join("logs").join("dsomeoneelse.log"),
    ] {
        assert!(!escaped.exists(), "{} was written", escaped.display());
    }
    let logs: Vec<_> = std::fs::read_dir(data.join("logs"))
        .expect("logs dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(logs.is_empty(), "{logs:?}");
    stack.shutdown().await;
}
