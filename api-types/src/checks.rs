//! The checks of a sandbox: `GET /api/sandboxes/{name}/staleness` and
//! `POST /api/sandboxes/{name}/probe`.

use sdp_bus::RouteCheck;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What `GET /api/sandboxes/{name}/staleness` answers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxStaleness {
    pub sandbox: String,
    pub checked_at: String,
    /// One entry per running service (the gateway included), by repo.
    pub services: Vec<ServiceStaleness>,
}

/// Whether a running service's branch has moved since its deployed commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StalenessState {
    /// The branch's head is the deployed commit.
    UpToDate,
    /// The branch moved: `behind` commits, or null when not countable.
    Behind,
    /// The head could not be read (branch gone, credential refused, no agent).
    Unknown,
}

/// One running service of the sandbox and its branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceStaleness {
    pub repo: String,
    pub branch: String,
    /// The running deployment this is about.
    pub deployment_id: String,
    pub deployed_commit: Option<String>,
    /// The branch's head on the remote now.
    pub head: Option<String>,
    /// Commits on the head that the deployed commit lacks; null when the
    /// agent cannot tell.
    pub behind: Option<u32>,
    pub state: StalenessState,
    /// Why `behind` or `head` is null, or a note (the branch was rewritten).
    pub reason: Option<String>,
}

/// The gateway a probe ran from.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProbedGateway {
    pub deployment_id: String,
    pub agent_id: String,
    pub url: Option<String>,
}

/// What `POST /api/sandboxes/{name}/probe` answers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProbeResult {
    pub sandbox: String,
    pub gateway: ProbedGateway,
    pub checked_at: String,
    /// One check per route of the sandbox's route table.
    pub routes: Vec<RouteCheck>,
}
