//! Errors of the agent. [`AgentError`] stops the agent; [`DeployError`]
//! ends one deployment, and its text (with its sources, see
//! [`DeployError::user_message`]) becomes the `error` of the result event.
//! No message holds a credential: credentials only ever reach git2's
//! credential callback.

use std::path::PathBuf;

use sdp_bus::DeploymentId;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create or open {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Nats(#[from] sdp_bus::nats::ConnectError),
    #[error("cannot subscribe to {subject}")]
    Subscribe {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
    #[error("cannot talk to the Docker engine")]
    Docker(#[source] bollard::errors::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cancelled")]
    Cancelled,
    #[error("superseded by deployment {0}")]
    Superseded(DeploymentId),
    #[error("the agent shut down before the deployment finished; deploy again")]
    Shutdown,
    #[error("the sandbox was torn down")]
    TornDown,
    #[error("{repo}: {source}")]
    Settings {
        repo: String,
        #[source]
        source: crate::service::SettingsError,
    },
    #[error("branch '{branch}' does not exist in {repo}")]
    BranchMissing { branch: String, repo: String },
    #[error("the git server refused your credential for {repo}")]
    AuthRefused { repo: String },
    #[error("cannot reach the git server of {repo}")]
    GitUnreachable {
        repo: String,
        #[source]
        source: git2::Error,
    },
    #[error("git {step} of {repo} failed")]
    Git {
        step: &'static str,
        repo: String,
        #[source]
        source: git2::Error,
    },
    #[error("{tool} is not installed on this agent: {hint}")]
    ToolMissing {
        tool: &'static str,
        hint: &'static str,
    },
    #[error("{tool} exited with status {status}")]
    BuildExited { tool: &'static str, status: String },
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "base image {image} is not loaded on this host: run docker load -i <file with that image> on the agent host"
    )]
    ImageMissing { image: String },
    #[error("docker {step} failed")]
    Docker {
        step: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "host port {port} of this service is taken by another process: free it, or tear the sandbox down and deploy again to get a new port"
    )]
    PortTaken { port: u16 },
    #[error(
        "the container name {name} is held by a container SDP did not make for this service: remove it (docker rm -f {name}) and deploy again"
    )]
    NameHeld { name: String },
    #[error("docker did not publish port {port}/tcp of the container")]
    NoHostPort { port: u16 },
    #[error("health check of {path} did not pass within {secs}s")]
    HealthTimeout { path: String, secs: u64 },
    #[error("container exited with code {code} before its health check passed")]
    ContainerExited { code: i64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl DeployError {
    /// The message for the result event: this error and its sources.
    pub fn user_message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            let text = err.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = err.source();
        }
        message
    }

    pub fn status(&self) -> sdp_bus::Status {
        match self {
            DeployError::Cancelled | DeployError::Superseded(_) | DeployError::TornDown => {
                sdp_bus::Status::Cancelled
            }
            _ => sdp_bus::Status::Failed,
        }
    }
}
