//! `sdp test SANDBOX [--repo R] [--branch B] [--follow]`: starts a test
//! run against the sandbox (`POST /api/sandboxes/{name}/test-runs`; what
//! is not given comes from the sandbox's template's `tests`). With
//! `--follow` its output is followed like a deployment's log (the run's
//! events are on the deployment WebSocket of its id) and `sdp` exits 0 when
//! it passed, 1 when it failed, 4 when it was cancelled. `--list` shows
//! the sandbox's runs, newest first. `sdp test cancel ID` cancels a run
//! (`POST /api/test-runs/{id}/cancel`); Ctrl-C while following only
//! stops following (the run goes on: cancel it with that).

use std::time::Duration;

use sdp_api::{NewTestRun, TestRun, TestRunStatus};

use crate::args::{TestArgs, TestCommand};
use crate::follow::Follower;
use crate::listing::{self, Listed};
use crate::output::{self, cell_of};
use crate::progress::{LogTo, Progress};
use crate::{CliError, Ctx, Exit};

/// How long after the stream's end the run's row may take to settle (the
/// persister writes it with the result event).
const SETTLE_WAIT: Duration = Duration::from_secs(30);

pub async fn run(ctx: &Ctx, args: TestArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    if let Some(TestCommand::Cancel { id }) = &args.command {
        let run = client.cancel_test_run(id).await?;
        if ctx.json() {
            output::print_json(&run)?;
        } else {
            eprintln!(
                "Cancel requested for test run {id} (it was {}).",
                run.status.as_str()
            );
        }
        return Ok(Exit::Ok);
    }
    // clap requires it without a subcommand.
    let Some(sandbox) = args.sandbox.clone() else {
        return Err(CliError::Usage(
            "name the sandbox to test: `sdp test SANDBOX`".to_owned(),
        ));
    };
    if args.list {
        let runs = client
            .all_test_runs(&sandbox, listing::wanted(args.limit))
            .await?;
        return listing::print(ctx, &runs);
    }
    let body = NewTestRun {
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        command: None,
        junit: None,
    };
    let started = client.start_test_run(&sandbox, &body).await?;
    let id = started.id.as_str().to_owned();
    if !ctx.json() {
        eprintln!(
            "Testing {sandbox} with {}@{} as {id}",
            started.repo, started.branch
        );
    }
    if !args.follow {
        if ctx.json() {
            output::print_json(&started)?;
        } else {
            output::print(&format!("{id}\n"))?;
        }
        return Ok(Exit::Ok);
    }
    let label = format!("{}@{}", started.repo, started.branch);
    let mut follower = Follower::new(&client, &id, 0);
    let mut progress = Progress::new(&label, ctx.stderr_tty, ctx.paint, LogTo::Stdout);
    // The stream's own end may not be a deployment's (its REST check is
    // the deployment's): the run's row decides.
    let _ = follower
        .run(|update| {
            if !ctx.json() {
                progress.update(update);
            }
        })
        .await;
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    let run = loop {
        let run = client.test_run(&id).await?;
        if run.status.is_settled() || tokio::time::Instant::now() >= deadline {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if ctx.json() {
        output::print_json(&run)?;
    } else {
        eprintln!("{}", summary(&run));
    }
    Ok(match run.status {
        TestRunStatus::Passed => Exit::Ok,
        TestRunStatus::Cancelled => Exit::Cancelled,
        TestRunStatus::Failed => Exit::Failed,
        TestRunStatus::Queued | TestRunStatus::Running => Exit::TimedOut,
    })
}

/// One line: the status, the exit code, the JUnit counts, failed names.
fn summary(run: &TestRun) -> String {
    let mut line = format!("test run {}: {}", run.id, run.status.as_str());
    if let Some(code) = run.exit_code {
        line.push_str(&format!(" (exit code {code})"));
    }
    if let Some(junit) = &run.junit {
        line.push_str(&format!(
            "; {} tests, {} failures, {} errors, {} skipped",
            junit.tests, junit.failures, junit.errors, junit.skipped
        ));
        for name in &junit.failed {
            line.push_str(&format!("\n  failed: {name}"));
        }
    }
    if let (Some(error), false) = (&run.error, run.status == TestRunStatus::Passed) {
        line.push_str(&format!("\n  {error}"));
    }
    line
}

impl Listed for TestRun {
    const HEADERS: &'static [&'static str] = &[
        "id", "status", "tests", "exit", "passed", "trigger", "started",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.status.as_str().to_owned(),
            format!("{}@{}", self.repo, self.branch),
            cell_of(&self.exit_code),
            self.junit
                .as_ref()
                .map(|j| format!("{}/{}", j.tests - j.failures - j.errors, j.tests))
                .unwrap_or_else(|| "-".to_owned()),
            cell_of(&self.trigger),
            cell_of(&self.created_at.to_rfc3339()),
        ]
    }
}
