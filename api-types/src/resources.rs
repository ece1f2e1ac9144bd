//! A sandbox's resources (databases): what a template declares
//! ([`ResourceSpec`]), what `/api/sandboxes/{name}/resources` shows
//! ([`SandboxResource`]).

use chrono::{DateTime, Utc};
use sdp_bus::{ResourceEngine, ResourceSeed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A database every sandbox of the template gets, its URL given to the
/// services as `env_var`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "db")]
    pub name: String,
    pub engine: ResourceEngine,
    /// The variable the services get the connection URL in.
    #[schema(pattern = "^[A-Z_][A-Z0-9_]{0,63}$", example = "DATABASE_URL")]
    pub env_var: String,
    /// SQL run once into a new (or reset) database; postgres and mariadb
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<ResourceSeed>,
}

/// What to put under a resource's name on a sandbox
/// (`PUT /api/sandboxes/{name}/resources/{resource}`): the same fields as
/// a template's [`ResourceSpec`], its name taken from the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceBody {
    pub engine: ResourceEngine,
    #[schema(pattern = "^[A-Z_][A-Z0-9_]{0,63}$", example = "DATABASE_URL")]
    pub env_var: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<ResourceSeed>,
}

impl ResourceBody {
    /// The spec of resource `name`.
    pub fn named(self, name: &str) -> ResourceSpec {
        ResourceSpec {
            name: name.to_owned(),
            engine: self.engine,
            env_var: self.env_var,
            seed: self.seed,
        }
    }
}

/// Who declares a sandbox's resource: its template, or the sandbox itself
/// (its own win over the template's by name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceOrigin {
    #[default]
    Template,
    Sandbox,
}

/// Where a sandbox's resource is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceState {
    /// Declared, not made yet: the next deploy of a service makes it.
    Pending,
    /// Being started (or reset) and seeded.
    Starting,
    /// Accepting connections.
    Ready,
    /// The last start or reset failed (`error` says why).
    Failed,
}

impl ResourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "starting" => Some(Self::Starting),
            "ready" => Some(Self::Ready),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One resource of a sandbox.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxResource {
    pub name: String,
    pub engine: ResourceEngine,
    pub env_var: String,
    pub state: ResourceState,
    /// The connection URL; its password is shown to the sandbox's owner
    /// and admins only (`***` for anyone else). Null until placed.
    pub url: Option<String>,
    /// The agent it runs on.
    pub agent_id: Option<String>,
    /// The data volume's size when last measured (at ready, then every
    /// `sandboxes.resource_size_interval` while it runs).
    pub size_bytes: u64,
    /// When `size_bytes` was measured by the periodic poll (null: only
    /// at ready).
    #[serde(default, with = "crate::timestamp::option")]
    pub size_at: Option<DateTime<Utc>>,
    /// Its template's or the sandbox's own (only those can be removed
    /// from the sandbox).
    #[serde(default)]
    pub origin: ResourceOrigin,
    pub error: Option<String>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
}
