//! Build containers: every build step (`go build`, `composer install`, the
//! Go cache warm-up) runs in a short-lived container of the build image
//! (`build.image`), never on the agent host. Each one runs as the build
//! user (non-root), with no network unless the step needs a configured
//! proxy or repository, a read-only root with a tmpfs `/tmp`, no
//! capabilities, `no-new-privileges`, pids/memory/CPU limits, and only the
//! host paths its caller mounts (the deployment's worktree, its output
//! directory, the sandbox's caches, read-only toolchains). Its output is
//! streamed line by line; it is removed when it ends, and when the future
//! running it is dropped (a cancelled deployment). Containers are labelled
//! [`LABEL_BUILD_AGENT`], so an agent removes its leftovers when it starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountTmpfsOptions, MountType, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt;
use sdp_bus::LogStream;

use crate::config::{AgentConfig, BuildUser};
use crate::error::{AgentError, DeployError};
use crate::events::{EventSink, OutputLine};
pub use crate::host::agent_user;

/// The agent whose build this container is.
pub const LABEL_BUILD_AGENT: &str = "sdp.build.agent";
/// The deployment it builds (absent for the cache warm-up).
pub const LABEL_BUILD_DEPLOYMENT: &str = "sdp.build.deployment";
/// The sandbox whose caches it writes.
pub const LABEL_BUILD_SANDBOX: &str = "sdp.build.sandbox";

/// One host path mounted into a build container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildMount {
    pub source: PathBuf,
    pub target: String,
    pub writable: bool,
}

impl BuildMount {
    pub fn writable(source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            target: target.into(),
            writable: true,
        }
    }

    pub fn read_only(source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            target: target.into(),
            writable: false,
        }
    }
}

/// One command to run in a build container.
#[derive(Clone, Debug, Default)]
pub struct BuildRun {
    pub argv: Vec<String>,
    /// `KEY=value`; nothing of the agent's own environment is passed.
    pub env: Vec<String>,
    pub working_dir: String,
    pub mounts: Vec<BuildMount>,
    /// A network (Docker's default bridge) instead of none: only when a
    /// configured module proxy or composer repository is reached over it.
    pub network: bool,
    /// A network of its own to join instead (a test run's: see
    /// [`crate::docker::TestNetwork`]); wins over `network`.
    pub network_name: Option<String>,
    /// The warm-up: the lowest CPU weight, so deployments go first.
    pub low_priority: bool,
    /// `sdp.build.deployment` / `sdp.build.sandbox`.
    pub deployment: Option<String>,
    pub sandbox: Option<String>,
    /// More labels (a test run's `sdp.sandbox` and `sdp.test_run`).
    pub labels: Vec<(String, String)>,
}

/// How a build container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildExit {
    pub code: i64,
    /// The last lines of its stderr (as many as asked for).
    pub stderr_tail: Vec<String>,
}

impl BuildExit {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The exit status as the deploy error says it.
    pub fn status_text(&self) -> String {
        match self.code {
            137 => {
                "137 (killed: out of memory (build.memory), past build.timeout_secs, or stopped)"
                    .to_owned()
            }
            code => code.to_string(),
        }
    }
}

/// Runs build containers for one agent.
#[derive(Clone)]
pub struct BuildBox {
    docker: bollard::Docker,
    agent_id: String,
    image: String,
    user: BuildUser,
    memory: i64,
    nano_cpus: i64,
    pids: i64,
    tmp_bytes: i64,
    timeout_secs: u64,
    /// Whether the agent runs as root: then it hands the writable mounts
    /// to the build user (chown); otherwise builds run as the agent's own
    /// user by default and the mounts are already theirs.
    agent_is_root: bool,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl BuildBox {
    /// Connects to the engine like [`crate::docker::DockerClient::connect`].
    pub async fn connect(config: &AgentConfig) -> Result<Self, AgentError> {
        let docker = bollard::Docker::connect_with_local_defaults()
            .map_err(AgentError::Docker)?
            .negotiate_version()
            .await
            .map_err(AgentError::Docker)?;
        let (uid, _) = agent_user();
        Ok(Self {
            docker,
            agent_id: config.agent.id.clone(),
            image: config.build.image.clone(),
            user: config.build_user(),
            memory: config.build.memory.bytes(),
            nano_cpus: (config.build.cpus * 1e9) as i64,
            pids: config.build.pids,
            tmp_bytes: config.build.tmp_size.bytes(),
            timeout_secs: config.build.timeout_secs,
            agent_is_root: uid == 0,
        })
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    pub fn user(&self) -> BuildUser {
        self.user
    }

    /// Fails naming the command that makes the build image when it is not
    /// on this host.
    pub async fn check_image(&self) -> Result<(), DeployError> {
        match self.docker.inspect_image(&self.image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(DeployError::BuildImageMissing {
                image: self.image.clone(),
            }),
            Err(source) => Err(DeployError::Docker {
                step: "inspect the build image",
                source,
            }),
        }
    }

    /// Makes `dirs` (and everything under them) the build user's when the
    /// agent runs as root; never follows a symlink. A non-root agent
    /// builds as itself by default, so its directories are already
    /// writable.
    pub async fn hand_over(&self, dirs: Vec<PathBuf>) -> Result<(), DeployError> {
        if !self.agent_is_root {
            return Ok(());
        }
        let BuildUser { uid, gid } = self.user;
        tokio::task::spawn_blocking(move || {
            for dir in &dirs {
                chown_tree(dir, uid, gid)?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(DeployError::task("chown"))?
        .map_err(|source| DeployError::Io {
            what: "hand the build directories to the build user".to_owned(),
            source,
        })
    }

    /// Gives `dir` back to the agent's own user after [`Self::hand_over`]
    /// (an agent running as root): git refuses a worktree another user
    /// owns. Called before git touches a worktree, so a build that was
    /// cancelled or crashed is covered too.
    pub async fn reclaim(&self, dir: PathBuf) -> Result<(), DeployError> {
        if !self.agent_is_root {
            return Ok(());
        }
        let (uid, gid) = agent_user();
        tokio::task::spawn_blocking(move || chown_tree(&dir, uid, gid))
            .await
            .map_err(DeployError::task("chown"))?
            .map_err(|source| DeployError::Io {
                what: "take the worktree back from the build user".to_owned(),
                source,
            })
    }

    /// Runs `run` to its end, its output lines to `events` (if given), and
    /// removes the container. Dropping the future kills and removes it.
    pub async fn run(
        &self,
        run: BuildRun,
        events: Option<&mut EventSink>,
        keep: usize,
    ) -> Result<BuildExit, DeployError> {
        self.check_image().await?;
        let name = format!(
            "sdp-build-{}-{}-{}",
            self.agent_id,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // Armed before the create is sent: a create still in flight when
        // the future is dropped is removed by name.
        let mut removal = Removal {
            docker: self.docker.clone(),
            name: name.clone(),
            armed: true,
        };
        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                self.body(&run),
            )
            .await
            .map_err(|source| DeployError::Docker {
                step: "create build container",
                source,
            })?;
        let attached = self
            .docker
            .attach_container(
                &name,
                Some(
                    AttachContainerOptionsBuilder::default()
                        .stdout(true)
                        .stderr(true)
                        .stream(true)
                        .logs(true)
                        .build(),
                ),
            )
            .await
            .map_err(|source| DeployError::Docker {
                step: "attach to build container",
                source,
            })?;
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|source| DeployError::Docker {
                step: "start build container",
                source,
            })?;
        let stderr_tail = forward_output(attached.output, events, keep).await;
        let code = self.wait(&name).await?;
        // The container has ended: its removal need not delay the deploy
        // (a removal the agent's stop cuts short is done at its next start).
        removal.armed = false;
        let docker = self.docker.clone();
        tokio::spawn(async move { remove(&docker, &name).await });
        Ok(BuildExit { code, stderr_tail })
    }

    async fn wait(&self, name: &str) -> Result<i64, DeployError> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut waits = self.docker.wait_container(name, Some(options));
        match waits.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(source)) => Err(DeployError::Docker {
                step: "wait for build container",
                source,
            }),
            None => Err(DeployError::BuildWaitEnded),
        }
    }

    fn body(&self, run: &BuildRun) -> ContainerCreateBody {
        let mut mounts: Vec<Mount> = run
            .mounts
            .iter()
            .map(|m| Mount {
                target: Some(m.target.clone()),
                source: Some(m.source.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(!m.writable),
                ..Default::default()
            })
            .collect();
        mounts.push(Mount {
            target: Some("/tmp".to_owned()),
            typ: Some(MountType::TMPFS),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(self.tmp_bytes),
                mode: Some(0o1777),
                ..Default::default()
            }),
            ..Default::default()
        });
        let host_config = HostConfig {
            memory: Some(self.memory),
            memory_swap: Some(self.memory),
            nano_cpus: Some(self.nano_cpus),
            pids_limit: Some(self.pids),
            cpu_shares: run.low_priority.then_some(2),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            cap_drop: Some(vec!["ALL".to_owned()]),
            privileged: Some(false),
            readonly_rootfs: Some(true),
            network_mode: Some(match (&run.network_name, run.network) {
                (Some(name), _) => name.clone(),
                (None, true) => "bridge".to_owned(),
                (None, false) => "none".to_owned(),
            }),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            mounts: Some(mounts),
            // An init as PID 1: it reaps what scripts leave, and lets
            // `timeout` kill the build (PID 1 ignores a SIGKILL sent from
            // inside its namespace).
            init: Some(true),
            ..Default::default()
        };
        let mut labels = HashMap::from([(LABEL_BUILD_AGENT.to_owned(), self.agent_id.clone())]);
        if let Some(deployment) = &run.deployment {
            labels.insert(LABEL_BUILD_DEPLOYMENT.to_owned(), deployment.clone());
        }
        if let Some(sandbox) = &run.sandbox {
            labels.insert(LABEL_BUILD_SANDBOX.to_owned(), sandbox.clone());
        }
        labels.extend(run.labels.iter().cloned());
        ContainerCreateBody {
            image: Some(self.image.clone()),
            // Bounded even if the agent dies and nobody else stops it.
            cmd: Some(
                ["timeout", "-s", "KILL", &self.timeout_secs.to_string()]
                    .into_iter()
                    .map(str::to_owned)
                    .chain(run.argv.iter().cloned())
                    .collect(),
            ),
            env: Some(run.env.clone()),
            working_dir: Some(run.working_dir.clone()),
            user: Some(format!("{}:{}", self.user.uid, self.user.gid)),
            labels: Some(labels),
            network_disabled: Some(!run.network && run.network_name.is_none()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(host_config),
            ..Default::default()
        }
    }

    /// Removes the build containers this agent left (a crash, a kill);
    /// returns how many. Called when the agent starts.
    pub async fn remove_leftovers(&self) -> usize {
        self.remove_labelled(vec![format!("{LABEL_BUILD_AGENT}={}", self.agent_id)])
            .await
    }

    /// Removes the build container of `deployment`, if one is left.
    pub async fn remove_deployment(&self, deployment: &str) -> usize {
        self.remove_labelled(vec![
            format!("{LABEL_BUILD_AGENT}={}", self.agent_id),
            format!("{LABEL_BUILD_DEPLOYMENT}={deployment}"),
        ])
        .await
    }

    /// Removes the containers with all these labels and returns how many
    /// there were, once the engine lists none of them any more (bounded by
    /// [`REMOVAL_WAIT`]): a dropped run's own removal may be under way,
    /// and the engine answers a second one 409 while it lasts, so a
    /// caller that says "the container is gone" waits here for it.
    async fn remove_labelled(&self, labels: Vec<String>) -> usize {
        let filters: HashMap<String, Vec<String>> = HashMap::from([("label".to_owned(), labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
        let mut removed = None;
        loop {
            let Ok(found) = self.docker.list_containers(Some(options.clone())).await else {
                return removed.unwrap_or(0);
            };
            let ids: Vec<String> = found.into_iter().filter_map(|c| c.id).collect();
            let first = *removed.get_or_insert(ids.len());
            if ids.is_empty() {
                return first;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(containers = ?ids, "build containers still there after removal");
                return first;
            }
            for id in &ids {
                remove(&self.docker, id).await;
            }
            tokio::time::sleep(REMOVAL_POLL).await;
        }
    }
}

/// How long [`BuildBox::remove_deployment`] waits for the engine to finish
/// removing, and how often it looks.
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const REMOVAL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Kills and removes a build container whose future was dropped.
struct Removal {
    docker: bollard::Docker,
    name: String,
    armed: bool,
}

impl Drop for Removal {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (docker, name) = (self.docker.clone(), std::mem::take(&mut self.name));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { remove(&docker, &name).await });
        }
    }
}

async fn remove(docker: &bollard::Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(options)).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => {}
        Err(err) => {
            tracing::warn!(container = %name, error = %err, "cannot remove a build container")
        }
    }
}

type OutputStream = std::pin::Pin<
    Box<
        dyn futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
            + Send,
    >,
>;

/// Splits the container's output into lines per stream and sends them to
/// `events`, a chunk's lines as one batch; returns the last `keep` lines
/// of stderr.
async fn forward_output(
    mut output: OutputStream,
    mut events: Option<&mut EventSink>,
    keep: usize,
) -> Vec<String> {
    // Bytes after the last newline, per stream: [stdout, stderr].
    let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut kept = std::collections::VecDeque::with_capacity(keep);
    loop {
        let mut ready: Vec<OutputLine> = Vec::new();
        let done = match output.next().await {
            Some(Ok(chunk)) => {
                let (stream, bytes) = match chunk {
                    bollard::container::LogOutput::StdErr { message } => {
                        (LogStream::Stderr, message)
                    }
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        (LogStream::Stdout, message)
                    }
                    bollard::container::LogOutput::StdIn { .. } => continue,
                };
                let buffer = &mut partial[usize::from(stream == LogStream::Stderr)];
                buffer.extend_from_slice(&bytes);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    ready.push(output_line(stream, &line));
                }
                false
            }
            Some(Err(err)) => {
                tracing::debug!(error = %err, "reading build output failed");
                true
            }
            None => true,
        };
        if done {
            for (stream, rest) in [LogStream::Stdout, LogStream::Stderr]
                .into_iter()
                .zip(&partial)
            {
                if !rest.is_empty() {
                    ready.push(output_line(stream, rest));
                }
            }
        }
        if keep > 0 {
            for line in ready.iter().filter(|l| l.stream == LogStream::Stderr) {
                if kept.len() == keep {
                    kept.pop_front();
                }
                kept.push_back(line.text.clone());
            }
        }
        if !ready.is_empty()
            && let Some(events) = events.as_deref_mut()
        {
            events.log_lines(ready).await;
        }
        if done {
            return kept.into();
        }
    }
}

fn output_line(stream: LogStream, bytes: &[u8]) -> OutputLine {
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    OutputLine::now(stream, String::from_utf8_lossy(&bytes[..end]))
}

/// `chown -hR uid:gid dir`, never following a symlink.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_text_names_a_kill() {
        let exit = BuildExit {
            code: 137,
            stderr_tail: Vec::new(),
        };
        assert!(!exit.success());
        assert!(exit.status_text().contains("killed"));
    }
}
