//! Notifications of deployments and test runs: build statuses on the
//! commit in Bitbucket and outgoing webhooks, and their last outcomes:
//! `GET /api/deliveries`, `GET`/`PUT /api/templates/{name}/notify`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What happened that a delivery tells of. The names are binding (API,
/// SQLite, webhook bodies, `events` filters): add, never rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum NotifyEvent {
    /// A deployment started (queued): Bitbucket `INPROGRESS`.
    #[serde(rename = "deployment.started")]
    DeploymentStarted,
    /// A deployment reached `running`: Bitbucket `SUCCESSFUL`.
    #[serde(rename = "deployment.running")]
    DeploymentRunning,
    /// A deployment failed: Bitbucket `FAILED`.
    #[serde(rename = "deployment.failed")]
    DeploymentFailed,
    /// A test run ended (passed: `SUCCESSFUL`, else `FAILED`).
    #[serde(rename = "test_run.ended")]
    TestRunEnded,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::DeploymentStarted,
        NotifyEvent::DeploymentRunning,
        NotifyEvent::DeploymentFailed,
        NotifyEvent::TestRunEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::DeploymentStarted => "deployment.started",
            NotifyEvent::DeploymentRunning => "deployment.running",
            NotifyEvent::DeploymentFailed => "deployment.failed",
            NotifyEvent::TestRunEnded => "test_run.ended",
        }
    }

    pub fn parse(text: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// A Bitbucket build state, as both Cloud and Data Center name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum BuildState {
    Inprogress,
    Successful,
    Failed,
}

impl BuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Inprogress => "INPROGRESS",
            BuildState::Successful => "SUCCESSFUL",
            BuildState::Failed => "FAILED",
        }
    }
}

/// Where a delivery goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// A build status on the commit in Bitbucket.
    BuildStatus,
    /// An outgoing webhook of the sandbox's template.
    Webhook,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::BuildStatus => "build_status",
            DeliveryKind::Webhook => "webhook",
        }
    }
}

/// How a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Not yet delivered: waiting for its next attempt.
    Pending,
    Delivered,
    /// Given up: the attempts ran out, or the answer was a refusal that
    /// trying again cannot change (4xx other than 408/429).
    Failed,
    /// A newer delivery of the same key to the same target replaced it.
    Superseded,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Pending => "pending",
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Superseded => "superseded",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryOutcome> {
        [
            DeliveryOutcome::Pending,
            DeliveryOutcome::Delivered,
            DeliveryOutcome::Failed,
            DeliveryOutcome::Superseded,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// One delivery and its last outcome. Never holds a credential: `target`
/// names a webhook by its origin only (a Slack URL's path is its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub sandbox: String,
    /// The service (repo) it is about.
    pub repo: String,
    /// The deployment it is about, if one (a test run's is its id).
    pub deployment_id: Option<String>,
    pub kind: DeliveryKind,
    /// `bitbucket cloud`, `bitbucket data_center`, or a webhook's origin.
    pub target: String,
    pub event: NotifyEvent,
    pub state: BuildState,
    /// The commit it reports on.
    pub commit: Option<String>,
    /// The build status key (per sandbox and service).
    pub key: String,
    pub outcome: DeliveryOutcome,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status of the last answer, if any came.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/deliveries`'s filters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only this sandbox's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// At most this many, newest first (1 to 500; default 100).
    #[param(minimum = 1, maximum = 500)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `X-Next-Cursor` of the page before, passed back unchanged
    /// (leave out for the first page).
    #[param(pattern = "^dlv1\\.[0-9]{1,18}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// An outgoing webhook of a template or an environment: `POST`ed JSON with
/// a Slack-compatible `text` for each event it takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// `https://…` (plain `http` only to a loopback host, and only when
    /// `notify.allow_loopback_http` is set), to a host on the Internet
    /// (not one that is or resolves to a loopback, private, link-local …
    /// address, unless `notify.allowed_private_hosts` names it). Shown in
    /// full to the owner's creator and admins only: a webhook URL is a
    /// secret.
    #[schema(
        max_length = 2000,
        example = "https://hooks.slack.com/services/T0/B0/xyz"
    )]
    pub url: String,
    /// The events it takes (empty or left out: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 4)]
    pub events: Vec<NotifyEvent>,
}

/// A template's or an environment's outgoing webhooks (all of them; a
/// `PUT` replaces them). A sandbox sends to its template's and its
/// environment's; a URL in both is sent to once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateNotify {
    #[schema(max_items = 10)]
    pub targets: Vec<NotifyTarget>,
}
