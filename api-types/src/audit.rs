//! The audit trail (`GET /api/audit`): one entry per change asked of the
//! control plane — who, what, on what, when, from where, and how it ended.
//! Action names are dotted `object.verb` (a bare verb for the session and
//! the deploy family), closed in [`AuditAction`]; docs/AUDIT.md lists them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What was asked. The wire name is the `#[serde(rename)]` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    #[serde(rename = "login")]
    Login,
    #[serde(rename = "logout")]
    Logout,
    #[serde(rename = "sandbox.create")]
    SandboxCreate,
    /// `PATCH /api/sandboxes/{name}`: pin, unpin, lifetime, renew.
    #[serde(rename = "sandbox.update")]
    SandboxUpdate,
    #[serde(rename = "sandbox.delete")]
    SandboxDelete,
    /// An expired, unpinned sandbox removed by the reaper (actor `system`).
    #[serde(rename = "sandbox.expire")]
    SandboxExpire,
    #[serde(rename = "sandbox.probe")]
    SandboxProbe,
    /// A deploy of one repo and branch into a sandbox.
    #[serde(rename = "deploy")]
    Deploy,
    /// A deploy of every service of a template into a sandbox.
    #[serde(rename = "deploy.template")]
    DeployTemplate,
    #[serde(rename = "cancel")]
    Cancel,
    /// A redeploy of an earlier deployment's commit.
    #[serde(rename = "rollback")]
    Rollback,
    #[serde(rename = "route.set")]
    RouteSet,
    #[serde(rename = "route.reset")]
    RouteReset,
    /// Autodeploy of a service turned on or off (the message says which).
    #[serde(rename = "follow.set")]
    FollowSet,
    #[serde(rename = "service_env.set")]
    ServiceEnvSet,
    #[serde(rename = "environment.create")]
    EnvironmentCreate,
    /// Also a change of the environment's secrets (their names in the
    /// message, never a value).
    #[serde(rename = "environment.update")]
    EnvironmentUpdate,
    #[serde(rename = "environment.delete")]
    EnvironmentDelete,
    #[serde(rename = "template.create")]
    TemplateCreate,
    #[serde(rename = "template.update")]
    TemplateUpdate,
    #[serde(rename = "template.delete")]
    TemplateDelete,
    /// A Bitbucket push webhook received (actor `bitbucket-push`).
    #[serde(rename = "push")]
    Push,
    /// An outgoing notification (build status, webhook) delivered or not.
    #[serde(rename = "delivery")]
    Delivery,
    #[serde(rename = "test_run.start")]
    TestRunStart,
    #[serde(rename = "test_run.end")]
    TestRunEnd,
    /// A user's cancel of a test run (its end follows as `test_run.end`).
    #[serde(rename = "test_run.cancel")]
    TestRunCancel,
    #[serde(rename = "resource.reset")]
    ResourceReset,
    #[serde(rename = "resource.set")]
    ResourceSet,
    #[serde(rename = "resource.remove")]
    ResourceRemove,
    #[serde(rename = "sandbox.sleep")]
    SandboxSleep,
    #[serde(rename = "sandbox.wake")]
    SandboxWake,
}

impl AuditAction {
    pub const ALL: [AuditAction; 31] = [
        Self::Login,
        Self::Logout,
        Self::SandboxCreate,
        Self::SandboxUpdate,
        Self::SandboxDelete,
        Self::SandboxExpire,
        Self::SandboxProbe,
        Self::Deploy,
        Self::DeployTemplate,
        Self::Cancel,
        Self::Rollback,
        Self::RouteSet,
        Self::RouteReset,
        Self::FollowSet,
        Self::ServiceEnvSet,
        Self::EnvironmentCreate,
        Self::EnvironmentUpdate,
        Self::EnvironmentDelete,
        Self::TemplateCreate,
        Self::TemplateUpdate,
        Self::TemplateDelete,
        Self::Push,
        Self::Delivery,
        Self::TestRunStart,
        Self::TestRunEnd,
        Self::TestRunCancel,
        Self::ResourceReset,
        Self::ResourceSet,
        Self::ResourceRemove,
        Self::SandboxSleep,
        Self::SandboxWake,
    ];

    /// The wire name (`sandbox.create`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::SandboxCreate => "sandbox.create",
            Self::SandboxUpdate => "sandbox.update",
            Self::SandboxDelete => "sandbox.delete",
            Self::SandboxExpire => "sandbox.expire",
            Self::SandboxProbe => "sandbox.probe",
            Self::Deploy => "deploy",
            Self::DeployTemplate => "deploy.template",
            Self::Cancel => "cancel",
            Self::Rollback => "rollback",
            Self::RouteSet => "route.set",
            Self::RouteReset => "route.reset",
            Self::FollowSet => "follow.set",
            Self::ServiceEnvSet => "service_env.set",
            Self::EnvironmentCreate => "environment.create",
            Self::EnvironmentUpdate => "environment.update",
            Self::EnvironmentDelete => "environment.delete",
            Self::TemplateCreate => "template.create",
            Self::TemplateUpdate => "template.update",
            Self::TemplateDelete => "template.delete",
            Self::Push => "push",
            Self::Delivery => "delivery",
            Self::TestRunStart => "test_run.start",
            Self::TestRunEnd => "test_run.end",
            Self::TestRunCancel => "test_run.cancel",
            Self::ResourceReset => "resource.reset",
            Self::ResourceSet => "resource.set",
            Self::ResourceRemove => "resource.remove",
            Self::SandboxSleep => "sandbox.sleep",
            Self::SandboxWake => "sandbox.wake",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the change ended: done, refused for who asked (401, 403, 429), or
/// failed otherwise (bad input, conflict, an agent's error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Ok,
    Denied,
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }
}

/// One entry of the audit trail.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "crate::timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// The user, `bitbucket-push`, `system`; null for a request with no
    /// session.
    pub actor: Option<String>,
    pub action: AuditAction,
    /// What was acted on: a sandbox (`name`, `name/service`), an
    /// environment, a template, a deployment id, a repo@branch.
    pub target: Option<String>,
    /// The sandbox concerned, if any (what the visibility rule checks).
    pub sandbox: Option<String>,
    /// The client's address (behind `http.trusted_proxies`, the forwarded
    /// one); null for actions of the control plane itself.
    pub address: Option<String>,
    pub outcome: AuditOutcome,
    /// HTTP status and error code, or a note (never a secret value).
    pub message: Option<String>,
}

/// `GET /api/audit`'s filters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this actor's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this sandbox's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Only this action (its wire name, e.g. `sandbox.create`; empty: any).
    #[param(schema_with = action_filter)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Deprecated: page number, from 1 (newest first), counted from the
    /// newest entry now, so entries added meanwhile shift the pages; use
    /// `cursor`. Ignored with a cursor.
    #[param(minimum = 1, maximum = 1000000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Entries per page (1 to 500; default 100).
    #[param(minimum = 1, maximum = 500)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before, passed back unchanged (leave
    /// out for the first page).
    #[param(pattern = "^aud1\\.[0-9]{1,18}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// An action's wire name, or empty for any.
fn action_filter() -> utoipa::openapi::Object {
    let names = std::iter::once("").chain(AuditAction::ALL.map(AuditAction::as_str));
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names))
        .description(Some("Only this action (empty: any)"))
        .build()
}

/// One page of the audit trail, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The next page's cursor (also in `X-Next-Cursor`); null on the last
    /// page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// Deprecated: the page number asked for (1 when paging by cursor).
    #[schema(deprecated)]
    pub page: u32,
    /// Deprecated: the next page's number (null on the last page, and
    /// when paging by cursor).
    #[schema(deprecated)]
    pub next_page: Option<u32>,
}
