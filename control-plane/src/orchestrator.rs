//! Sandbox orchestration: starting deployments (with the gateway's env and
//! route table), following results to flip routes to the sandbox and
//! re-apply the gateway, tearing sandboxes down on every agent, and the
//! reaper of expired ones.
//!
//! Tasks: [`Orchestrator::follow_results`] (core subscription on
//! `deploy.progress.>`, results only) and [`Orchestrator::reaper`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use sdp_bus::{
    DeployRequest, DeploymentId, Event, EventBody, GitCredential, Reconcile, ReconcileDone, Reply,
    RouteSource, Status, Teardown, TeardownDone, decode, encode,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::agents::Registry;
use crate::dispatch::{self, DispatchError};
use crate::events::publish_failure;
use crate::repos::RepoCatalog;
use crate::routing::{RouteTable, route_table};
use crate::store::{Deployment, NewDeployment, Sandbox, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recorded as a failed deployment with this reason.
    #[error("{source}")]
    Dispatch {
        id: DeploymentId,
        #[source]
        source: DispatchError,
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

#[derive(Clone, Debug, Default, Serialize)]
pub struct TeardownReport {
    pub stopped: usize,
    pub agents: Vec<AgentTeardown>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentTeardown {
    pub agent_id: String,
    pub ok: bool,
    pub containers_removed: u32,
    pub worktrees_removed: u32,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct Orchestrator {
    pub store: Store,
    pub nats: async_nats::Client,
    pub registry: Registry,
    pub repos: RepoCatalog,
    request_timeout: Duration,
    heartbeat_timeout: Duration,
    /// The credential of the last deploy into each sandbox, in memory only:
    /// a gateway re-apply that cannot reuse its build fetches with it.
    credentials: Arc<Mutex<HashMap<String, GitCredential>>>,
}

impl Orchestrator {
    pub fn new(
        store: Store,
        nats: async_nats::Client,
        registry: Registry,
        request_timeout: Duration,
        heartbeat_timeout: Duration,
    ) -> Self {
        Self {
            repos: RepoCatalog::new(nats.clone()),
            store,
            nats,
            registry,
            request_timeout,
            heartbeat_timeout,
            credentials: Arc::default(),
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

    /// Records and dispatches a deployment of `repo`@`branch` into
    /// `sandbox` (created implicitly if missing). Gateway deployments get
    /// the sandbox's env and route table.
    pub async fn deploy(
        &self,
        sandbox: &str,
        repo: &str,
        branch: &str,
        user: &str,
        credential: GitCredential,
        reuse_build: bool,
    ) -> Result<Started, DeployError> {
        let kind = self
            .registry
            .kind_for_repo(repo, self.heartbeat_timeout)
            .unwrap_or_else(|| sdp_bus::subject::KIND_MICRO.to_owned());
        let id = DeploymentId::generate();
        self.store.insert_deployment(&NewDeployment {
            id: &id,
            sandbox,
            repo,
            branch,
            kind: &kind,
            created_by: user,
        })?;
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sandbox.to_owned(), credential.clone());

        let sandbox_row = self.store.sandbox(sandbox)?;
        let template = match sandbox_row.as_ref().and_then(|s| s.template.clone()) {
            Some(name) => self.store.template(&name)?,
            None => None,
        };
        let overrides = template
            .as_ref()
            .and_then(|t| t.services.iter().find(|s| s.repo == repo))
            .map(|s| s.overrides.clone())
            .unwrap_or_default();
        let (env, routes) = match (&sandbox_row, kind == sdp_bus::subject::KIND_GATEWAY) {
            (Some(sandbox_row), true) => {
                let inputs = self.route_table(sandbox_row).await?.gateway_inputs();
                (inputs.env, inputs.routes)
            }
            _ => Default::default(),
        };
        let request = DeployRequest {
            deployment_id: id.clone(),
            sandbox: sandbox.to_owned(),
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            credential,
            env,
            routes,
            overrides,
            reuse_build,
        };
        match dispatch::send(&self.nats, &kind, &request, self.request_timeout).await {
            Ok(accepted) => {
                self.store.set_deployment_agent(&id, &accepted.agent_id)?;
                Ok(Started {
                    id,
                    repo: repo.to_owned(),
                    branch: branch.to_owned(),
                    status: Status::Queued,
                    agent_id: accepted.agent_id,
                })
            }
            Err(source) => {
                // Recorded as failed with the reason; viewers of its stream
                // see the same end.
                let reason = source.to_string();
                self.store.fail_deployment(id.as_str(), &reason)?;
                publish_failure(&self.nats, id.as_str(), 0, &reason).await;
                Err(DeployError::Dispatch { id, source })
            }
        }
    }

    /// The newest gateway deployment of a sandbox.
    fn gateway_deployment(&self, sandbox: &str) -> Result<Option<Deployment>, StoreError> {
        Ok(self
            .store
            .latest_deployments(sandbox)?
            .into_iter()
            .filter(|d| d.kind == sdp_bus::subject::KIND_GATEWAY)
            .max_by(|a, b| a.created_at.cmp(&b.created_at)))
    }

    /// Recreates the sandbox's gateway with the current routes, reusing its
    /// build. Does nothing if the sandbox has no live gateway.
    pub async fn reapply_gateway(
        &self,
        sandbox: &str,
        credential: Option<GitCredential>,
    ) -> Result<Option<Started>, DeployError> {
        let Some(gateway) = self.gateway_deployment(sandbox)? else {
            return Ok(None);
        };
        if matches!(
            gateway.status,
            Status::Failed | Status::Cancelled | Status::Stopped
        ) {
            return Ok(None);
        }
        let credential = credential.or_else(|| {
            self.credentials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(sandbox)
                .cloned()
        });
        let Some(credential) = credential else {
            tracing::warn!(
                sandbox,
                "cannot re-apply the gateway: no credential since the restart; deploy it again"
            );
            return Ok(None);
        };
        tracing::info!(sandbox, "re-applying the gateway with new routes");
        self.deploy(
            sandbox,
            &gateway.repo,
            &gateway.branch,
            &gateway.created_by,
            credential,
            true,
        )
        .await
        .map(Some)
    }

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

    /// Tears a sandbox down on every online agent, then stops its
    /// deployments and removes it.
    pub async fn teardown(&self, sandbox: &str) -> Result<TeardownReport, StoreError> {
        let mut report = TeardownReport::default();
        let payload = encode(&Teardown {
            sandbox: sandbox.to_owned(),
        });
        for agent in self.registry.views(self.heartbeat_timeout) {
            if !agent.online {
                continue;
            }
            let subject = sdp_bus::subject::agent_cmd(&agent.id, sdp_bus::subject::TEARDOWN);
            let pending = self.nats.request(subject, payload.clone().into());
            let outcome = match tokio::time::timeout(Duration::from_secs(60), pending).await {
                Err(_) => Err("no answer within 60s".to_owned()),
                Ok(Err(err)) => Err(err.to_string()),
                Ok(Ok(reply)) => decode::<Reply<TeardownDone>>(&reply.payload)
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.into_result().map_err(|e| e.message)),
            };
            report.agents.push(match outcome {
                Ok(done) => AgentTeardown {
                    agent_id: agent.id,
                    ok: true,
                    containers_removed: done.containers_removed,
                    worktrees_removed: done.worktrees_removed,
                    error: None,
                },
                Err(error) => {
                    tracing::warn!(sandbox, agent = %agent.id, %error, "teardown on agent failed");
                    AgentTeardown {
                        agent_id: agent.id,
                        ok: false,
                        containers_removed: 0,
                        worktrees_removed: 0,
                        error: Some(error),
                    }
                }
            });
        }
        report.stopped = self.store.remove_sandbox(sandbox)?;
        self.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sandbox);
        Ok(report)
    }

    /// Tells an agent which of its containers should exist
    /// (`agent.cmd.<id>.reconcile`); it removes the others.
    pub async fn reconcile_agent(&self, agent_id: &str) -> Result<ReconcileDone, String> {
        let keep = self
            .store
            .deployments_to_keep(agent_id)
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|id| DeploymentId::parse(id))
            .collect();
        let subject = sdp_bus::subject::agent_cmd(agent_id, sdp_bus::subject::RECONCILE);
        let pending = self
            .nats
            .request(subject, encode(&Reconcile { keep }).into());
        match tokio::time::timeout(Duration::from_secs(60), pending).await {
            Err(_) => Err("no answer within 60s".to_owned()),
            Ok(Err(err)) => Err(err.to_string()),
            Ok(Ok(reply)) => decode::<Reply<ReconcileDone>>(&reply.payload)
                .map_err(|e| e.to_string())
                .and_then(|r| r.into_result().map_err(|e| e.message)),
        }
    }

    /// Level-triggered reconciliation: every agent process is reconciled
    /// once when first seen (a restart shows as a new `started_at`), and
    /// every agent again every `every`.
    pub async fn reconciler(self, every: Duration, shutdown: CancellationToken) {
        let mut done: HashMap<String, (Option<chrono::DateTime<chrono::Utc>>, std::time::Instant)> =
            HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (agent_id, started_at) in self.registry.instances(self.heartbeat_timeout) {
                let due = match done.get(&agent_id) {
                    None => true,
                    Some((seen_start, at)) => *seen_start != started_at || at.elapsed() >= every,
                };
                if !due {
                    continue;
                }
                match self.reconcile_agent(&agent_id).await {
                    Ok(result) => {
                        if !result.removed.is_empty() {
                            tracing::info!(agent = %agent_id, removed = ?result.removed, kept = result.kept, "reconciled agent");
                        }
                        done.insert(agent_id, (started_at, std::time::Instant::now()));
                    }
                    // An agent without reconcile support or busy: try again
                    // on the next round.
                    Err(error) => tracing::debug!(agent = %agent_id, %error, "reconcile failed"),
                }
            }
        }
    }

    /// Tears down expired, unpinned sandboxes every `interval`.
    pub async fn reaper(self, interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let expired = match self.store.expired_sandboxes() {
                Ok(expired) => expired,
                Err(err) => {
                    tracing::error!(error = %err, "reaper cannot read sandboxes");
                    continue;
                }
            };
            for sandbox in expired {
                tracing::info!(sandbox = %sandbox.name, expired_at = %sandbox.expires_at, "reaping expired sandbox");
                if let Err(err) = self.teardown(&sandbox.name).await {
                    tracing::error!(sandbox = %sandbox.name, error = %err, "reaping failed");
                }
            }
        }
    }
}

/// Whether a payload may be a result event (`"type":"result"`).
fn memchr_result(payload: &[u8]) -> bool {
    const NEEDLE: &[u8] = br#""type":"result""#;
    payload.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}
