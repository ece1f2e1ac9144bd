//! The route probe: every route of a sandbox checked from its gateway's
//! own network. The control plane finds the sandbox's newest running
//! gateway deployment and its agent, and sends that agent
//! `agent.cmd.<agent_id>.probe` with the route table; the agent runs each
//! check inside the gateway container (see `sdp_agentlib::probe`).

use std::time::Duration;

use sdp_bus::{Probe, ProbeReport, subject};

pub use sdp_api::{ProbeResult, ProbedGateway};

use crate::agent_client::{AgentCallError, AgentClient};
use crate::routing::RouteTable;
use crate::store::{Deployment, Store, StoreError};

/// Checks run at once, each bounded at 5 s inside the container and 8 s by
/// the agent: this leaves room for the agent's own work.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sandbox {0} has no running gateway to probe from")]
    NoGateway(String),
    #[error(transparent)]
    Agent(#[from] AgentCallError),
}

/// The sandbox's newest running gateway deployment that names its agent.
pub fn running_gateway(store: &Store, sandbox: &str) -> Result<Option<Deployment>, StoreError> {
    Ok(store
        .running_deployments(sandbox)?
        .into_iter()
        .find(|d| d.kind == subject::KIND_GATEWAY && d.agent_id.is_some()))
}

/// Probes every route of `table` from the sandbox's running gateway.
pub async fn probe(
    store: &Store,
    agents: &AgentClient,
    sandbox: &str,
    table: &RouteTable,
) -> Result<ProbeResult, ProbeError> {
    let Some(gateway) = running_gateway(store, sandbox)? else {
        return Err(ProbeError::NoGateway(sandbox.to_owned()));
    };
    let agent_id = gateway.agent_id.clone().unwrap_or_default();
    let request = Probe {
        sandbox: sandbox.to_owned(),
        service: gateway.repo.clone(),
        routes: table.gateway_inputs().routes,
    };
    let report: ProbeReport = agents
        .command(&agent_id, subject::PROBE, &request, PROBE_TIMEOUT)
        .await?;
    Ok(ProbeResult {
        sandbox: sandbox.to_owned(),
        gateway: ProbedGateway {
            deployment_id: gateway.id.into(),
            agent_id,
            url: gateway.url,
        },
        checked_at: crate::store::now_rfc3339(),
        routes: report.routes,
    })
}
