//! Subject names (binding: agents and tools subscribe by them). Every
//! variable part is a server-made token checked by [`is_token`];
//! user-chosen names never appear here.

use crate::DeploymentId;

/// Kinds of agent known today. The control plane treats kind as data.
pub const KIND_MICRO: &str = "micro";
pub const KIND_GATEWAY: &str = "gateway";

pub const VERIFY_CREDENTIALS: &str = "verify_credentials";
pub const LIST_REPOS: &str = "list_repos";
pub const LIST_BRANCHES: &str = "list_branches";
pub const TEARDOWN: &str = "teardown";
pub const RECONCILE: &str = "reconcile";
/// `agent.cmd.<agent_id>.deploy`: a deployment placed on that agent (the
/// same `DeployRequest` as `deploy.request.<kind>`).
pub const DEPLOY: &str = "deploy";
/// `agent.cmd.<agent_id>.container_logs`: start a runtime-log stream of a
/// deployment's container on that agent.
pub const CONTAINER_LOGS: &str = "container_logs";
/// `agent.rpc.<kind>.branch_status`: how far branches moved past deployed
/// commits (staleness).
pub const BRANCH_STATUS: &str = "branch_status";
/// `agent.cmd.<agent_id>.probe`: check a sandbox's routes from its gateway.
pub const PROBE: &str = "probe";
/// `agent.cmd.<agent_id>.sleep`: stop (not remove) a sandbox's containers
/// on that agent.
pub const SLEEP: &str = "sleep";
/// `agent.cmd.<agent_id>.wake`: start a sleeping sandbox's containers on
/// that agent again.
pub const WAKE: &str = "wake";
/// `agent.rpc.<kind>.test_run`: run a test command against a sandbox
/// ([`crate::TestRunRequest`]).
pub const TEST_RUN: &str = "test_run";
/// `agent.cmd.<agent_id>.resource_ensure`: run (or reset) a sandbox's
/// database on that agent and answer when it is ready.
pub const RESOURCE_ENSURE: &str = "resource_ensure";
/// `agent.cmd.<agent_id>.resource_remove`: remove a sandbox's resource
/// (container and volume) from that agent.
pub const RESOURCE_REMOVE: &str = "resource_remove";
/// `agent.cmd.<agent_id>.resource_sizes`: the data sizes of that agent's
/// running resources.
pub const RESOURCE_SIZES: &str = "resource_sizes";

/// Everything the `DEPLOY_PROGRESS` stream stores.
pub const DEPLOY_PROGRESS_ALL: &str = "deploy.progress.>";
/// Every agent's heartbeats.
pub const AGENT_HEARTBEAT_ALL: &str = "agent.heartbeat.>";

/// Whether `s` may stand as one subject token: 1–64 of `[A-Za-z0-9_-]`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn deploy_request(kind: &str) -> String {
    format!("deploy.request.{kind}")
}

/// Queue group of the agents of one kind, so one of them takes a request.
pub fn queue_group(kind: &str) -> String {
    format!("agents.{kind}")
}

pub fn deploy_progress(id: &DeploymentId) -> String {
    format!("deploy.progress.{id}")
}

pub fn deploy_cancel(id: &DeploymentId) -> String {
    format!("deploy.cancel.{id}")
}

pub fn agent_heartbeat(kind: &str, agent_id: &str) -> String {
    format!("agent.heartbeat.{kind}.{agent_id}")
}

pub fn agent_rpc(kind: &str, method: &str) -> String {
    format!("agent.rpc.{kind}.{method}")
}

pub fn agent_cmd(agent_id: &str, method: &str) -> String {
    format!("agent.cmd.{agent_id}.{method}")
}

/// `agent.logs.<agent_id>.<stream_id>.data`: runtime-log batches, agent →
/// control plane (core NATS; `stream_id` is made by the control plane).
pub fn runtime_logs_data(agent_id: &str, stream_id: &str) -> String {
    format!("agent.logs.{agent_id}.{stream_id}.data")
}

/// `agent.logs.<agent_id>.<stream_id>.credit`: acks and stop of a
/// runtime-log stream, control plane → agent (core NATS).
pub fn runtime_logs_credit(agent_id: &str, stream_id: &str) -> String {
    format!("agent.logs.{agent_id}.{stream_id}.credit")
}

/// The deployment id at the end of a `deploy.progress.<id>` subject.
pub fn progress_deployment_id(subject: &str) -> Option<DeploymentId> {
    subject
        .strip_prefix("deploy.progress.")
        .and_then(DeploymentId::parse)
}
