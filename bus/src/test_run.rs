//! Test runs on the bus: `agent.rpc.<kind>.test_run` asks one agent of the
//! kind to run a command from a repo's branch against a sandbox. The run's
//! id is [`DeploymentId`]-shaped and its events go on
//! `deploy.progress.<id>` like a deployment's, so the persister, the log
//! files and `/ws/deployments/{id}` serve them as they are. It ends with a
//! `result` event whose `test` ([`TestOutcome`]) says how the run went.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{DeploymentId, GitCredential};

/// Most arguments a test command has, and most bytes of each.
pub const MAX_COMMAND_ARGS: usize = 64;
pub const MAX_COMMAND_ARG_BYTES: usize = 1024;
/// Most failed test names a [`JunitSummary`] keeps (the log has them all).
pub const MAX_FAILED_NAMES: usize = 100;

/// `agent.rpc.<kind>.test_run`: control plane → one agent of the kind;
/// answered with a `DeployAccepted` once the run is registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestRunRequest {
    pub run_id: DeploymentId,
    #[serde(deserialize_with = "crate::message::checked_sandbox")]
    pub sandbox: String,
    /// The repo (in the agent's `repos_dir`) whose checkout the command runs in.
    #[serde(deserialize_with = "crate::message::checked_repo")]
    pub repo: String,
    pub branch: String,
    pub credential: GitCredential,
    /// argv, run without a shell; `argv[0]` is looked up on the run
    /// container's `PATH` (the Go toolchain's `bin` first) or is a path in
    /// the checkout (`./bin/e2e`).
    pub command: Vec<String>,
    /// The sandbox's URLs (`SDP_GATEWAY_URL`, `SDP_PREVIEW_URL`, …).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Where the command writes a JUnit XML report, relative to the
    /// checkout; read after the command ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub junit: Option<String>,
}

/// How a test run ended: the `test` field of its `result` event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// The command exited 0 (and the JUnit report, if read, has no
    /// failures or errors).
    pub passed: bool,
    /// The command's exit code; none when it never ran (fetch failed, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The JUnit report's counts, when the run names one and it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub junit: Option<JunitSummary>,
}

/// Counts of a JUnit XML report and the names of its failed tests.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JunitSummary {
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    /// `classname.name` (or `name`) of each failed or errored test case,
    /// at most [`MAX_FAILED_NAMES`].
    #[serde(default)]
    pub failed: Vec<String>,
}

/// Checks a test command: 1..=[`MAX_COMMAND_ARGS`] arguments, each at most
/// [`MAX_COMMAND_ARG_BYTES`] bytes without NUL; `argv[0]` not empty.
pub fn check_command(command: &[String]) -> Result<(), String> {
    if command.is_empty() || command[0].is_empty() {
        return Err("the test command must name a program".into());
    }
    if command.len() > MAX_COMMAND_ARGS {
        return Err(format!(
            "the test command has more than {MAX_COMMAND_ARGS} arguments"
        ));
    }
    if command
        .iter()
        .any(|a| a.len() > MAX_COMMAND_ARG_BYTES || a.contains('\0'))
    {
        return Err(format!(
            "each test command argument must be at most {MAX_COMMAND_ARG_BYTES} bytes, without NUL"
        ));
    }
    Ok(())
}

/// Checks a JUnit report path: relative, plain components (no `..`, no
/// leading `/`), at most 256 bytes. The agent also refuses one that leads
/// out of the checkout through a symlink.
pub fn check_junit_path(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.len() > 256
        || path.starts_with('/')
        || path.contains('\0')
        || path.contains('\\')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(format!(
            "junit path {path:?} must be a relative path inside the checkout (no `..`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_paths_stay_inside() {
        for ok in ["report.xml", "out/junit.xml", ".reports/a.xml"] {
            assert!(check_junit_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x.xml",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
        ] {
            assert!(check_junit_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_are_bounded() {
        assert!(check_command(&["go".into(), "test".into()]).is_ok());
        assert!(check_command(&[]).is_err());
        assert!(check_command(&[String::new()]).is_err());
        assert!(check_command(&vec!["x".to_owned(); MAX_COMMAND_ARGS + 1]).is_err());
        assert!(check_command(&["a\0b".into()]).is_err());
    }
}
