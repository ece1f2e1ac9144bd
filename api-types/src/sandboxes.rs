//! Sandboxes (`/api/sandboxes[/{name}]`): what they are, the bodies that
//! create and change them, template deploys, routes, and a service's
//! autodeploy and env.
//!
//! Autodeploy was first called "follow": requests still accept `follow`
//! (a serde alias) and responses carry `follow` next to `autodeploy`
//! (deprecated in the schema), so scripts written against the old name
//! keep working.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sdp_bus::{DeploymentId, RouteSource, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Sandbox {
    pub name: String,
    pub owner: String,
    pub template: Option<String>,
    pub environment: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub expires_at: DateTime<Utc>,
    pub pinned: bool,
    pub ttl_hours: u32,
    /// Awake, asleep (its containers stopped after `sandboxes.sleep_after`
    /// with no deploy and no preview request) or waking.
    #[serde(default)]
    pub state: SandboxState,
    /// The last deploy into it or request through its preview link, as
    /// far as stored (written at most about once a minute).
    #[serde(default, with = "crate::timestamp::option")]
    pub last_activity_at: Option<DateTime<Utc>>,
}

/// Whether a sandbox's containers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    #[default]
    Awake,
    /// Its containers are stopped (not removed); the first request through
    /// its preview link, `POST /api/sandboxes/{name}/wake` or a deploy
    /// wakes it.
    Asleep,
    /// Its containers are being started again.
    Waking,
}

impl SandboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Awake => "awake",
            Self::Asleep => "asleep",
            Self::Waking => "waking",
        }
    }

    /// The state stored as `text`; anything unknown reads as awake.
    pub fn parse(text: &str) -> Self {
        match text {
            "asleep" => Self::Asleep,
            "waking" => Self::Waking,
            _ => Self::Awake,
        }
    }
}

/// A sandbox with what runs in it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxView {
    #[serde(flatten)]
    pub sandbox: Sandbox,
    /// The environment it runs with: its own, else its template's.
    pub effective_environment: Option<String>,
    pub services: Vec<ServiceView>,
    /// Where its gateway answers; the same for the sandbox's whole life.
    pub gateway_url: Option<String>,
    /// `http://<name>.<http.preview_domain>/`, if a preview domain is set.
    pub preview_url: Option<String>,
    /// The route table (on one sandbox, not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<EffectiveRoute>>,
}

/// A service of the sandbox: its latest deployment, or only planned by
/// the template (no kind, status or deployment yet).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceView {
    pub repo: String,
    pub kind: Option<String>,
    pub branch: Option<String>,
    pub status: Option<Status>,
    pub deployment_id: Option<String>,
    pub commit: Option<String>,
    pub url: Option<String>,
    /// Autodeploy: redeployed when its branch (that of its newest
    /// deployment) is pushed to (`PUT /api/sandboxes/{name}/services/{repo}`).
    pub autodeploy: bool,
    /// Deprecated: the same as `autodeploy`, under its first name.
    // Set both with `ServiceView::set_autodeploy`.
    #[schema(deprecated)]
    pub follow: bool,
    /// A push to its branch that was not deployed (no service credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_head: Option<PushedHead>,
    /// The keys of the sandbox's own env for it
    /// (`/api/sandboxes/{name}/services/{repo}/env`); values are shown
    /// there, to the owner and admins.
    pub env_keys: Vec<String>,
}

/// A pushed commit of an autodeploy service's branch that is not deployed: no
/// service credential is configured, so it waits for a deploy by hand.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PushedHead {
    /// The pushed commit.
    pub commit: String,
    /// When the push came.
    pub at: String,
    /// `behind: deploy by hand`.
    pub note: String,
}

/// One line of the route table, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EffectiveRoute {
    pub service: String,
    pub target: String,
    pub source: RouteSource,
    /// The gateway env var that carries `target`.
    pub env_key: String,
}

/// A sandbox to create, owned by the caller.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSandbox {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "alpha")]
    pub name: String,
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "web")]
    pub template: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "baseline")]
    pub environment: Option<String>,
    #[serde(default, deserialize_with = "crate::rules::whole_number")]
    #[schema(minimum = 1, maximum = 2160)]
    pub ttl_hours: Option<u32>,
    #[serde(default)]
    pub pinned: bool,
    /// Resources of this sandbox's own, over its template's (by name):
    /// checked like a template's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<crate::resources::ResourceSpec>,
}

/// What to change: pin or unpin, a new TTL, or renew the expiry.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxPatch {
    #[serde(default)]
    pub pinned: Option<bool>,
    #[serde(default, deserialize_with = "crate::rules::whole_number")]
    #[schema(minimum = 1, maximum = 2160)]
    pub ttl_hours: Option<u32>,
    #[serde(default)]
    pub renew: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TeardownReport {
    pub stopped: usize,
    pub agents: Vec<AgentTeardown>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentTeardown {
    pub agent_id: String,
    pub ok: bool,
    pub containers_removed: u32,
    pub worktrees_removed: u32,
    pub error: Option<String>,
}

/// Optional: the template as it is when absent or empty.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDeploy {
    /// Branch per repo, over the template's defaults.
    #[serde(default)]
    pub branches: BTreeMap<String, String>,
    /// Deploy only these services (and the gateway); default: all.
    #[serde(default)]
    pub only: Option<Vec<String>>,
}

/// What a template deploy started.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplateDeployStarted {
    pub deployments: Vec<TemplateDeployment>,
}

/// One deployment of a template deploy; `failed` with `error` when its
/// dispatch failed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplateDeployment {
    #[schema(value_type = String)]
    pub id: DeploymentId,
    pub repo: String,
    pub branch: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A manual route's target: an http(s) URL.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    #[schema(
        pattern = "^https?://[^/?#\\[\\]\\s\\x00-\\x1f\\x7f-\\x9f]+([/?#][^\\s\\x00-\\x1f\\x7f-\\x9f]*)?$",
        max_length = 2048,
        example = "http://users.example"
    )]
    pub target: String,
}

impl ServiceView {
    /// Sets `autodeploy` and its deprecated copy `follow`.
    pub fn set_autodeploy(&mut self, on: bool) {
        self.autodeploy = on;
        self.follow = on;
    }
}

/// Whether a push to the service's branch redeploys it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAutodeploy {
    /// Also accepted under its first name, `follow` (deprecated).
    #[serde(alias = "follow")]
    pub autodeploy: bool,
}

/// A service's env in one sandbox.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceEnv {
    pub sandbox: String,
    pub repo: String,
    /// The keys the sandbox sets for the service.
    pub keys: Vec<String>,
    /// Their values: only for the sandbox's owner and admins (absent
    /// for others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// The template's env for the service, which this one overrides by
    /// key (templates are readable by everyone).
    pub template_env: BTreeMap<String, String>,
    /// After a `PUT`: the running service is being re-applied with the
    /// new env (its build again; the re-apply shows in the history).
    pub reapplying: bool,
}

/// The service's whole env in this sandbox; `{}` removes it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceEnvWrite {
    /// Replaces every variable the sandbox sets for the service. Keys
    /// `[A-Za-z_][A-Za-z0-9_]*`, not `PORT` or `SDP_*`; at most 128 with
    /// the template's.
    #[schema(schema_with = crate::rules::service_env)]
    pub env: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn autodeploy_is_read_under_both_names() {
        for key in ["autodeploy", "follow"] {
            for on in [true, false] {
                let body: ServiceAutodeploy =
                    serde_json::from_value(json!({ key: on })).expect("accepted");
                assert_eq!(body.autodeploy, on, "{key}");
            }
        }
        assert!(serde_json::from_value::<ServiceAutodeploy>(json!({ "auto": true })).is_err());
        assert_eq!(
            serde_json::to_value(ServiceAutodeploy { autodeploy: true }).expect("json"),
            json!({ "autodeploy": true })
        );
    }

    #[test]
    fn a_service_shows_autodeploy_under_both_names() {
        let mut service = ServiceView {
            repo: "users".into(),
            kind: None,
            branch: None,
            status: None,
            deployment_id: None,
            commit: None,
            url: None,
            autodeploy: false,
            follow: false,
            pushed_head: None,
            env_keys: Vec::new(),
        };
        service.set_autodeploy(true);
        let shown = serde_json::to_value(&service).expect("json");
        assert_eq!(shown["autodeploy"], true, "{shown}");
        assert_eq!(shown["follow"], true, "{shown}");
    }
}
