//! Flavours: what differs between kinds of agent — the build step and the
//! container spec. [`GoFlavour`] (kind `micro`) runs `go build` in a build
//! container ([`crate::build_container`]) with one of the host's Go
//! toolchains (the oldest the checkout's `go.mod` allows,
//! [`crate::go_toolchains`]) mounted read-only; [`crate::PhpFlavour`]
//! (kind `gateway`) runs `composer install` in one.
//!
//! Caches are per sandbox (`data_dir/build-caches/<sandbox>`, removed by a
//! teardown), so one sandbox's build cannot change what another's reads.
//! A sandbox's first Go build with a toolchain seeds its `GOCACHE` with a
//! copy of the standard library the warm-up compiled with that toolchain
//! (`<cache_dir>/go-std-<1.22.12>`); Go's cache keys include the
//! toolchain, so one `GOCACHE` holds each toolchain's entries side by side.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use std::process::Stdio;

use futures::future::BoxFuture;
use sdp_bus::{LogStream, ServiceSettings};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::build_container::{BuildBox, BuildMount, BuildRun};
use crate::config::{AgentConfig, BuildConfig, ComposerConfig, GoConfig};
use crate::error::DeployError;
use crate::events::{EventSink, OutputLine};
use crate::go_toolchains::{self, GoToolchain, Search, ToolchainError};

/// Where things are for one build.
#[derive(Clone)]
pub struct BuildContext {
    /// The checkout (mounted read-only at [`ContainerSpec::source_mount`]).
    pub worktree: PathBuf,
    /// Where build output goes (mounted read-only at
    /// [`ContainerSpec::artifact_mount`]).
    pub artifact_dir: PathBuf,
    /// `data_dir`, absolute.
    pub data_dir: PathBuf,
    /// The agent's shared caches (the warmed standard library), absolute.
    pub cache_dir: PathBuf,
    /// This sandbox's own build caches, absolute.
    pub sandbox_cache: PathBuf,
    pub sandbox: String,
    pub deployment: String,
    /// The service's effective settings (see [`crate::service`]).
    pub settings: ServiceSettings,
    /// Where `go build` gets modules (agent config `[go]`).
    pub go: GoConfig,
    /// Where `composer install` gets packages (agent config `[composer]`).
    pub composer: ComposerConfig,
    /// The build containers' settings (agent config `[build]`).
    pub build: BuildConfig,
    /// Runs the build containers.
    pub builder: BuildBox,
}

impl BuildContext {
    /// A build container run for this deployment.
    pub(crate) fn run(&self, argv: Vec<String>, env: Vec<String>, working_dir: &str) -> BuildRun {
        BuildRun {
            argv,
            env,
            working_dir: working_dir.to_owned(),
            deployment: Some(self.deployment.clone()),
            sandbox: Some(self.sandbox.clone()),
            ..Default::default()
        }
    }
}

/// The sandbox's build caches under `data_dir` (see [`crate::job::SANDBOX_DIRS`]).
pub fn sandbox_cache(data_dir: &Path, sandbox: &str) -> PathBuf {
    data_dir.join(SANDBOX_CACHES).join(sandbox)
}

/// The directory of per-sandbox build caches under `data_dir`.
pub const SANDBOX_CACHES: &str = "build-caches";

pub(crate) fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> DeployError + '_ {
    move |source| DeployError::Io {
        what: what.to_owned(),
        source,
    }
}

/// How the flavour's containers look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The command when `flavour.run_cmd` is not configured.
    pub default_run_cmd: Vec<String>,
    /// Mount point of the checkout; the working directory is it, or
    /// `working_dir` under it.
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

    /// Builds the checkout in a build container (`ctx.builder`). Every
    /// output line goes to `events` as a log line. Dropping the future
    /// stops the build (the container is killed and removed).
    fn build<'a>(
        &'a self,
        ctx: &'a BuildContext,
        events: &'a mut EventSink,
    ) -> BoxFuture<'a, Result<(), DeployError>>;

    /// The build toolchains the flavour finds with `config`, as heartbeats
    /// name them (`go 1.22.12`), oldest first. The agent checks them when
    /// it starts: an error (a toolchain the config names is not one) stops
    /// it.
    fn toolchains(&self, _config: &AgentConfig) -> Result<Vec<String>, ToolchainError> {
        Ok(Vec::new())
    }

    /// Fills the flavour's build cache when the agent starts, so the first
    /// deploy on a fresh host does not compile the standard library. It runs
    /// in the background and is dropped (its children must die with it)
    /// while a deployment builds, then made and run again; `None` when
    /// there is nothing to warm. `config` is the agent's (the build
    /// settings a deploy uses come from it). The error is a short reason.
    fn warm_cache(
        &self,
        _builder: &BuildBox,
        _cache_dir: &Path,
        _config: &AgentConfig,
    ) -> Option<BoxFuture<'static, Result<(), String>>> {
        None
    }
}

/// `go build` in a build container, `CGO_ENABLED=0`, the sandbox's own
/// caches, the toolchain the checkout's `go.mod` asks for
/// ([`go_toolchains::select`]). Modules come from the checkout's `vendor/`
/// (`-mod=vendor`) or else through `go.proxy` of the agent config
/// (`-mod=mod`); with no proxy configured `GOPROXY=off` and no network (see
/// [`crate::gomod`]). The package built is the service's `main_package`
/// (`sdp.toml`).
#[derive(Clone, Debug)]
pub struct GoFlavour {
    /// Where `go` is looked up when no toolchain is configured (the
    /// agent's own `PATH`, captured at construction).
    pub path: OsString,
    /// Where `go-1.*` toolchains are looked for when none is configured
    /// (Debian's `golang-1.N-go` installs `/usr/lib/go-1.N`).
    pub lib_dir: PathBuf,
}

/// The agent's own `PATH`, or a usual one.
pub(crate) fn agent_path() -> OsString {
    std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin".into())
}

impl Default for GoFlavour {
    fn default() -> Self {
        Self {
            path: agent_path(),
            lib_dir: PathBuf::from("/usr/lib"),
        }
    }
}

/// Where the build container sees things.
const SRC: &str = "/src";
const GO_CACHE: &str = "/cache/go-build";
const GO_MODCACHE: &str = "/cache/gomod";

impl GoFlavour {
    /// The agent's Go toolchains, oldest first ([`go_toolchains::find`]).
    fn find_toolchains(
        &self,
        go: &GoConfig,
        build: &BuildConfig,
    ) -> Result<Vec<GoToolchain>, ToolchainError> {
        let search = Search {
            path: &self.path,
            lib_dir: &self.lib_dir,
        };
        go_toolchains::find(go, build, &search)
    }

    /// The environment of every `go build` the agent runs. The warm-up
    /// uses it too: Go's cache keys include flags and env, so any
    /// difference would warm entries no deploy ever hits. `-mod` is a
    /// flag of the deploy's `go build` only (it depends on the checkout and
    /// does not change how the standard library compiles).
    fn go_env(goroot: &Path, go: &GoConfig) -> Vec<String> {
        // -buildvcs=false: go must never run git in a tree it did not make.
        // -modcacherw: the agent can remove the sandbox's module cache.
        let mut flags = "-buildvcs=false -modcacherw".to_owned();
        if let Some(more) = go.flags.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            flags.push(' ');
            flags.push_str(more);
        }
        let mut env = vec![
            format!("PATH={}/bin:/usr/bin:/bin", goroot.display()),
            format!("GOROOT={}", goroot.display()),
            "HOME=/tmp".to_owned(),
            "GOPATH=/tmp/gopath".to_owned(),
            format!("GOCACHE={GO_CACHE}"),
            format!("GOMODCACHE={GO_MODCACHE}"),
            "CGO_ENABLED=0".to_owned(),
            format!("GOFLAGS={flags}"),
            format!("GOPROXY={}", go.proxy.as_deref().unwrap_or("off")),
            format!("GOSUMDB={}", go.sumdb.as_deref().unwrap_or("off")),
            "GOTOOLCHAIN=local".to_owned(),
            "GOTELEMETRY=off".to_owned(),
        ];
        if let Some(nosumdb) = &go.nosumdb {
            env.push(format!("GONOSUMDB={nosumdb}"));
        }
        if let Some(private) = &go.private {
            env.push(format!("GOPRIVATE={private}"));
        }
        env
    }

    /// The toolchain, and the directories of `file://` proxies, read-only
    /// at the same paths.
    fn read_only_mounts(goroot: &Path, go: &GoConfig) -> Vec<BuildMount> {
        let mut mounts = toolchain_mounts(goroot);
        for entry in go.proxy.as_deref().unwrap_or_default().split([',', '|']) {
            if let Some(dir) = entry.strip_prefix("file://")
                && dir.starts_with('/')
                && Path::new(dir).is_dir()
            {
                mounts.push(BuildMount::read_only(dir, dir));
            }
        }
        mounts
    }

    /// Whether `go.proxy` names anything reached over the network.
    fn needs_network(go: &GoConfig) -> bool {
        go.proxy
            .as_deref()
            .unwrap_or_default()
            .split([',', '|'])
            .any(|entry| {
                entry == "direct" || entry.starts_with("https://") || entry.starts_with("http://")
            })
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
            // The toolchain first: a go.mod no toolchain here satisfies
            // fails the deployment before any container starts.
            let (toolchain, chosen) = self.toolchain_for(ctx).await?;
            events.system(chosen).await;
            let goroot = toolchain.goroot.clone();
            ctx.builder.check_image().await?;
            let go_build = ctx.sandbox_cache.join("go-build");
            let go_mod = ctx.sandbox_cache.join("gomod");
            tokio::fs::create_dir_all(&ctx.artifact_dir)
                .await
                .map_err(io_err("create the build directories"))?;
            tokio::fs::create_dir_all(&go_mod)
                .await
                .map_err(io_err("create the build directories"))?;
            let std_cache = std_cache(&ctx.cache_dir, &toolchain);
            let seed = toolchain.version.to_string();
            if seed_go_cache(&std_cache, &ctx.sandbox_cache, &seed).await? {
                events
                    .system(format!(
                        "build cache: this sandbox's first build with {}, seeded with the standard library the agent warmed",
                        toolchain.label()
                    ))
                    .await;
            }
            tokio::fs::create_dir_all(&go_build)
                .await
                .map_err(io_err("create the build directories"))?;
            ctx.builder
                .hand_over(vec![
                    ctx.worktree.clone(),
                    ctx.artifact_dir.clone(),
                    ctx.sandbox_cache.clone(),
                ])
                .await?;
            let modules = Modules::of(&ctx.worktree, &ctx.go);
            events.system(modules.describe()).await;
            let package = crate::service::go_package_arg(&ctx.settings.main_package);
            let mut argv: Vec<String> = vec!["go".into(), "build".into(), "-trimpath".into()];
            argv.extend(modules.flag().map(str::to_owned));
            argv.extend(["-o".into(), format!("{OUTPUT}/app"), package.clone()]);
            events
                .system(format!(
                    "build container: {}, user {}:{}, network {}",
                    ctx.builder.image(),
                    ctx.builder.user().uid,
                    ctx.builder.user().gid,
                    if Self::needs_network(&ctx.go) {
                        "for go.proxy"
                    } else {
                        "none"
                    },
                ))
                .await;
            events
                .system(format!(
                    "$ {}",
                    argv.join(" ").replace(OUTPUT, GO_ARTIFACT_MOUNT)
                ))
                .await;
            let mut run = ctx.run(argv, Self::go_env(&goroot, &ctx.go), SRC);
            run.network = Self::needs_network(&ctx.go);
            run.mounts = Self::read_only_mounts(&goroot, &ctx.go);
            run.mounts.extend([
                // Writable: `-mod=mod` may update go.sum.
                BuildMount::writable(&ctx.worktree, SRC),
                BuildMount::writable(&ctx.artifact_dir, OUTPUT),
                BuildMount::writable(&go_build, GO_CACHE),
                BuildMount::writable(&go_mod, GO_MODCACHE),
            ]);
            let exit = ctx.builder.run(run, Some(events), STDERR_KEPT).await?;
            if exit.success() {
                return Ok(());
            }
            Err(
                crate::gomod::failure(&exit.stderr_tail, &ctx.go).unwrap_or_else(|| {
                    DeployError::BuildExited {
                        tool: "go build",
                        status: exit.status_text(),
                    }
                }),
            )
        })
    }

    fn toolchains(&self, config: &AgentConfig) -> Result<Vec<String>, ToolchainError> {
        self.find_toolchains(&config.go, &config.build)
            .map(|found| go_toolchains::labels(&found))
    }

    /// `go build -trimpath std` in a build container with each toolchain,
    /// newest first, into `<cache_dir>/go-std-<1.22.12>`: a sandbox's
    /// first build with a toolchain starts from a copy of its one. A
    /// toolchain that fails does not stop the others; the first failure
    /// is the reason.
    fn warm_cache(
        &self,
        builder: &BuildBox,
        cache_dir: &Path,
        config: &AgentConfig,
    ) -> Option<BoxFuture<'static, Result<(), String>>> {
        let cache_dir = cache_dir.to_path_buf();
        let builder = builder.clone();
        let found = self.find_toolchains(&config.go, &config.build);
        let go = config.go.clone();
        let lib_dir = self.lib_dir.clone();
        Some(Box::pin(async move {
            let found = found.map_err(|reason| format!("go build std: {reason}"))?;
            if found.is_empty() {
                return Err(format!(
                    "go build std: no Go toolchain: go is not on the agent's PATH, there is no {}/go-1.*, and go.toolchains is not set (apt-get install golang-go)",
                    lib_dir.display()
                ));
            }
            builder
                .check_image()
                .await
                .map_err(|e| format!("go build std: {e}"))?;
            let mut first_failure = None;
            for toolchain in found.iter().rev() {
                if let Err(reason) = warm_std(&builder, &cache_dir, toolchain, &go).await {
                    first_failure.get_or_insert(reason);
                }
            }
            match first_failure {
                None => Ok(()),
                Some(mut reason) => {
                    reason.truncate(reason.floor_char_boundary(200));
                    Err(reason)
                }
            }
        }))
    }
}

/// `go build -trimpath std` with `toolchain` into its std cache.
async fn warm_std(
    builder: &BuildBox,
    cache_dir: &Path,
    toolchain: &GoToolchain,
    go: &GoConfig,
) -> Result<(), String> {
    let label = toolchain.label();
    let std_cache = std_cache(cache_dir, toolchain);
    tokio::fs::create_dir_all(&std_cache)
        .await
        .map_err(|e| format!("cannot create the build directories: {e}"))?;
    builder
        .hand_over(vec![std_cache.clone()])
        .await
        .map_err(|e| e.user_message())?;
    let mut env = GoFlavour::go_env(&toolchain.goroot, go);
    env.retain(|kv| !kv.starts_with("GOMODCACHE="));
    env.push("GOMODCACHE=/tmp/gomod".to_owned());
    let run = BuildRun {
        argv: ["go", "build", "-trimpath", "std"]
            .map(str::to_owned)
            .to_vec(),
        env,
        working_dir: "/tmp".to_owned(),
        mounts: toolchain_mounts(&toolchain.goroot)
            .into_iter()
            .chain([BuildMount::writable(&std_cache, GO_CACHE)])
            .collect(),
        low_priority: true,
        ..Default::default()
    };
    let exit = builder
        .run(run, None, 20)
        .await
        .map_err(|e| format!("go build std: {label}: {}", e.user_message()))?;
    if exit.success() {
        return Ok(());
    }
    let last = exit.stderr_tail.iter().rev().find(|l| !l.trim().is_empty());
    Err(format!(
        "go build std: {label}: {}",
        last.map_or_else(
            || format!("exited with {}", exit.status_text()),
            Clone::clone
        )
    ))
}

/// Where the standard library `toolchain` compiled is kept:
/// `<cache_dir>/go-std-1.22.12`. (Agents of one toolchain kept it in
/// `<cache_dir>/go-std`, which nothing reads any more.)
/// What a test run's container gets of a Go build's setup
/// ([`GoFlavour::test_setup`]).
pub(crate) struct GoTestSetup {
    /// The build's environment, with the checkout's `-mod` in `GOFLAGS`.
    pub env: Vec<String>,
    /// The toolchain read-only, the checkout writable at [`SRC`], the
    /// sandbox's Go caches.
    pub mounts: Vec<BuildMount>,
    /// Log lines: which toolchain and why, where modules come from.
    pub notes: Vec<String>,
    pub working_dir: &'static str,
}

impl GoFlavour {
    /// A test run is built like a service: the same toolchain choice, the
    /// sandbox's own caches (seeded the same way) and module source, so
    /// `go test` or `go run` in it compiles as `go build` would.
    pub(crate) async fn test_setup(&self, ctx: &BuildContext) -> Result<GoTestSetup, DeployError> {
        let (toolchain, chosen) = self.toolchain_for(ctx).await?;
        let mut notes = vec![chosen];
        let go_build = ctx.sandbox_cache.join("go-build");
        let go_mod = ctx.sandbox_cache.join("gomod");
        tokio::fs::create_dir_all(&go_mod)
            .await
            .map_err(io_err("create the build directories"))?;
        let std_cache = std_cache(&ctx.cache_dir, &toolchain);
        if seed_go_cache(
            &std_cache,
            &ctx.sandbox_cache,
            &toolchain.version.to_string(),
        )
        .await?
        {
            notes.push("build cache: seeded with the standard library the agent warmed".into());
        }
        tokio::fs::create_dir_all(&go_build)
            .await
            .map_err(io_err("create the build directories"))?;
        ctx.builder
            .hand_over(vec![ctx.worktree.clone(), ctx.sandbox_cache.clone()])
            .await?;
        let modules = Modules::of(&ctx.worktree, &ctx.go);
        notes.push(modules.describe());
        let mut env = Self::go_env(&toolchain.goroot, &ctx.go);
        if let Some(flag) = modules.flag() {
            for kv in env.iter_mut().filter(|kv| kv.starts_with("GOFLAGS=")) {
                kv.push(' ');
                kv.push_str(flag);
            }
        }
        let mut mounts = Self::read_only_mounts(&toolchain.goroot, &ctx.go);
        mounts.extend([
            BuildMount::writable(&ctx.worktree, SRC),
            BuildMount::writable(&go_build, GO_CACHE),
            BuildMount::writable(&go_mod, GO_MODCACHE),
        ]);
        Ok(GoTestSetup {
            env,
            mounts,
            notes,
            working_dir: SRC,
        })
    }
}

fn std_cache(cache_dir: &Path, toolchain: &GoToolchain) -> PathBuf {
    cache_dir.join(format!("go-std-{}", toolchain.version))
}

impl GoFlavour {
    /// The toolchain that builds `ctx.worktree`: the oldest its `go.mod`
    /// allows, and the build log's line saying which and why.
    async fn toolchain_for(
        &self,
        ctx: &BuildContext,
    ) -> Result<(GoToolchain, String), DeployError> {
        let this = self.clone();
        let (go, build) = (ctx.go.clone(), ctx.build.clone());
        let worktree = ctx.worktree.clone();
        let (found, go_mod) = tokio::task::spawn_blocking(move || {
            let go_mod = read_go_mod(&worktree).map_err(io_err("read go.mod"))?;
            let found = this
                .find_toolchains(&go, &build)
                .map_err(DeployError::GoToolchains)?;
            Ok((found, go_mod))
        })
        .await
        .map_err(DeployError::task("toolchain"))??;
        let (toolchain, chosen) = go_toolchains::select(&found, go_mod.as_deref())?;
        Ok((toolchain.clone(), chosen))
    }
}

/// The text of the checkout's `go.mod` (at most its first MiB: the `go`
/// line is near the top); `None` when there is none. A symlink counts only
/// if it leads to a file inside the checkout: the agent never reads a host
/// file for a branch.
fn read_go_mod(worktree: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let path = worktree.join("go.mod");
    let resolved = match std::fs::canonicalize(&path) {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !resolved.starts_with(std::fs::canonicalize(worktree)?) || !resolved.is_file() {
        return Ok(None);
    }
    let mut text = Vec::new();
    std::fs::File::open(&resolved)?
        .take(1 << 20)
        .read_to_end(&mut text)?;
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// The Go warm-up of an agent with `config`, run once outside an agent:
/// `go build -trimpath std` in a build container with each toolchain, into
/// `<cache_dir>/go-std-<version>` (test harnesses warm the cache their
/// agents share before the first deploy, as a long-running agent would
/// have).
pub async fn warm_go_std(config: &AgentConfig, cache_dir: &Path) -> Result<(), String> {
    let builder = BuildBox::connect(config)
        .await
        .map_err(|e| format!("cannot reach Docker: {e}"))?;
    match GoFlavour::default().warm_cache(&builder, cache_dir, config) {
        Some(warm) => warm.await,
        None => Ok(()),
    }
}

/// GOROOT read-only at its own path, and the targets of the symlinks in
/// its top levels that lead out of it (Debian's `src -> ../../share/go-1.19/src`),
/// each read-only at its own path too.
fn toolchain_mounts(goroot: &Path) -> Vec<BuildMount> {
    fn symlinks(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_symlink() => found.push(entry.path()),
                Ok(kind) if kind.is_dir() && depth > 1 => symlinks(&entry.path(), depth - 1, found),
                _ => {}
            }
        }
    }
    let mut mounts = vec![BuildMount::read_only(goroot, goroot.display().to_string())];
    let mut links = Vec::new();
    symlinks(goroot, 3, &mut links);
    for link in links {
        if let Ok(target) = std::fs::canonicalize(&link)
            && target.is_dir()
            && !target.starts_with(goroot)
            && !mounts.iter().any(|m| target.starts_with(&m.source))
        {
            let path = target.display().to_string();
            mounts.push(BuildMount::read_only(target, path));
        }
    }
    mounts
}

/// Where the build container writes its output.
const OUTPUT: &str = "/out";

/// Seeds the sandbox's `GOCACHE` (`<sandbox_cache>/go-build`) with a copy
/// of `std_cache` (one toolchain's warmed standard library), once per
/// toolchain: a marker `<sandbox_cache>/go-std-seeded/<1.22.12>` (where
/// builds do not reach) says it was. Returns whether it seeded now; not
/// before the warm-up made `std_cache`. So a sandbox holds at most one
/// copy per toolchain it builds with.
///
/// A copy, not hard links: a build (running as the files' owner) could
/// write through a hard link into the shared inode and so into every
/// sandbox's cache. Each file is copied under a temporary name and renamed,
/// and files already there are kept, so a build beside never reads half a
/// file (an entry missing is only a cache miss).
async fn seed_go_cache(
    std_cache: &Path,
    sandbox_cache: &Path,
    toolchain: &str,
) -> Result<bool, DeployError> {
    let marker = sandbox_cache.join(SEEDED).join(toolchain);
    if marker.exists() || !std_cache.is_dir() {
        return Ok(false);
    }
    let from = std_cache.to_path_buf();
    let to = sandbox_cache.join("go-build");
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&to)?;
        copy_missing(&from, &to)?;
        if let Some(dir) = marker.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&marker, b"")?;
        Ok(true)
    })
    .await
    .map_err(DeployError::task("seeding"))?
    .map_err(io_err("seed the sandbox's Go build cache"))
}

/// Under a sandbox's caches: which toolchains' standard libraries were
/// copied into its `GOCACHE`.
const SEEDED: &str = "go-std-seeded";

/// Copies the regular files and directories under `from` that `to` does
/// not have yet (symlinks and anything else are skipped: Go's cache has
/// none), each file under a temporary name then renamed. A file gone
/// meanwhile is skipped too: a cache entry missing is only a miss.
fn copy_missing(from: &Path, to: &Path) -> std::io::Result<()> {
    // Unique per copy: a cancelled deployment's copy may still run (a
    // blocking task outlives its future) beside the next one's.
    static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let gone = |err: &std::io::Error| err.kind() == std::io::ErrorKind::NotFound;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        let copied = if kind.is_dir() {
            std::fs::create_dir_all(&target).and_then(|()| copy_missing(&entry.path(), &target))
        } else if kind.is_file() && !target.exists() {
            let mut temporary = target.as_os_str().to_owned();
            temporary.push(format!(
                ".seed-{}-{}",
                std::process::id(),
                COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let temporary = PathBuf::from(temporary);
            let copied = std::fs::copy(entry.path(), &temporary)
                .and_then(|_| std::fs::rename(&temporary, &target));
            if copied.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            copied
        } else {
            Ok(())
        };
        match copied {
            Err(err) if !gone(&err) => return Err(err),
            _ => {}
        }
    }
    Ok(())
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

// A host process's output as log lines: the log pipeline's benchmark
// (`control-plane/benches/log_pipeline.rs`) feeds builds' output through
// it. Builds themselves run in containers.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_mod_is_read_only_inside_the_checkout() {
        let root = tempfile::tempdir().expect("dir");
        let worktree = root.path().join("worktree");
        std::fs::create_dir_all(worktree.join("build")).expect("mkdir");
        assert_eq!(read_go_mod(&worktree).expect("read"), None, "no go.mod");
        std::fs::write(worktree.join("build/go.mod"), "module m\n\ngo 1.22\n").expect("write");
        std::os::unix::fs::symlink("build/go.mod", worktree.join("go.mod")).expect("link");
        assert_eq!(
            read_go_mod(&worktree).expect("read").as_deref(),
            Some("module m\n\ngo 1.22\n"),
            "a link inside the checkout"
        );
        let outside = root.path().join("host-file");
        std::fs::write(&outside, "go 1.30\n").expect("write");
        std::fs::remove_file(worktree.join("go.mod")).expect("rm");
        std::os::unix::fs::symlink(&outside, worktree.join("go.mod")).expect("link");
        assert_eq!(read_go_mod(&worktree).expect("read"), None, "a host file");
        std::fs::remove_file(worktree.join("go.mod")).expect("rm");
        std::fs::create_dir(worktree.join("go.mod")).expect("a directory");
        assert_eq!(read_go_mod(&worktree).expect("read"), None, "not a file");
    }

    #[tokio::test]
    async fn a_sandbox_cache_is_seeded_once_per_toolchain_keeping_what_it_has() {
        let root = tempfile::tempdir().expect("dir");
        let (std_19, std_22) = (
            root.path().join("go-std-1.19.8"),
            root.path().join("go-std-1.22.12"),
        );
        for (dir, entry) in [(&std_19, "a1-d"), (&std_22, "b2-d")] {
            std::fs::create_dir_all(dir.join("a1")).expect("mkdir");
            std::fs::write(dir.join("a1").join(entry), entry).expect("write");
            std::fs::write(dir.join("README"), "cache").expect("write");
        }
        let sandbox = root.path().join("sandbox");
        // Not warmed yet: nothing to seed, and no marker, so a later build
        // seeds.
        assert!(
            !seed_go_cache(&root.path().join("go-std-1.23.0"), &sandbox, "1.23.0")
                .await
                .expect("seed")
        );
        assert!(!sandbox.join(SEEDED).join("1.23.0").exists());

        assert!(
            seed_go_cache(&std_19, &sandbox, "1.19.8")
                .await
                .expect("seed")
        );
        assert!(
            !seed_go_cache(&std_19, &sandbox, "1.19.8")
                .await
                .expect("seed"),
            "once"
        );
        let go_build = sandbox.join("go-build");
        // What a build wrote since is kept, the other toolchain's entries
        // are added.
        std::fs::write(go_build.join("README"), "written by a build").expect("write");
        assert!(
            seed_go_cache(&std_22, &sandbox, "1.22.12")
                .await
                .expect("seed")
        );
        assert_eq!(
            std::fs::read_to_string(go_build.join("a1/a1-d")).expect("read"),
            "a1-d"
        );
        assert_eq!(
            std::fs::read_to_string(go_build.join("a1/b2-d")).expect("read"),
            "b2-d"
        );
        assert_eq!(
            std::fs::read_to_string(go_build.join("README")).expect("read"),
            "written by a build"
        );
        // No temporary file is left.
        let names: Vec<String> = std::fs::read_dir(go_build.join("a1"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".seed-")), "{names:?}");
    }
}
