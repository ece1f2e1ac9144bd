//! A test run that ended: told to Bitbucket and the template's webhooks
//! ([`crate::notify`]) and written to the audit trail. Results come from
//! the progress stream like a deployment's; a run whose dispatch failed
//! ends here too.

use sdp_api::{AuditAction, AuditOutcome};
use sdp_bus::{Status, TestOutcome};

use super::Orchestrator;
use crate::notify::TestRunEnded;

impl Orchestrator {
    /// Tells the end of run `id` (its row has the sandbox, repo and
    /// commit; `commit` from the result fills in one the row lacks).
    pub(super) async fn test_run_ended(
        &self,
        id: &str,
        status: Status,
        outcome: Option<&TestOutcome>,
        commit: Option<&str>,
    ) {
        let run = match self.store.test_run(id) {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(test_run = id, error = %err, "cannot read the test run that ended");
                return;
            }
        };
        let passed = outcome.is_some_and(|o| o.passed) && status != Status::Cancelled;
        let description = describe(status, outcome);
        if status != Status::Cancelled {
            self.notifier.test_run_ended(&TestRunEnded {
                sandbox: run.sandbox.clone(),
                repo: run.repo.clone(),
                commit: commit.map(str::to_owned).or(run.commit.clone()),
                id: Some(id.to_owned()),
                key: None,
                passed,
                url: None,
                description: description.clone(),
            });
        }
        let outcome = if passed {
            AuditOutcome::Ok
        } else {
            AuditOutcome::Failed
        };
        self.audit
            .record_system(
                AuditAction::TestRunEnd,
                &run.sandbox,
                id.to_owned(),
                outcome,
                Some(description),
            )
            .await;
    }
}

/// `passed (exit 0, 3 tests)`, `failed (exit 1, 1 of 4 tests failed)`,
/// `cancelled`, `failed (did not run)`.
fn describe(status: Status, outcome: Option<&TestOutcome>) -> String {
    if status == Status::Cancelled {
        return "cancelled".to_owned();
    }
    let Some(outcome) = outcome else {
        return "failed (did not run)".to_owned();
    };
    let verdict = if outcome.passed { "passed" } else { "failed" };
    let exit = outcome
        .exit_code
        .map_or_else(|| "did not run".to_owned(), |code| format!("exit {code}"));
    match &outcome.junit {
        Some(junit) if junit.failures + junit.errors > 0 => format!(
            "{verdict} ({exit}, {} of {} tests failed)",
            junit.failures + junit.errors,
            junit.tests
        ),
        Some(junit) => format!("{verdict} ({exit}, {} tests)", junit.tests),
        None => format!("{verdict} ({exit})"),
    }
}

#[cfg(test)]
mod tests {
    use sdp_bus::JunitSummary;

    use super::*;

    #[test]
    fn an_ended_run_is_described_by_its_exit_code_and_counts() {
        let outcome = |passed, exit_code, junit| TestOutcome {
            passed,
            exit_code,
            junit,
        };
        let counts = |tests, failures| JunitSummary {
            tests,
            failures,
            ..JunitSummary::default()
        };
        assert_eq!(
            describe(
                Status::Stopped,
                Some(&outcome(true, Some(0), Some(counts(3, 0))))
            ),
            "passed (exit 0, 3 tests)"
        );
        assert_eq!(
            describe(
                Status::Stopped,
                Some(&outcome(false, Some(1), Some(counts(4, 1))))
            ),
            "failed (exit 1, 1 of 4 tests failed)"
        );
        assert_eq!(
            describe(Status::Failed, Some(&outcome(false, None, None))),
            "failed (did not run)"
        );
        assert_eq!(describe(Status::Failed, None), "failed (did not run)");
        assert_eq!(describe(Status::Cancelled, None), "cancelled");
    }
}
