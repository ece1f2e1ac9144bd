//! Flavours: what differs between kinds of agent — the build step and the
//! container spec. [`GoFlavour`] (kind `micro`) builds with `go build` on
//! the host; [`crate::PhpFlavour`] (kind `gateway`) runs `composer install`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::future::BoxFuture;
use sdp_bus::{LogStream, ServiceSettings};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::error::DeployError;
use crate::events::{EventSink, OutputLine};

/// Where things are for one build.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// The checkout (mounted read-only at [`ContainerSpec::source_mount`]).
    pub worktree: PathBuf,
    /// Where build output goes (mounted read-only at
    /// [`ContainerSpec::artifact_mount`]).
    pub artifact_dir: PathBuf,
    /// `data_dir`, absolute.
    pub data_dir: PathBuf,
    /// Shared build caches, absolute.
    pub cache_dir: PathBuf,
    /// The service's effective settings (see [`crate::service`]).
    pub settings: ServiceSettings,
}

/// How the flavour's containers look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The command when `flavour.run_cmd` is not configured.
    pub default_run_cmd: Vec<String>,
    /// Mount point of the checkout (also the working directory).
    pub source_mount: &'static str,
    /// Mount point of the build output, if the flavour produces any.
    pub artifact_mount: Option<&'static str>,
    /// Where the sandbox's route table (`routes.json`) is mounted, if the
    /// flavour's containers get it (named by `SDP_ROUTES_FILE`).
    pub routes_file: Option<&'static str>,
}

pub trait Flavour: Send + Sync + 'static {
    /// The agent kind: `micro`, `gateway`. Subjects are built from it.
    fn kind(&self) -> &'static str;

    /// The base image when `flavour.base_image` is not configured.
    fn default_base_image(&self) -> &'static str;

    /// The container for a service with these (effective) settings.
    fn container(&self, settings: &ServiceSettings) -> ContainerSpec;

    /// Builds the checkout. Every output line goes to `events` as a log
    /// line. Dropping the future must stop the build (spawn children with
    /// `kill_on_drop`).
    fn build<'a>(
        &'a self,
        ctx: &'a BuildContext,
        events: &'a mut EventSink,
    ) -> BoxFuture<'a, Result<(), DeployError>>;

    /// Fills the flavour's build cache when the agent starts, so the first
    /// deploy on a fresh host does not compile the standard library. It runs
    /// in the background and is dropped (its children must die with it)
    /// while a deployment builds, then made and run again; `None` when
    /// there is nothing to warm. The error is a short reason.
    fn warm_cache(
        &self,
        _data_dir: &Path,
        _cache_dir: &Path,
    ) -> Option<BoxFuture<'static, Result<(), String>>> {
        None
    }
}

/// `go build` on the host, `CGO_ENABLED=0`, shared caches, no network.
/// The package built is the service's `main_package` (`sdp.toml`).
#[derive(Clone, Debug)]
pub struct GoFlavour {
    /// `PATH` for the build (the agent's own, captured at construction).
    pub path: OsString,
}

/// The agent's own `PATH`, or a usual one.
pub(crate) fn agent_path() -> OsString {
    std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin".into())
}

impl Default for GoFlavour {
    fn default() -> Self {
        Self { path: agent_path() }
    }
}

impl GoFlavour {
    fn command(&self, ctx: &BuildContext, output: &Path) -> Command {
        let mut command = Command::new("go");
        command.args(["build", "-trimpath"]);
        self.go_env(&mut command, &ctx.data_dir, &ctx.cache_dir);
        command
            .arg("-o")
            .arg(output)
            .arg(crate::service::go_package_arg(&ctx.settings.main_package))
            .current_dir(&ctx.worktree);
        command
    }

    /// The environment of every `go build` the agent runs. The warm-up
    /// uses it too: Go's cache keys include flags and env, so any
    /// difference would warm entries no deploy ever hits.
    fn go_env(&self, command: &mut Command, data_dir: &Path, cache_dir: &Path) {
        command
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", data_dir.join("home"))
            .env("GOPATH", cache_dir.join("gopath"))
            .env("GOCACHE", cache_dir.join("go-build"))
            .env("GOMODCACHE", cache_dir.join("gomod"))
            .env("CGO_ENABLED", "0")
            // -buildvcs=false: go must never run git in a tree it did not make.
            .env("GOFLAGS", "-mod=mod -buildvcs=false")
            .env("GOPROXY", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOTELEMETRY", "off");
    }
}

impl Flavour for GoFlavour {
    fn kind(&self) -> &'static str {
        sdp_bus::subject::KIND_MICRO
    }

    fn default_base_image(&self) -> &'static str {
        "sdp-go-base:1"
    }

    fn container(&self, _settings: &ServiceSettings) -> ContainerSpec {
        ContainerSpec {
            default_run_cmd: vec![format!("{GO_ARTIFACT_MOUNT}/app")],
            source_mount: "/src",
            artifact_mount: Some(GO_ARTIFACT_MOUNT),
            routes_file: None,
        }
    }

    fn build<'a>(
        &'a self,
        ctx: &'a BuildContext,
        events: &'a mut EventSink,
    ) -> BoxFuture<'a, Result<(), DeployError>> {
        Box::pin(async move {
            for dir in [
                ctx.artifact_dir.clone(),
                ctx.data_dir.join("home"),
                ctx.cache_dir.clone(),
            ] {
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|source| DeployError::Io {
                        what: "create the build directories".to_owned(),
                        source,
                    })?;
            }
            let output = ctx.artifact_dir.join("app");
            let shown = format!(
                "$ go build -trimpath -o {GO_ARTIFACT_MOUNT}/app {}",
                crate::service::go_package_arg(&ctx.settings.main_package)
            );
            events.system(shown).await;
            let command = self.command(ctx, &output);
            match run_streaming(command, events).await {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(DeployError::BuildExited {
                    tool: "go build",
                    status: status
                        .code()
                        .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string()),
                }),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    Err(DeployError::ToolMissing {
                        tool: "go",
                        hint: "apt-get install golang-go",
                    })
                }
                Err(source) => Err(DeployError::Io {
                    what: "run go build".to_owned(),
                    source,
                }),
            }
        })
    }

    /// `go build -trimpath std` into the shared `GOCACHE`; the packages a
    /// service builds then come from the cache.
    fn warm_cache(
        &self,
        data_dir: &Path,
        cache_dir: &Path,
    ) -> Option<BoxFuture<'static, Result<(), String>>> {
        let home = data_dir.join("home");
        // Niced: a deploy building beside it gets the CPU first.
        let mut command = Command::new("nice");
        command.args(["-n", "19", "go", "build", "-trimpath", "std"]);
        self.go_env(&mut command, data_dir, cache_dir);
        command
            .current_dir(&home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let cache_dir = cache_dir.to_path_buf();
        Some(Box::pin(async move {
            for dir in [&home, &cache_dir] {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("cannot create the build directories: {e}"))?;
            }
            let output = command.output().await.map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "nice is not on the agent's PATH".to_owned(),
                _ => format!("cannot run go: {e}"),
            })?;
            if output.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            let mut reason = format!("go build std: {}", last.unwrap_or("exited with an error"));
            reason.truncate(reason.floor_char_boundary(200));
            Err(reason)
        }))
    }
}

const GO_ARTIFACT_MOUNT: &str = "/sdp";

/// Runs `command` (stdin closed, killed when dropped) and sends each line
/// of its stdout and stderr to `events`, in the order they arrive.
pub async fn run_streaming(
    mut command: Command,
    events: &mut EventSink,
) -> std::io::Result<std::process::ExitStatus> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    // Lines read while the previous batch is being published wait here and
    // go out together; a full channel stalls the readers, and so the child.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<OutputLine>(LINES_QUEUED);
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(forward_lines(
            stdout,
            LogStream::Stdout,
            tx.clone(),
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(forward_lines(
            stderr,
            LogStream::Stderr,
            tx.clone(),
        )));
    }
    drop(tx);
    let mut ready = Vec::with_capacity(LINES_QUEUED);
    while rx.recv_many(&mut ready, LINES_QUEUED).await > 0 {
        events.log_lines(std::mem::take(&mut ready)).await;
    }
    child.wait().await
}

/// Output lines read ahead of publishing.
const LINES_QUEUED: usize = 4096;

async fn forward_lines(
    pipe: impl AsyncRead + Unpin,
    stream: LogStream,
    tx: tokio::sync::mpsc::Sender<OutputLine>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                let line = OutputLine::now(stream, String::from_utf8_lossy(&buf));
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}
