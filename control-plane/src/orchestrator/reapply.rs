//! Re-applying without a rebuild: a sandbox's gateway (its build, the
//! current routes), or one service (its build, its new env). At most one
//! re-apply per target at a time, and the requests made meanwhile coalesce
//! into one more, which reads the desired state when it starts, so the
//! newest wins. A re-apply first waits for the target's newest deployment
//! to settle: one still in flight was sent the inputs of its time, and
//! replacing it mid-way would cancel it. A gateway that already runs with
//! the desired env and routes (same digest) is left alone.

mod coalesce;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdp_bus::{GitCredential, Status, subject::KIND_GATEWAY};

use super::{DeployError, Orchestrator, Requester};
use crate::store::Deployment;
use coalesce::{Admitted, Coalescer, Next};

/// How often a re-apply looks at the deployment it waits for.
const POLL: Duration = Duration::from_millis(100);
/// The longest a re-apply waits for a deployment to settle; the agent
/// watchdog fails one whose agent died well before.
const SETTLE_BOUND: Duration = Duration::from_secs(15 * 60);

/// The session (token hash) and credential a re-apply may fetch with.
pub type ReapplyFrom = (String, GitCredential);

/// The targets with a re-apply under way, and whether another was asked
/// for meanwhile (with the newest caller's credential, if it gave one).
#[derive(Clone, Default)]
pub struct Reapplies {
    running: Arc<Mutex<Coalescer<Target, ReapplyFrom>>>,
}

/// What a re-apply recreates.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Target {
    /// The sandbox's gateway, with the current routes.
    Gateway { sandbox: String },
    /// One service (the gateway too), with its current env.
    Service { sandbox: String, repo: String },
}

impl Target {
    fn sandbox(&self) -> &str {
        match self {
            Self::Gateway { sandbox } | Self::Service { sandbox, .. } => sandbox,
        }
    }
}

impl Reapplies {
    fn runs(&self) -> std::sync::MutexGuard<'_, Coalescer<Target, ReapplyFrom>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `sandbox` has a re-apply under way or queued.
    pub fn busy(&self, sandbox: &str) -> bool {
        self.runs().targets().any(|t| t.sandbox() == sandbox)
    }
}

impl Orchestrator {
    /// Asks for the sandbox's gateway to be re-applied with the current
    /// routes; returns at once. Without `from` (a re-apply after a
    /// result), the credential is that of the session of the sandbox's
    /// last deploy, if it still lives.
    pub fn reapply_gateway(&self, sandbox: &str, from: Option<ReapplyFrom>) {
        self.request_reapply(
            Target::Gateway {
                sandbox: sandbox.to_owned(),
            },
            from,
        );
    }

    /// Asks for `repo`'s newest deployment in the sandbox, if it runs, to
    /// be deployed again with its build and the current env (after a
    /// change of the sandbox's env for it); returns at once. `from` as for
    /// [`Self::reapply_gateway`].
    pub fn reapply_service(&self, sandbox: &str, repo: &str, from: Option<ReapplyFrom>) {
        self.request_reapply(
            Target::Service {
                sandbox: sandbox.to_owned(),
                repo: repo.to_owned(),
            },
            from,
        );
    }

    fn request_reapply(&self, target: Target, from: Option<ReapplyFrom>) {
        let admitted = self.reapplies.runs().request(target.clone(), from);
        let Admitted::Start(from) = admitted else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move { this.reapply_loop(target, from).await });
    }

    async fn reapply_loop(self, target: Target, mut from: Option<ReapplyFrom>) {
        loop {
            let outcome = match &target {
                Target::Gateway { sandbox } => self.reapply_once(sandbox, from.take()).await,
                Target::Service { sandbox, repo } => {
                    self.reapply_service_once(sandbox, repo, from.take()).await
                }
            };
            if let Err(err) = outcome {
                tracing::warn!(?target, error = %err, "re-applying failed");
            }
            match self.reapplies.runs().finished(&target) {
                Next::Again(newest) => from = newest,
                Next::Done => return,
            }
        }
    }

    /// One re-apply: waits for the gateway's newest deployment to settle;
    /// if it runs, deploys its build again with the current routes and
    /// waits for that to settle.
    async fn reapply_once(
        &self,
        sandbox: &str,
        from: Option<ReapplyFrom>,
    ) -> Result<(), DeployError> {
        let Some(gateway) = self.settled_gateway(sandbox).await? else {
            return Ok(());
        };
        if gateway.status != Status::Running {
            return Ok(());
        }
        // A service redeployed on its kept port leaves the routes as they
        // were: the gateway need not restart for it.
        let Some(sandbox_row) = self.store.sandbox(sandbox)? else {
            return Ok(());
        };
        let desired = self
            .route_table(&sandbox_row)
            .await?
            .gateway_inputs()
            .digest();
        if self.store.inputs_digest(gateway.id.as_str())?.as_deref() == Some(desired.as_str()) {
            tracing::debug!(sandbox, "the gateway already runs with these routes");
            return Ok(());
        }
        tracing::info!(sandbox, "re-applying the gateway with new routes");
        self.deploy_again(&gateway, from).await
    }

    /// One re-apply of a service: waits for its newest deployment to
    /// settle; if it runs, deploys its build again (the deploy reads the
    /// current env) and waits for that to settle.
    async fn reapply_service_once(
        &self,
        sandbox: &str,
        repo: &str,
        from: Option<ReapplyFrom>,
    ) -> Result<(), DeployError> {
        let newest = self
            .store
            .latest_deployments(sandbox)?
            .into_iter()
            .find(|d| d.repo == repo);
        let Some(newest) = newest else {
            return Ok(());
        };
        let Some(service) = self.wait_settled(newest.id.as_str()).await? else {
            return Ok(());
        };
        if service.status != Status::Running {
            return Ok(());
        }
        tracing::info!(sandbox, repo, "re-applying a service with its new env");
        self.deploy_again(&service, from).await
    }

    /// Deploys `running`'s branch again into its sandbox, reusing its
    /// build, and waits for that to settle. The credential, should the
    /// agent have to build after all: `from`, else the session of the
    /// sandbox's last deploy, else the service credential.
    async fn deploy_again(
        &self,
        running: &Deployment,
        from: Option<ReapplyFrom>,
    ) -> Result<(), DeployError> {
        let sandbox = running.sandbox.as_str();
        let found = from
            .or_else(|| self.credentials.get(sandbox))
            .map(|(session, credential)| (Some(session), credential))
            .or_else(|| self.service_credential.clone().map(|c| (None, c)));
        let Some((session, credential)) = found else {
            tracing::warn!(
                sandbox,
                repo = running.repo,
                "cannot re-apply: no live session's credential; deploy it again"
            );
            return Ok(());
        };
        let requester = Requester {
            user: running.created_by.clone(),
            credential,
            session,
            acting: super::Acting::Platform,
        };
        // A deployment of a chosen commit stays at it: a re-apply that
        // cannot reuse the build checks out that commit again.
        let pin = super::Pin {
            commit: running.requested_commit.clone(),
            redeploy_of: None,
        };
        let started = self
            .deploy_pinned(
                sandbox,
                &running.repo,
                &running.branch,
                &pin,
                &requester,
                true,
            )
            .await?;
        self.wait_settled(started.id.as_str()).await?;
        Ok(())
    }

    /// The sandbox's newest gateway deployment once it has settled; `None`
    /// if it has none (or it vanished with its sandbox).
    async fn settled_gateway(&self, sandbox: &str) -> Result<Option<Deployment>, DeployError> {
        let newest = self
            .store
            .latest_deployments(sandbox)?
            .into_iter()
            .filter(|d| d.kind == KIND_GATEWAY)
            .max_by(|a, b| a.created_at.cmp(&b.created_at));
        match newest {
            Some(gateway) => self.wait_settled(gateway.id.as_str()).await,
            None => Ok(None),
        }
    }

    /// Waits (bounded) for a deployment to settle and returns it.
    async fn wait_settled(&self, id: &str) -> Result<Option<Deployment>, DeployError> {
        let deadline = tokio::time::Instant::now() + SETTLE_BOUND;
        loop {
            let deployment = self.store.deployment(id)?;
            match &deployment {
                Some(d) if !d.status.is_settled() && tokio::time::Instant::now() < deadline => {}
                _ => return Ok(deployment),
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
