//! `[resources]`: the databases an agent runs for sandboxes.
//!
//! ```toml
//! [resources]
//! postgres_image = "sdp-resource-postgres:1"  # packaging/images/make-resource-images.sh
//! mariadb_image = "sdp-resource-mariadb:1"
//! redis_image = "sdp-resource-redis:1"
//! dumps_dir = "/var/lib/sdp/dumps"  # seeds `{from = "dump"}` read files here only
//! ready_timeout_secs = 120          # from start to accepting connections (and seeded)
//! memory = "512m"
//! ```

use std::path::PathBuf;

use sdp_bus::ResourceEngine;
use serde::Deserialize;

use super::ByteSize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourcesConfig {
    #[serde(default = "default_postgres_image")]
    pub postgres_image: String,
    #[serde(default = "default_mariadb_image")]
    pub mariadb_image: String,
    #[serde(default = "default_redis_image")]
    pub redis_image: String,
    /// The only directory dump seeds are read from; none: dump seeds are
    /// refused.
    #[serde(default)]
    pub dumps_dir: Option<PathBuf>,
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_secs: u64,
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        Self {
            postgres_image: default_postgres_image(),
            mariadb_image: default_mariadb_image(),
            redis_image: default_redis_image(),
            dumps_dir: None,
            ready_timeout_secs: default_ready_timeout(),
            memory: default_memory(),
        }
    }
}

impl ResourcesConfig {
    pub fn image(&self, engine: ResourceEngine) -> &str {
        match engine {
            ResourceEngine::Postgres => &self.postgres_image,
            ResourceEngine::Mariadb => &self.mariadb_image,
            ResourceEngine::Redis => &self.redis_image,
        }
    }
}

fn default_postgres_image() -> String {
    "sdp-resource-postgres:1".to_owned()
}
fn default_mariadb_image() -> String {
    "sdp-resource-mariadb:1".to_owned()
}
fn default_redis_image() -> String {
    "sdp-resource-redis:1".to_owned()
}
fn default_ready_timeout() -> u64 {
    120
}
fn default_memory() -> ByteSize {
    ByteSize(512 << 20)
}
