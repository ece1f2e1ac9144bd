//! Sandbox orchestration, one file per job:
//! - [`plan`]: which deployments a template's deploy makes, in order;
//! - [`deploy`]: starting deployments (with the gateway's env and route
//!   table);
//! - [`placement`]: which agent of the kind a deployment goes to;
//! - [`reapply`]: re-applying a sandbox's gateway with the current routes,
//!   or a service with its new env, serialized per target and coalesced;
//! - [`results`]: re-applying the gateway once a service's result is
//!   persisted (with its route: see [`crate::store::results`])
//!   ([`Orchestrator::follow_results`], a core subscription on
//!   `deploy.progress.>`, results only);
//! - [`convergence`]: tearing sandboxes down on every agent, reconciling
//!   agents ([`Orchestrator::reconciler`]) and reaping expired sandboxes
//!   ([`Orchestrator::reaper`]);
//! - [`power`]: sandboxes sleep when idle ([`Orchestrator::sleeper`])
//!   and wake on a preview request, a wake or a deploy
//!   ([`Orchestrator::wake`]);
//! - [`credentials`]: which session's credential a sandbox's re-applies
//!   use; it goes with the session.
//! - [`resources`]: a sandbox's databases, ready (and their URLs in the
//!   env) before its services deploy; reset on request.
//! - [`autodeploy`]: a push redeploys the services with autodeploy on for
//!   its branch,
//!   with the service credential ([`Orchestrator::service_credential`]).
//!
//! - [`test_runs`]: test runs against a sandbox, and the one a template
//!   starts once a deploy of the sandbox settles.
//!
//! Every request to an agent goes through [`AgentClient`].

pub mod autodeploy;
mod convergence;
pub mod credentials;
mod deploy;
pub mod placement;
mod plan;
mod power;
mod reapply;
pub mod resources;
mod results;
pub mod sandbox_resources;
mod test_run_end;
pub mod test_runs;

use std::time::Duration;

use sdp_bus::{DeploymentId, GitCredential, Status};
use serde::Serialize;

pub use convergence::{AgentTeardown, ReconcileError, TeardownReport};
pub use credentials::ReapplyCredentials;
pub use deploy::{Acting, Pin, Requester};
pub use plan::{PlanError, plan_template};
pub use power::{ACTIVITY_WRITE_EVERY, Power, WakeError};
pub use reapply::{Reapplies, ReapplyFrom};

use crate::agent_client::{AgentCallError, AgentClient};
use crate::agents::Registry;
use crate::repos::AgentRepos;
use crate::routing::{RouteTable, route_table};
use crate::sessions::Sessions;
use crate::store::{Sandbox, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recorded as a failed deployment with this reason.
    #[error("{source}")]
    Dispatch {
        id: DeploymentId,
        #[source]
        source: AgentCallError,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub id: DeploymentId,
    pub repo: String,
    pub branch: String,
    pub status: Status,
    pub agent_id: String,
}

#[derive(Clone)]
pub struct Orchestrator {
    pub store: Store,
    pub nats: async_nats::Client,
    pub agents: AgentClient,
    pub registry: Registry,
    pub repos: AgentRepos,
    request_timeout: Duration,
    heartbeat_timeout: Duration,
    /// The session of the last deploy into each sandbox: a gateway
    /// re-apply that cannot reuse its build fetches with its credential.
    pub credentials: ReapplyCredentials,
    pub reapplies: Reapplies,
    /// Dispatches not yet recorded against their agent (placement).
    in_flight: placement::InFlight,
    /// The read-only credential of `git.service_credential_file`: push
    /// deployments fetch with it, and a gateway re-apply with no live
    /// session's credential falls back to it.
    pub service_credential: Option<GitCredential>,
    /// Tells Bitbucket and the template's webhooks of deployments that
    /// start and settle ([`crate::notify`]); off unless `run` starts it.
    pub notifier: crate::notify::Notifier,
    /// The TTL of a sandbox its first deploy creates
    /// (`sandboxes.default_ttl_hours`).
    pub default_ttl_hours: u32,
    /// Sleep and wake: last activity, per-sandbox locks, wakes under way.
    pub power: Power,
    /// Records what the orchestrator does on its own (sleep, wake, a test
    /// run's end); off unless `run` starts the writer.
    pub audit: crate::audit::Audit,
    /// Sandboxes whose after-deploy test check is under way.
    checking: test_runs::Checking,
}

impl Orchestrator {
    pub fn new(
        store: Store,
        nats: async_nats::Client,
        registry: Registry,
        sessions: Sessions,
        request_timeout: Duration,
        heartbeat_timeout: Duration,
    ) -> Self {
        let agents = AgentClient::new(nats.clone()).with_registry(registry.clone());
        Self {
            repos: AgentRepos::new(agents.clone()),
            agents,
            store,
            nats,
            registry,
            request_timeout,
            heartbeat_timeout,
            credentials: ReapplyCredentials::new(sessions),
            reapplies: Reapplies::default(),
            in_flight: placement::InFlight::default(),
            service_credential: None,
            notifier: crate::notify::Notifier::off(),
            default_ttl_hours: crate::config::SandboxesConfig::default().default_ttl_hours,
            power: Power::default(),
            audit: crate::audit::Audit::off(),
            checking: test_runs::Checking::default(),
        }
    }

    pub fn online_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .registry
            .views(self.heartbeat_timeout)
            .into_iter()
            .filter(|a| a.online)
            .map(|a| a.kind)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    pub async fn route_table(&self, sandbox: &Sandbox) -> Result<RouteTable, StoreError> {
        let settings = self.repos.settings(&self.online_kinds()).await;
        route_table(&self.store, sandbox, &settings)
    }
}
