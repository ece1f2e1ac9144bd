//! Stopping and starting a sandbox's containers in place (sleep and
//! wake): found by their labels, never removed, so a woken container is
//! the same one with the same files, mounts and published port.

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::StopContainerOptionsBuilder;

use super::{DockerClient, LABEL_AGENT, LABEL_SANDBOX, is_not_found};
use crate::error::DeployError;

/// The label of a test run's container: such a container runs to its end
/// and is never put to sleep or woken.
pub const LABEL_TEST_RUN: &str = "sdp.test_run";

/// Seconds a container gets to stop on SIGTERM before it is killed.
const STOP_GRACE_SECS: i32 = 5;

/// One container of a sandbox, as sleep and wake see it.
#[derive(Clone, Debug)]
pub struct PowerTarget {
    pub id: String,
    pub running: bool,
}

impl DockerClient {
    /// This agent's containers of `sandbox` (running or not) but test
    /// runs'.
    pub async fn sandbox_containers(
        &self,
        agent_id: &str,
        sandbox: &str,
    ) -> Result<Vec<PowerTarget>, DeployError> {
        let containers = self
            .containers_labelled(&[(LABEL_AGENT, agent_id), (LABEL_SANDBOX, sandbox)])
            .await?;
        Ok(containers
            .into_iter()
            .filter(|c| {
                !c.labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(LABEL_TEST_RUN))
            })
            .filter_map(|c| {
                let running = matches!(
                    c.state,
                    Some(
                        ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING
                    )
                );
                // Only a container that ran: one left `created` by a
                // cancelled deployment is not this sandbox's to start.
                let stopped = matches!(c.state, Some(ContainerSummaryStateEnum::EXITED));
                (running || stopped).then_some(PowerTarget { id: c.id?, running })
            })
            .collect())
    }

    /// Stops a container (SIGTERM, then SIGKILL after a grace); one gone
    /// or already stopped is fine.
    pub async fn stop(&self, id: &str) -> Result<(), DeployError> {
        let options = StopContainerOptionsBuilder::default()
            .t(STOP_GRACE_SECS)
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(source) => Err(DeployError::Docker {
                step: "stop container",
                source,
            }),
        }
    }

    /// Starts a stopped container again; one gone (a deploy replaced it
    /// meanwhile) or already running is fine.
    pub async fn start_again(&self, id: &str) -> Result<(), DeployError> {
        match self.docker.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(source) => Err(DeployError::Docker {
                step: "start container",
                source,
            }),
        }
    }
}
