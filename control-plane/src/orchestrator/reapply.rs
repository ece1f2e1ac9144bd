//! Re-applying a sandbox's gateway (its build, the current routes): at most
//! one re-apply per sandbox at a time, and the requests made meanwhile
//! coalesce into one more, which reads the routes when it starts, so the
//! newest desired state wins. A re-apply first waits for the gateway's
//! newest deployment to settle: one still in flight was sent the routes of
//! its time, and replacing it mid-way would cancel it. A gateway that
//! already runs with the desired env and routes (same digest) is left
//! alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdp_bus::{GitCredential, Status, subject::KIND_GATEWAY};

use super::{DeployError, Orchestrator, Requester};
use crate::store::Deployment;

/// How often a re-apply looks at the deployment it waits for.
const POLL: Duration = Duration::from_millis(100);
/// The longest a re-apply waits for a deployment to settle; the agent
/// watchdog fails one whose agent died well before.
const SETTLE_BOUND: Duration = Duration::from_secs(15 * 60);

/// The session (token hash) and credential a re-apply may fetch with.
pub type ReapplyFrom = (String, GitCredential);

/// The sandboxes with a re-apply under way, and whether another was asked
/// for meanwhile (with the newest caller's credential, if it gave one).
#[derive(Clone, Default)]
pub struct Reapplies {
    running: Arc<Mutex<HashMap<String, Queued>>>,
}

#[derive(Default)]
struct Queued {
    again: bool,
    from: Option<ReapplyFrom>,
}

impl Reapplies {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queued>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `sandbox` has a re-apply under way or queued.
    pub fn busy(&self, sandbox: &str) -> bool {
        self.map().contains_key(sandbox)
    }
}

impl Orchestrator {
    /// Asks for the sandbox's gateway to be re-applied with the current
    /// routes; returns at once. Without `from` (a re-apply after a
    /// result), the credential is that of the session of the sandbox's
    /// last deploy, if it still lives.
    pub fn reapply_gateway(&self, sandbox: &str, from: Option<ReapplyFrom>) {
        {
            let mut running = self.reapplies.map();
            if let Some(queued) = running.get_mut(sandbox) {
                queued.again = true;
                if from.is_some() {
                    queued.from = from;
                }
                return;
            }
            running.insert(sandbox.to_owned(), Queued::default());
        }
        let this = self.clone();
        let sandbox = sandbox.to_owned();
        tokio::spawn(async move { this.reapply_loop(sandbox, from).await });
    }

    async fn reapply_loop(self, sandbox: String, mut from: Option<ReapplyFrom>) {
        loop {
            if let Err(err) = self.reapply_once(&sandbox, from.take()).await {
                tracing::warn!(sandbox, error = %err, "re-applying the gateway failed");
            }
            let mut running = self.reapplies.map();
            let Some(queued) = running.get_mut(&sandbox) else {
                return;
            };
            if !queued.again {
                running.remove(&sandbox);
                return;
            }
            queued.again = false;
            from = queued.from.take();
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
        if gateway.inputs_digest.as_deref() == Some(desired.as_str()) {
            tracing::debug!(sandbox, "the gateway already runs with these routes");
            return Ok(());
        }
        let found = from
            .or_else(|| self.credentials.get(sandbox))
            .map(|(session, credential)| (Some(session), credential))
            .or_else(|| self.service_credential.clone().map(|c| (None, c)));
        let Some((session, credential)) = found else {
            tracing::warn!(
                sandbox,
                "cannot re-apply the gateway: no live session's credential; deploy it again"
            );
            return Ok(());
        };
        tracing::info!(sandbox, "re-applying the gateway with new routes");
        let requester = Requester {
            user: gateway.created_by.clone(),
            credential,
            session,
            acting: super::Acting::Platform,
        };
        // A gateway deployed at a chosen commit stays at it: a re-apply
        // that cannot reuse the build checks out that commit again.
        let pin = super::Pin {
            commit: gateway.requested_commit.clone(),
            redeploy_of: None,
        };
        let started = self
            .deploy_pinned(
                sandbox,
                &gateway.repo,
                &gateway.branch,
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
            Some(gateway) => self.wait_settled(&gateway.id).await,
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
