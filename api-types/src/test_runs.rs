//! Test runs: a command from a repo's branch run against a sandbox (its
//! URLs in the environment), ending `passed` or `failed` with the exit
//! code and, when the command writes one, a JUnit report's counts. The
//! template's `tests` names the command; a run can also name its own.

use chrono::{DateTime, Utc};
use sdp_bus::{DeploymentId, JunitSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A template's test settings: what a sandbox's test run runs by default,
/// and whether one starts by itself once a deploy of the sandbox settles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSettings {
    /// The repo holding the tests (an agent of kind `micro` holds it).
    #[schema(max_length = 63, example = "qa")]
    pub repo: String,
    /// Its branch (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200, example = "main")]
    pub branch: Option<String>,
    /// argv, run without a shell in the checkout (`go` is the Go
    /// toolchain the repo's `go.mod` asks for).
    #[schema(min_items = 1, max_items = 64, example = json!(["go", "run", "./cmd/e2e"]))]
    pub command: Vec<String>,
    /// Where the command writes a JUnit XML report, relative to the
    /// checkout (no `..`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256, example = "report.xml")]
    pub junit: Option<String>,
    /// Start a run once a deploy of the sandbox settles with its services
    /// running.
    #[serde(default)]
    pub after_deploy: bool,
}

/// `POST /api/sandboxes/{name}/test-runs`: every field falls back to the
/// sandbox's template's `tests`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTestRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 63)]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 64)]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    pub junit: Option<String>,
}

/// Where a test run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestRunStatus {
    Queued,
    Running,
    Passed,
    Failed,
    Cancelled,
}

impl TestRunStatus {
    pub const ALL: [TestRunStatus; 5] = [
        TestRunStatus::Queued,
        TestRunStatus::Running,
        TestRunStatus::Passed,
        TestRunStatus::Failed,
        TestRunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TestRunStatus::Queued => "queued",
            TestRunStatus::Running => "running",
            TestRunStatus::Passed => "passed",
            TestRunStatus::Failed => "failed",
            TestRunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Passed, failed or cancelled: nothing changes it any more.
    pub fn is_settled(self) -> bool {
        !matches!(self, TestRunStatus::Queued | TestRunStatus::Running)
    }
}

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestRunTrigger {
    /// A user (dashboard, API, `sdp test`).
    Manual,
    /// A deploy of the sandbox settled (template `tests.after_deploy`).
    AfterDeploy,
}

/// A test run as the API shows it. Its log is the deployment log of the
/// same id (`GET /api/deployments/{id}/logs`, `WS /ws/deployments/{id}`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TestRun {
    #[schema(value_type = String)]
    pub id: DeploymentId,
    pub sandbox: String,
    pub repo: String,
    pub branch: String,
    /// The commit tested, once fetched.
    pub commit: Option<String>,
    pub command: Vec<String>,
    pub junit_path: Option<String>,
    pub status: TestRunStatus,
    pub exit_code: Option<i64>,
    /// The JUnit report's counts and failed test names, when read.
    pub junit: Option<JunitSummary>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    pub trigger: TestRunTrigger,
    pub agent_id: Option<String>,
    pub created_by: String,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
}
