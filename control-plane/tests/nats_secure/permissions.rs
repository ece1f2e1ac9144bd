//! What each user of `auth.conf` may publish and subscribe to, core NATS and
//! JetStream. A refused operation is seen twice: as the violation the server
//! reports to the client, and by its effect (a message that never arrives,
//! a request that finds no responder or times out, a stream that survives).

use std::time::Duration;

use async_nats::RequestErrorKind;
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use sdp_bus::stream::{DEPLOY_PROGRESS, PERSISTER_CONSUMER, ensure_deploy_progress};

use super::harness::{Probe, SecureNats};

const PUB: &str = "Publish";
const SUB: &str = "Subscription";
const WAIT: Duration = Duration::from_secs(5);

async fn next(subscriber: &mut async_nats::Subscriber, what: &str) -> async_nats::Message {
    tokio::time::timeout(WAIT, subscriber.next())
        .await
        .unwrap_or_else(|_| panic!("no message for {what} within {WAIT:?}"))
        .unwrap_or_else(|| panic!("subscription for {what} ended"))
}

async fn publish(probe: &Probe, subject: &str, payload: &'static str) {
    probe
        .client
        .publish(subject.to_owned(), payload.into())
        .await
        .expect("publish");
}

async fn subscribe(probe: &Probe, subject: &str) -> async_nats::Subscriber {
    probe
        .client
        .subscribe(subject.to_owned())
        .await
        .expect("subscribe")
}

/// Asserts that a request on `subject` finds no subscriber at all.
async fn assert_no_responders(requester: &Probe, subject: &str) {
    let err = requester
        .client
        .request(subject.to_owned(), "{}".into())
        .await
        .expect_err("nobody may be subscribed");
    assert_eq!(
        err.kind(),
        RequestErrorKind::NoResponders,
        "{subject}: {err}"
    );
}

#[tokio::test]
async fn agent_publishes_only_progress_and_its_own_heartbeat() {
    let nats = SecureNats::start().await;
    let agent = nats.connect("agent-micro-1").await;
    let watcher = nats.connect("control-plane").await;
    let mut heartbeats = subscribe(&watcher, "agent.heartbeat.>").await;
    let mut progress = subscribe(&watcher, "deploy.progress.>").await;
    watcher.assert_allowed().await;

    let denied = [
        "agent.heartbeat.micro.micro-2",
        "agent.heartbeat.gateway.gateway-1",
        "agent.heartbeat.gateway.micro-1",
        "deploy.request.micro",
        "deploy.request.gateway",
        "deploy.cancel.d1",
        "agent.rpc.micro.verify_credentials",
        "agent.cmd.micro-1.teardown",
        "agent.cmd.micro-2.teardown",
        "_INBOX.not-a-reply",
        "$JS.API.STREAM.DELETE.DEPLOY_PROGRESS",
        "deploy.progress.d1.extra",
    ];
    for subject in denied {
        publish(&agent, subject, "forged").await;
    }
    publish(&agent, "agent.heartbeat.micro.micro-1", "mine").await;
    publish(&agent, "deploy.progress.d1", "event").await;
    let expected: Vec<(&str, &str)> = denied.iter().map(|s| (PUB, *s)).collect();
    agent.assert_denied(&expected).await;

    // Sent after the refused heartbeats on the same connection, so had any
    // of them got through it would arrive first.
    let first = next(&mut heartbeats, "heartbeats").await;
    assert_eq!(first.subject.as_str(), "agent.heartbeat.micro.micro-1");
    assert_eq!(&first.payload[..], b"mine");
    let event = next(&mut progress, "progress").await;
    assert_eq!(event.subject.as_str(), "deploy.progress.d1");
}

#[tokio::test]
async fn agent_subscribes_only_to_its_kind_its_id_and_cancels() {
    let nats = SecureNats::start().await;
    let agent = nats.connect("agent-micro-1").await;
    let control_plane = nats.connect("control-plane").await;

    let mut subscribers = Vec::new();
    for (subject, queue) in [
        ("deploy.request.micro", Some("agents.micro")),
        ("agent.rpc.micro.verify_credentials", Some("agents.micro")),
        ("agent.rpc.micro.>", None),
        ("agent.cmd.micro-1.teardown", None),
        ("agent.cmd.micro-1.>", None),
        ("deploy.cancel.d1", None),
        ("deploy.cancel.>", None),
    ] {
        let subscriber = match queue {
            Some(queue) => agent
                .client
                .queue_subscribe(subject.to_owned(), queue.to_owned())
                .await
                .expect("queue subscribe"),
            None => subscribe(&agent, subject).await,
        };
        subscribers.push(subscriber);
    }
    agent.assert_allowed().await;

    let denied = [
        "deploy.request.gateway",
        "deploy.request.>",
        "agent.rpc.gateway.verify_credentials",
        "agent.rpc.>",
        "agent.cmd.micro-2.teardown",
        "agent.cmd.micro-2.>",
        "agent.cmd.*.teardown",
        "agent.cmd.>",
        "deploy.progress.>",
        "agent.heartbeat.>",
        ">",
    ];
    for subject in denied {
        subscribers.push(subscribe(&agent, subject).await);
    }
    let expected: Vec<(&str, &str)> = denied.iter().map(|s| (SUB, *s)).collect();
    agent.assert_denied(&expected).await;

    for subject in [
        "deploy.request.gateway",
        "agent.rpc.gateway.verify_credentials",
        "agent.cmd.micro-2.teardown",
    ] {
        assert_no_responders(&control_plane, subject).await;
    }
}

/// `allow_responses`: an agent answers the control plane's requests, but
/// cannot send one itself.
#[tokio::test]
async fn agent_answers_requests_but_cannot_send_them() {
    let nats = SecureNats::start().await;
    let serving = nats.connect("agent-micro-1").await;
    let mut requests = serving
        .client
        .queue_subscribe("deploy.request.micro".to_owned(), "agents.micro".to_owned())
        .await
        .expect("queue subscribe");
    serving.assert_allowed().await;
    let client = serving.client.clone();
    let responder = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                client
                    .publish(reply, "accepted".into())
                    .await
                    .expect("reply");
            }
        }
    });

    let control_plane = nats.connect("control-plane").await;
    let reply = control_plane
        .client
        .request("deploy.request.micro".to_owned(), "{}".into())
        .await
        .expect("the control plane's request is answered");
    assert_eq!(&reply.payload[..], b"accepted");
    serving.assert_allowed().await;

    let other = nats.connect("agent-micro-1").await;
    let err = other
        .client
        .request("deploy.request.micro".to_owned(), "{}".into())
        .await
        .expect_err("an agent's request is dropped");
    assert_eq!(err.kind(), RequestErrorKind::TimedOut, "{err}");
    other.assert_denied(&[(PUB, "deploy.request.micro")]).await;
    responder.abort();
}

#[tokio::test]
async fn debug_user_reads_progress_and_heartbeats_only() {
    let nats = SecureNats::start().await;
    let debug = nats.connect("debug").await;
    let agent = nats.connect("agent-micro-1").await;
    let control_plane = nats.connect("control-plane").await;

    let mut progress = subscribe(&debug, "deploy.progress.>").await;
    let mut heartbeats = subscribe(&debug, "agent.heartbeat.>").await;
    debug.assert_allowed().await;

    // Subjects that carry the git credential, replies, commands.
    let denied_subs = [
        "deploy.request.micro",
        "deploy.request.>",
        "agent.rpc.micro.verify_credentials",
        "agent.rpc.>",
        "agent.cmd.>",
        "deploy.cancel.>",
        "_INBOX.>",
        "$JS.API.>",
        ">",
    ];
    let mut refused = Vec::new();
    for subject in denied_subs {
        refused.push(subscribe(&debug, subject).await);
    }
    let expected: Vec<(&str, &str)> = denied_subs.iter().map(|s| (SUB, *s)).collect();
    debug.assert_denied(&expected).await;

    let denied_pubs = [
        "deploy.progress.d1",
        "agent.heartbeat.micro.micro-1",
        "deploy.request.micro",
        "deploy.cancel.d1",
        "$JS.API.INFO",
        "$JS.API.STREAM.INFO.DEPLOY_PROGRESS",
    ];
    for subject in denied_pubs {
        publish(&debug, subject, "forged").await;
    }
    let expected: Vec<(&str, &str)> = denied_pubs.iter().map(|s| (PUB, *s)).collect();
    debug.assert_denied(&expected).await;

    publish(&agent, "deploy.progress.d1", "event").await;
    publish(&agent, "agent.heartbeat.micro.micro-1", "beat").await;
    agent.assert_allowed().await;
    let event = next(&mut progress, "progress").await;
    assert_eq!(
        (event.subject.as_str(), &event.payload[..]),
        ("deploy.progress.d1", &b"event"[..])
    );
    let beat = next(&mut heartbeats, "heartbeats").await;
    assert_eq!(
        (beat.subject.as_str(), &beat.payload[..]),
        ("agent.heartbeat.micro.micro-1", &b"beat"[..])
    );

    for subject in ["deploy.request.micro", "agent.rpc.micro.verify_credentials"] {
        assert_no_responders(&control_plane, subject).await;
    }
}

/// The JetStream API: the control plane and the persister make exactly the
/// calls they need; agents only publish (with acks); nobody but an
/// operator may delete the stream or the persister's consumer.
#[tokio::test]
async fn jetstream_calls_are_limited_to_each_components_needs() {
    let nats = SecureNats::start().await;
    let control_plane = nats.connect("control-plane").await;
    let persister = nats.connect("persister").await;
    let agent = nats.connect("agent-micro-1").await;
    let debug = nats.connect("debug").await;
    let cp_js = jetstream::new(control_plane.client.clone());
    let persister_js = jetstream::new(persister.client.clone());
    let agent_js = jetstream::new(agent.client.clone());
    let debug_js = jetstream::new(debug.client.clone());

    // The control plane creates the stream, then updates it (every start).
    ensure_deploy_progress(&cp_js, 1)
        .await
        .expect("control plane creates the stream");
    ensure_deploy_progress(&cp_js, 1)
        .await
        .expect("control plane updates the stream");
    control_plane.assert_allowed().await;

    // The persister: stream, its durable consumer (create, then get).
    let stream = ensure_deploy_progress(&persister_js, 1)
        .await
        .expect("persister ensures the stream");
    let durable = || pull::Config {
        durable_name: Some(PERSISTER_CONSUMER.to_owned()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(5),
        ..Default::default()
    };
    stream
        .get_or_create_consumer(PERSISTER_CONSUMER, durable())
        .await
        .expect("persister creates its consumer");
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(PERSISTER_CONSUMER, durable())
        .await
        .expect("persister gets its consumer");
    persister.assert_allowed().await;

    // An agent publishes an event and gets the ack.
    agent_js
        .publish("deploy.progress.d1", "event-1".into())
        .await
        .expect("publish")
        .await
        .expect("the stream acks the agent's event");
    agent.assert_allowed().await;

    // The persister pulls it and acks it (confirmed by the server).
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(WAIT)
        .messages()
        .await
        .expect("pull");
    let message = tokio::time::timeout(WAIT, batch.next())
        .await
        .expect("the event in time")
        .expect("one event")
        .expect("delivered");
    assert_eq!(&message.payload[..], b"event-1");
    message
        .double_ack()
        .await
        .expect("the persister's ack is accepted");
    persister.assert_allowed().await;

    // The WebSocket bridge's ordered consumer, as the control plane.
    let ordered = cp_js
        .get_stream(DEPLOY_PROGRESS)
        .await
        .expect("stream info")
        .create_consumer(pull::OrderedConfig {
            filter_subject: "deploy.progress.d1".to_owned(),
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("control plane creates an ordered consumer");
    let mut replay = ordered.messages().await.expect("ordered messages");
    let replayed = tokio::time::timeout(WAIT, replay.next())
        .await
        .expect("replay in time")
        .expect("one event")
        .expect("delivered");
    assert_eq!(&replayed.payload[..], b"event-1");
    drop(replay);
    control_plane.assert_allowed().await;

    // What each may not do. A refused API request is dropped by the
    // server, so the call times out (2 s, see the probes' options).
    assert!(agent_js.delete_stream(DEPLOY_PROGRESS).await.is_err());
    assert!(agent_js.get_stream(DEPLOY_PROGRESS).await.is_err());
    assert!(
        agent_js
            .delete_consumer_from_stream(PERSISTER_CONSUMER, DEPLOY_PROGRESS)
            .await
            .is_err()
    );
    agent
        .assert_denied(&[
            (PUB, "$JS.API.STREAM.DELETE.DEPLOY_PROGRESS"),
            (PUB, "$JS.API.STREAM.INFO.DEPLOY_PROGRESS"),
            (PUB, "$JS.API.CONSUMER.DELETE.DEPLOY_PROGRESS.persister"),
        ])
        .await;

    assert!(cp_js.delete_stream(DEPLOY_PROGRESS).await.is_err());
    assert!(
        cp_js
            .delete_consumer_from_stream(PERSISTER_CONSUMER, DEPLOY_PROGRESS)
            .await
            .is_err()
    );
    assert!(
        cp_js
            .create_stream(jetstream::stream::Config {
                name: "OTHER".to_owned(),
                subjects: vec!["deploy.request.>".to_owned()],
                ..Default::default()
            })
            .await
            .is_err()
    );
    control_plane
        .assert_denied(&[
            (PUB, "$JS.API.STREAM.DELETE.DEPLOY_PROGRESS"),
            (PUB, "$JS.API.CONSUMER.DELETE.DEPLOY_PROGRESS.persister"),
            (PUB, "$JS.API.STREAM.CREATE.OTHER"),
        ])
        .await;

    assert!(persister_js.delete_stream(DEPLOY_PROGRESS).await.is_err());
    assert!(
        stream
            .create_consumer(pull::Config {
                durable_name: Some("spy".to_owned()),
                ..Default::default()
            })
            .await
            .is_err()
    );
    assert!(
        persister_js
            .publish("deploy.progress.d1", "forged".into())
            .await
            .is_ok()
    );
    persister
        .assert_denied(&[
            (PUB, "$JS.API.STREAM.DELETE.DEPLOY_PROGRESS"),
            (PUB, "$JS.API.CONSUMER.CREATE.DEPLOY_PROGRESS.spy"),
            (PUB, "deploy.progress.d1"),
        ])
        .await;

    assert!(debug_js.get_stream(DEPLOY_PROGRESS).await.is_err());
    // The reply subscription (`_INBOX.<id>.*`) is refused too.
    let reported = debug.settle().await;
    assert!(
        reported.len() == 2
            && reported[0].contains("Permissions Violation for Subscription to \"_INBOX.")
            && reported[1].contains(
                "Permissions Violation for Publish to \"$JS.API.STREAM.INFO.DEPLOY_PROGRESS\""
            ),
        "{reported:#?}"
    );

    // Still there, with the one event the agent published.
    let mut stream = cp_js
        .get_stream(DEPLOY_PROGRESS)
        .await
        .expect("stream kept");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.state.messages, 1);
    consumer
        .get_info()
        .await
        .expect("the persister's consumer is kept");

    // The server logged every refusal (what the e2e test relies on).
    let logged = nats.violations();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("$JS.API.STREAM.DELETE.DEPLOY_PROGRESS")),
        "{logged:#?}"
    );
}

#[tokio::test]
async fn runtime_log_streams_stay_between_the_control_plane_and_their_agent() {
    let nats = SecureNats::start().await;
    let agent = nats.connect("agent-micro-1").await;
    let other = nats.connect("agent-gateway-1").await;
    let control_plane = nats.connect("control-plane").await;
    let data = "agent.logs.micro-1.r01.data";
    let credit = "agent.logs.micro-1.r01.credit";
    let mut batches = subscribe(&control_plane, data).await;
    let mut credits = subscribe(&agent, credit).await;
    control_plane.assert_allowed().await;
    agent.assert_allowed().await;

    // Another agent can neither forge this agent's batches nor read its
    // credits; this agent cannot write credits or another agent's batches.
    publish(&other, data, "forged").await;
    let _spy = subscribe(&other, credit).await;
    other.assert_denied(&[(PUB, data), (SUB, credit)]).await;
    publish(&agent, credit, "forged").await;
    publish(&agent, "agent.logs.gateway-1.r01.data", "forged").await;
    agent
        .assert_denied(&[(PUB, credit), (PUB, "agent.logs.gateway-1.r01.data")])
        .await;

    publish(&agent, data, "batch").await;
    publish(&control_plane, credit, "credit").await;
    let batch = next(&mut batches, "a batch").await;
    assert_eq!(&batch.payload[..], b"batch", "a forged batch got through");
    let credit = next(&mut credits, "a credit").await;
    assert_eq!(
        &credit.payload[..],
        b"credit",
        "a forged credit got through"
    );
}
