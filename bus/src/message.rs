//! Payloads of every subject in [`crate::subject`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::service::{ServiceOverrides, ServiceSettings, default_route_env};

/// A deployment id, made by the control plane: `d` + a UUIDv7 in simple hex,
/// so ids sort by creation time and are safe as a subject token. It names a
/// log file and a subject, so decoding refuses anything that is not a token
/// (`../x` never decodes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeploymentId(String);

impl TryFrom<String> for DeploymentId {
    type Error = crate::validate::InvalidName;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        crate::validate::token("deployment id", &s)?;
        Ok(Self(s))
    }
}

impl From<DeploymentId> for String {
    fn from(id: DeploymentId) -> String {
        id.0
    }
}

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

/// Deployment status. The names are binding (API, SQLite, dashboard):
/// add, never rename.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(deserialize_with = "checked::sandbox")]
    pub sandbox: String,
    /// The repo's name in the agent's `repos_dir`; also the service name.
    #[serde(deserialize_with = "checked::repo")]
    pub repo: String,
    pub branch: String,
    pub credential: GitCredential,
    /// Extra container environment (environment vars and routes, for the
    /// gateway flavour).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The sandbox's route table, mounted read-only as `routes.json` into
    /// gateway containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Settings a template sets over the repo's `sdp.toml`.
    #[serde(default, skip_serializing_if = "ServiceOverrides::is_empty")]
    pub overrides: ServiceOverrides,
    /// Re-apply: if the agent's worktree for (sandbox, repo) already holds
    /// a build of `branch`, skip fetch and build and only recreate the
    /// container (new env, new routes). Otherwise a full deploy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reuse_build: bool,
    /// Deploy exactly this commit (full SHA, checked with
    /// [`crate::validate::commit`]) instead of the branch head. The agent
    /// refuses it, before building anything, unless it is the fetched
    /// head of `branch` or an ancestor of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Where a sandbox sends one service's requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub service: String,
    pub target: String,
    pub source: RouteSource,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteSource {
    /// A running deployment of this sandbox.
    Sandbox,
    /// The environment's (baseline) URL.
    Environment,
    /// Set by hand.
    Manual,
}

/// `agent.rpc.<kind>.list_repos`: no fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRepos {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoList {
    pub repos: Vec<RepoInfo>,
}

/// A repo in an agent's `repos_dir`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoInfo {
    pub name: String,
    pub kind: String,
    /// The `origin` URL (never carries a credential: such repos are refused).
    pub remote: String,
    /// The branch `origin/HEAD` or the local HEAD names, if known.
    pub default_branch: Option<String>,
    /// `sdp.toml` of the default branch as far as the agent has it, else
    /// defaults.
    pub settings: ServiceSettings,
}

/// `agent.rpc.<kind>.list_branches`: the remote's branches, read with the
/// user's credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListBranches {
    #[serde(deserialize_with = "checked::repo")]
    pub repo: String,
    pub credential: GitCredential,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchList {
    pub branches: Vec<BranchInfo>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchInfo {
    pub name: String,
    pub commit: String,
}

/// `agent.cmd.<agent_id>.teardown`: remove every container, worktree, git
/// dir, build and routes file of the sandbox on this agent. Idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Teardown {
    #[serde(deserialize_with = "checked::sandbox")]
    pub sandbox: String,
}

/// `agent.cmd.<agent_id>.reconcile`: the deployments that should have a
/// container on this agent. The agent removes its containers of any other
/// deployment (stopped, failed, superseded) and keeps these. Idempotent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    pub keep: Vec<DeploymentId>,
    /// Deployments the agent still works on that the control plane has
    /// already settled (failed while the agent was silent): the agent stops
    /// them and removes what they made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abandon: Vec<DeploymentId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileDone {
    /// Deployment ids whose containers were removed.
    pub removed: Vec<String>,
    /// How many containers were kept.
    pub kept: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeardownDone {
    pub containers_removed: u32,
    pub worktrees_removed: u32,
}

/// `agent.cmd.<agent_id>.sleep` and `agent.cmd.<agent_id>.wake`: stop, or
/// start again, every container of the sandbox on this agent (those of
/// its services, gateway and resources; never a test run's). Stopped
/// containers are kept with everything in them. Idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPower {
    #[serde(deserialize_with = "checked::sandbox")]
    pub sandbox: String,
}

/// Reply to [`SandboxPower`]: how many containers the agent stopped (sleep)
/// or started (wake), and how many were already so.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPowered {
    pub changed: u32,
    pub unchanged: u32,
}

/// Reply to a [`DeployRequest`] that an agent took on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployAccepted {
    #[serde(deserialize_with = "checked::token")]
    pub agent_id: String,
}

/// `deploy.cancel.<id>`: the version and, optionally, who asked (a test
/// run's cancel names the user, so its log can say who stopped it; an
/// agent that does not know the field ignores it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployCancel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `deploy.progress.<id>`: one step of a deployment. `seq` starts at 1 and
/// has no gaps per deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub deployment_id: DeploymentId,
    pub seq: u64,
    pub ts: DateTime<Utc>,
    #[serde(deserialize_with = "checked::token")]
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
    /// One line of output. Agents now send [`EventBody::Logs`]; readers
    /// keep accepting this form (older agents, the control plane's notes).
    Log { stream: LogStream, line: String },
    /// Consecutive lines of one stream, coalesced by the agent (one
    /// JetStream message for many lines). `first_line` is the 1-based
    /// number of `lines[0]` in the deployment's log, counting every log
    /// line of every stream, so viewers number lines exactly.
    Logs {
        stream: LogStream,
        first_line: u64,
        lines: Vec<String>,
    },
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
        /// The container's last output lines when it failed to become
        /// healthy; the same lines are in the log before the result
        /// (`last output of container …:`), so a follower of the log need
        /// not print these again.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log_tail: Vec<String>,
        /// Set when the events are a test run's (see [`crate::test_run`]):
        /// how it went. Its status is then `stopped` (the command ran to
        /// its end: passed or not is here), `failed` (it could not run)
        /// or `cancelled`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test: Option<crate::test_run::TestOutcome>,
    },
}

impl EventBody {
    /// The status this event puts the deployment in, if it changes it.
    pub fn status(&self) -> Option<Status> {
        match self {
            EventBody::Phase { phase, .. } => Some(*phase),
            EventBody::Result { status, .. } => Some(*status),
            EventBody::Log { .. } | EventBody::Logs { .. } => None,
        }
    }

    /// The log lines this event carries, in order: one for `log`, all of a
    /// `logs` batch, none for other events.
    pub fn log_lines(&self) -> impl Iterator<Item = (LogStream, &str)> {
        let (stream, lines): (LogStream, &[String]) = match self {
            EventBody::Log { stream, line } => (*stream, std::slice::from_ref(line)),
            EventBody::Logs { stream, lines, .. } => (*stream, lines.as_slice()),
            _ => (LogStream::System, &[]),
        };
        lines.iter().map(move |line| (stream, line.as_str()))
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
    #[serde(deserialize_with = "checked::token")]
    pub agent_id: String,
    #[serde(deserialize_with = "checked::token")]
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
    /// When this agent process started: a new value means it restarted,
    /// and the control plane asks it to reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// The agent's build-cache warm-up after it started: `warming`, `warm`
    /// or `failed: <reason>`; absent when its flavour warms nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_cache: Option<String>,
    /// Runtime-log streams ([`ContainerLogs`]) the agent serves now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_streams: u32,
    /// The build toolchains the agent has, oldest first: `go 1.19.8`,
    /// `go 1.22.12`; empty (and absent) for a flavour without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub toolchains: Vec<String>,
    /// The optional methods the agent answers, beyond the minimal contract
    /// (heartbeats, `deploy.request.<kind>`, `deploy.cancel.<id>`,
    /// progress): the `<method>` of each `agent.cmd.<agent_id>.<method>`
    /// and `agent.rpc.<kind>.<method>` it subscribes to (`deploy`,
    /// `reconcile`, `container_logs`, …). See [`Heartbeat::serves`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves: Option<Vec<String>>,
}

/// What an SDP agent from before `serves` existed answered: every agent of
/// this repository served these, so a heartbeat without the field (an
/// older agentlib) keeps being sent them. An agent of another make sends
/// `serves` (`[]` for the minimal contract alone).
pub const SERVES_BEFORE_ADVERTISING: &[&str] = &[
    crate::subject::DEPLOY,
    crate::subject::VERIFY_CREDENTIALS,
    crate::subject::LIST_REPOS,
    crate::subject::LIST_BRANCHES,
    crate::subject::TEARDOWN,
    crate::subject::RECONCILE,
    crate::subject::CONTAINER_LOGS,
    crate::subject::BRANCH_STATUS,
    crate::subject::PROBE,
];

impl Heartbeat {
    /// Whether the agent answers `method` on its directed or kind subject:
    /// as its `serves` says, or, for a heartbeat without `serves` (an SDP
    /// agent older than the field), as [`SERVES_BEFORE_ADVERTISING`] says.
    pub fn serves(&self, method: &str) -> bool {
        match &self.serves {
            Some(methods) => methods.iter().any(|m| m == method),
            None => SERVES_BEFORE_ADVERTISING.contains(&method),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    /// Absent from a terse agent's reply: empty.
    #[serde(default)]
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

/// The code of an [`RpcError`]. Readers tolerate what they do not know:
/// a code this build has no name for decodes as [`RpcErrorCode::Other`]
/// with the code kept (and encodes back to it), so an agent of a newer
/// version or another language is still understood to have refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RpcErrorCode {
    /// The git server refused the credential.
    Unauthorized,
    /// The request is malformed (bad branch, unknown repo, ...).
    BadRequest,
    /// The agent cannot take work now (at capacity, shutting down).
    Unavailable,
    /// Something on the agent's side failed.
    Internal,
    /// The agent does not serve the method it was sent (an
    /// `agent.cmd.<agent_id>.<method>` it has not advertised in its
    /// heartbeat's `serves`).
    UnknownMethod,
    /// A code this build does not know, kept as it came.
    Other(String),
}

impl RpcErrorCode {
    pub fn as_str(&self) -> &str {
        match self {
            RpcErrorCode::Unauthorized => "unauthorized",
            RpcErrorCode::BadRequest => "bad_request",
            RpcErrorCode::Unavailable => "unavailable",
            RpcErrorCode::Internal => "internal",
            RpcErrorCode::UnknownMethod => "unknown_method",
            RpcErrorCode::Other(code) => code,
        }
    }
}

impl From<String> for RpcErrorCode {
    fn from(code: String) -> Self {
        match code.as_str() {
            "unauthorized" => RpcErrorCode::Unauthorized,
            "bad_request" => RpcErrorCode::BadRequest,
            "unavailable" => RpcErrorCode::Unavailable,
            "internal" => RpcErrorCode::Internal,
            "unknown_method" => RpcErrorCode::UnknownMethod,
            _ => RpcErrorCode::Other(code),
        }
    }
}

impl From<RpcErrorCode> for String {
    fn from(code: RpcErrorCode) -> String {
        match code {
            RpcErrorCode::Other(code) => code,
            known => known.as_str().to_owned(),
        }
    }
}

impl fmt::Display for RpcErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `agent.cmd.<agent_id>.container_logs`: stream the output of a
/// deployment's running container on that agent. The agent answers
/// [`ContainerLogsStarted`] (or an error: no such container here, not
/// running), then publishes [`LogBatch`]es on
/// `agent.logs.<agent_id>.<stream_id>.data`, never more than `window`
/// unacknowledged; the control plane acks and stops with [`LogCredit`] on
/// `agent.logs.<agent_id>.<stream_id>.credit`. Never on JetStream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLogs {
    pub deployment_id: DeploymentId,
    /// A subject token made by the control plane, unique per stream.
    #[serde(deserialize_with = "checked::token")]
    pub stream_id: String,
    /// The last `tail` lines first (`None`: all there are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
    /// Only lines written at or after this unix time (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Keep streaming new lines until stopped or the container exits.
    #[serde(default)]
    pub follow: bool,
    /// Only lines containing this text (a plain substring, matched by the
    /// agent; never reaches a shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// How many batches may be unacknowledged at once.
    pub window: u32,
}

/// Reply to [`ContainerLogs`]: the stream has started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerLogsStarted {}

/// One batch of a runtime-log stream. `seq` starts at 1 and has no gaps; a
/// batch without lines and without `end` is a keepalive (acked like any
/// other), so an agent whose viewer vanished without a stop notices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    pub seq: u64,
    #[serde(default)]
    pub lines: Vec<String>,
    /// Set on the last batch: why the stream ended (`eof`: the whole log
    /// was sent; `exited`: the container stopped; or an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// Control plane → agent on a runtime-log stream: every batch up to
/// `acked` was consumed; `stop` ends the stream (the viewer left).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCredit {
    pub acked: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
}

/// `agent.rpc.<kind>.branch_status`: how far branches have moved past the
/// commits deployed from them. The agent lists the remote's heads with the
/// user's credential (like `list_branches`) and, for a branch that moved,
/// fetches it into its store of the repo to count the commits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BranchStatus {
    #[serde(deserialize_with = "checked::repo")]
    pub repo: String,
    pub credential: GitCredential,
    pub branches: Vec<BranchCommit>,
}

/// A branch and the commit deployed from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchCommit {
    pub branch: String,
    pub commit: String,
}

/// Reply to [`BranchStatus`]: one entry per asked branch, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchStatusList {
    pub branches: Vec<BranchMove>,
}

/// Where a branch is now, relative to a commit deployed from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchMove {
    pub branch: String,
    /// The deployed commit asked about.
    pub commit: String,
    /// The branch's head on the remote; `None` when the branch is gone.
    pub head: Option<String>,
    /// Commits on the head that the deployed commit lacks; `None` when the
    /// agent cannot tell (see `reason`).
    pub behind: Option<u32>,
    /// Why `behind` is `None`, or a note (the branch was rewritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `agent.cmd.<agent_id>.probe`: check every route of a sandbox from inside
/// its gateway container's network (the agent runs the check there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    #[serde(deserialize_with = "checked::sandbox")]
    pub sandbox: String,
    /// The gateway's service (repo) name: with the sandbox and the agent,
    /// the labels of its container.
    #[serde(deserialize_with = "checked::repo")]
    pub service: String,
    pub routes: Vec<Route>,
}

/// Reply to [`Probe`]: one check per route, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub routes: Vec<RouteCheck>,
}

/// One route, checked from the gateway's network.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCheck {
    pub service: String,
    pub target: String,
    pub source: RouteSource,
    /// The target answered HTTP (any status).
    pub ok: bool,
    /// The HTTP status of the first answer.
    pub status: Option<u16>,
    /// From the check's start to its end, as the agent measured it
    /// (includes starting the check in the gateway container).
    pub latency_ms: Option<u64>,
    /// What went wrong, for people.
    pub error: Option<String>,
    /// Which hop is broken; `None` when `ok`.
    pub hop: Option<ProbeHop>,
}

/// The hop of a route that a probe found broken, from the gateway outwards.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeHop {
    /// The gateway container is not running, or the check cannot run in it.
    Gateway,
    /// The target is not an http(s) URL the check accepts.
    Url,
    /// The target's host name does not resolve from the gateway.
    Dns,
    /// The TCP connection is refused or the host unreachable.
    Connect,
    /// No answer within the probe's bound.
    Timeout,
    /// Connected, but no HTTP answer (TLS or protocol failure).
    Http,
}

// For the messages of other modules.
pub(crate) use checked::{repo as checked_repo, sandbox as checked_sandbox};

/// `deserialize_with` checks for the ids and names in payloads that become
/// a subject, a path or a container name: a payload carrying a bad one does
/// not decode, so no handler ever sees it.
mod checked {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    use crate::validate;

    /// An agent id, a kind or a stream id: a subject token.
    pub fn token<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        validate::token("id", &s).map_err(D::Error::custom)?;
        Ok(s)
    }

    pub fn sandbox<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        validate::resource_name("sandbox name", &s).map_err(D::Error::custom)?;
        Ok(s)
    }

    pub fn repo<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        validate::repo(&s).map_err(D::Error::custom)?;
        Ok(s)
    }
}
