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

use crate::config::{AgentConfig, ComposerConfig, GoConfig};
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
    /// Where `go build` gets modules (agent config `[go]`).
    pub go: GoConfig,
    /// Where `composer install` gets packages (agent config `[composer]`).
    pub composer: ComposerConfig,
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
    /// there is nothing to warm. `config` is the agent's (the build
    /// settings a deploy uses come from it). The error is a short reason.
    fn warm_cache(
        &self,
        _data_dir: &Path,
        _cache_dir: &Path,
        _config: &AgentConfig,
    ) -> Option<BoxFuture<'static, Result<(), String>>> {
        None
    }
}

/// `go build` on the host, `CGO_ENABLED=0`, shared caches. Modules come
/// from the checkout's `vendor/` (`-mod=vendor`) or else through
/// `go.proxy` of the agent config (`-mod=mod`); with no proxy configured
/// `GOPROXY=off`: no network (see [`crate::gomod`]). The package built is
/// the service's `main_package` (`sdp.toml`).
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
    fn command(&self, ctx: &BuildContext, output: &Path, modules: &Modules) -> Command {
        let mut command = Command::new("go");
        command.args(["build", "-trimpath"]);
        command.args(modules.flag());
        self.go_env(&mut command, &ctx.data_dir, &ctx.cache_dir, &ctx.go);
        command
            .arg("-o")
            .arg(output)
            .arg(crate::service::go_package_arg(&ctx.settings.main_package))
            .current_dir(&ctx.worktree);
        command
    }

    /// The environment of every `go build` the agent runs. The warm-up
    /// uses it too: Go's cache keys include flags and env, so any
    /// difference would warm entries no deploy ever hits. `-mod` is a
    /// flag of the deploy's `go build` only (it depends on the checkout and
    /// does not change how the standard library compiles).
    fn go_env(&self, command: &mut Command, data_dir: &Path, cache_dir: &Path, go: &GoConfig) {
        // -buildvcs=false: go must never run git in a tree it did not make.
        let mut flags = "-buildvcs=false".to_owned();
        if let Some(more) = go.flags.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            flags.push(' ');
            flags.push_str(more);
        }
        command
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", data_dir.join("home"))
            .env("GOPATH", cache_dir.join("gopath"))
            .env("GOCACHE", cache_dir.join("go-build"))
            .env("GOMODCACHE", cache_dir.join("gomod"))
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", flags)
            .env("GOPROXY", go.proxy.as_deref().unwrap_or("off"))
            .env("GOSUMDB", go.sumdb.as_deref().unwrap_or("off"))
            .env("GOTOOLCHAIN", "local")
            .env("GOTELEMETRY", "off");
        if let Some(nosumdb) = &go.nosumdb {
            command.env("GONOSUMDB", nosumdb);
        }
        if let Some(private) = &go.private {
            command.env("GOPRIVATE", private);
        }
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
            let modules = Modules::of(&ctx.worktree, &ctx.go);
            events.system(modules.describe()).await;
            let shown = format!(
                "$ go build -trimpath {}-o {GO_ARTIFACT_MOUNT}/app {}",
                modules.flag().map(|f| format!("{f} ")).unwrap_or_default(),
                crate::service::go_package_arg(&ctx.settings.main_package)
            );
            events.system(shown).await;
            let command = self.command(ctx, &output, &modules);
            match run_capturing(command, events, STDERR_KEPT).await {
                Ok((status, _)) if status.success() => Ok(()),
                Ok((status, stderr)) => Err(crate::gomod::failure(&stderr, &ctx.go)
                    .unwrap_or_else(|| DeployError::BuildExited {
                        tool: "go build",
                        status: status
                            .code()
                            .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string()),
                    })),
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
        config: &AgentConfig,
    ) -> Option<BoxFuture<'static, Result<(), String>>> {
        let home = data_dir.join("home");
        // Niced: a deploy building beside it gets the CPU first.
        let mut command = Command::new("nice");
        command.args(["-n", "19", "go", "build", "-trimpath", "std"]);
        self.go_env(&mut command, data_dir, cache_dir, &config.go);
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

/// Lines of a failed build's stderr kept to explain the failure.
const STDERR_KEPT: usize = 200;

/// Where one `go build` gets its modules.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Modules {
    /// The checkout has `vendor/modules.txt`: `-mod=vendor`.
    Vendor,
    /// No `vendor/`: `-mod=mod` through `GOPROXY` (`None`: `off`).
    Proxy(Option<String>),
    /// `go.flags` sets `-mod=` itself.
    Configured,
}

impl Modules {
    fn of(worktree: &Path, go: &GoConfig) -> Modules {
        let flags = go.flags.as_deref().unwrap_or_default();
        if flags.split_whitespace().any(|f| f.starts_with("-mod=")) {
            Modules::Configured
        } else if worktree.join("vendor").join("modules.txt").is_file() {
            Modules::Vendor
        } else {
            Modules::Proxy(go.proxy.clone())
        }
    }

    fn flag(&self) -> Option<&'static str> {
        match self {
            Modules::Vendor => Some("-mod=vendor"),
            Modules::Proxy(_) => Some("-mod=mod"),
            Modules::Configured => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Modules::Vendor => "modules: from the repository's vendor/".to_owned(),
            Modules::Proxy(None) => {
                "modules: no vendor/ and no go.proxy configured: GOPROXY=off (only the module cache)"
                    .to_owned()
            }
            Modules::Proxy(Some(proxy)) => format!("modules: no vendor/: GOPROXY={proxy}"),
            Modules::Configured => "modules: as go.flags of the agent config says".to_owned(),
        }
    }
}

/// Runs `command` (stdin closed, killed when dropped) and sends each line
/// of its stdout and stderr to `events`, in the order they arrive.
pub async fn run_streaming(
    command: Command,
    events: &mut EventSink,
) -> std::io::Result<std::process::ExitStatus> {
    Ok(run_capturing(command, events, 0).await?.0)
}

/// [`run_streaming`], also returning the last `keep` lines of stderr (to
/// explain a failure).
pub async fn run_capturing(
    mut command: Command,
    events: &mut EventSink,
    keep: usize,
) -> std::io::Result<(std::process::ExitStatus, Vec<String>)> {
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
    let mut kept = std::collections::VecDeque::with_capacity(keep);
    while rx.recv_many(&mut ready, LINES_QUEUED).await > 0 {
        if keep > 0 {
            for line in ready.iter().filter(|l| l.stream == LogStream::Stderr) {
                if kept.len() == keep {
                    kept.pop_front();
                }
                kept.push_back(line.text.clone());
            }
        }
        events.log_lines(std::mem::take(&mut ready)).await;
    }
    let status = child.wait().await?;
    Ok((status, kept.into()))
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
