//! Sandbox resources on the bus: `agent.cmd.<agent_id>.resource_ensure`
//! ([`ResourceEnsure`] → [`ResourceReady`]) runs a sandbox's database on
//! an agent, seeds it when its volume is new, and resets it on request.

use serde::{Deserialize, Serialize};

use crate::message::{GitCredential, Secret};

/// What a resource runs. The names are binding (templates, API, store).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceEngine {
    Postgres,
    Mariadb,
    Redis,
}

impl ResourceEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mariadb => "mariadb",
            Self::Redis => "redis",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" => Some(Self::Postgres),
            "mariadb" => Some(Self::Mariadb),
            "redis" => Some(Self::Redis),
            _ => None,
        }
    }

    /// The port the server listens on in its container.
    pub fn port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Mariadb => 3306,
            Self::Redis => 6379,
        }
    }

    /// The connection URL of user `sdp` with `password` to database `app`
    /// at `host:port` (redis: database 0).
    pub fn url(self, password: &str, host: &str, port: u16) -> String {
        match self {
            Self::Postgres => format!("postgres://sdp:{password}@{host}:{port}/app"),
            Self::Mariadb => format!("mysql://sdp:{password}@{host}:{port}/app"),
            Self::Redis => format!("redis://:{password}@{host}:{port}/0"),
        }
    }
}

/// Where a resource's first data comes from: SQL run once into a new
/// volume (postgres and mariadb only).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResourceSeed {
    /// The SQL file at `path` of `repo`'s `branch`, fetched with the
    /// requester's git credential.
    Repo {
        repo: String,
        branch: String,
        path: String,
    },
    /// A plain-SQL dump file, relative to the agent's
    /// `resources.dumps_dir`.
    Dump { file: String },
}

/// `agent.cmd.<agent_id>.resource_ensure`: make sure the resource runs
/// (its container from its volume), seed a new volume, and with `reset`
/// drop the volume first. Answers when the server accepts connections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceEnsure {
    #[serde(deserialize_with = "crate::message::checked_sandbox")]
    pub sandbox: String,
    /// The resource's name in the sandbox (a sandbox-style name).
    pub name: String,
    pub engine: ResourceEngine,
    /// The password of user `sdp`, made by the control plane per sandbox.
    pub password: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<ResourceSeed>,
    /// For a [`ResourceSeed::Repo`] seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<GitCredential>,
    #[serde(default)]
    pub reset: bool,
}

/// The answer to [`ResourceEnsure`]: where the server listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceReady {
    /// The agent's advertised host and the published port.
    pub host: String,
    pub port: u16,
    /// The volume's size in bytes (0 if unknown).
    pub size_bytes: u64,
    /// Whether this call made a new volume (and seeded it, if a seed is
    /// set).
    pub created: bool,
}

/// `agent.cmd.<agent_id>.resource_remove`: remove the resource's container
/// and volume (its data) from this agent. Idempotent: a resource that is
/// not there is removed already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRemove {
    #[serde(deserialize_with = "crate::message::checked_sandbox")]
    pub sandbox: String,
    pub name: String,
}

/// The answer to [`ResourceRemove`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRemoved {
    /// Containers and volumes removed (0: nothing was there).
    pub removed: u32,
}

/// `agent.cmd.<agent_id>.resource_sizes`: the data size of each running
/// resource on this agent. Asked by the control plane at a bounded rate
/// (`sandboxes.resource_size_interval`), never with heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSizes {}

/// One resource's measured size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSize {
    pub sandbox: String,
    pub name: String,
    pub size_bytes: u64,
}

/// The answer to [`ResourceSizes`]: the running resources this agent could
/// measure (a stopped one is left out: its last size stands).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSizeList {
    pub sizes: Vec<ResourceSize>,
}
