//! The one way the control plane asks agents something: a core-NATS
//! request with a bound, whose reply is a `Reply<T>`. Three addresses:
//! [`AgentClient::deploy`] (`deploy.request.<kind>`, the kind's queue
//! group), [`AgentClient::rpc`] (`agent.rpc.<kind>.<method>`, the kind's
//! queue group) and [`AgentClient::command`] (`agent.cmd.<agent_id>.<method>`,
//! that agent). Every failure is an [`AgentCallError`].
//!
//! With the [`Registry`] ([`AgentClient::with_registry`]) a directed
//! command goes only to an agent whose heartbeat advertises the method
//! (`serves`), and a kind's rpc only to a kind one of whose agents does;
//! otherwise, and when an agent answers `unknown_method`, the call is
//! [`AgentCallError::NotSupported`] (the REST API's 501).

use std::time::Duration;

use sdp_bus::{DeployAccepted, DeployRequest, Reply, RpcError, RpcErrorCode, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agents::Registry;

/// Why a request to an agent got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum AgentCallError {
    /// Nobody subscribes to the subject: no agent of the kind (or that
    /// agent) is online.
    #[error("no {target} is online to answer {method}")]
    NoResponders {
        target: String,
        method: &'static str,
    },
    #[error("no {target} answered {method} within {}s", timeout.as_secs())]
    Timeout {
        target: String,
        method: &'static str,
        timeout: Duration,
    },
    /// The agent answered with an error.
    #[error("the agent refused {method}: {}", error.message)]
    Refused {
        method: &'static str,
        error: RpcError,
    },
    #[error("the agent answered {method} with a malformed reply: {reason}")]
    Malformed {
        method: &'static str,
        reason: String,
    },
    #[error("the {method} request to the agent failed: {reason}")]
    Request {
        method: &'static str,
        reason: String,
    },
    /// A deployment was accepted in the name of an agent that cannot have
    /// taken it: not the one it was sent to, or no live agent of the kind.
    #[error("refused the acceptance of the deployment by {answered}: {why}")]
    ForgedAccept { answered: String, why: String },
    /// The agent does not serve the method: its heartbeat does not
    /// advertise it, or it answered `unknown_method`.
    #[error("{method} is not supported by the {target}")]
    NotSupported {
        target: String,
        method: &'static str,
    },
    /// No online agent announced the repo in its heartbeats (within the
    /// wait for first heartbeats after the control plane started), so
    /// there is no kind to send its deployment to.
    #[error("no online agent holds repo {repo}: start an agent whose repos_dir has it")]
    NoHolder { repo: String },
}

impl AgentCallError {
    /// No agent took the request (none online, or none answered in time).
    pub fn is_no_agent(&self) -> bool {
        matches!(
            self,
            AgentCallError::NoResponders { .. } | AgentCallError::Timeout { .. }
        )
    }

    /// The agent does not serve the method asked.
    pub fn is_not_supported(&self) -> bool {
        matches!(self, AgentCallError::NotSupported { .. })
    }

    /// The answer named another agent than the one that could have given it.
    pub fn is_forged(&self) -> bool {
        matches!(self, AgentCallError::ForgedAccept { .. })
    }

    /// The agent answered that the git server refused the credential.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, AgentCallError::Refused { error, .. } if error.code == RpcErrorCode::Unauthorized)
    }
}

/// A typed client on the control plane's NATS connection.
#[derive(Clone)]
pub struct AgentClient {
    nats: async_nats::Client,
    /// What each agent advertises it serves; without it every request is
    /// sent.
    registry: Option<Registry>,
}

impl AgentClient {
    pub fn new(nats: async_nats::Client) -> Self {
        Self {
            nats,
            registry: None,
        }
    }

    /// Sends only what the addressed agents advertise (see the module doc).
    pub fn with_registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// `deploy.request.<kind>`: one agent of the kind accepts the deployment.
    pub async fn deploy(
        &self,
        kind: &str,
        request: &DeployRequest,
        timeout: Duration,
    ) -> Result<DeployAccepted, AgentCallError> {
        let target = format!("{kind} agent");
        let subject = sdp_bus::subject::deploy_request(kind);
        self.request(subject, target, "the deployment", request, timeout)
            .await
    }

    /// `agent.cmd.<agent_id>.deploy`: the deployment placed on that agent.
    /// Only that agent subscribes to the subject, so an acceptance naming
    /// any other agent is forged ([`AgentCallError::ForgedAccept`]).
    pub async fn deploy_to(
        &self,
        agent_id: &str,
        request: &DeployRequest,
        timeout: Duration,
    ) -> Result<DeployAccepted, AgentCallError> {
        let accepted: DeployAccepted = self
            .command(agent_id, sdp_bus::subject::DEPLOY, request, timeout)
            .await?;
        if accepted.agent_id != agent_id {
            return Err(AgentCallError::ForgedAccept {
                why: format!("it was sent to agent {agent_id}"),
                answered: accepted.agent_id,
            });
        }
        Ok(accepted)
    }

    /// `agent.rpc.<kind>.<method>`: one agent of the kind answers.
    pub async fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: &str,
        method: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, AgentCallError> {
        let subject = sdp_bus::subject::agent_rpc(kind, method);
        let target = format!("{kind} agents");
        if let Some(registry) = &self.registry
            && registry.kind_serves(kind, method) == Some(false)
        {
            return Err(AgentCallError::NotSupported { target, method });
        }
        self.request(subject, target, method, request, timeout)
            .await
    }

    /// `agent.cmd.<agent_id>.<method>`: that agent answers.
    pub async fn command<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        agent_id: &str,
        method: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, AgentCallError> {
        let subject = sdp_bus::subject::agent_cmd(agent_id, method);
        let target = format!("agent {agent_id}");
        if let Some(registry) = &self.registry
            && registry.agent_serves(agent_id, method) == Some(false)
        {
            return Err(AgentCallError::NotSupported { target, method });
        }
        self.request(subject, target, method, request, timeout)
            .await
    }

    async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: String,
        target: String,
        method: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, AgentCallError> {
        // The client's own request timeout (10 s by default) would cut a
        // longer bound short (a resource's start and seed): this one rules.
        let pending = self.nats.send_request(
            subject,
            async_nats::Request::new()
                .payload(encode(request).into())
                .timeout(Some(timeout)),
        );
        let reply = match tokio::time::timeout(timeout, pending).await {
            Err(_) => {
                return Err(AgentCallError::Timeout {
                    target,
                    method,
                    timeout,
                });
            }
            Ok(Err(err)) => {
                return Err(match err.kind() {
                    async_nats::RequestErrorKind::NoResponders => {
                        AgentCallError::NoResponders { target, method }
                    }
                    async_nats::RequestErrorKind::TimedOut => AgentCallError::Timeout {
                        target,
                        method,
                        timeout,
                    },
                    _ => AgentCallError::Request {
                        method,
                        reason: err.to_string(),
                    },
                });
            }
            Ok(Ok(reply)) => reply,
        };
        decode::<Reply<Resp>>(&reply.payload)
            .map_err(|err| AgentCallError::Malformed {
                method,
                reason: err.to_string(),
            })?
            .into_result()
            .map_err(|error| match error.code {
                RpcErrorCode::UnknownMethod => AgentCallError::NotSupported { target, method },
                _ => AgentCallError::Refused { method, error },
            })
    }
}
