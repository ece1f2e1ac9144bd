//! Cancelling a test run, on real parts: a run whose command sleeps for
//! ten minutes is followed with `sdp test --follow` and cancelled while
//! its container runs. Someone who neither owns the sandbox nor started
//! the run is refused (403) first. The run ends `cancelled` within a
//! bound, its log and error say who cancelled it, its container is gone
//! (`docker ps -a` by label), the follow exits 4, a second cancel is a
//! 409, and the audit trail has the cancel.

use std::time::Duration;

use sdp_api::{NewSandbox, RepoBranch, TemplateBody, TestRunStatus, TestSettings};
use sdp_testkit::{unique_id, wait_for};

use crate::common::*;

/// From the cancel to the run's row `cancelled` (the agent kills the
/// container, removes it, then publishes the result).
const CANCEL_BOUND: Duration = Duration::from_secs(30);
/// A fetch and the Go setup on a 2-core machine, before the command runs.
const START_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_test_run_is_cancelled_and_its_container_goes() {
    let stack = Stack::start_with(StackOptions {
        control_plane_env: vec![("SDP_CONTROL_PLANE__AUTH__ADMINS".into(), "ops".into())],
        ..StackOptions::default()
    })
    .await;
    let client = stack.login_as(USER).await;
    let template = unique_id("cancel-tpl");
    client
        .create_template(&TemplateBody {
            name: Some(template.clone()),
            services: vec![RepoBranch {
                repo: REPO.to_owned(),
                branch: BRANCH.to_owned(),
                overrides: Default::default(),
            }],
            tests: Some(TestSettings {
                repo: REPO.to_owned(),
                branch: Some(BRANCH.to_owned()),
                command: vec!["sleep".into(), "600".into()],
                junit: None,
                after_deploy: false,
            }),
            ..Default::default()
        })
        .await
        .expect("create template");
    let sandbox = unique_id("trc");
    client
        .create_sandbox(&NewSandbox {
            name: sandbox.clone(),
            template: Some(template),
            ..NewSandbox::default()
        })
        .await
        .expect("create sandbox");

    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let follow_args = ["test", sandbox.as_str(), "--follow"];
    let follow = sdp.run(&follow_args);
    let cancel = async {
        // The run's container is up: the command runs.
        let (id, container) = wait_for("the sleeping run's container", START_TIMEOUT, || async {
            let run = client.test_runs(&sandbox).await.ok()?.into_iter().next()?;
            let found = sdp_testkit::containers_with_label("sdp.test_run", run.id.as_str());
            (!found.is_empty()).then(|| (run.id.to_string(), found))
        })
        .await;
        assert_eq!(container.len(), 1, "{container:?}");
        // Not the owner, not the starter: refused, nothing sent.
        let other = stack.login_as("mallory").await;
        let err = other
            .cancel_test_run(&id)
            .await
            .expect_err("someone else's run");
        assert_eq!(err.status(), Some(403), "{err}");
        assert_eq!(
            client.test_run(&id).await.expect("run").status,
            TestRunStatus::Running
        );
        let asked = std::time::Instant::now();
        let answer = client.cancel_test_run(&id).await.expect("cancel");
        assert_eq!(answer.status, TestRunStatus::Running);
        // While it stops, asking again is the same answer (or, if it
        // already ended, a conflict).
        match client.cancel_test_run(&id).await {
            Ok(again) => assert_eq!(again.id.as_str(), id),
            Err(err) => assert_eq!(err.status(), Some(409), "{err}"),
        }
        let run = wait_for("the run to end cancelled", CANCEL_BOUND, || async {
            let run = client.test_run(&id).await.ok()?;
            run.status.is_settled().then_some(run)
        })
        .await;
        let took = asked.elapsed();
        (id, run, took)
    };
    let (out, (id, run, took)) = tokio::join!(follow, cancel);
    let text = crate::cli::show(&out);
    assert_eq!(run.status, TestRunStatus::Cancelled, "{run:?}");
    assert_eq!(
        run.error.as_deref(),
        Some(format!("cancelled by {USER}").as_str()),
        "{run:?}"
    );
    eprintln!("cancel to cancelled: {took:?}");
    assert!(
        sdp_testkit::containers_with_label("sdp.test_run", &id).is_empty(),
        "the run's container is removed"
    );
    assert_eq!(crate::cli::code(&out), 4, "{text}");
    // Its network went with it (removed before the result was sent).
    let networks = std::process::Command::new("docker")
        .args(["network", "ls", "-q", "--filter"])
        .arg(format!("label=sdp.test_run={id}"))
        .output()
        .expect("docker network ls");
    assert!(
        String::from_utf8_lossy(&networks.stdout).trim().is_empty(),
        "the run's network is removed"
    );
    let log = client.deployment_logs(&id).await.expect("the run's log");
    assert!(log.contains(&format!("cancelled by {USER}")), "{log}");
    assert!(log.contains("$ sleep 600"), "{log}");

    // Ended: a cancel is a conflict, with a message.
    let err = client.cancel_test_run(&id).await.expect_err("an ended run");
    assert_eq!(err.status(), Some(409), "{err}");
    assert!(err.to_string().contains("already ended"), "{err}");
    let err = client
        .cancel_test_run("no-such-run")
        .await
        .expect_err("no such run");
    assert_eq!(err.status(), Some(404), "{err}");

    // The audit trail: the refused cancel, the cancel, and the run's end.
    let admin = stack.login_as("ops").await;
    let entries = wait_for(
        "the cancels in the audit trail",
        Duration::from_secs(10),
        || async {
            let page = admin
                .audit(&sdp_api::AuditQuery {
                    sandbox: Some(sandbox.clone()),
                    action: Some("test_run.cancel".to_owned()),
                    ..Default::default()
                })
                .await
                .ok()?;
            (page.entries.len() >= 3).then_some(page.entries)
        },
    )
    .await;
    let outcomes: Vec<(Option<&str>, sdp_api::AuditOutcome)> = entries
        .iter()
        .rev()
        .map(|e| (e.actor.as_deref(), e.outcome))
        .collect();
    assert_eq!(
        outcomes[..2],
        [
            (Some("mallory"), sdp_api::AuditOutcome::Denied),
            (Some(USER), sdp_api::AuditOutcome::Ok)
        ],
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e.target.as_deref() == Some(id.as_str())),
        "{entries:?}"
    );
    stack.shutdown().await;
}
