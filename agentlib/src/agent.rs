//! The agent's loop, above every handler: [`run`] (one loop over the
//! subscriptions of [`rpc::subscribe_all`], each message to its handler in
//! its own task), the heartbeats and the build-cache warm-up. The state
//! the handlers share is [`crate::state::Agent`], below them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use sdp_bus::{Heartbeat, encode, subject};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::build_container::BuildBox;
use crate::config::AgentConfig;
use crate::docker::DockerClient;
use crate::error::AgentError;
use crate::flavour::Flavour;
use crate::rpc;

use crate::state::Agent;
pub use crate::state::BuildGuard;

pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// How long jobs get to publish their results after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Docker can publish only on an address of this host; an agent
/// configured with another one (a typo, the wrong host's file) would fail
/// every deployment at its start, so it refuses to start instead.
fn check_publish_addr(ip: std::net::IpAddr) -> Result<(), AgentError> {
    match std::net::TcpListener::bind((ip, 0)) {
        Ok(_) => Ok(()),
        Err(source) if source.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(AgentError::PublishAddr { ip, source })
        }
        // Anything else (a sandbox that forbids binding) is not proof the
        // address is foreign; Docker will tell.
        Err(_) => Ok(()),
    }
}

/// Runs the agent until `shutdown` fires: connects to NATS and Docker,
/// serves deploy requests and RPCs of the flavour's kind, heartbeats. On
/// shutdown, in-flight deployments are cancelled and get
/// [`SHUTDOWN_GRACE`] to publish their results.
pub async fn run(
    mut config: AgentConfig,
    flavour: Arc<dyn Flavour>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    config.validate()?;
    check_publish_addr(config.publish_ip())?;
    let toolchains = flavour
        .toolchains(&config)
        .map_err(AgentError::Toolchains)?;
    config.data_dir = absolute_dir(&config.data_dir, true)?;
    config.repos_dir = absolute_dir(&config.repos_dir, false)?;
    let cache_dir = match &config.flavour.cache_dir {
        Some(dir) => absolute_dir(dir, true)?,
        None => absolute_dir(&config.data_dir.join("cache"), true)?,
    };
    let kind = flavour.kind();
    let base_image = config
        .flavour
        .base_image
        .clone()
        .unwrap_or_else(|| flavour.default_base_image().to_owned());
    let name = format!("sdp-agent-{kind}-{}", config.agent.id);

    let client = tokio::select! {
        client = sdp_bus::nats::connect(&config.nats, &name) => client?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let docker = DockerClient::connect().await?;
    let builder = BuildBox::connect(&config).await?;
    let leftovers = builder.remove_leftovers().await;
    if leftovers > 0 {
        tracing::info!(
            count = leftovers,
            "removed build containers left by an earlier run"
        );
    }
    let js = jetstream::new(client.clone());

    // Subscribed before the agent exists, so a refused subscription fails
    // the start.
    let mut requests = rpc::subscribe_all(&client, kind, &config.agent.id).await?;

    let stop = shutdown.child_token();
    let agent = Arc::new(Agent {
        slots: Arc::new(Semaphore::new(config.agent.max_parallel as usize)),
        config,
        flavour,
        base_image,
        cache_dir,
        client: client.clone(),
        js,
        docker,
        builder,
        shutdown: stop.clone(),
        give_up: CancellationToken::new(),
        tasks: TaskTracker::new(),
        jobs: Mutex::new(HashMap::new()),
        worktree_locks: Mutex::new(HashMap::new()),
        store_locks: Mutex::new(HashMap::new()),
        build_cache: Mutex::new(None),
        builds: tokio::sync::watch::Sender::new(0),
        log_streams: std::sync::atomic::AtomicU32::new(0),
        host: crate::host::hostname(),
    });
    tracing::info!(agent_id = agent.agent_id(), kind, base_image = %agent.base_image, toolchains = %toolchains.join(", "), "agent started");

    // Warm-up first, so the first heartbeat already says `warming`.
    let warm = warm_build_cache(agent.clone(), stop.clone());
    let heartbeat = tokio::spawn(heartbeats(agent.clone()));
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = requests.next() => next,
        };
        // A subscription that ended (the connection closed for good)
        // stops the agent.
        let Some(Some((handler, message))) = next else {
            break;
        };
        let tasks = agent.tasks.clone();
        tasks.spawn(handler(agent.clone(), message));
    }

    tracing::info!("agent stopping");
    // Dropping the subscriptions unsubscribes: no new request reaches an
    // agent that is winding down.
    drop(requests);
    heartbeat.abort();
    if let Some(warm) = warm {
        warm.abort();
    }
    // Jobs' cancel tokens are children of `stop`: they wind down now.
    stop.cancel();
    agent.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, agent.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("deployments did not finish within the shutdown grace period");
        agent.give_up.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), agent.tasks.wait()).await;
    }
    // The warm-up's container, and any build whose removal was left to a
    // task that did not get to run.
    let _ = tokio::time::timeout(Duration::from_secs(10), agent.builder.remove_leftovers()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    tracing::info!("agent stopped");
    Ok(())
}

fn absolute_dir(path: &Path, create: bool) -> Result<PathBuf, AgentError> {
    let err = |source| AgentError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    if create {
        std::fs::create_dir_all(path).map_err(err)?;
    }
    match path.canonicalize() {
        Ok(p) => Ok(p),
        Err(_) if !create => std::path::absolute(path).map_err(err),
        Err(e) => Err(err(e)),
    }
}

/// Starts the flavour's cache warm-up in the background. Deploys never wait
/// for it; it waits for them: while a deployment builds, the warm-up is
/// stopped (its child killed; what it finished stays in the cache) and it
/// starts again once no build runs, so a first deploy on a fresh agent
/// gets the CPU and compiles the standard library only once.
fn warm_build_cache(
    agent: Arc<Agent>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    // Only flavours with a cache to warm; the future is made again (and
    // only then runs) each time the warm-up (re)starts.
    drop(
        agent
            .flavour
            .warm_cache(&agent.builder, &agent.cache_dir, &agent.config)?,
    );
    agent.set_build_cache("warming".to_owned());
    Some(tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut builds = agent.builds.subscribe();
        let result = loop {
            // Cancel-safe: `wait_for` only reads the watch.
            tokio::select! {
                idle = builds.wait_for(|n| *n == 0) => if idle.is_err() { return },
                _ = stop.cancelled() => return,
            }
            let Some(warm) =
                agent
                    .flavour
                    .warm_cache(&agent.builder, &agent.cache_dir, &agent.config)
            else {
                return;
            };
            agent.set_build_cache("warming".to_owned());
            tokio::select! {
                result = warm => break result,
                // Dropping the future kills the child.
                _ = stop.cancelled() => return,
                busy = builds.wait_for(|n| *n > 0) => {
                    if busy.is_err() { return }
                    tracing::info!("a deployment is building: build-cache warm-up paused");
                    agent.set_build_cache("paused".to_owned());
                }
            }
        };
        let state = match result {
            Ok(()) => {
                tracing::info!(secs = started.elapsed().as_secs_f64(), "build cache warm");
                "warm".to_owned()
            }
            Err(reason) => {
                tracing::warn!(%reason, "build cache warm-up failed");
                format!("failed: {reason}")
            }
        };
        agent.set_build_cache(state);
    }))
}

async fn heartbeats(agent: Arc<Agent>) {
    let subject = subject::agent_heartbeat(agent.kind(), agent.agent_id());
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // This task runs once per agent process: its start marks a restart.
    let started_at = chrono::Utc::now();
    loop {
        ticker.tick().await;
        let running = agent.running();
        let mut missing_images = Vec::new();
        for image in [&agent.base_image, &agent.config.build.image] {
            if !agent.docker.image_present(image).await {
                missing_images.push(image.clone());
            }
        }
        let repos_dir = agent.config.repos_dir.clone();
        let repos = tokio::task::spawn_blocking(move || crate::git::list_repos(&repos_dir))
            .await
            .unwrap_or_default();
        // Looked for again each time (a few VERSION files): a toolchain
        // installed since shows, as builds would use it.
        let (flavour, config) = (agent.flavour.clone(), agent.config.clone());
        let toolchains = tokio::task::spawn_blocking(move || flavour.toolchains(&config))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let heartbeat = Heartbeat {
            agent_id: agent.agent_id().to_owned(),
            kind: agent.kind().to_owned(),
            host: agent.host.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capacity: agent
                .config
                .agent
                .max_parallel
                .saturating_sub(running.len() as u32),
            running,
            missing_images,
            repos,
            started_at: Some(started_at),
            build_cache: agent
                .build_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            log_streams: agent.log_streams.load(std::sync::atomic::Ordering::Relaxed),
            toolchains,
            serves: Some(crate::rpc::served_methods(agent.kind(), agent.agent_id())),
        };
        if let Err(err) = agent
            .client
            .publish(subject.clone(), Bytes::from(encode(&heartbeat)))
            .await
        {
            tracing::warn!(error = %err, "cannot publish a heartbeat");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_address_of_another_host_is_refused_naming_the_keys() {
        check_publish_addr("127.0.0.1".parse().expect("ip")).expect("loopback is ours");
        // TEST-NET-3: never an address of this host.
        let err = check_publish_addr("203.0.113.77".parse().expect("ip")).expect_err("foreign");
        let message = err.to_string();
        assert!(
            message.contains("203.0.113.77") && message.contains("advertise_host"),
            "{message}"
        );
    }
}
