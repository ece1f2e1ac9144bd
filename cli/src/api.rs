//! The REST client: `sdp_api`'s typed client, and its errors as the CLI's.
//! Error answers (`{"error": {"code", "message"}}`) become
//! [`CliError::Api`] with their status, so the exit code follows the HTTP
//! status.

pub use sdp_api::client::{Client, ClientError, segment};

use crate::error::CliError;

impl From<ClientError> for CliError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::Api {
                status,
                code,
                message,
                ..
            } => CliError::Api {
                status,
                code,
                message,
            },
            ClientError::Network { url, source } => CliError::Network { url, source },
            ClientError::Malformed { what, source } => CliError::Malformed { what, source },
        }
    }
}

/// A client that must be logged in: no token is [`CliError::NotLoggedIn`].
pub fn require_token(client: &Client) -> Result<&str, CliError> {
    client.token().ok_or(CliError::NotLoggedIn)
}
