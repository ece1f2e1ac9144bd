//! Following results: a service of a sandbox reaching `running` takes its
//! route in the sandbox, and the sandbox's gateway is re-applied.

use futures::StreamExt;
use sdp_bus::{Event, EventBody, RouteSource, Status, decode};
use tokio_util::sync::CancellationToken;

use super::{DeployError, Orchestrator};

impl Orchestrator {
    /// Acts on a result: a service of a sandbox running → its route goes to
    /// the sandbox and the gateway is re-applied.
    async fn on_result(&self, event: &Event) -> Result<(), DeployError> {
        let EventBody::Result {
            status: Status::Running,
            url: Some(url),
            ..
        } = &event.body
        else {
            return Ok(());
        };
        let Some(deployment) = self.store.deployment(event.deployment_id.as_str())? else {
            return Ok(());
        };
        // Its container replaced those of earlier deployments of the same
        // service: they are stopped now.
        self.store.stop_superseded(&deployment.id)?;
        if deployment.kind == sdp_bus::subject::KIND_GATEWAY {
            return Ok(());
        }
        if self.store.sandbox(&deployment.sandbox)?.is_none() {
            return Ok(()); // torn down meanwhile
        }
        // Only the newest deployment of the service may take the route.
        let newest = self
            .store
            .latest_deployments(&deployment.sandbox)?
            .into_iter()
            .any(|d| d.id == deployment.id);
        if !newest {
            return Ok(());
        }
        self.store.set_route(
            &deployment.sandbox,
            &deployment.repo,
            url,
            RouteSource::Sandbox,
        )?;
        self.reapply_gateway(&deployment.sandbox, None).await?;
        Ok(())
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
            if let Err(err) = self.on_result(&event).await {
                tracing::warn!(deployment = %event.deployment_id, error = %err, "acting on a result failed");
            }
        }
    }
}

/// Whether a payload may be a result event (`"type":"result"`).
fn memchr_result(payload: &[u8]) -> bool {
    const NEEDLE: &[u8] = br#""type":"result""#;
    payload.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}
