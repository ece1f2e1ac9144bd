//! One deployment: queued → fetching → building → starting →
//! health → result. Every step runs raced against the job's cancel token
//! (a user cancel, a newer deployment of the same sandbox/service, or
//! shutdown); dropping a step kills its build container, and the job then
//! removes the containers it created. Exactly one result event ends a job.
//! A request naming a commit deploys it only if it is on the branch: that
//! is checked after the fetch, before the worktree or anything else changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sdp_bus::{DeployRequest, EventBody, ServiceSettings, Status};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::docker;
use crate::error::DeployError;
use crate::events::EventSink;
use crate::flavour::BuildContext;
use crate::git::FetchSpec;
use crate::last_words;
use crate::service;
use crate::state::Agent;
pub use crate::state::{CancelReason, JobHandle};

/// Health checks start quickly (a small service listens within tens of
/// milliseconds of its start) and back off to [`HEALTH_EVERY`].
const HEALTH_FIRST: Duration = Duration::from_millis(25);
const HEALTH_EVERY: Duration = Duration::from_millis(250);
const HEALTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub use sdp_bus::service::is_env_key;

/// What the steps leave behind for the end of the job.
#[derive(Default)]
struct JobState {
    commit: Option<String>,
    /// Set once the starting step may have created a container.
    touched_docker: bool,
    /// A failed container's last output lines.
    log_tail: Vec<String>,
    git_cancel: Arc<AtomicBool>,
    permit: Option<OwnedSemaphorePermit>,
}

pub(crate) async fn run_job(
    agent: Arc<Agent>,
    handle: Arc<JobHandle>,
    request: DeployRequest,
    origin_url: String,
    cancels: async_nats::Subscriber,
    superseded: Vec<CancellationToken>,
) {
    let id = handle.id.clone();
    let mut sink = EventSink::new(
        agent.js.clone(),
        id.clone(),
        agent.agent_id().to_owned(),
        agent.give_up.clone(),
    );
    let listener = listen_for_cancel(&agent, handle.clone(), cancels);

    let mut state = JobState::default();
    sink.phase(Status::Queued, None).await;
    let outcome = tokio::select! {
        result = steps(&agent, &request, &origin_url, &mut sink, &mut state, superseded) => result,
        _ = handle.cancel.cancelled() => Err(handle.cancel_error()),
    };
    state.git_cancel.store(true, Ordering::Relaxed);
    let body = match outcome {
        Ok(url) => {
            tracing::info!(deployment = %id, %url, "deployment running");
            EventBody::Result {
                status: Status::Running,
                url: Some(url),
                error: None,
                commit: state.commit.clone(),
                log_tail: Vec::new(),
                test: None,
            }
        }
        Err(err) => {
            let status = err.status();
            let cancelled = status == Status::Cancelled || matches!(err, DeployError::Shutdown);
            if cancelled {
                // The build future was dropped with the job's steps; its
                // container is removed here too (awaited, so a shutdown
                // waits for it).
                agent.builder.remove_deployment(id.as_str()).await;
            }
            if cancelled && state.touched_docker {
                let labels = [(docker::LABEL_DEPLOYMENT, id.as_str())];
                if let Err(e) = agent.docker.remove_matching(&labels, None).await {
                    tracing::warn!(deployment = %id, error = %e, "cannot remove the container of a cancelled deployment");
                }
            }
            let message = err.user_message();
            tracing::info!(deployment = %id, %status, error = %message, "deployment ended");
            EventBody::Result {
                status,
                url: None,
                error: Some(message),
                commit: state.commit.clone(),
                // Also in the log itself (`last_words`); here for the
                // result box beside the error.
                log_tail: std::mem::take(&mut state.log_tail),
                test: None,
            }
        }
    };
    sink.result(body).await;
    listener.abort();
    agent.unregister(&id);
    drop(state.permit.take());
    handle.done.cancel();
}

/// Most characters of a cancel's `by` that reach the log.
const MAX_CANCELLED_BY: usize = 64;

/// Listens on the job's `deploy.cancel.<id>` until aborted: each cancel
/// cancels the job (the first reason wins, so a repeated cancel changes
/// nothing) and is answered when it asks for a reply. A cancel naming
/// who asked (`by`, printable and bounded here: it goes into the log)
/// ends the job "cancelled by" them. Deployments and test runs share it.
pub(crate) fn listen_for_cancel(
    agent: &Agent,
    handle: Arc<JobHandle>,
    mut cancels: async_nats::Subscriber,
) -> tokio::task::JoinHandle<()> {
    let client = agent.client.clone();
    tokio::spawn(async move {
        while let Some(message) = cancels.next().await {
            let by = sdp_bus::decode::<sdp_bus::DeployCancel>(&message.payload)
                .ok()
                .and_then(|cancel| cancel.by)
                .map(|by| {
                    by.chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_CANCELLED_BY)
                        .collect::<String>()
                })
                .filter(|by| !by.is_empty());
            tracing::info!(deployment = %handle.id, by = by.as_deref().unwrap_or("-"), "cancel requested");
            handle.cancel_with(by.map_or(CancelReason::User, CancelReason::ByUser));
            if let Some(reply) = message.reply {
                let body = sdp_bus::Reply::ok(sdp_bus::DeployCancel::default());
                let _ = client.publish(reply, sdp_bus::encode(&body).into()).await;
            }
        }
    })
}

/// Where one (sandbox, service) keeps its things under `data_dir`.
pub(crate) struct Paths {
    pub worktree: PathBuf,
    pub gitdir: PathBuf,
    /// The repo's object store, shared by every sandbox (not removed by a
    /// teardown).
    pub store: PathBuf,
    pub artifact_dir: PathBuf,
    /// `routes/<sandbox>/<repo>.json`: the route table mounted into the
    /// container (flavours with [`crate::ContainerSpec::routes_file`]).
    pub routes_file: PathBuf,
    /// `state/<sandbox>/<repo>.json`: the [`BuildRecord`] of the last
    /// successful deployment.
    pub state_file: PathBuf,
    /// `ports/<sandbox>/<repo>`: the host port the service keeps for the
    /// sandbox's life, so its URL never changes.
    pub port_file: PathBuf,
}

/// Per-sandbox directories under `data_dir`, removed by a teardown
/// (`build-caches`: the sandbox's own build caches).
pub(crate) const SANDBOX_DIRS: [&str; 8] = [
    "worktrees",
    "gitdirs",
    "builds",
    "routes",
    "state",
    "ports",
    crate::flavour::SANDBOX_CACHES,
    crate::test_run::TEST_RUNS_DIR,
];

impl Paths {
    pub fn new(data_dir: &Path, sandbox: &str, repo: &str) -> Self {
        Self {
            worktree: data_dir.join("worktrees").join(sandbox).join(repo),
            gitdir: data_dir
                .join("gitdirs")
                .join(sandbox)
                .join(format!("{repo}.git")),
            store: crate::git_store::path(data_dir, repo),
            artifact_dir: data_dir.join("builds").join(sandbox).join(repo),
            routes_file: data_dir
                .join("routes")
                .join(sandbox)
                .join(format!("{repo}.json")),
            state_file: data_dir
                .join("state")
                .join(sandbox)
                .join(format!("{repo}.json")),
            port_file: data_dir.join("ports").join(sandbox).join(repo),
        }
    }
}

/// What a successful deployment leaves for a later `reuse_build`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuildRecord {
    pub branch: String,
    pub commit: String,
    pub settings: ServiceSettings,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeployError {
    let what = what.into();
    move |source| DeployError::Io { what, source }
}

/// Writes `bytes` to `path` through a temp file and a rename, so readers
/// (and bind mounts made later) never see half a file.
async fn write_atomically(path: &Path, bytes: Vec<u8>, what: &str) -> Result<(), DeployError> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io_err(format!("create the directory for {what}")))?;
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    tokio::fs::write(&temp, bytes)
        .await
        .map_err(io_err(format!("write {what}")))?;
    tokio::fs::rename(&temp, path)
        .await
        .map_err(io_err(format!("write {what}")))
}

/// The text of `sdp.toml` at the worktree root, if there is one. Only a
/// regular file counts: a symlink could point anywhere on the host.
async fn read_sdp_toml(worktree: &Path, repo: &str) -> Result<Option<String>, DeployError> {
    let path = worktree.join(service::SDP_TOML);
    match tokio::fs::symlink_metadata(&path).await {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_err("read sdp.toml")(source)),
        Ok(meta) if !meta.is_file() => {
            return Err(DeployError::Settings {
                repo: repo.to_owned(),
                source: service::SettingsError::File(service::SettingsProblem::NotAFile),
            });
        }
        Ok(_) => {}
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(io_err("read sdp.toml"))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| DeployError::Settings {
            repo: repo.to_owned(),
            source: service::SettingsError::File(service::SettingsProblem::NotUtf8),
        })
}

/// The recorded build of (sandbox, repo), if `request` may reuse it: same
/// branch (and the same commit, if the request names one), the worktree
/// (and the flavour's build output) still there, and the same main package
/// under the request's overrides.
async fn reusable(
    agent: &Agent,
    request: &DeployRequest,
    paths: &Paths,
    base: &ServiceSettings,
) -> Option<(String, ServiceSettings)> {
    let _lock = agent
        .worktree_lock(&request.sandbox, &request.repo)
        .lock_owned()
        .await;
    let bytes = tokio::fs::read(&paths.state_file).await.ok()?;
    let record: BuildRecord = serde_json::from_slice(&bytes).ok()?;
    if record.branch != request.branch || !paths.worktree.is_dir() {
        return None;
    }
    // A request for a commit reuses only a build of that very commit.
    if request
        .commit
        .as_ref()
        .is_some_and(|wanted| *wanted != record.commit)
    {
        return None;
    }
    if agent
        .flavour
        .container(&record.settings)
        .artifact_mount
        .is_some()
        && !paths.artifact_dir.is_dir()
    {
        return None;
    }
    let text = read_sdp_toml(&paths.worktree, &request.repo).await.ok()?;
    let settings = service::resolve(base, text.as_deref(), &request.overrides).ok()?;
    (settings.main_package == record.settings.main_package).then_some((record.commit, settings))
}

/// The steps after `queued`; returns the service URL.
async fn steps(
    agent: &Agent,
    request: &DeployRequest,
    origin_url: &str,
    sink: &mut EventSink,
    state: &mut JobState,
    superseded: Vec<CancellationToken>,
) -> Result<String, DeployError> {
    for done in superseded {
        done.cancelled().await;
    }
    let permit = agent
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| DeployError::Shutdown)?;
    state.permit = Some(permit);

    let config = &agent.config;
    let repo = request.repo.as_str();
    let paths = Paths::new(&config.data_dir, &request.sandbox, repo);
    let base = service::agent_defaults(config);

    let reuse = if request.reuse_build {
        reusable(agent, request, &paths, &base).await
    } else {
        None
    };
    let (commit, settings) = match reuse {
        Some((commit, settings)) => {
            sink.system(format!("re-applying {commit}: reusing the build"))
                .await;
            state.commit = Some(commit.clone());
            sink.phase(Status::Starting, Some(commit.clone())).await;
            sink.system(service::describe(
                &settings,
                repo,
                paths.worktree.join(service::SDP_TOML).is_file(),
            ))
            .await;
            (commit, settings)
        }
        None => {
            if request.reuse_build {
                sink.system(format!(
                    "no completed build of branch {} to reuse: deploying in full",
                    request.branch
                ))
                .await;
            }
            fetch_and_build(agent, request, origin_url, &paths, &base, sink, state).await?
        }
    };

    let url = start_and_check(agent, request, &paths, &settings, &commit, sink, state).await?;
    let record = BuildRecord {
        branch: request.branch.clone(),
        commit,
        settings,
    };
    let bytes = serde_json::to_vec_pretty(&record).map_err(DeployError::encode("build record"))?;
    write_atomically(&paths.state_file, bytes, "the build record").await?;
    Ok(url)
}

/// Fetching and building; ends in `starting`. Returns the commit and the
/// service's effective settings.
async fn fetch_and_build(
    agent: &Agent,
    request: &DeployRequest,
    origin_url: &str,
    paths: &Paths,
    base: &ServiceSettings,
    sink: &mut EventSink,
    state: &mut JobState,
) -> Result<(String, ServiceSettings), DeployError> {
    let repo = request.repo.as_str();

    // Fetch.
    sink.phase(Status::Fetching, None).await;
    match &request.commit {
        Some(commit) => {
            sink.system(format!(
                "fetching branch {} of {repo} to deploy commit {commit}",
                request.branch
            ))
            .await
        }
        None => {
            sink.system(format!("fetching branch {} of {repo}", request.branch))
                .await
        }
    }
    let lock = agent
        .worktree_lock(&request.sandbox, repo)
        .lock_owned()
        .await;
    // A root agent's last build left the worktree to the build user.
    agent.builder.reclaim(paths.worktree.clone()).await?;
    // Taken after the worktree lock, always in this order.
    let store_lock = agent.store_lock(repo).lock_owned().await;
    let (progress, mut progress_lines) = tokio::sync::mpsc::unbounded_channel();
    let spec = OwnedFetch {
        repo: repo.to_owned(),
        url: origin_url.to_owned(),
        branch: request.branch.clone(),
        credential: request.credential.clone(),
        worktree: paths.worktree.clone(),
        gitdir: paths.gitdir.clone(),
        store: paths.store.clone(),
        cancel: state.git_cancel.clone(),
        progress,
    };
    // The blocking task keeps the locks until git is done, even if this job
    // is cancelled meanwhile; the store's only for the fetch, so other
    // sandboxes of the repo fetch while this one checks out.
    let wanted = request.commit.clone();
    let state_file = paths.state_file.clone();
    let mut fetch = tokio::task::spawn_blocking(move || {
        let _lock = lock;
        let fetched = crate::git::fetch_to_store(&spec.borrowed());
        drop(store_lock);
        let fetched = fetched?;
        // A named commit is checked against the branch before the worktree
        // changes: a refused one leaves everything as it was.
        let commit = match &wanted {
            Some(wanted) => crate::git::on_branch(&spec.borrowed(), &fetched.commit, wanted)?,
            None => fetched.commit.clone(),
        };
        // The worktree is about to change: its build is no longer reusable
        // until this deployment succeeds.
        match std::fs::remove_file(&state_file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("remove the old build record")(err));
            }
            _ => {}
        }
        crate::git::checkout(&spec.borrowed(), &commit)?;
        Ok::<_, DeployError>((fetched, commit))
    });
    let (fetched, commit) = loop {
        tokio::select! {
            line = progress_lines.recv() => {
                if let Some(line) = line {
                    sink.system(line).await;
                }
            }
            joined = &mut fetch => {
                break joined.map_err(DeployError::task("git"))??;
            }
        }
    };
    while let Ok(line) = progress_lines.try_recv() {
        sink.system(line).await;
    }
    if fetched.received_objects == 0 {
        sink.system("nothing new to fetch: the agent had every object".to_owned())
            .await;
    }
    if commit != fetched.commit {
        sink.system(format!(
            "the branch's head is {}; deploying the requested {commit}",
            fetched.commit
        ))
        .await;
    }
    sink.system(format!("checked out {commit}")).await;
    state.commit = Some(commit.clone());

    // Settings: sdp.toml of this commit, then the request's overrides.
    let text = read_sdp_toml(&paths.worktree, repo).await?;
    let settings =
        service::resolve(base, text.as_deref(), &request.overrides).map_err(|source| {
            DeployError::Settings {
                repo: repo.to_owned(),
                source,
            }
        })?;
    sink.system(service::describe(&settings, repo, text.is_some()))
        .await;

    // Build.
    sink.phase(Status::Building, Some(commit.clone())).await;
    let ctx = BuildContext {
        worktree: paths.worktree.clone(),
        artifact_dir: paths.artifact_dir.clone(),
        data_dir: agent.config.data_dir.clone(),
        cache_dir: agent.cache_dir.clone(),
        sandbox_cache: crate::flavour::sandbox_cache(&agent.config.data_dir, &request.sandbox),
        sandbox: request.sandbox.clone(),
        deployment: request.deployment_id.to_string(),
        settings: settings.clone(),
        go: agent.config.go.clone(),
        composer: agent.config.composer.clone(),
        build: agent.config.build.clone(),
        builder: agent.builder.clone(),
    };
    let _building = agent.building();
    agent.flavour.build(&ctx, sink).await?;
    sink.phase(Status::Starting, Some(commit.clone())).await;
    Ok((commit, settings))
}

/// Replaces the container of (sandbox, service) and waits for its health
/// check; returns the service URL.
async fn start_and_check(
    agent: &Agent,
    request: &DeployRequest,
    paths: &Paths,
    settings: &ServiceSettings,
    commit: &str,
    sink: &mut EventSink,
    state: &mut JobState,
) -> Result<String, DeployError> {
    let config = &agent.config;
    let sandbox = request.sandbox.as_str();
    let repo = request.repo.as_str();
    if !agent.docker.image_present(&agent.base_image).await {
        return Err(DeployError::ImageMissing {
            image: agent.base_image.clone(),
        });
    }
    let spec = agent.flavour.container(settings);
    let port = settings.port;
    // Before Docker is touched: a bad working_dir keeps the old container.
    check_working_dir(&paths.worktree, settings).await?;
    let agent_id = agent.agent_id();
    let name = docker::container_name(agent_id, sandbox, repo);
    let owner = [
        (docker::LABEL_AGENT, agent_id),
        (docker::LABEL_SANDBOX, sandbox),
        (docker::LABEL_SERVICE, repo),
    ];
    let kept_port = kept_host_port(agent, paths, &owner, port).await?;
    // A first deployment gets a free port picked here rather than by
    // Docker: a container keeps an explicit port when stopped and started
    // again (a sandbox's sleep and wake), while Docker would pick another.
    let mut publish_port = kept_port.or_else(|| free_port(config.publish_ip()));
    state.touched_docker = true;
    agent.docker.remove_matching(&owner, None).await?;
    if let Some(target) = spec.routes_file {
        let table =
            serde_json::to_vec_pretty(&request.routes).map_err(DeployError::encode("routes"))?;
        write_atomically(&paths.routes_file, table, "the routes file").await?;
        sink.system(format!("{} routes in {target}", request.routes.len()))
            .await;
    }
    let deployment_id = request.deployment_id.to_string();
    let mut picks = 1;
    let container = loop {
        let run = docker::run_spec(&docker::ServiceContainer {
            agent_id,
            deployment_id: &deployment_id,
            sandbox,
            repo,
            branch: &request.branch,
            commit,
            environment: &request.env,
            settings,
            flavour: &spec,
            config,
            image: &agent.base_image,
            worktree: &paths.worktree,
            artifact_dir: &paths.artifact_dir,
            routes_file: &paths.routes_file,
            host_port: publish_port,
        });
        sink.system(format!(
            "starting container {name} from {}: {} in {}",
            run.image,
            run.cmd.join(" "),
            run.working_dir
        ))
        .await;
        let container = agent.docker.create_replacing(&run, &owner).await?;
        match agent.docker.start(&container, publish_port).await {
            // A port picked here was free when picked; any process on the
            // host (another agent's pick, an outgoing connection's source
            // port) may take it before Docker binds it. A kept port is the
            // service's address: that one is reported, not replaced.
            Err(DeployError::PortTaken { port }) if kept_port.is_none() && picks < PORT_PICKS => {
                picks += 1;
                sink.system(format!(
                    "host port {port} was taken between its pick and the start: picking another"
                ))
                .await;
                publish_port = free_port(config.publish_ip());
            }
            started => {
                started?;
                break container;
            }
        }
    };

    // Health.
    let health_path = &settings.health_path;
    let timeout_secs = config.health.timeout_secs;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(HEALTH_REQUEST_TIMEOUT)
        .build()
        .map_err(DeployError::HttpClient)?;
    let mut host_port = None;
    let mut pause = HEALTH_FIRST;
    loop {
        let (published, exited) = agent.docker.state(&container, port).await?;
        if let Some(code) = exited {
            state.log_tail = last_words::tell(&agent.docker, &container, &name, sink).await;
            return Err(DeployError::ContainerExited { code });
        }
        if host_port.is_none()
            && let Some(published) = published
        {
            host_port = Some(published);
            if kept_port != Some(published) {
                let text = published.to_string().into_bytes();
                write_atomically(&paths.port_file, text, "the service's port").await?;
            }
        }
        if let Some(host_port) = host_port {
            let reach = std::net::SocketAddr::new(config.local_reach_ip(), host_port);
            let url = format!("http://{reach}{health_path}");
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                sink.system(format!("health check of {health_path} passed"))
                    .await;
                return Ok(format!("http://{}:{host_port}", config.advertise_host));
            }
        }
        if Instant::now() >= deadline {
            state.log_tail = last_words::tell(&agent.docker, &container, &name, sink).await;
            if host_port.is_none() {
                return Err(DeployError::NoHostPort { port });
            }
            return Err(DeployError::HealthTimeout {
                path: health_path.clone(),
                secs: timeout_secs,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(HEALTH_EVERY);
    }
}

/// Fails unless the settings' `working_dir` (if any) is a directory of
/// the checkout. A symlink may lead to another directory of the checkout,
/// never out of it.
async fn check_working_dir(worktree: &Path, settings: &ServiceSettings) -> Result<(), DeployError> {
    let Some(dir) = settings.working_dir.as_deref() else {
        return Ok(());
    };
    let fail = |why: &'static str| {
        Err(DeployError::WorkingDir {
            dir: dir.to_owned(),
            why,
        })
    };
    let root = tokio::fs::canonicalize(worktree)
        .await
        .map_err(io_err("find the checkout"))?;
    match tokio::fs::canonicalize(worktree.join(dir)).await {
        Err(_) => fail("does not exist in the checkout"),
        Ok(path) if !path.starts_with(&root) => fail("leads out of the checkout"),
        Ok(path) if !path.is_dir() => fail("is not a directory"),
        Ok(_) => Ok(()),
    }
}

/// How many ports a first deployment picks before a taken one fails it.
const PORT_PICKS: u32 = 3;

/// A port free on `ip` now (the system's pick); `None` if none can be
/// had, and Docker picks.
fn free_port(ip: std::net::IpAddr) -> Option<u16> {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .ok()
}

/// The host port (sandbox, service) has kept: the one recorded, else the
/// one its current container publishes (a container from before ports
/// were recorded); `None` for a first deployment.
async fn kept_host_port(
    agent: &Agent,
    paths: &Paths,
    owner: &[(&str, &str)],
    port: u16,
) -> Result<Option<u16>, DeployError> {
    match tokio::fs::read_to_string(&paths.port_file).await {
        Ok(text) => match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => return Ok(Some(port)),
            _ => {
                tracing::warn!(file = %paths.port_file.display(), "ignoring an unreadable port record")
            }
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_err("read the service's port")(source)),
    }
    agent.docker.published_port(owner, port).await
}

/// An owned [`FetchSpec`], to move into `spawn_blocking`.
struct OwnedFetch {
    repo: String,
    url: String,
    branch: String,
    credential: sdp_bus::GitCredential,
    worktree: std::path::PathBuf,
    gitdir: std::path::PathBuf,
    store: std::path::PathBuf,
    cancel: Arc<AtomicBool>,
    progress: tokio::sync::mpsc::UnboundedSender<String>,
}

impl OwnedFetch {
    fn borrowed(&self) -> FetchSpec<'_> {
        FetchSpec {
            repo: &self.repo,
            url: &self.url,
            branch: &self.branch,
            credential: &self.credential,
            worktree: self.worktree.clone(),
            gitdir: self.gitdir.clone(),
            store: self.store.clone(),
            cancel: self.cancel.clone(),
            progress: self.progress.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys() {
        for ok in ["A", "_x", "USERS_URL", "a1"] {
            assert!(is_env_key(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "Ä"] {
            assert!(!is_env_key(bad), "{bad}");
        }
    }
}
