//! `POST /api/hooks/bitbucket`'s answer: what a push delivery started.

use sdp_bus::{DeploymentId, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    /// A push: `triggered` lists what it started, `skipped` what it did not.
    Handled,
    /// The same delivery (request id or body) within the replay window.
    Duplicate,
    /// Not a push, or a repository SDP cannot have.
    Ignored,
}

/// The answer to a delivery, for Bitbucket's delivery log.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HookAnswer {
    pub outcome: HookOutcome,
    /// For people: what happened.
    pub message: String,
    /// The `X-Event-Key`.
    pub event: String,
    /// The SDP repo of the push (the repository's slug).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// One deployment per sandbox with autodeploy on whose branch moved.
    pub triggered: Vec<PushDeployment>,
    /// Services with autodeploy on that were not redeployed: already at the commit, or behind (no
    /// service credential configured: deploy by hand).
    pub skipped: Vec<PushSkipped>,
}

impl HookAnswer {
    /// An answer with nothing triggered or skipped (yet).
    pub fn new(outcome: HookOutcome, event: &str, message: impl Into<String>) -> Self {
        Self {
            outcome,
            message: message.into(),
            event: event.to_owned(),
            repo: None,
            triggered: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

/// A deployment a push started (`failed` with `error` if no agent took
/// it).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PushDeployment {
    pub sandbox: String,
    pub repo: String,
    pub branch: String,
    /// The pushed commit (the agent fetches the branch head, this or newer).
    pub commit: String,
    #[schema(value_type = String)]
    pub deployment_id: DeploymentId,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A service with autodeploy on that was not redeployed, and why.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PushSkipped {
    pub sandbox: String,
    pub repo: String,
    pub branch: String,
    pub commit: String,
    /// `behind: deploy by hand` (no service credential), or `up to date`
    /// (its newest deployment already has the commit).
    pub note: String,
}
