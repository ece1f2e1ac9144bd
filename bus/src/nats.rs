//! The `[nats]` config section every binary shares, and connecting with it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// One server, or several (a cluster) as a list or comma-separated:
    /// the client connects to one and moves to another when it goes.
    #[serde(default = "default_url", deserialize_with = "one_or_many")]
    pub url: String,
    /// A `.creds` file (JWT + nkey seed).
    #[serde(default)]
    pub creds: Option<PathBuf>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<crate::Secret>,
    /// CA certificate to verify the server's TLS certificate with.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Replicas of the `DEPLOY_PROGRESS` stream (1 on one server, 3 on a
    /// three-node cluster). Read where the stream is ensured (the control
    /// plane and its persister), which bring it to this at every start.
    #[serde(default = "default_replicas")]
    pub stream_replicas: usize,
}

fn default_replicas() -> usize {
    1
}

/// `url` as one string, or a list joined with commas.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(url) => url,
        OneOrMany::Many(urls) => urls.join(","),
    })
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".to_owned()
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: default_url(),
            creds: None,
            user: None,
            password: None,
            tls_ca: None,
            stream_replicas: default_replicas(),
        }
    }
}

impl NatsConfig {
    pub fn with_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The servers of `url`, in order.
    pub fn servers(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read NATS credentials file {path}")]
    Creds {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
}

/// Connects as `name`, retrying forever in the background once connected
/// (async-nats reconnects by itself). The first connection is retried too, so
/// a component may start before the server does.
pub async fn connect(config: &NatsConfig, name: &str) -> Result<async_nats::Client, ConnectError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None);
    if let Some(path) = &config.creds {
        options = async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|source| ConnectError::Creds {
                path: path.clone(),
                source,
            })?
            .name(name)
            .retry_on_initial_connect()
            .max_reconnects(None);
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    options
        .connect(config.servers())
        .await
        .map_err(|source| ConnectError::Connect {
            url: config.url.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_lists_one_or_several_servers() {
        let one: NatsConfig = toml::from_str(r#"url = "nats://a:4222""#).expect("one");
        assert_eq!(one.servers(), ["nats://a:4222"]);
        assert_eq!(one.stream_replicas, 1);
        let listed: NatsConfig =
            toml::from_str(r#"url = ["nats://a:4222", "nats://b:4222"]"#).expect("list");
        assert_eq!(listed.servers(), ["nats://a:4222", "nats://b:4222"]);
        let joined = NatsConfig::with_url("nats://a:4222, nats://b:4222,,nats://c:4222");
        assert_eq!(
            joined.servers(),
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
    }
}
