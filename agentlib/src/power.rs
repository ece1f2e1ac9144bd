//! Sleep and wake of a sandbox on this agent (`agent.cmd.<agent_id>.sleep`
//! and `.wake`): every container of the sandbox but test runs' is stopped,
//! or started again, in place. Nothing is removed, so the worktrees,
//! builds, published ports and resource data stay as they were. Both are
//! idempotent; the control plane holds the sandbox's desired state (a
//! reconcile keeps a sleeping sandbox's containers and starts none).

use sdp_bus::{RpcError, RpcErrorCode, SandboxPowered};

use crate::reply::bad_request;
use crate::state::Agent;

/// Which way a sandbox's containers go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    Sleep,
    Wake,
}

/// Stops (`Sleep`) or starts (`Wake`) the sandbox's containers on this
/// agent, all at once.
pub(crate) async fn apply(
    agent: &Agent,
    sandbox: &str,
    power: Power,
) -> Result<SandboxPowered, RpcError> {
    sdp_bus::validate::resource_name("sandbox", sandbox).map_err(|e| bad_request(e.to_string()))?;
    let containers = agent
        .docker
        .sandbox_containers(agent.agent_id(), sandbox)
        .await
        .map_err(|e| failed("listing the containers", e.user_message()))?;
    let wanted_running = power == Power::Wake;
    let (to_change, unchanged): (Vec<_>, Vec<_>) = containers
        .into_iter()
        .partition(|c| c.running != wanted_running);
    let results = futures::future::join_all(to_change.iter().map(|c| async {
        match power {
            Power::Sleep => agent.docker.stop(&c.id).await,
            Power::Wake => agent.docker.start_again(&c.id).await,
        }
    }))
    .await;
    let what = match power {
        Power::Sleep => "stopping a container",
        Power::Wake => "starting a container",
    };
    for result in results {
        result.map_err(|e| failed(what, e.user_message()))?;
    }
    Ok(SandboxPowered {
        changed: u32::try_from(to_change.len()).unwrap_or(u32::MAX),
        unchanged: u32::try_from(unchanged.len()).unwrap_or(u32::MAX),
    })
}

fn failed(what: &str, err: String) -> RpcError {
    RpcError::new(RpcErrorCode::Internal, format!("{what} failed: {err}"))
}
