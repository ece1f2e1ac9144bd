//! The REST client: `sdp_api`'s typed client, and its errors as the CLI's.
//! Its errors are [`CliError::Client`]: an error answer keeps its status,
//! so the exit code follows the HTTP status.

pub use sdp_api::client::{Client, ClientError, segment};

use crate::error::CliError;

/// A client that must be logged in: no token is [`CliError::NotLoggedIn`].
pub fn require_token(client: &Client) -> Result<&str, CliError> {
    client.token().ok_or(CliError::NotLoggedIn)
}
