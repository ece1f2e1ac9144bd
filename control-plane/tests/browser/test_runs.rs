//! The test runs view: from the sandbox page one click to its runs,
//! newest first, a failed one marked with its JUnit counts; one click from
//! it to its log (the suite's output, the failed test named); "Run tests"
//! starts another, which shows at the top of the history.

use std::time::Duration;

use sdp_api::{NewSandbox, NewTestRun, RepoBranch, TemplateBody, TestRunStatus, TestSettings};
use sdp_bus::Status;
use sdp_testkit::qa_fixture::{FAILING_BRANCH, FAILING_TEST, QA_COMMAND, QA_REPORT};
use sdp_testkit::{unique_id, wait_for};
use serde_json::json;

use crate::common::*;
use crate::driver::{Browser, UI_TIMEOUT};
use crate::flows::login;

const RUN_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_lists_test_runs_and_opens_a_failed_one_at_its_log() {
    let (stack, _qa, qa_repo) = steps::start_with_qa_repo().await;
    let client = stack.login_as(USER).await;
    let template = unique_id("qa-tpl");
    client
        .create_template(&TemplateBody {
            name: Some(template.clone()),
            environment: None,
            gateway: None,
            services: vec![RepoBranch {
                repo: REPO.to_owned(),
                branch: BRANCH.to_owned(),
                overrides: Default::default(),
            }],
            tests: Some(TestSettings {
                repo: qa_repo.clone(),
                branch: Some(FAILING_BRANCH.to_owned()),
                command: QA_COMMAND.map(str::to_owned).to_vec(),
                junit: Some(QA_REPORT.to_owned()),
                after_deploy: false,
            }),
            ..Default::default()
        })
        .await
        .expect("create template");
    let sandbox = unique_id("trui");
    client
        .create_sandbox(&NewSandbox {
            name: sandbox.clone(),
            template: Some(template),
            ..NewSandbox::default()
        })
        .await
        .expect("create sandbox");
    stack
        .deploy_and_wait(&client, &sandbox, BRANCH, Status::Running)
        .await;
    let run = client
        .start_test_run(&sandbox, &NewTestRun::default())
        .await
        .expect("start a run");
    let id = run.id.to_string();
    let failed = wait_for("the run to settle", RUN_TIMEOUT, || async {
        let run = client.test_run(&id).await.ok()?;
        run.status.is_settled().then_some(run)
    })
    .await;
    assert_eq!(failed.status, TestRunStatus::Failed, "{failed:?}");

    let browser = Browser::start(&stack.base_url).await;
    login(&browser, &stack, false).await;
    browser.open(&format!("/sandboxes/{sandbox}")).await;
    browser.click("#sandbox-test-runs").await;
    let row = format!("#test-runs tr[data-run={}]", json!(id));
    browser
        .wait_for(&format!("{row}[data-status=failed]"))
        .await;
    let counts = browser
        .js(&format!(
            "const c = document.querySelector({}); return [c.dataset.tests, c.dataset.failed];",
            json!(format!("{row} [data-tests]"))
        ))
        .await;
    assert_eq!(counts, json!(["4", "1"]));
    browser.screenshot("test-runs").await;

    // One click from the failed run to its log.
    browser.click(&format!("{row} a.run-log")).await;
    assert_eq!(browser.hash().await, format!("#/test-runs/{id}"));
    browser.wait_for("#failed-tests").await;
    assert!(browser.text("#failed-tests").await.contains(FAILING_TEST));
    assert!(browser.text("#test-run-exit").await.contains('1'));
    let fail_line = browser
        .wait_js(
            "the failing test's output in the log",
            UI_TIMEOUT,
            "return document.getElementById('log').logRows()\
             .some((r) => r[2].includes('--- FAIL: TestUsersIsAtRevisionTwo'));",
        )
        .await;
    assert_eq!(fail_line, json!(true));
    browser.screenshot("test-run-failed").await;

    // "Run tests" starts another: it heads the history.
    browser
        .open(&format!("/sandboxes/{sandbox}/test-runs"))
        .await;
    browser.wait_for(&row).await;
    browser.click("#run-tests").await;
    let newest = browser
        .wait_js(
            "a second run at the top",
            UI_TIMEOUT,
            &format!(
                "const rows = document.querySelectorAll('#test-runs tbody tr'); \
                 return rows.length === 2 && rows[1].dataset.run === {} ? rows[0].dataset.run : null;",
                json!(id)
            ),
        )
        .await;
    let newest = newest.as_str().expect("run id").to_owned();
    wait_for("the second run to settle", RUN_TIMEOUT, || async {
        let run = client.test_run(&newest).await.ok()?;
        run.status.is_settled().then_some(())
    })
    .await;
    assert!(browser.console_errors().await.is_empty());
    browser.close().await;
    stack.shutdown().await;
}
