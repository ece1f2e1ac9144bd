//! The `[nats]` config section every binary shares, and connecting with it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    #[serde(default = "default_url")]
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
        .connect(config.url.as_str())
        .await
        .map_err(|source| ConnectError::Connect {
            url: config.url.clone(),
            source,
        })
}
