//! A three-node NATS cluster with the progress stream at three replicas:
//! during a deployment, the node the agent is connected to is
//! killed (the agent moves to another) and restarted, then the stream
//! leader is killed. The deployment ends `running`; a viewer (resuming
//! with `?after=` as the dashboard does) and SQLite hold every event once,
//! gap-free; the killed nodes rejoin and catch up.

use sdp_bus::Status;
use std::cell::RefCell;
use std::time::Duration;

use async_nats::jetstream;
use sdp_bus::{Event, EventBody};
use tokio::task::block_in_place;

use crate::common::*;

/// The progress stream's message count as node `i` holds it.
fn stream_messages(cluster: &sdp_testkit::NatsCluster, i: usize) -> Option<u64> {
    let jsz = cluster.monitor(i, "jsz?accounts=true&streams=true")?;
    jsz["account_details"]
        .as_array()?
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == sdp_bus::stream::DEPLOY_PROGRESS)?["state"]["messages"]
        .as_u64()
}

/// The seq of the last event held.
fn last_seq(events: &[Event]) -> Option<u64> {
    events.last().map(|e| e.seq)
}

fn persisted_seqs(stack: &Stack, id: &str) -> Vec<u64> {
    let db = rusqlite::Connection::open(stack.cp_data.path().join("sdp.db")).expect("db");
    let mut stmt = db
        .prepare("SELECT seq FROM events WHERE deployment_id = ?1 ORDER BY seq")
        .expect("query");
    stmt.query_map([id], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_survives_losing_the_agents_node_and_the_stream_leader() {
    let mut stack = Stack::start_with(StackOptions {
        nats_cluster: true,
        ..StackOptions::default()
    })
    .await;
    let mut cluster = stack.cluster.take().expect("cluster");
    let token = stack.login().await;
    let servers: Vec<String> = stack.nats_url.split(',').map(str::to_owned).collect();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(servers)
        .await
        .expect("test client");
    let js = jetstream::new(client);
    let stream_info = || async {
        js.get_stream(sdp_bus::stream::DEPLOY_PROGRESS)
            .await
            .ok()?
            .info()
            .await
            .ok()
            .cloned()
    };
    let info = stream_info().await.expect("stream info");
    assert_eq!(info.config.num_replicas, 3, "the control plane set R3");

    stack.fixture.push_slow_build(BRANCH);
    let id = stack.deploy(&token, "clustered", BRANCH).await;
    let agent_name = format!("sdp-agent-micro-{}", stack.agent_id);

    // The viewer reconnects (resuming after the last seq it holds) each
    // time a killed node drops its stream, until it has the result.
    let viewer = async {
        let events = RefCell::new(Vec::<Event>::new());
        let saw_result = sdp_testkit::try_wait_for(DEPLOY_TIMEOUT, || async {
            let after = last_seq(&events.borrow()).unwrap_or(0);
            stack
                .ws_follow(&token, &id, after, |event| {
                    events.borrow_mut().push(event);
                    true
                })
                .await;
            let events = events.borrow();
            events
                .last()
                .is_some_and(|e| matches!(e.body, EventBody::Result { .. }))
                .then_some(())
        })
        .await;
        let events = events.into_inner();
        assert!(
            saw_result.is_some(),
            "the viewer never saw the result: {events:#?}"
        );
        events
    };
    let faults = async {
        let client = stack.client_with(&token);
        sdp_testkit::wait_for("the build", DEPLOY_TIMEOUT, || async {
            let d = client.deployment(&id).await.ok()?;
            (d.status == Status::Building).then_some(())
        })
        .await;
        let first =
            sdp_testkit::wait_for("the agent on a node", Duration::from_secs(30), || async {
                block_in_place(|| cluster.node_serving(&agent_name))
            })
            .await;
        block_in_place(|| cluster.nodes[first].kill());
        let moved = sdp_testkit::wait_for(
            "the agent to reconnect to another node",
            Duration::from_secs(30),
            || async { block_in_place(|| cluster.node_serving(&agent_name)) },
        )
        .await;
        assert_ne!(moved, first);
        block_in_place(|| {
            cluster.nodes[first].restart();
            cluster.wait_meta_leader();
        });

        let leader = sdp_testkit::wait_for("a stream leader", Duration::from_secs(30), || async {
            let info = stream_info().await?;
            let name = info.cluster?.leader?;
            sdp_testkit::NatsCluster::index_of(&name)
        })
        .await;
        block_in_place(|| cluster.nodes[leader].kill());

        let deployment = stack.wait_settled(&token, &id).await;
        assert_eq!(deployment.status, Status::Running, "{deployment:?}");
        block_in_place(|| {
            cluster.nodes[leader].restart();
            cluster.wait_meta_leader();
        });
    };
    let (events, ()) = tokio::join!(viewer, faults);

    let seqs = seqs(&events);
    let last = *seqs.last().expect("events");
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "the viewer: once, gap-free"
    );
    assert_eq!(statuses(&events).last(), Some(&Status::Running));
    sdp_testkit::wait_for(
        "SQLite to hold every event",
        Duration::from_secs(60),
        || async { (persisted_seqs(&stack, &id) == (1..=last).collect::<Vec<_>>()).then_some(()) },
    )
    .await;
    // Every node, the two restarted ones too, holds the whole stream.
    sdp_testkit::wait_for(
        "the rejoined nodes to catch up",
        Duration::from_secs(60),
        || async {
            let counts: Vec<Option<u64>> = block_in_place(|| {
                (0..cluster.nodes.len())
                    .map(|i| stream_messages(&cluster, i))
                    .collect()
            });
            (counts[0].is_some() && counts.iter().all(|c| *c == counts[0])).then_some(())
        },
    )
    .await;
    stack.shutdown().await;
    drop(cluster);
}
