//! Payloads of every subject in [`crate::subject`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A deployment id, made by the control plane: `d` + a UUIDv7 in simple hex,
/// so ids sort by creation time and are safe as a subject token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(String);

impl DeploymentId {
    pub fn generate() -> Self {
        Self(format!("d{}", uuid::Uuid::now_v7().simple()))
    }

    /// Accepts an id read from a URL or a subject; refuses anything that is
    /// not a token we could have made.
    pub fn parse(s: &str) -> Option<Self> {
        crate::subject::is_token(s).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A git password or token. Its `Debug` is redacted and it has no `Display`,
/// so it cannot reach a log line or an error message by accident. It is
/// serialised only inside core-NATS requests, never on JetStream.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A user's git (Bitbucket) credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitCredential {
    pub username: String,
    pub password: Secret,
}

/// Deployment status (binding names, DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Fetching,
    Building,
    Starting,
    Running,
    Failed,
    Cancelled,
    Stopped,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Queued,
        Status::Fetching,
        Status::Building,
        Status::Starting,
        Status::Running,
        Status::Failed,
        Status::Cancelled,
        Status::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Fetching => "fetching",
            Status::Building => "building",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether the agent's work on the deployment is over. `running` is
    /// settled (the result is out) but not final: it may become `stopped`.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Status::Running | Status::Failed | Status::Cancelled | Status::Stopped
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `deploy.request.<kind>`: control plane → one agent of the kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub deployment_id: DeploymentId,
    pub sandbox: String,
    /// The repo's name in the agent's `repos_dir`; also the service name.
    pub repo: String,
    pub branch: String,
    pub credential: GitCredential,
    /// Extra container environment (environment vars and routes, for the
    /// gateway flavour).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Reply to a [`DeployRequest`] that an agent took on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployAccepted {
    pub agent_id: String,
}

/// `deploy.cancel.<id>`: no fields besides the version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployCancel {}

/// `deploy.progress.<id>`: one step of a deployment. `seq` starts at 1 and
/// has no gaps per deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub deployment_id: DeploymentId,
    pub seq: u64,
    pub ts: DateTime<Utc>,
    pub agent_id: String,
    pub body: EventBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// The deployment entered `phase` (queued, fetching, building, starting).
    Phase {
        phase: Status,
        /// The commit being deployed, once fetched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
    },
    /// One line of output.
    Log { stream: LogStream, line: String },
    /// The outcome: `running` with a URL, or `failed` / `cancelled` /
    /// `stopped` with an error.
    Result {
        status: Status,
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        /// The container's last log lines when it failed to become healthy.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log_tail: Vec<String>,
    },
}

impl EventBody {
    /// The status this event puts the deployment in, if it changes it.
    pub fn status(&self) -> Option<Status> {
        match self {
            EventBody::Phase { phase, .. } => Some(*phase),
            EventBody::Result { status, .. } => Some(*status),
            EventBody::Log { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// SDP's own narration (what step runs, warnings).
    System,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::System => "system",
        }
    }
}

/// `agent.heartbeat.<kind>.<agent_id>`, every few seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub agent_id: String,
    pub kind: String,
    pub host: String,
    pub version: String,
    /// Deployments the agent is working on (not yet settled).
    pub running: Vec<DeploymentId>,
    /// Configured base images not loaded on the host.
    pub missing_images: Vec<String>,
    /// How many more deployments the agent would take on now.
    pub capacity: u32,
    /// Repo names in the agent's `repos_dir`.
    #[serde(default)]
    pub repos: Vec<String>,
}

/// `agent.rpc.<kind>.verify_credentials`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyCredentials {
    /// Git URL of a private repo (`auth.probe_repo`): the credential is good
    /// if `git ls-remote` of it succeeds.
    pub probe_repo: String,
    pub credential: GitCredential,
}

/// Successful reply to [`VerifyCredentials`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsVerified {}

/// Reply of every request/reply subject: `{"ok": T}` or `{"error": {...}}`
/// (a struct rather than an enum so that `"v"` can sit beside either).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply<T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl<T> Reply<T> {
    pub fn ok(value: T) -> Self {
        Self {
            ok: Some(value),
            error: None,
        }
    }

    pub fn err(error: RpcError) -> Self {
        Self {
            ok: None,
            error: Some(error),
        }
    }

    pub fn into_result(self) -> Result<T, RpcError> {
        match (self.ok, self.error) {
            (_, Some(error)) => Err(error),
            (Some(value), None) => Ok(value),
            (None, None) => Err(RpcError::new(RpcErrorCode::Internal, "empty reply")),
        }
    }
}

impl<T> From<Result<T, RpcError>> for Reply<T> {
    fn from(result: Result<T, RpcError>) -> Self {
        match result {
            Ok(value) => Self::ok(value),
            Err(error) => Self::err(error),
        }
    }
}

/// An error an agent answers with. `message` is for people and never holds
/// a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    pub code: RpcErrorCode,
    pub message: String,
}

impl RpcError {
    pub fn new(code: RpcErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcErrorCode {
    /// The git server refused the credential.
    Unauthorized,
    /// The request is malformed (bad branch, unknown repo, ...).
    BadRequest,
    /// The agent cannot take work now (at capacity, shutting down).
    Unavailable,
    /// Something on the agent's side failed.
    Internal,
}

impl fmt::Display for RpcErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RpcErrorCode::Unauthorized => "unauthorized",
            RpcErrorCode::BadRequest => "bad_request",
            RpcErrorCode::Unavailable => "unavailable",
            RpcErrorCode::Internal => "internal",
        })
    }
}
