//! A NATS connection for the commands that talk to the bus (`sdp tap`,
//! `sdp agent check`): the URL and creds file from flags or env, a user
//! and password only from `SDP_NATS_USER` / `SDP_NATS_PASSWORD` (never
//! from arguments, which other users of the host can read).

use std::path::PathBuf;
use std::time::Duration;

use crate::{CliError, Ctx};

/// Where and how to connect.
pub struct NatsTarget<'a> {
    /// Server(s), comma separated.
    pub url: &'a str,
    /// A .creds file (JWT + nkey).
    pub creds: Option<&'a PathBuf>,
    /// A CA certificate: the server must then speak TLS.
    pub tls_ca: Option<&'a PathBuf>,
}

/// Connects as `name` (shown in the server's connection list).
pub async fn connect(
    ctx: &Ctx,
    name: &str,
    target: NatsTarget<'_>,
) -> Result<async_nats::Client, CliError> {
    let mut options = match target.creds {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|source| CliError::File {
                action: "read the NATS credentials in",
                path: path.clone(),
                source,
            })?,
        None => async_nats::ConnectOptions::new(),
    };
    options = options
        .name(name)
        .connection_timeout(Duration::from_secs(5));
    match (&ctx.env.nats_user, &ctx.env.nats_password) {
        (Some(user), Some(password)) => {
            options = options.user_and_password(user.clone(), password.clone());
        }
        (None, None) => {}
        _ => {
            return Err(CliError::Usage(
                "set both SDP_NATS_USER and SDP_NATS_PASSWORD, or neither".to_owned(),
            ));
        }
    }
    if let Some(ca) = target.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    options
        .connect(target.url)
        .await
        .map_err(|e| CliError::Nats {
            url: target.url.to_owned(),
            source: Box::new(e),
        })
}
