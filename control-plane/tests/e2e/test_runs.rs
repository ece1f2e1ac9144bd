//! Test runs end to end, on real parts: a QA repo's Go suite
//! (`sdp_testkit::QaFixture`, `go run ./cmd/junit` writing `report.xml`)
//! runs in a locked-down container against a sandbox whose `users`
//! service is deployed; the run reaches the service over Docker's bridge at
//! `$SDP_SERVICE_URL_USERS`. The template's `tests.after_deploy` starts a
//! run once the deploy settles (it passes: exit 0, 3 tests); a run of the
//! `failing` branch started by hand fails with exit code 1 and the JUnit
//! counts and the failed test's name; its output is its log, and the
//! sandbox's history lists both, newest first.

use std::time::Duration;

use sdp_api::client::Client;
use sdp_api::{
    NewSandbox, NewTestRun, RepoBranch, TemplateBody, TestRun, TestRunStatus, TestRunTrigger,
    TestSettings,
};
use sdp_bus::{EventBody, Status};
use sdp_testkit::qa_fixture::{FAILING_BRANCH, FAILING_TEST, QA_COMMAND, QA_REPORT};
use sdp_testkit::{unique_id, wait_for};

use crate::common::*;

/// A cold `go run` plus `go test` on a 2-core machine, after the deploy.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

async fn wait_run_settled(client: &Client, id: &str) -> TestRun {
    wait_for(&format!("test run {id} to settle"), RUN_TIMEOUT, || async {
        let run = client.test_run(id).await.ok()?;
        run.status.is_settled().then_some(run)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_suite_runs_against_a_deployed_sandbox_passing_then_failing() {
    // Containers reach the users service at the Docker bridge's address.
    let (stack, qa, qa_repo) = steps::start_with_qa_repo().await;
    let client = stack.login_as(USER).await;

    let template = unique_id("qa-tpl");
    let tests = TestSettings {
        repo: qa_repo.clone(),
        branch: None,
        command: QA_COMMAND.map(str::to_owned).to_vec(),
        junit: Some(QA_REPORT.to_owned()),
        after_deploy: true,
    };
    let created = client
        .create_template(&TemplateBody {
            name: Some(template.clone()),
            environment: None,
            gateway: None,
            services: vec![RepoBranch {
                repo: REPO.to_owned(),
                branch: BRANCH.to_owned(),
                overrides: Default::default(),
            }],
            tests: Some(tests.clone()),
            ..Default::default()
        })
        .await
        .expect("create template");
    assert_eq!(
        created.tests.as_ref(),
        Some(&tests),
        "the template keeps its tests"
    );
    let sandbox = unique_id("tr");
    client
        .create_sandbox(&NewSandbox {
            name: sandbox.clone(),
            template: Some(template.clone()),
            ..NewSandbox::default()
        })
        .await
        .expect("create sandbox");

    // The deploy settles: the template's run starts by itself and passes.
    stack
        .deploy_and_wait(&client, &sandbox, BRANCH, Status::Running)
        .await;
    let after_deploy = wait_for("the run after the deploy", RUN_TIMEOUT, || async {
        let runs = client.test_runs(&sandbox).await.ok()?;
        runs.into_iter().find(|r| r.status.is_settled())
    })
    .await;
    let log = client
        .deployment_logs(after_deploy.id.as_str())
        .await
        .expect("the run's log");
    assert_eq!(
        after_deploy.status,
        TestRunStatus::Passed,
        "{after_deploy:?}\n{log}"
    );
    assert_eq!(after_deploy.trigger, TestRunTrigger::AfterDeploy);
    assert_eq!(after_deploy.exit_code, Some(0));
    assert_eq!(
        after_deploy.commit.as_deref(),
        Some(qa.commit("main").as_str())
    );
    let junit = after_deploy.junit.clone().expect("junit counts");
    assert_eq!(
        (junit.tests, junit.failures, junit.errors),
        (3, 0, 0),
        "{log}"
    );
    assert!(junit.failed.is_empty());
    assert!(log.contains("--- PASS: TestUsersNamesItself"), "{log}");

    // By hand, the failing branch: exit code 1, the counts, the name.
    let started = client
        .start_test_run(
            &sandbox,
            &NewTestRun {
                branch: Some(FAILING_BRANCH.to_owned()),
                ..NewTestRun::default()
            },
        )
        .await
        .expect("start a run");
    assert_eq!(started.trigger, TestRunTrigger::Manual);
    let token = client.token().expect("token").to_owned();
    // Its live events are a deployment's: the socket ends with the result.
    let events = stack.ws_events(&token, started.id.as_str(), 0).await;
    let outcome = events.iter().find_map(|e| match &e.body {
        EventBody::Result { test, .. } => test.clone(),
        _ => None,
    });
    assert_eq!(outcome.map(|o| o.passed), Some(false), "{events:#?}");
    let failed = wait_run_settled(&client, started.id.as_str()).await;
    let log = client
        .deployment_logs(failed.id.as_str())
        .await
        .expect("the run's log");
    assert_eq!(failed.status, TestRunStatus::Failed, "{failed:?}\n{log}");
    assert_eq!(failed.exit_code, Some(1), "{log}");
    let junit = failed.junit.clone().expect("junit counts");
    assert_eq!((junit.tests, junit.failures), (4, 1), "{log}");
    assert_eq!(junit.failed, vec![FAILING_TEST.to_owned()]);
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("1 of 4")),
        "{failed:?}"
    );
    assert!(log.contains("--- FAIL: TestUsersIsAtRevisionTwo"), "{log}");
    assert!(log.contains("SDP_SERVICE_URL_USERS="), "{log}");

    // The audit trail: the control plane started the first run (after
    // the deploy) and recorded each run's end with its verdict.
    let ends = wait_for(
        "both runs' end in the audit trail",
        Duration::from_secs(10),
        || async {
            let page = client
                .audit(&sdp_api::AuditQuery {
                    sandbox: Some(sandbox.clone()),
                    action: Some("test_run.end".to_owned()),
                    ..Default::default()
                })
                .await
                .ok()?;
            (page.entries.len() == 2).then_some(page.entries)
        },
    )
    .await;
    let verdicts: Vec<(Option<&str>, sdp_api::AuditOutcome, Option<&str>)> = ends
        .iter()
        .map(|e| (e.target.as_deref(), e.outcome, e.message.as_deref()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (
                Some(failed.id.as_str()),
                sdp_api::AuditOutcome::Failed,
                Some("failed (exit 1, 1 of 4 tests failed)")
            ),
            (
                Some(after_deploy.id.as_str()),
                sdp_api::AuditOutcome::Ok,
                Some("passed (exit 0, 3 tests)")
            ),
        ],
        "{ends:?}"
    );
    assert!(ends.iter().all(|e| e.actor.as_deref() == Some("system")));

    // History: newest first.
    let history = client.test_runs(&sandbox).await.expect("history");
    let ids: Vec<&str> = history.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [failed.id.as_str(), after_deploy.id.as_str()]);
    // Its container is gone once it ended.
    assert!(
        sdp_testkit::containers_with_label("sdp.test_run", failed.id.as_str()).is_empty(),
        "the run's container is removed"
    );

    // The CLI: `sdp test SANDBOX --follow` prints the output and exits 0
    // when the run passed, 1 when it failed.
    let sdp = crate::cli::Sdp::new(&stack.base_url);
    sdp.login(&stack.password).await;
    let out = sdp.run(&["test", &sandbox, "--follow"]).await;
    let text = crate::cli::show(&out);
    assert_eq!(crate::cli::code(&out), 0, "{text}");
    assert!(
        text.contains("--- PASS: TestHealth") && text.contains("passed"),
        "{text}"
    );
    let out = sdp
        .run(&["test", &sandbox, "--branch", FAILING_BRANCH, "--follow"])
        .await;
    let text = crate::cli::show(&out);
    assert_eq!(crate::cli::code(&out), 1, "{text}");
    assert!(
        text.contains(FAILING_TEST),
        "the failed test is named: {text}"
    );
    let out = sdp.run(&["test", &sandbox, "--list"]).await;
    assert_eq!(crate::cli::code(&out), 0, "{}", crate::cli::show(&out));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_refused_before_anything_is_recorded() {
    let stack = Stack::start().await;
    let client = stack.login_as(USER).await;
    let sandbox = unique_id("trbad");
    client
        .create_sandbox(&NewSandbox {
            name: sandbox.clone(),
            ..NewSandbox::default()
        })
        .await
        .expect("create sandbox");
    // No template tests and no command.
    let err = client
        .start_test_run(&sandbox, &NewTestRun::default())
        .await
        .expect_err("no repo, no command");
    assert_eq!(err.status(), Some(400), "{err}");
    // A report path out of the checkout.
    let escape = NewTestRun {
        repo: Some(REPO.to_owned()),
        command: Some(vec!["go".into(), "test".into()]),
        junit: Some("../../etc/passwd".into()),
        ..NewTestRun::default()
    };
    let err = client
        .start_test_run(&sandbox, &escape)
        .await
        .expect_err("junit path outside");
    assert_eq!(err.status(), Some(400), "{err}");
    // Someone else's sandbox.
    let other = stack.login_as("mallory").await;
    let ok_body = NewTestRun {
        repo: Some(REPO.to_owned()),
        command: Some(vec!["go".into(), "test".into()]),
        ..NewTestRun::default()
    };
    let err = other
        .start_test_run(&sandbox, &ok_body)
        .await
        .expect_err("not the owner");
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(
        client
            .test_runs(&sandbox)
            .await
            .expect("history")
            .is_empty()
    );
    stack.shutdown().await;
}
