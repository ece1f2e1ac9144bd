//! The one error type of the CLI. Each variant knows its exit code and
//! the `code` of the JSON error shape (`{"error": {"code", "message"}}`),
//! which mirrors the control plane's own.

use std::path::PathBuf;

use sdp_api::client::ClientError;

use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("not logged in: run `sdp login` (or set SDP_TOKEN)")]
    NotLoggedIn,
    #[error("no control plane URL: pass --url, set SDP_URL, or run `sdp login --url URL`")]
    NoUrl,
    /// A REST call failed: an error answer of the control plane (its
    /// status, code and message as sent), no answer, or an unreadable one.
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the deployment stream of {id} dropped and could not be resumed: {reason}")]
    Stream { id: String, reason: String },
    #[error("the deployment stream of {id} refused the session: {reason}")]
    StreamAuth { id: String, reason: String },
    #[error("cannot {action} {path}")]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the password")]
    Prompt(#[source] std::io::Error),
    #[error("cannot connect to NATS at {url}")]
    Nats {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// An error answer made by the CLI itself, shaped as the control
    /// plane's (so the exit code follows `status`).
    pub fn api(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        CliError::Client(ClientError::Api {
            status,
            code: code.into(),
            message: message.into(),
            deployment_id: None,
        })
    }

    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) | CliError::NoUrl => Exit::Usage,
            CliError::NotLoggedIn | CliError::StreamAuth { .. } => Exit::Auth,
            CliError::Client(ClientError::Api { status, .. }) => Exit::for_http(*status),
            CliError::File { .. } | CliError::Prompt(_) | CliError::Output(_) => Exit::Usage,
            CliError::Client(ClientError::Network { .. } | ClientError::Malformed { .. })
            | CliError::Stream { .. }
            | CliError::Nats { .. } => Exit::Unavailable,
        }
    }

    /// The machine-readable code of `-o json`'s error object.
    pub fn code(&self) -> &str {
        match self {
            CliError::Usage(_) | CliError::NoUrl => "usage",
            CliError::NotLoggedIn => "not_logged_in",
            CliError::Client(ClientError::Api { code, .. }) => code,
            CliError::Client(ClientError::Network { .. }) => "unreachable",
            CliError::Client(ClientError::Malformed { .. }) => "malformed_response",
            CliError::Stream { .. } => "stream_lost",
            CliError::StreamAuth { .. } => "unauthorized",
            CliError::File { .. } => "file",
            CliError::Prompt(_) => "prompt",
            CliError::Nats { .. } => "nats_unreachable",
            CliError::Output(_) => "output",
        }
    }

    /// The message with its causes, for a human (`a: b: c`).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
