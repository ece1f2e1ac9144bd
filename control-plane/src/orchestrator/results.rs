//! Following results: a service of a sandbox reaching `running` (its route
//! written by the persister with the result) has the sandbox's gateway
//! re-applied; a deployment reaching `running` or `failed` is told to the
//! notifier (Bitbucket build status, outgoing webhooks).

use std::time::Duration;

use futures::StreamExt;
use sdp_bus::{Event, EventBody, Status, decode};
use tokio_util::sync::CancellationToken;

use super::{DeployError, Orchestrator};

/// How long acting on a result waits for the persister to record it.
const PERSIST_BOUND: Duration = Duration::from_secs(30);

impl Orchestrator {
    /// Acts on a result once the persister has recorded it (and, in the
    /// same transaction, the service's route): a container it replaced on
    /// another agent is removed, and the newest running service of a
    /// sandbox gets the sandbox's gateway re-applied.
    async fn on_result(&self, event: &Event) -> Result<(), DeployError> {
        if let EventBody::Result {
            status,
            commit,
            test,
            ..
        } = &event.body
        {
            // A test run's result (or the failure of its dispatch, which
            // carries no outcome) ends the run, not a deployment.
            let id = event.deployment_id.as_str();
            if test.is_some() || self.store.test_run(id)?.is_some() {
                self.test_run_ended(id, *status, test.as_ref(), commit.as_deref())
                    .await;
                return Ok(());
            }
            self.check_after_deploy(event);
        }
        let EventBody::Result {
            status: status @ (Status::Running | Status::Failed),
            ..
        } = &event.body
        else {
            return Ok(());
        };
        let id = event.deployment_id.as_str();
        if !self
            .store
            .wait_persisted(id, event.seq, PERSIST_BOUND)
            .await
        {
            tracing::warn!(
                deployment = id,
                "the persister has not recorded the result: the gateway is not re-applied"
            );
            return Ok(());
        }
        let Some(deployment) = self.store.deployment(id)? else {
            return Ok(());
        };
        if deployment.status != *status {
            return Ok(());
        }
        // Told once per result: never waited for (see `crate::notify`).
        self.notifier.deployment_settled(&deployment);
        if deployment.status != Status::Running {
            return Ok(());
        }
        self.remove_elsewhere(&deployment);
        if deployment.kind == sdp_bus::subject::KIND_GATEWAY {
            return Ok(());
        }
        let newest = self
            .store
            .latest_deployments(&deployment.sandbox)?
            .into_iter()
            .any(|d| d.id == deployment.id);
        if newest {
            self.reapply_gateway(&deployment.sandbox, None);
        }
        Ok(())
    }

    /// Asks the other agents that held this (sandbox, service) to
    /// reconcile: the container this deployment replaced, if it ran
    /// elsewhere (its agent was unreachable when this one was placed), goes
    /// now. An agent that is down reconciles when it returns.
    fn remove_elsewhere(&self, deployment: &crate::store::Deployment) {
        let Some(agent_id) = deployment.agent_id.as_deref() else {
            return;
        };
        let former =
            match self
                .store
                .former_holders(&deployment.sandbox, &deployment.repo, agent_id)
            {
                Ok(former) => former,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the former holders");
                    return;
                }
            };
        let online: Vec<String> = self
            .registry
            .views(self.heartbeat_timeout)
            .into_iter()
            .filter(|a| a.online)
            .map(|a| a.id)
            .collect();
        for agent in former.into_iter().filter(|a| online.contains(a)) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(err) = this.reconcile_agent(&agent).await {
                    tracing::warn!(agent, error = %err, "reconcile after a move failed");
                }
            });
        }
    }

    /// A deployment's result may settle its sandbox's deploy: a template
    /// with `tests.after_deploy` then starts a test run
    /// ([`Self::after_deploy_settled`]).
    fn check_after_deploy(&self, event: &Event) {
        let this = self.clone();
        let (id, seq) = (event.deployment_id.clone(), event.seq);
        tokio::spawn(async move {
            if !this
                .store
                .wait_persisted(id.as_str(), seq, PERSIST_BOUND)
                .await
            {
                return;
            }
            let sandbox = match this.store.deployment(id.as_str()) {
                Ok(Some(deployment)) => deployment.sandbox,
                _ => return,
            };
            if let Err(err) = this.after_deploy_settled(&sandbox).await {
                tracing::warn!(sandbox, error = %err, "the test run after the deploy did not start");
            }
        });
    }

    /// Follows result events until shutdown.
    pub async fn follow_results(self, shutdown: CancellationToken) {
        let mut events = match self
            .nats
            .subscribe(sdp_bus::subject::DEPLOY_PROGRESS_ALL)
            .await
        {
            Ok(events) => events,
            Err(err) => {
                tracing::error!(error = %err, "orchestrator cannot subscribe to progress");
                return;
            }
        };
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return,
                message = events.next() => message,
            };
            let Some(message) = message else { return };
            // Cheap filter first: most events are log lines.
            if !memchr_result(&message.payload) {
                continue;
            }
            let Ok(event) = decode::<Event>(&message.payload) else {
                continue;
            };
            // Each result waits for the persister on its own: one behind
            // must not hold up the others, nor this subscription.
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(err) = this.on_result(&event).await {
                    tracing::warn!(deployment = %event.deployment_id, error = %err, "acting on a result failed");
                }
            });
        }
    }
}

/// Whether a payload may be a result event (`"type":"result"`).
fn memchr_result(payload: &[u8]) -> bool {
    const NEEDLE: &[u8] = br#""type":"result""#;
    payload.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}
