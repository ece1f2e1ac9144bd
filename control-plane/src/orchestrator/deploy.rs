//! Deploying: a template's plan ([`super::plan_template`]), one deployment
//! (recorded, then sent to an agent of the repo's kind). Every service gets its sandbox's environment
//! (a gateway with the route table too) and its overrides: the template's,
//! with the sandbox's own env for the service over the template's env.

use sdp_bus::{DeployRequest, DeploymentId, GitCredential, RpcError, RpcErrorCode, Status};

use super::placement::{self, Reservation};
use super::resources::ResourceError;
use super::{DeployError, Orchestrator, Started};
use crate::agent_client::AgentCallError;
use crate::counters::Refusal;
use crate::events::publish_failure;
use crate::sessions::Session;
use crate::store::{Editor, NewDeployment, RepoBranch, StoreError};

/// Who a deployment is for: the user, the credential the agent fetches
/// with, and the session it came from (whose credential later re-applies
/// of the sandbox use, while the session lives).
#[derive(Clone)]
pub struct Requester {
    pub user: String,
    pub credential: GitCredential,
    /// The session's token hash.
    pub session: Option<String>,
    pub acting: Acting,
}

/// On whose behalf a deployment is made, which decides the sandboxes it
/// may land in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acting {
    /// A user's request: only into their own sandbox (made for them if
    /// missing), or any for an admin.
    User { admin: bool },
    /// The platform serving a sandbox it already runs: a gateway re-apply
    /// or an autodeploy push.
    Platform,
}

impl Requester {
    /// A user's request, from their session; `admin` if they are in
    /// `auth.admins`.
    pub fn of(session: &Session, credential: GitCredential, admin: bool) -> Self {
        Self {
            user: session.username.clone(),
            credential,
            session: Some(session.token_hash.clone()),
            acting: Acting::User { admin },
        }
    }

    fn editor(&self) -> Option<Editor<'_>> {
        match self.acting {
            Acting::User { admin } => Some(Editor {
                user: &self.user,
                admin,
            }),
            Acting::Platform => None,
        }
    }
}

/// What exactly to deploy of a branch, beyond its head.
#[derive(Clone, Debug, Default)]
pub struct Pin {
    /// This commit instead of the branch's head; the agent refuses it
    /// unless it is on the branch.
    pub commit: Option<String>,
    /// The deployment whose commit this one deploys again (a rollback).
    pub redeploy_of: Option<DeploymentId>,
}

/// How one planned deployment of a template went.
pub type PlannedOutcome = (RepoBranch, Result<Started, (DeploymentId, AgentCallError)>);

impl Orchestrator {
    /// Deploys a plan ([`super::plan_template`]) into `sandbox`, one deployment
    /// after the other. A deployment no agent took is recorded as failed
    /// and reported; the rest still go.
    pub async fn deploy_plan(
        &self,
        sandbox: &str,
        plan: Vec<RepoBranch>,
        requester: &Requester,
    ) -> Result<Vec<PlannedOutcome>, StoreError> {
        let mut outcomes = Vec::new();
        for planned in plan {
            let outcome = self
                .deploy(sandbox, &planned.repo, &planned.branch, requester, false)
                .await;
            outcomes.push(match outcome {
                Ok(started) => (planned, Ok(started)),
                Err(DeployError::Dispatch { id, source }) => (planned, Err((id, source))),
                Err(DeployError::Store(err)) => return Err(err),
            });
        }
        Ok(outcomes)
    }

    /// Records and dispatches a deployment of `repo`@`branch` into
    /// `sandbox` (created implicitly if missing). Every deployment gets the
    /// sandbox's environment; a gateway, the route table too.
    pub async fn deploy(
        &self,
        sandbox: &str,
        repo: &str,
        branch: &str,
        requester: &Requester,
        reuse_build: bool,
    ) -> Result<Started, DeployError> {
        self.deploy_pinned(
            sandbox,
            repo,
            branch,
            &Pin::default(),
            requester,
            reuse_build,
        )
        .await
    }

    /// [`Self::deploy`] of a chosen commit of the branch (`pin`).
    pub async fn deploy_pinned(
        &self,
        sandbox: &str,
        repo: &str,
        branch: &str,
        pin: &Pin,
        requester: &Requester,
        reuse_build: bool,
    ) -> Result<Started, DeployError> {
        // Never a guessed kind: a repo no agent announced (after waiting
        // for the first heartbeats if the control plane just started) is
        // recorded without a kind and failed with `NoHolder`.
        let kind = self
            .registry
            .wait_kind_for_repo(repo, self.heartbeat_timeout)
            .await;
        let holder_kind = kind.as_deref();
        let kind = holder_kind.unwrap_or_default();
        let id = DeploymentId::generate();
        let new = NewDeployment {
            id: &id,
            sandbox,
            repo,
            branch,
            kind,
            created_by: &requester.user,
            new_sandbox_ttl_hours: self.default_ttl_hours,
            // Only a re-apply (a gateway's new routes, a service's new
            // env) reuses a build.
            reapply: reuse_build,
            commit: pin.commit.as_deref(),
            redeploy_of: pin.redeploy_of.as_ref(),
        };
        let inserted = self.store.insert_deployment_as(&new, requester.editor())?;
        if !reuse_build {
            // INPROGRESS on the commit, when it is known before the fetch.
            self.notifier.deployment_started(&inserted);
        }
        self.wake_for_deploy(sandbox);
        if let Some(session) = &requester.session {
            self.credentials.remember(sandbox, session);
        }

        let sandbox_row = self.store.sandbox(sandbox)?;
        let template = match sandbox_row.as_ref().and_then(|s| s.template.clone()) {
            Some(name) => self.store.template(&name)?,
            None => None,
        };
        // The template's overrides, with the sandbox's own env for the
        // service merged over the template's by key.
        let mut overrides = template
            .as_ref()
            .and_then(|t| {
                t.services
                    .iter()
                    .chain(t.gateway.iter())
                    .find(|s| s.repo == repo)
            })
            .map(|s| s.overrides.clone())
            .unwrap_or_default();
        overrides.env.extend(self.store.service_env(sandbox, repo)?);
        let (mut env, routes) = match (&sandbox_row, kind == sdp_bus::subject::KIND_GATEWAY) {
            (Some(sandbox_row), true) => {
                let inputs = self.route_table(sandbox_row).await?.gateway_inputs();
                self.store.set_inputs_digest(&id, &inputs.digest())?;
                (inputs.env, inputs.routes)
            }
            (Some(sandbox_row), false) => (
                crate::routing::service_env(&self.store, sandbox_row, template.as_ref())?,
                Vec::new(),
            ),
            (None, _) => Default::default(),
        };
        // The sandbox's resources, ready before the service starts: their
        // URLs go over the environment's variables of the same name.
        if sandbox_row.is_some() && kind != sdp_bus::subject::KIND_GATEWAY {
            match self
                .resource_env(sandbox, template.as_ref(), &requester.credential)
                .await
            {
                Ok(urls) => env.extend(urls),
                Err(ResourceError::Store(err)) => return Err(err.into()),
                Err(err) => {
                    let source = AgentCallError::Refused {
                        method: sdp_bus::subject::RESOURCE_ENSURE,
                        error: RpcError::new(RpcErrorCode::Unavailable, err.to_string()),
                    };
                    let reason = source.to_string();
                    self.store.fail_deployment(id.as_str(), &reason)?;
                    publish_failure(&self.nats, id.as_str(), 0, &reason).await;
                    return Err(DeployError::Dispatch { id, source });
                }
            }
        }
        let request = DeployRequest {
            deployment_id: id.clone(),
            sandbox: sandbox.to_owned(),
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            credential: requester.credential.clone(),
            env,
            routes,
            overrides,
            reuse_build,
            commit: pin.commit.clone(),
        };
        let holder = self.store.holder(sandbox, repo, &id)?;
        let dispatched = match holder_kind {
            Some(kind) => self.dispatch(kind, holder.as_deref(), &request).await,
            None => Err(AgentCallError::NoHolder {
                repo: repo.to_owned(),
            }),
        };
        match dispatched {
            Ok((accepted, reservation)) => {
                self.store.set_deployment_agent(&id, &accepted.agent_id)?;
                // The store counts it now.
                drop(reservation);
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

    /// Sends the request to the first agent of [`placement::candidates`]
    /// that accepts it; with no candidate (no agent of the kind heard from
    /// yet, or none serves directed deploys), or when the one tried answers
    /// `unknown_method`, to the kind's queue group, which is how a new
    /// agent, or one that implements only the minimal contract, gets work.
    /// The reservation counts it against its agent until the store does.
    async fn dispatch(
        &self,
        kind: &str,
        holder: Option<&str>,
        request: &DeployRequest,
    ) -> Result<(sdp_bus::DeployAccepted, Option<Reservation>), AgentCallError> {
        let agents = self.registry.views(self.heartbeat_timeout);
        let held = self.store.live_by_agent().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot count what agents hold; placing by heartbeats");
            Default::default()
        });
        let (candidates, mut reservation) = self.in_flight.choose(&agents, kind, holder, &held);
        let mut unreachable = None;
        let mut not_served = false;
        for (n, agent) in candidates.iter().enumerate() {
            if n > 0 {
                reservation = Some(self.in_flight.reserve(agent));
            }
            match self
                .agents
                .deploy_to(agent, request, self.request_timeout)
                .await
            {
                Ok(accepted) => return Ok((accepted, reservation)),
                Err(err) if err.is_forged() => {
                    self.registry.refusals().count(Refusal::AcceptForged);
                    return Err(err);
                }
                Err(err) if err.is_no_agent() => {
                    tracing::warn!(agent, deployment = %request.deployment_id, error = %err, "placing on the next agent");
                    unreachable = Some(err);
                }
                Err(err) if err.is_not_supported() => {
                    tracing::info!(agent, deployment = %request.deployment_id, "the agent does not serve directed deploys: trying the next one, then the kind's queue group");
                    not_served = true;
                }
                Err(err) => return Err(err),
            }
        }
        match unreachable {
            Some(err) if !not_served => Err(err),
            _ => {
                let accepted = self
                    .agents
                    .deploy(kind, request, self.request_timeout)
                    .await?;
                placement::check_queue_accept(
                    &self.registry,
                    kind,
                    &accepted.agent_id,
                    self.heartbeat_timeout,
                )
                .await
                .inspect_err(|_| self.registry.refusals().count(Refusal::AcceptForged))?;
                Ok((accepted, None))
            }
        }
    }
}
