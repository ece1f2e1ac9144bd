//! Test runs (`test_runs`): recorded `queued` when started, moved by the
//! persister from the run's events ([`apply_event`], in the transaction
//! that writes them, so a run's row and its log never disagree), listed
//! per sandbox newest first. A run's log is the deployment log of its id.

use rusqlite::{OptionalExtension, Row, params};
use sdp_api::{TestRun, TestRunStatus, TestRunTrigger};
use sdp_bus::{DeploymentId, Event, EventBody, JunitSummary, Status};

use super::keyset::{PageOf, Select, TimeKey};
use super::{Store, StoreError, columns, now_rfc3339};

/// Most runs a sandbox's history lists.
pub const HISTORY_LIMIT: u32 = 100;

/// A run to record.
pub struct NewTestRun<'a> {
    pub id: &'a DeploymentId,
    pub sandbox: &'a str,
    pub repo: &'a str,
    pub branch: &'a str,
    pub command: &'a [String],
    pub junit_path: Option<&'a str>,
    pub trigger: TestRunTrigger,
    pub created_by: &'a str,
}

const COLUMNS: &str = "id, sandbox, repo, branch, commit_sha, command, junit_path, status, \
     exit_code, junit, error, trigger, agent_id, created_by, created_at, finished_at";

fn malformed(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("malformed test run {what}").into(),
    )
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<TestRun> {
    let command: String = row.get(5)?;
    let status: String = row.get(7)?;
    let junit: Option<String> = row.get(9)?;
    let trigger: String = row.get(11)?;
    Ok(TestRun {
        id: columns::deployment_id(row, 0)?,
        sandbox: row.get(1)?,
        repo: row.get(2)?,
        branch: row.get(3)?,
        commit: row.get(4)?,
        command: serde_json::from_str(&command).map_err(|_| malformed("command"))?,
        junit_path: row.get(6)?,
        status: TestRunStatus::parse(&status).ok_or_else(|| malformed("status"))?,
        exit_code: row.get(8)?,
        junit: junit
            .map(|j| serde_json::from_str::<JunitSummary>(&j))
            .transpose()
            .map_err(|_| malformed("junit"))?,
        error: row.get(10)?,
        trigger: match trigger.as_str() {
            "after_deploy" => TestRunTrigger::AfterDeploy,
            _ => TestRunTrigger::Manual,
        },
        agent_id: row.get(12)?,
        created_by: row.get(13)?,
        created_at: columns::timestamp(row, 14)?,
        finished_at: columns::optional_timestamp(row, 15)?,
    })
}

fn trigger_text(trigger: TestRunTrigger) -> &'static str {
    match trigger {
        TestRunTrigger::Manual => "manual",
        TestRunTrigger::AfterDeploy => "after_deploy",
    }
}

impl Store {
    pub fn insert_test_run(&self, new: &NewTestRun<'_>) -> Result<(), StoreError> {
        let command =
            serde_json::to_string(new.command).map_err(|e| StoreError::Malformed(e.to_string()))?;
        self.conn().execute(
            &format!(
                "INSERT INTO test_runs ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, NULL, ?5, ?6, 'queued', NULL, NULL, NULL, ?7, NULL, ?8, ?9, NULL)"
            ),
            params![
                new.id.as_str(),
                new.sandbox,
                new.repo,
                new.branch,
                command,
                new.junit_path,
                trigger_text(new.trigger),
                new.created_by,
                now_rfc3339(),
            ],
        )?;
        Ok(())
    }

    pub fn set_test_run_agent(&self, id: &str, agent_id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE test_runs SET agent_id = ?2 WHERE id = ?1",
            params![id, agent_id],
        )?;
        Ok(())
    }

    /// Fails a run no agent took (it never produced a result event).
    pub fn fail_test_run(&self, id: &str, error: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE test_runs SET status = 'failed', error = ?2, finished_at = ?3 \
             WHERE id = ?1 AND status IN ('queued', 'running')",
            params![id, error, now_rfc3339()],
        )?;
        Ok(())
    }

    pub fn test_run(&self, id: &str) -> Result<Option<TestRun>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM test_runs WHERE id = ?1"),
                [id],
                read_row,
            )
            .optional()?)
    }

    /// The sandbox's runs, newest first (at most [`HISTORY_LIMIT`]).
    pub fn test_runs(&self, sandbox: &str) -> Result<Vec<TestRun>, StoreError> {
        self.test_runs_page(sandbox, &PageOf::first(HISTORY_LIMIT))
    }

    /// A page of the sandbox's runs, newest first: at most `page.limit`
    /// after `page.after`.
    pub fn test_runs_page(
        &self,
        sandbox: &str,
        page: &PageOf<TimeKey>,
    ) -> Result<Vec<TestRun>, StoreError> {
        let select = test_runs_select(sandbox, page);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(select.sql())?;
        let rows = stmt.query_map(select.args(), read_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

pub(super) fn test_runs_select(sandbox: &str, page: &PageOf<TimeKey>) -> Select {
    let mut select = Select::from(COLUMNS, "test_runs");
    select.equals("sandbox", Some(sandbox));
    select.newest_first(page.after.as_ref(), page.limit);
    select
}

/// The persister's part: a run's phase events make it `running` (with its
/// commit), its result settles it. Rows of other ids (deployments) are
/// not touched; a settled run never moves again.
pub(crate) fn apply_event(tx: &rusqlite::Transaction<'_>, event: &Event) -> rusqlite::Result<()> {
    let id = event.deployment_id.as_str();
    match &event.body {
        EventBody::Phase { phase, commit } if *phase != Status::Queued => {
            tx.execute(
                "UPDATE test_runs SET status = 'running', commit_sha = coalesce(?2, commit_sha) \
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, commit],
            )?;
        }
        EventBody::Result {
            status,
            error,
            commit,
            test: Some(outcome),
            ..
        } => {
            let settled = match status {
                Status::Cancelled => TestRunStatus::Cancelled,
                _ if outcome.passed => TestRunStatus::Passed,
                _ => TestRunStatus::Failed,
            };
            let junit = outcome
                .junit
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|_| malformed("junit"))?;
            // The orchestrator tells and records the end (`test_run_end`).
            let at = columns::timestamp_text(event.ts);
            tx.execute(
                "UPDATE test_runs SET status = ?2, exit_code = ?3, junit = ?4, error = ?5, \
                 commit_sha = coalesce(?6, commit_sha), finished_at = ?7 \
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![
                    id,
                    settled.as_str(),
                    outcome.exit_code,
                    junit,
                    error,
                    commit,
                    at
                ],
            )?;
        }
        _ => {}
    }
    Ok(())
}
