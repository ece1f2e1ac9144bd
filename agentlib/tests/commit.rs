//! A deployment that names a commit, on a real nats-server, git
//! server, `go` and Docker: the agent deploys that commit when it is on the
//! branch, refuses one that is not after the fetch and before it builds or
//! replaces anything, and reuses a recorded build only for that commit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestAgent, World, deploy_request, phases};
use sdp_agentlib::GoFlavour;
use sdp_bus::{DeployRequest, Event, EventBody, Status};
use sdp_testkit::{GoFixture, ReposDir, containers_with_label, ensure_busybox_image};

const PASSWORD: &str = "canary-Pw-c0mm1t";
const REPO: &str = "users";
const BRANCH: &str = "feature/x";

fn request(commit: &str) -> DeployRequest {
    DeployRequest {
        commit: Some(commit.to_owned()),
        ..deploy_request("alpha", REPO, BRANCH, PASSWORD)
    }
}

/// The commit the result carries.
fn result_commit(events: &[Event]) -> Option<String> {
    match &events.last().expect("events").body {
        EventBody::Result { commit, .. } => commit.clone(),
        other => panic!("not a result: {other:?}"),
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_commit_deploys_only_from_its_branch_and_reuses_only_its_own_build() {
    let world = World::start(PASSWORD).await;
    let fixture = GoFixture::create(&world.git, REPO, &["main", BRANCH]);
    let repos = ReposDir::new();
    repos.add(REPO, &world.git.url(REPO));
    let agent = TestAgent::start(
        &world,
        "commit",
        Arc::new(GoFlavour::default()),
        ensure_busybox_image(),
        repos,
        |config| config.health.path = "/healthz".into(),
    )
    .await;
    let a = fixture.commit(BRANCH);
    let b = fixture.push_revision(BRANCH, "2");

    // A, an ancestor of the branch's head B, by its id.
    let first = request(&a);
    let (events, status, url, error) = agent.deploy_and_wait(&world, &first).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert_eq!(result_commit(&events).as_deref(), Some(a.as_str()));
    let url = url.expect("url");
    let answer = get_json(&url).await;
    assert_eq!(answer["commit"], a.as_str());
    assert_eq!(answer["revision"], "1");

    // Off the branch: main's commit (in the git server, not on feature/x)
    // and one nobody made. Refused after the fetch, before building; the
    // container of A is left alone.
    for wanted in [fixture.commit("main"), "0123456789".repeat(4)] {
        let off = request(&wanted);
        let (events, status, _, error) = agent.deploy_and_wait(&world, &off).await;
        assert_eq!(status, Status::Failed, "{events:#?}");
        assert_eq!(phases(&events), [Status::Queued, Status::Fetching]);
        let error = error.expect("error");
        let expected = format!(
            "commit {} is not on branch {BRANCH} (fetched head {}): pick a commit from the branch's history",
            &wanted[..7],
            &b[..7]
        );
        assert_eq!(error, expected);
        assert_eq!(result_commit(&events), None);
        assert_eq!(
            containers_with_label("sdp.agent", &agent.id),
            containers_with_label("sdp.deployment", first.deployment_id.as_str()),
            "a refused commit replaced the container"
        );
        assert_eq!(get_json(&url).await["commit"], a.as_str());
    }

    // A re-apply naming B: the recorded build is A's, so it deploys in full.
    let mut to_b = request(&b);
    to_b.reuse_build = true;
    let (events, status, url, error) = agent.deploy_and_wait(&world, &to_b).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert_eq!(
        phases(&events),
        [
            Status::Queued,
            Status::Fetching,
            Status::Building,
            Status::Starting
        ]
    );
    assert_eq!(result_commit(&events).as_deref(), Some(b.as_str()));
    let url = url.expect("url");
    assert_eq!(get_json(&url).await["commit"], b.as_str());

    // The same again: B's build is the recorded one, so it is reused.
    let mut again = request(&b);
    again.reuse_build = true;
    let (events, status, _, error) = agent.deploy_and_wait(&world, &again).await;
    assert_eq!(status, Status::Running, "{error:?}: {events:#?}");
    assert_eq!(phases(&events), [Status::Queued, Status::Starting]);
    assert_eq!(result_commit(&events).as_deref(), Some(b.as_str()));
    assert_eq!(get_json(&url).await["commit"], b.as_str());

    // A malformed commit is refused before git.
    let before = world.git.requests();
    let reply: sdp_bus::Reply<sdp_bus::DeployAccepted> = world
        .request(
            sdp_bus::subject::deploy_request("micro"),
            &request("HEAD~1"),
        )
        .await;
    let err = reply.into_result().expect_err("refused");
    assert_eq!(err.code, sdp_bus::RpcErrorCode::BadRequest);
    assert!(err.message.contains("commit"), "{}", err.message);
    assert_eq!(world.git.requests(), before, "git was never asked");

    agent.stop().await;
}
