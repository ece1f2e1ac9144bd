//! Autodeploy: a push (from the Bitbucket webhook) redeploys every
//! (sandbox, service) of the pushed repo with autodeploy on whose newest
//! deployment is of a moved branch, unless that deployment already has the pushed
//! commit. The fetch uses the control plane's read-only service credential
//! (`git.service_credential_file`); a push carries none. Without it nothing
//! is deployed: the push is recorded, and the sandbox shows the service
//! "behind: deploy by hand".

use futures::future::join_all;
use sdp_bus::Status;

pub use sdp_api::{PushDeployment, PushSkipped};

use super::{DeployError, Orchestrator, Requester};
use crate::store::StoreError;
use crate::webhooks::payload::Push;

/// Who push deployments are recorded as made by.
pub const PUSH_USER: &str = "bitbucket-push";

/// What a service with autodeploy on that a push left behind shows.
pub const BEHIND_NOTE: &str = "behind: deploy by hand";

#[derive(Clone, Debug, Default)]
pub struct PushOutcome {
    pub triggered: Vec<PushDeployment>,
    pub skipped: Vec<PushSkipped>,
}

impl Orchestrator {
    /// Redeploys the autodeploy targets of `push` (see the module doc), all at
    /// once: the webhook's answer waits for every agent to accept.
    pub async fn on_push(&self, push: &Push) -> Result<PushOutcome, StoreError> {
        let mut outcome = PushOutcome::default();
        let mut planned = Vec::new();
        for moved in &push.branches {
            for target in self.store.autodeploy_targets(&push.repo, &moved.branch)? {
                let skipped = |note: &str| PushSkipped {
                    sandbox: target.sandbox.clone(),
                    repo: push.repo.clone(),
                    branch: moved.branch.clone(),
                    commit: moved.commit.clone(),
                    note: note.to_owned(),
                };
                if target.commit.as_deref() == Some(moved.commit.as_str()) {
                    outcome.skipped.push(skipped("up to date"));
                } else if self.service_credential.is_none() {
                    self.store
                        .record_push(&target.sandbox, &push.repo, &moved.commit)?;
                    outcome.skipped.push(skipped(BEHIND_NOTE));
                } else {
                    planned.push((target.sandbox, moved));
                }
            }
        }
        let Some(credential) = &self.service_credential else {
            return Ok(outcome);
        };
        let requester = Requester {
            user: PUSH_USER.to_owned(),
            credential: credential.clone(),
            session: None,
            acting: super::Acting::Platform,
        };
        let deploys = planned.iter().map(|(sandbox, moved)| {
            self.deploy(sandbox, &push.repo, &moved.branch, &requester, false)
        });
        for ((sandbox, moved), result) in planned.iter().zip(join_all(deploys).await) {
            let (deployment_id, status, error) = match result {
                Ok(started) => (started.id, started.status, None),
                Err(DeployError::Dispatch { id, source }) => {
                    (id, Status::Failed, Some(source.to_string()))
                }
                Err(DeployError::Store(err)) => return Err(err),
            };
            tracing::info!(sandbox, repo = push.repo, branch = moved.branch, deployment = %deployment_id, "autodeploy: redeploying after a push");
            outcome.triggered.push(PushDeployment {
                sandbox: sandbox.clone(),
                repo: push.repo.clone(),
                branch: moved.branch.clone(),
                commit: moved.commit.clone(),
                deployment_id,
                status,
                error,
            });
        }
        Ok(outcome)
    }
}
