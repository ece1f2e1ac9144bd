//! Errors of the agent. [`AgentError`] stops the agent; [`DeployError`]
//! ends one deployment, and its text (with its sources, see
//! [`DeployError::user_message`]) becomes the `error` of the result event.
//! No message holds a credential: credentials only ever reach git2's
//! credential callback.

use std::path::PathBuf;

use sdp_bus::DeploymentId;

pub use crate::config::ConfigError;

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
    /// A toolchain the config names is not one (`go.toolchains`).
    #[error("invalid configuration: {0}")]
    Toolchains(crate::go_toolchains::ToolchainError),
    #[error(
        "containers would publish on {ip}, which is not an address of this host: set advertise_host (or publish_addr) to one of this host's addresses"
    )]
    PublishAddr {
        ip: std::net::IpAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cancelled")]
    Cancelled,
    /// A cancel that named who asked (a test run's).
    #[error("cancelled by {0}")]
    CancelledBy(String),
    #[error("superseded by deployment {0}")]
    Superseded(DeploymentId),
    #[error("the agent shut down before the deployment finished; deploy again")]
    Shutdown,
    #[error("the sandbox was torn down")]
    TornDown,
    #[error("the control plane gave up on this deployment while this agent was silent")]
    Abandoned,
    #[error("{repo}: {source}")]
    Settings {
        repo: String,
        #[source]
        source: crate::service::SettingsError,
    },
    #[error("branch '{branch}' does not exist in {repo}")]
    BranchMissing { branch: String, repo: String },
    #[error(
        "commit {} is not on branch {branch} (fetched head {}): pick a commit from the branch's history",
        short(commit),
        short(head)
    )]
    CommitNotOnBranch {
        commit: String,
        branch: String,
        head: String,
    },
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
    /// A toolchain the agent config names is gone since the agent started.
    #[error("the Go toolchains of this agent: {0}")]
    GoToolchains(crate::go_toolchains::ToolchainError),
    #[error(
        "go.mod asks for {asked} but this agent has {present}: install {package} (Debian backports) or add its GOROOT to go.toolchains"
    )]
    GoToolchainMissing {
        /// `Go >= 1.24`, `Go >= 1.22.6 (toolchain go1.22.6)`.
        asked: String,
        /// `go 1.19.8, go 1.22.12`, or `no Go toolchain`.
        present: String,
        /// The Debian package with a toolchain that fits: `golang-1.24-go`.
        package: String,
    },
    #[error(
        "go build cannot get {module}: it is not in the repository's vendor/ and {}",
        go_module_fixes(proxy.as_deref())
    )]
    GoModuleMissing {
        /// `module example.com/x` or `a module providing package example.com/x/y`.
        module: String,
        /// The configured `go.proxy`, if any.
        proxy: Option<String>,
    },
    #[error(
        "the repository's vendor/ does not match go.mod ({detail}): run `go mod vendor` and commit vendor/"
    )]
    GoVendorStale { detail: String },
    #[error(
        "composer install could not get the packages of composer.lock: {}",
        composer_fixes(*configured)
    )]
    ComposerPackagesMissing {
        /// Whether `composer.repositories` is configured.
        configured: bool,
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
    #[error(
        "build image {image} is not loaded on this host: run packaging/images/make-build-image.sh {image} on the agent host (or docker load -i <file with that image>)"
    )]
    BuildImageMissing { image: String },
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
    #[error(
        "working_dir {dir:?} {why}: make it a directory of the repo, or fix working_dir (sdp.toml, the template or the sandbox's settings)"
    )]
    WorkingDir { dir: String, why: &'static str },
    #[error("docker did not publish port {port}/tcp of the container")]
    NoHostPort { port: u16 },
    #[error("health check of {path} did not pass within {secs}s")]
    HealthTimeout { path: String, secs: u64 },
    #[error("container exited with code {code} before its health check passed")]
    ContainerExited { code: i64 },
    /// A blocking task of the deployment panicked or was cancelled.
    #[error("internal error: {task} task failed")]
    TaskFailed {
        /// `git`, `chown`, …
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("internal error: cannot encode the {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("internal error: cannot build an HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("internal error: the engine ended the wait for a build container without an answer")]
    BuildWaitEnded,
}

/// A commit id as people quote it: its first 7 digits.
fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// The end of [`DeployError::GoModuleMissing`]: why, and both fixes.
fn go_module_fixes(proxy: Option<&str>) -> String {
    const VENDOR: &str = "commit vendor/ (run `go mod vendor` and commit the vendor/ directory)";
    match proxy {
        None => format!(
            "this agent has no module proxy (go.proxy is not set, so GOPROXY=off: agents build without internet). Fix one of: {VENDOR}, or set go.proxy in the agent config to a module proxy or file tree (e.g. go.proxy = \"file:///srv/goproxy\")"
        ),
        Some(proxy) => format!(
            "the module proxy of this agent (go.proxy = {proxy:?}) does not have it. Fix one of: {VENDOR}, or add the module to that proxy (or set go.proxy in the agent config to one that has it)"
        ),
    }
}

/// The end of [`DeployError::ComposerPackagesMissing`]: both fixes.
fn composer_fixes(configured: bool) -> &'static str {
    if configured {
        "they are not in the repository's vendor/, composer's cache or the configured composer.repositories. Fix one of: commit vendor/ (run `composer install` and commit vendor/ with composer.lock), or add the packages to a repository in composer.repositories of the agent config"
    } else {
        "they are not in the repository's vendor/ or composer's cache and no composer repository is configured (agents build without internet; packagist.org is not used). Fix one of: commit vendor/ (run `composer install` and commit vendor/ with composer.lock), or set composer.repositories in the agent config (an artifact, path or composer repository)"
    }
}

impl DeployError {
    /// For `spawn_blocking(…).await.map_err(DeployError::task("git"))`.
    pub fn task(task: &'static str) -> impl FnOnce(tokio::task::JoinError) -> DeployError {
        move |source| DeployError::TaskFailed { task, source }
    }

    /// For `serde_json::to_vec(…).map_err(DeployError::encode("routes"))`.
    pub fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> DeployError {
        move |source| DeployError::Encode { what, source }
    }

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
            DeployError::Cancelled
            | DeployError::CancelledBy(_)
            | DeployError::Superseded(_)
            | DeployError::TornDown
            | DeployError::Abandoned => sdp_bus::Status::Cancelled,
            _ => sdp_bus::Status::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed task keeps the old wording, with the cause from the source.
    #[tokio::test]
    async fn a_failed_task_says_which_and_why() {
        let joined = tokio::task::spawn_blocking(|| panic!("boom")).await;
        let err = joined
            .map_err(DeployError::task("chown"))
            .expect_err("panicked");
        assert_eq!(err.to_string(), "internal error: chown task failed");
        let message = err.user_message();
        assert!(
            message.starts_with("internal error: chown task failed: task "),
            "{message}"
        );
        assert!(message.contains("panicked"), "{message}");
        assert_eq!(err.status(), sdp_bus::Status::Failed);
    }

    #[test]
    fn an_encoding_failure_names_what() {
        let source = serde_json::from_str::<u8>("x").expect_err("not json");
        let text = source.to_string();
        let err = DeployError::encode("routes")(source);
        assert_eq!(
            err.user_message(),
            format!("internal error: cannot encode the routes: {text}")
        );
    }
}
