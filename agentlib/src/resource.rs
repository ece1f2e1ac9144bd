//! Sandbox resources (`agent.cmd.<agent_id>.resource_ensure`): one
//! container per (sandbox, resource) from the engine's base image, its
//! data in a named volume per (sandbox, resource) that outlives the
//! container, redeploys of services and this agent's restarts (reconcile
//! keeps `sdp.resource` containers), until the sandbox is torn down or
//! the resource is reset (volume dropped, made and seeded anew).
//!
//! The password of user `sdp` reaches the server by its container's env
//! and the clients of the health check and the seed by their exec's env;
//! never an argv, a log line, an event or an error. Seed SQL goes in by
//! the client's stdin.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sdp_bus::{
    ResourceEngine, ResourceEnsure, ResourceReady, ResourceRemove, ResourceRemoved, ResourceSeed,
    ResourceSize, ResourceSizeList, RpcError, RpcErrorCode,
};

use crate::docker::{self, ResourceContainer};
use crate::reply::bad_request;
use crate::state::Agent;

/// The largest seed read into memory and fed to the client.
const MAX_SEED_BYTES: u64 = 64 << 20;

/// `sdp-resource.<agent>.<sandbox>.<resource>`: agent ids and sandbox and
/// resource names have no dots, so no two share a name, and none is a
/// service's (`sdp.<agent>.…`).
pub fn resource_name(agent_id: &str, sandbox: &str, resource: &str) -> String {
    format!("sdp-resource.{agent_id}.{sandbox}.{resource}")
}

fn internal(what: &str, err: impl std::fmt::Display) -> RpcError {
    RpcError::new(RpcErrorCode::Internal, format!("{what} failed: {err}"))
}

/// A password the server can take inside a quoted SQL string and a URL:
/// 16-128 of `[A-Za-z0-9]`.
fn check_password(password: &str) -> Result<(), RpcError> {
    let ok =
        (16..=128).contains(&password.len()) && password.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(bad_request(
            "the resource password must be 16-128 of A-Z a-z 0-9",
        ))
    }
}

/// Handles one [`ResourceEnsure`]; see the module doc.
pub(crate) async fn ensure(
    agent: &Agent,
    request: ResourceEnsure,
) -> Result<ResourceReady, RpcError> {
    sdp_bus::validate::resource_name("resource name", &request.name)
        .map_err(|e| bad_request(e.to_string()))?;
    check_password(request.password.expose())?;
    if request.seed.is_some() && request.engine == ResourceEngine::Redis {
        return Err(bad_request("a redis resource cannot be seeded"));
    }
    // Read before Docker is touched: a bad seed changes nothing.
    let seed = match &request.seed {
        Some(seed) => Some(read_seed(agent, seed, request.credential.as_ref()).await?),
        None => None,
    };
    let agent_id = agent.agent_id();
    let name = resource_name(agent_id, &request.sandbox, &request.name);
    let labels = HashMap::from([
        (docker::LABEL_AGENT.to_owned(), agent_id.to_owned()),
        (docker::LABEL_SANDBOX.to_owned(), request.sandbox.clone()),
        (docker::LABEL_RESOURCE.to_owned(), request.name.clone()),
    ]);
    let owner = [
        (docker::LABEL_AGENT, agent_id),
        (docker::LABEL_SANDBOX, request.sandbox.as_str()),
        (docker::LABEL_RESOURCE, request.name.as_str()),
    ];
    let port = request.engine.port();
    let fail = |e: crate::error::DeployError| internal("the resource", e.user_message());
    // The host port stays across a reset, so the URL services hold does.
    let kept_port = agent
        .docker
        .published_port(&owner, port)
        .await
        .map_err(fail)?;
    if request.reset {
        agent
            .docker
            .remove_matching(&owner, Some(&name))
            .await
            .map_err(fail)?;
        agent.docker.remove_volume(&name).await.map_err(fail)?;
    }
    let created = agent
        .docker
        .ensure_volume(&name, &labels)
        .await
        .map_err(fail)?;
    let running = running_container(agent, &owner).await.map_err(fail)?;
    let id = match running {
        Some(id) => id,
        None => {
            // Stopped (a host reboot without the engine's restart, a
            // sleep) or never made: made anew on the same volume.
            agent
                .docker
                .remove_matching(&owner, Some(&name))
                .await
                .map_err(fail)?;
            let spec = ResourceContainer {
                name: name.clone(),
                image: agent.config.resources.image(request.engine).to_owned(),
                labels,
                env: vec![format!(
                    "SDP_RESOURCE_PASSWORD={}",
                    request.password.expose()
                )],
                volume: name.clone(),
                port,
                host_ip: publish_ip(&agent.config).await,
                host_port: kept_port,
                memory: agent.config.resources.memory.bytes(),
                pids_limit: agent.config.container.pids_limit,
            };
            let id = agent.docker.create_resource(&spec).await.map_err(fail)?;
            agent.docker.start(&id, kept_port).await.map_err(fail)?;
            id
        }
    };
    let timeout = Duration::from_secs(agent.config.resources.ready_timeout_secs);
    wait_ready(
        agent,
        &id,
        request.engine,
        request.password.expose(),
        timeout,
    )
    .await?;
    if created
        && let Some(sql) = seed
        && let Err(err) = run_seed(agent, &id, request.engine, request.password.expose(), sql).await
    {
        // Nothing half-seeded stays: the next ensure starts afresh.
        let _ = agent.docker.remove_matching(&owner, Some(&name)).await;
        let _ = agent.docker.remove_volume(&name).await;
        return Err(err);
    }
    let (host_port, _) = agent.docker.state(&id, port).await.map_err(fail)?;
    let port = host_port.ok_or_else(|| internal("the resource", "no published port"))?;
    tracing::info!(sandbox = %request.sandbox, resource = %request.name, engine = request.engine.as_str(), port, created, reset = request.reset, "resource ready");
    Ok(ResourceReady {
        host: agent.config.advertise_host.clone(),
        port,
        size_bytes: volume_size(agent, &id).await,
        created,
    })
}

/// Handles one [`ResourceRemove`]: the resource's container and volume go
/// (found by their labels and name). Idempotent.
pub(crate) async fn remove(
    agent: &Agent,
    request: &ResourceRemove,
) -> Result<ResourceRemoved, RpcError> {
    sdp_bus::validate::resource_name("resource name", &request.name)
        .map_err(|e| bad_request(e.to_string()))?;
    let agent_id = agent.agent_id();
    let name = resource_name(agent_id, &request.sandbox, &request.name);
    let owner = [
        (docker::LABEL_AGENT, agent_id),
        (docker::LABEL_SANDBOX, request.sandbox.as_str()),
        (docker::LABEL_RESOURCE, request.name.as_str()),
    ];
    let fail = |e: crate::error::DeployError| internal("removing the resource", e.user_message());
    let containers = agent
        .docker
        .remove_matching(&owner, Some(&name))
        .await
        .map_err(fail)?;
    let volumes = agent
        .docker
        .remove_volumes_labelled(&owner)
        .await
        .map_err(fail)?;
    // One made under the name without its labels is not ours to keep.
    agent.docker.remove_volume(&name).await.map_err(fail)?;
    Ok(ResourceRemoved {
        removed: u32::try_from(containers + volumes).unwrap_or(u32::MAX),
    })
}

/// Handles one [`ResourceSizes`]: the data size of each running resource
/// container of this agent, measured one after the other (a poll is at
/// most one exec per resource).
pub(crate) async fn sizes(agent: &Agent) -> Result<ResourceSizeList, RpcError> {
    let containers = agent
        .docker
        .containers_labelled(&[
            (docker::LABEL_AGENT, agent.agent_id()),
            (docker::LABEL_RESOURCE, ""),
        ])
        .await
        .map_err(|e| internal("listing the resources", e.user_message()))?;
    let mut sizes = Vec::new();
    for container in containers {
        let running = matches!(
            container.state,
            Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
        );
        let labels = container.labels.unwrap_or_default();
        let (Some(id), Some(sandbox), Some(name)) = (
            container.id,
            labels.get(docker::LABEL_SANDBOX),
            labels.get(docker::LABEL_RESOURCE),
        ) else {
            continue;
        };
        if !running {
            continue;
        }
        if let Some(size_bytes) = measure(agent, &id).await {
            sizes.push(ResourceSize {
                sandbox: sandbox.clone(),
                name: name.clone(),
                size_bytes,
            });
        }
    }
    Ok(ResourceSizeList { sizes })
}

/// Where a resource's port is published: the agent's publish address
/// (`publish_addr`, else `advertise_host` when it is an IP). When that is
/// every address (an `advertise_host` name without `publish_addr`), the
/// name's first address that is this host's own: a database should not
/// answer on interfaces nobody was told about. Every address only when the
/// name resolves to none of this host's.
async fn publish_ip(config: &crate::config::AgentConfig) -> std::net::IpAddr {
    let configured = config.publish_ip();
    if !configured.is_unspecified() {
        return configured;
    }
    let host = config.advertise_host.clone();
    let local = tokio::task::spawn_blocking(move || local_address_of(&host))
        .await
        .ok()
        .flatten();
    match local {
        Some(ip) => ip,
        None => {
            tracing::warn!(advertise_host = %config.advertise_host, "advertise_host resolves to no address of this host: resources publish on every address (set publish_addr)");
            configured
        }
    }
}

/// The first address `host` resolves to that a socket can be bound to
/// here (so one of this host's).
fn local_address_of(host: &str) -> Option<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .ok()?
        .map(|addr| addr.ip())
        .find(|ip| !ip.is_unspecified() && std::net::UdpSocket::bind((*ip, 0)).is_ok())
}

async fn running_container(
    agent: &Agent,
    owner: &[(&str, &str)],
) -> Result<Option<String>, crate::error::DeployError> {
    for (id, _) in agent.docker.list_labelled(owner).await? {
        if let (_, None) = agent.docker.state(&id, 0).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The client check that the server accepts its user, as (argv, env).
fn health_check(engine: ResourceEngine, password: &str) -> (Vec<&'static str>, Vec<String>) {
    match engine {
        ResourceEngine::Postgres => (
            vec![
                "psql", "-h", "/tmp", "-U", "sdp", "-d", "app", "-tAc", "SELECT 1",
            ],
            Vec::new(),
        ),
        ResourceEngine::Mariadb => (
            vec![
                "mariadb",
                "--socket=/tmp/mysqld.sock",
                "-u",
                "sdp",
                "app",
                "-e",
                "SELECT 1",
            ],
            vec![format!("MYSQL_PWD={password}")],
        ),
        ResourceEngine::Redis => (
            vec!["redis-cli", "ping"],
            vec![format!("REDISCLI_AUTH={password}")],
        ),
    }
}

/// Waits until the health check passes, the container exits, or `timeout`.
async fn wait_ready(
    agent: &Agent,
    id: &str,
    engine: ResourceEngine,
    password: &str,
    timeout: Duration,
) -> Result<(), RpcError> {
    let (argv, env) = health_check(engine, password);
    let argv: Vec<String> = argv.into_iter().map(str::to_owned).collect();
    let started = Instant::now();
    loop {
        if let Ok((_, Some(code))) = agent.docker.state(id, 0).await {
            return Err(internal(
                "starting the resource",
                format!("its server exited with code {code}"),
            ));
        }
        if let Ok((Some(0), output)) = agent
            .docker
            .exec_with(id, argv.clone(), env.clone(), None)
            .await
            && (engine != ResourceEngine::Redis || output.contains("PONG"))
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(RpcError::new(
                RpcErrorCode::Unavailable,
                format!(
                    "the resource did not accept connections within {}s",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the seed SQL through the engine's client, stopping at the first
/// error.
async fn run_seed(
    agent: &Agent,
    id: &str,
    engine: ResourceEngine,
    password: &str,
    sql: Vec<u8>,
) -> Result<(), RpcError> {
    let (argv, env): (Vec<&str>, Vec<String>) = match engine {
        ResourceEngine::Postgres => (
            vec![
                "psql",
                "-h",
                "/tmp",
                "-U",
                "sdp",
                "-d",
                "app",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
            ],
            Vec::new(),
        ),
        ResourceEngine::Mariadb => (
            vec!["mariadb", "--socket=/tmp/mysqld.sock", "-u", "sdp", "app"],
            vec![format!("MYSQL_PWD={password}")],
        ),
        ResourceEngine::Redis => return Err(bad_request("a redis resource cannot be seeded")),
    };
    let argv = argv.into_iter().map(str::to_owned).collect();
    let (code, output) = agent
        .docker
        .exec_with(id, argv, env, Some(sql))
        .await
        .map_err(|e| internal("seeding the resource", e.user_message()))?;
    if code != Some(0) {
        let tail: String = output.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        return Err(RpcError::new(
            RpcErrorCode::BadRequest,
            format!("the seed failed: {tail}"),
        ));
    }
    Ok(())
}

/// The volume's size in bytes as `du` in the container sees it (0 if
/// unknown).
pub(crate) async fn volume_size(agent: &Agent, id: &str) -> u64 {
    measure(agent, id).await.unwrap_or(0)
}

/// `du -sk /data` in the resource's container: an argv exec (busybox's
/// `du`, no shell). bollard's `system df` model is Docker 25's
/// (`VolumeUsage`), which older engines do not answer, and the volume's
/// mountpoint is the engine's (root's) to read, not the agent's.
async fn measure(agent: &Agent, id: &str) -> Option<u64> {
    let argv = vec!["du".to_owned(), "-sk".to_owned(), "/data".to_owned()];
    match agent.docker.exec_with(id, argv, Vec::new(), None).await {
        Ok((Some(0), output)) => output
            .split_whitespace()
            .next()
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024),
        _ => None,
    }
}

/// The seed's SQL: a file of a repo's branch, or a dump under `dumps_dir`.
async fn read_seed(
    agent: &Agent,
    seed: &ResourceSeed,
    credential: Option<&sdp_bus::GitCredential>,
) -> Result<Vec<u8>, RpcError> {
    match seed {
        ResourceSeed::Dump { file } => {
            let dir = agent.config.resources.dumps_dir.clone().ok_or_else(|| {
                bad_request("this agent has no resources.dumps_dir: dump seeds are off")
            })?;
            let path = dump_path(&dir, file)?;
            let read = tokio::task::spawn_blocking(move || read_limited(&path))
                .await
                .map_err(|e| internal("reading the dump", e))?;
            read.map_err(|why| bad_request(format!("cannot read dump {file}: {why}")))
        }
        ResourceSeed::Repo { repo, branch, path } => {
            let credential = credential
                .cloned()
                .ok_or_else(|| bad_request("a repo seed needs the requester's git credential"))?;
            read_repo_file(agent, repo, branch, path, credential).await
        }
    }
}

/// `file` under `dir`: relative, no `..`, and still under `dir` once
/// symlinks are resolved.
fn dump_path(dir: &Path, file: &str) -> Result<PathBuf, RpcError> {
    let relative = Path::new(file);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if file.is_empty() || !plain {
        return Err(bad_request(
            "a dump seed names a file relative to the agent's dumps_dir, without ..",
        ));
    }
    let root = dir
        .canonicalize()
        .map_err(|e| internal("opening resources.dumps_dir", e))?;
    let path = root
        .join(relative)
        .canonicalize()
        .map_err(|_| bad_request(format!("no dump {file} on this agent")))?;
    if !path.starts_with(&root) {
        return Err(bad_request(format!("dump {file} is outside the dumps dir")));
    }
    Ok(path)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".to_owned());
    }
    if meta.len() > MAX_SEED_BYTES {
        return Err(format!("larger than {} MiB", MAX_SEED_BYTES >> 20));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Fetches `branch` of `repo` into the repo's shared store (like a
/// service checkout) and reads the blob at `path` of its head.
async fn read_repo_file(
    agent: &Agent,
    repo: &str,
    branch: &str,
    path: &str,
    credential: sdp_bus::GitCredential,
) -> Result<Vec<u8>, RpcError> {
    sdp_bus::validate::repo(repo).map_err(|e| bad_request(e.to_string()))?;
    sdp_bus::validate::branch(branch).map_err(|e| bad_request(e.to_string()))?;
    let plain = !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(bad_request(
            "a seed path is relative to the repo, without ..",
        ));
    }
    let repos_dir = agent.config.repos_dir.clone();
    let schemes = agent.config.git.allowed_schemes.clone();
    let data_dir = agent.config.data_dir.clone();
    let (repo, branch, path) = (repo.to_owned(), branch.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let url = crate::git::origin_url(&repos_dir, &repo, &schemes).map_err(RpcError::from)?;
        let store = crate::git_store::path(&data_dir, &repo);
        let (progress, _) = tokio::sync::mpsc::unbounded_channel();
        let spec = crate::git::FetchSpec {
            repo: &repo,
            url: &url,
            branch: &branch,
            credential: &credential,
            worktree: PathBuf::new(),
            gitdir: PathBuf::new(),
            store: store.clone(),
            cancel: Arc::new(AtomicBool::new(false)),
            progress,
        };
        let fetched = crate::git::fetch_to_store(&spec)
            .map_err(|e| bad_request(format!("cannot fetch the seed: {}", e.user_message())))?;
        let repository =
            crate::git_store::open(&store).map_err(|e| internal("opening the repo's store", e))?;
        let blob = git2::Oid::from_str(&fetched.commit)
            .and_then(|oid| repository.find_commit(oid))
            .and_then(|commit| commit.tree())
            .and_then(|tree| tree.get_path(Path::new(&path)))
            .and_then(|entry| entry.to_object(&repository))
            .and_then(|object| object.peel_to_blob())
            .map_err(|_| bad_request(format!("no file {path} on branch {branch} of {repo}")))?;
        if blob.size() as u64 > MAX_SEED_BYTES {
            return Err(bad_request(format!(
                "seed {path} is larger than {} MiB",
                MAX_SEED_BYTES >> 20
            )));
        }
        Ok(blob.content().to_vec())
    })
    .await
    .map_err(|e| internal("reading the seed", e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_path_stays_inside_the_dumps_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.sql"), "SELECT 1;").expect("write");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("b.sql"), "SELECT 1;").expect("write");
        std::os::unix::fs::symlink(outside.path().join("b.sql"), dir.path().join("link.sql"))
            .expect("symlink");
        assert!(dump_path(dir.path(), "a.sql").is_ok());
        for bad in [
            "../a.sql",
            "/etc/passwd",
            "",
            "link.sql",
            "missing.sql",
            "./a.sql",
        ] {
            assert!(dump_path(dir.path(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_plain_and_long_enough() {
        assert!(check_password("abcdefghABCDEFGH1234").is_ok());
        for bad in ["short", "abcdefghABCDEFGH12'4", "abcdefghABCDEFGH12 4"] {
            assert!(check_password(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_publishes_on_its_local_address_only() {
        assert_eq!(
            local_address_of("localhost").map(|ip| ip.is_loopback()),
            Some(true)
        );
        // TEST-NET-3: routable, never this host's.
        assert_eq!(local_address_of("203.0.113.7"), None);
    }

    #[test]
    fn names_do_not_collide_with_services() {
        assert_eq!(
            resource_name("t-1", "alpha", "db"),
            "sdp-resource.t-1.alpha.db"
        );
    }
}
