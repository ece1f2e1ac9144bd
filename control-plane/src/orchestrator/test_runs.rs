//! Test runs: recorded `queued`, then sent to one agent of the repo's kind
//! (`agent.rpc.<kind>.test_run`) with the sandbox's URLs in the
//! environment ([`test_env`]). The persister moves the row from the run's
//! events; a run no agent took is failed here. After a deploy of a
//! sandbox settles ([`Orchestrator::after_deploy_settled`]), a template
//! with `tests.after_deploy` starts one.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdp_api::{AuditAction, AuditOutcome, TestRun, TestRunTrigger, TestSettings};
use sdp_bus::{DeployAccepted, DeploymentId, GitCredential, Status, TestRunRequest};

use super::Orchestrator;
use crate::agent_client::AgentCallError;
use crate::events::publish_failure;
use crate::store::{NewTestRun, StoreError};

/// The branch of a test repo when neither the request nor the template
/// names one.
pub const DEFAULT_BRANCH: &str = "main";

/// How long after a deployment's result the sandbox is looked at: the
/// gateway re-apply a service's result starts is recorded by then, so one
/// deploy of a sandbox starts one run, not one per service.
const SETTLE_DEBOUNCE: Duration = Duration::from_secs(2);

/// Sandboxes whose after-deploy check is under way: two results checked
/// at once must not both start a run. One per [`Orchestrator`] (its
/// clones share it), so two control planes in one process (tests) never
/// see each other's.
#[derive(Clone, Default)]
pub struct Checking(Arc<Mutex<HashSet<String>>>);

impl Checking {
    /// Marks `sandbox` as being checked; `None` when a check of it is
    /// already under way. The mark goes when the guard drops.
    fn enter(&self, sandbox: &str) -> Option<CheckingGuard> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(sandbox.to_owned()).then(|| CheckingGuard {
            set: self.0.clone(),
            sandbox: sandbox.to_owned(),
        })
    }
}

/// Removes the sandbox from its [`Checking`] set when the check ends.
struct CheckingGuard {
    set: Arc<Mutex<HashSet<String>>>,
    sandbox: String,
}

impl Drop for CheckingGuard {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.sandbox);
    }
}

/// What one run runs.
#[derive(Clone, Debug)]
pub struct TestPlan {
    pub repo: String,
    pub branch: String,
    pub command: Vec<String>,
    pub junit: Option<String>,
}

impl TestPlan {
    /// The template's settings as a plan.
    pub fn of(settings: &TestSettings) -> Self {
        Self {
            repo: settings.repo.clone(),
            branch: settings
                .branch
                .clone()
                .unwrap_or_else(|| DEFAULT_BRANCH.to_owned()),
            command: settings.command.clone(),
            junit: settings.junit.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recorded as a failed run with this reason.
    #[error("{source}")]
    Dispatch {
        id: DeploymentId,
        #[source]
        source: AgentCallError,
    },
}

/// The environment a run gets: `SDP_SANDBOX`, `SDP_GATEWAY_URL` (the
/// sandbox's running gateway), `SDP_PREVIEW_URL` (its preview entry, when
/// the control plane has a preview domain) and `SDP_SERVICE_URL_<REPO>`
/// for each running service (the repo name upper-cased, `-` and `.` as
/// `_`).
pub fn test_env(
    sandbox: &str,
    gateway_url: Option<String>,
    preview_url: Option<String>,
    services: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([("SDP_SANDBOX".to_owned(), sandbox.to_owned())]);
    if let Some(url) = gateway_url {
        env.insert("SDP_GATEWAY_URL".to_owned(), url);
    }
    if let Some(url) = preview_url {
        env.insert("SDP_PREVIEW_URL".to_owned(), url);
    }
    for (repo, url) in services {
        let key: String = repo
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        env.insert(format!("SDP_SERVICE_URL_{key}"), url);
    }
    env
}

impl Orchestrator {
    /// Records and dispatches a test run of `plan` against `sandbox`.
    pub async fn start_test_run(
        &self,
        sandbox: &str,
        plan: &TestPlan,
        trigger: TestRunTrigger,
        user: &str,
        credential: GitCredential,
        preview_url: Option<String>,
    ) -> Result<TestRun, TestRunError> {
        let kind = self
            .registry
            .wait_kind_for_repo(&plan.repo, self.heartbeat_timeout)
            .await;
        let id = DeploymentId::generate();
        self.store.insert_test_run(&NewTestRun {
            id: &id,
            sandbox,
            repo: &plan.repo,
            branch: &plan.branch,
            command: &plan.command,
            junit_path: plan.junit.as_deref(),
            trigger,
            created_by: user,
        })?;
        // A user's start is recorded by the API; this one is the
        // control plane's own.
        if trigger == TestRunTrigger::AfterDeploy {
            self.audit
                .record_system(
                    AuditAction::TestRunStart,
                    sandbox,
                    id.to_string(),
                    AuditOutcome::Ok,
                    Some(format!("after deploy: {}@{}", plan.repo, plan.branch)),
                )
                .await;
        }
        let services = self
            .store
            .latest_deployments(sandbox)?
            .into_iter()
            .filter(|d| d.status == Status::Running && d.kind != sdp_bus::subject::KIND_GATEWAY)
            .filter_map(|d| d.url.map(|url| (d.repo, url)));
        let env = test_env(
            sandbox,
            self.store.running_gateway_url(sandbox)?,
            preview_url,
            services,
        );
        let request = TestRunRequest {
            run_id: id.clone(),
            sandbox: sandbox.to_owned(),
            repo: plan.repo.clone(),
            branch: plan.branch.clone(),
            credential,
            command: plan.command.clone(),
            env,
            junit: plan.junit.clone(),
        };
        let dispatched = match kind {
            Some(kind) => {
                self.agents
                    .rpc::<_, DeployAccepted>(
                        &kind,
                        sdp_bus::subject::TEST_RUN,
                        &request,
                        self.request_timeout,
                    )
                    .await
            }
            None => Err(AgentCallError::NoHolder {
                repo: plan.repo.clone(),
            }),
        };
        match dispatched {
            Ok(accepted) => {
                self.store
                    .set_test_run_agent(id.as_str(), &accepted.agent_id)?;
            }
            Err(source) => {
                let reason = source.to_string();
                self.store.fail_test_run(id.as_str(), &reason)?;
                publish_failure(&self.nats, id.as_str(), 0, &reason).await;
                return Err(TestRunError::Dispatch { id, source });
            }
        }
        self.store
            .test_run(id.as_str())?
            .ok_or_else(|| StoreError::Malformed(format!("test run {id} vanished")))
            .map_err(TestRunError::from)
    }

    /// Called when a deployment of `sandbox` settled: once none of the
    /// sandbox's newest deployments is still under way and at least one
    /// runs, a template with `tests.after_deploy` starts a run, with the
    /// credential of the sandbox's last deploy (or the service credential).
    pub(super) async fn after_deploy_settled(&self, sandbox: &str) -> Result<(), TestRunError> {
        let Some(row) = self.store.sandbox(sandbox)? else {
            return Ok(());
        };
        let template = match &row.template {
            Some(name) => self.store.template(name)?,
            None => None,
        };
        let Some(template) = template else {
            return Ok(());
        };
        let Some(settings) = template.tests.filter(|t| t.after_deploy) else {
            return Ok(());
        };
        tokio::time::sleep(SETTLE_DEBOUNCE).await;
        let Some(_checking) = self.checking.enter(sandbox) else {
            return Ok(());
        };
        let latest = self.store.latest_deployments(sandbox)?;
        if latest.iter().any(|d| !d.status.is_settled())
            || !latest.iter().any(|d| d.status == Status::Running)
        {
            return Ok(());
        }
        // One run per settled deploy: none if a run started after the
        // sandbox's last deployment ended.
        let settled_at = latest.iter().filter_map(|d| d.finished_at).max();
        let last_run = self
            .store
            .test_runs(sandbox)?
            .into_iter()
            .find(|r| r.trigger == TestRunTrigger::AfterDeploy);
        if let (Some(run), Some(settled_at)) = (last_run, settled_at)
            && run.created_at >= settled_at
        {
            return Ok(());
        }
        let Some(credential) = self
            .credentials
            .get(sandbox)
            .map(|(_, credential)| credential)
            .or_else(|| self.service_credential.clone())
        else {
            tracing::warn!(
                sandbox,
                "no credential to fetch the tests with: no test run after the deploy"
            );
            return Ok(());
        };
        let plan = TestPlan::of(&settings);
        tracing::info!(sandbox, repo = %plan.repo, "deploy settled: starting the template's test run");
        self.start_test_run(
            sandbox,
            &plan,
            TestRunTrigger::AfterDeploy,
            &row.owner,
            credential,
            None,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_names_the_sandbox_and_its_urls() {
        let env = test_env(
            "alpha",
            Some("http://10.0.0.5:32001".into()),
            None,
            [("users-api".to_owned(), "http://10.0.0.5:32002".to_owned())],
        );
        assert_eq!(env["SDP_SANDBOX"], "alpha");
        assert_eq!(env["SDP_GATEWAY_URL"], "http://10.0.0.5:32001");
        assert_eq!(env["SDP_SERVICE_URL_USERS_API"], "http://10.0.0.5:32002");
        assert!(!env.contains_key("SDP_PREVIEW_URL"));
    }

    #[test]
    fn a_sandbox_is_checked_once_at_a_time_per_orchestrator() {
        let (one, other) = (Checking::default(), Checking::default());
        let guard = one.enter("alpha").expect("first check");
        assert!(
            one.clone().enter("alpha").is_none(),
            "a clone shares the set"
        );
        assert!(one.enter("beta").is_some(), "another sandbox");
        assert!(other.enter("alpha").is_some(), "another orchestrator");
        drop(guard);
        assert!(one.enter("alpha").is_some(), "the mark goes with the guard");
    }
}
