//! `GET /api/agents`: the agents as the control plane sees them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An agent as `GET /api/agents` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub kind: String,
    pub host: String,
    pub version: String,
    pub online: bool,
    pub last_seen: DateTime<Utc>,
    pub running: Vec<String>,
    pub missing_images: Vec<String>,
    pub capacity: u32,
    pub repos: Vec<String>,
    /// `warming`, `warm`, `failed: …`, or null (nothing to warm).
    pub build_cache: Option<String>,
    /// Runtime-log streams the agent serves now (`GET …/runtime-logs`).
    pub log_streams: u32,
    /// The build toolchains the agent has, oldest first (`go 1.19.8`,
    /// `go 1.22.12`); empty for an agent without any (or an older agent).
    pub toolchains: Vec<String>,
    /// The optional methods the agent answers (`deploy`, `reconcile`,
    /// `container_logs`, `probe`, `branch_status`, …; docs/AGENTS.md);
    /// for an SDP agent older than the heartbeat's `serves`, what those
    /// agents served.
    pub serves: Vec<String>,
}

impl AgentView {
    /// Whether the agent answers `method` (`agent.cmd.<id>.<method>` or
    /// `agent.rpc.<kind>.<method>`).
    pub fn serves(&self, method: &str) -> bool {
        self.serves.iter().any(|m| m == method)
    }
}
