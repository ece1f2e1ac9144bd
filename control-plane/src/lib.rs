//! The SDP control plane.
//!
//! [`run`] starts, on one tokio runtime:
//! - the axum server ([`api`]): REST under `/api`, the deployment
//!   WebSocket bridge, health probes, `/metrics` ([`metrics`], with the
//!   live [`counters`]), the embedded dashboard, and in front of every
//!   route the preview entry ([`api::preview`]: a request for
//!   `<sandbox>.<preview_domain>` goes to that sandbox's gateway);
//! - the heartbeat follower and the agent watchdog ([`agents`]), which fails
//!   deployments whose agent went silent (publishing the failure through
//!   [`events`]);
//! - the orchestrator ([`orchestrator`]): deploys (a template's plan, one
//!   service, a gateway re-apply), follows results to flip routes to the
//!   sandbox and re-apply gateways, tears sandboxes down, reconciles agents
//!   reaps expired sandboxes and puts idle ones to sleep;
//! - the session sweeper ([`sessions`]);
//! - the log persister ([`persister`]) with its own NATS connection and
//!   SQLite connection, unless `persister.embedded = false` (then it runs as
//!   `sdp-control-plane persist`).
//!
//! The other modules:
//! - the agent client ([`agent_client`]), the one typed client for requests
//!   to agents (`deploy.request.<kind>`, `agent.rpc.<kind>.*`,
//!   `agent.cmd.<id>.*`): timeout, no responders, `Reply` decoding, one
//!   error type;
//! - repos ([`repos`]): what repos the agents hold (cached) and
//!   their branches;
//! - route tables ([`routing`]), from pure resolution rules;
//! - runtime logs ([`runtime_logs`]): a running container's output from its
//!   agent to an HTTP response, with a credit window, never stored;
//! - checks asked of agents on request: the staleness of running services
//!   ([`staleness`], `branch_status`) and the route probe from a
//!   sandbox's gateway ([`probe`], `agent.cmd.<id>.probe`);
//! - SQLite ([`store`]): deployments, events, sandboxes, templates and
//!   environments, sessions, and the deployment status rules
//!   ([`store::status`]);
//! - sessions ([`sessions`]): tokens, expiry, and the credential held in
//!   memory for a session only; the login throttle ([`throttle`]); each
//!   user's bound on open WebSockets and runtime-log streams
//!   ([`user_streams`]);
//! - the typed config ([`config`]): TOML file and `SDP_CONTROL_PLANE__…` overrides;
//! - notifications ([`notify`]): build statuses in Bitbucket and outgoing
//!   webhooks of a deployment that settles or a test run that ends, on a
//!   queue task that retries with backoff and records each outcome;
//! - push webhooks ([`webhooks`]): signature, replay window, Bitbucket
//!   payloads, and the two secret files read at start.
//!
//! Module layers: [`run`] → [`api`] (its router → the handlers → their
//! shared `access` and `view` helpers and `cookie`) → the orchestrator,
//! the agent registry and client → [`store`], [`config`], [`counters`].
//! No module imports one above it, except that a submodule may use its
//! parent's items (the handlers `api`'s `AppState`);
//! `scripts/lib/cycles.sh` checks that no import circle forms.
//!
//! It talks to agents only over NATS (`sdp_bus::subject`): deploy requests,
//! RPCs, commands and cancels out, progress events (JetStream
//! `DEPLOY_PROGRESS`) and heartbeats in. Shutdown: the caller's token stops
//! every task; in-flight HTTP requests get a grace period.

pub mod agent_client;
pub mod agents;
pub mod api;
pub mod audit;
pub mod client_addr;
pub mod config;
pub mod counters;
pub mod events;
pub mod metrics;
pub mod notify;
pub mod orchestrator;
pub mod persister;
pub mod probe;
pub mod repos;
pub mod routing;
pub mod runtime_logs;
pub mod sessions;
pub mod staleness;
pub mod store;
pub mod throttle;
pub mod user_streams;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create data dir {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Connect(#[from] sdp_bus::nats::ConnectError),
    #[error(transparent)]
    Stream(#[from] sdp_bus::stream::EnsureStreamError),
    #[error("cannot subscribe to heartbeats")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Persister(#[from] persister::PersisterError),
    #[error(transparent)]
    SecretFile(#[from] webhooks::secrets::SecretFileError),
}

/// How long in-flight requests get to finish once shutdown fires.
const GRACE: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` fires.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    std::fs::create_dir_all(config.data_dir.join("logs")).map_err(|source| RunError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let secrets = webhooks::secrets::load(&config)?;
    for path in [
        &config.webhooks.bitbucket_secret_file,
        &config.git.service_credential_file,
    ]
    .into_iter()
    .flatten()
    {
        if webhooks::secrets::readable_by_everyone(path) {
            tracing::warn!(file = %path.display(), "a secret file is readable by every user: chmod 600 (or 640 to the service's group)");
        }
    }
    let store = store::Store::open(&config.data_dir.join("sdp.db"))?;
    // Starting waits on NATS (which may be going down too): a shutdown
    // meanwhile must not wait for its timeouts.
    let connected = async {
        let nats = sdp_bus::nats::connect(&config.nats, "sdp-control-plane").await?;
        sdp_bus::stream::ensure_deploy_progress(
            &async_nats::jetstream::new(nats.clone()),
            config.nats.stream_replicas,
        )
        .await?;
        Ok::<_, RunError>(nats)
    };
    let nats = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        nats = connected => nats?,
    };

    let registry = agents::Registry::default();
    let sessions = sessions::Sessions::new(
        store.clone(),
        config.auth.session_idle,
        config.auth.session_max,
    );
    let config = Arc::new(config);
    let tasks = tokio_util::task::TaskTracker::new();

    let heartbeats = nats.subscribe(sdp_bus::subject::AGENT_HEARTBEAT_ALL).await;
    drop(heartbeats); // only to fail early if subscribing is refused
    tasks.spawn({
        let (nats, registry, shutdown) = (nats.clone(), registry.clone(), shutdown.clone());
        async move {
            if let Err(err) = agents::follow_heartbeats(nats, registry, shutdown).await {
                tracing::error!(error = %err, "heartbeat follower stopped");
            }
        }
    });
    tasks.spawn(agents::watchdog(
        nats.clone(),
        store.clone(),
        registry.clone(),
        config.agents.heartbeat_timeout,
        shutdown.clone(),
    ));
    tasks.spawn({
        let (sessions, shutdown) = (sessions.clone(), shutdown.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(300));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => if let Err(err) = sessions.sweep() {
                        tracing::warn!(error = %err, "session sweep failed");
                    },
                }
            }
        }
    });
    if config.persister.embedded {
        let (nats_config, data_dir, refusals, shutdown) = (
            config.nats.clone(),
            config.data_dir.clone(),
            registry.refusals().clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            if let Err(err) =
                persister::run(&nats_config, &data_dir, refusals, shutdown.clone()).await
            {
                tracing::error!(error = %err, "log persister stopped; shutting down");
                shutdown.cancel();
            }
        });
    }

    // The writer is tracked: it ends (writing what is queued) once the
    // last handle is dropped (the router, the orchestrator and
    // the notifier hold one).
    let (audit, audit_writer) = audit::Audit::start(store.clone());
    tasks.spawn(audit_writer);
    let mut orchestrator = orchestrator::Orchestrator::new(
        store.clone(),
        nats.clone(),
        registry.clone(),
        sessions.clone(),
        config.agents.request_timeout,
        config.agents.heartbeat_timeout,
    );
    orchestrator.notifier = notify::Notifier::start(
        &config,
        store.clone(),
        secrets.service_credential.clone(),
        audit.clone(),
        &tasks,
        shutdown.clone(),
    );
    orchestrator.audit = audit.clone();
    orchestrator.service_credential = secrets.service_credential;
    orchestrator.default_ttl_hours = config.sandboxes.default_ttl_hours;
    tasks.spawn(orchestrator.clone().follow_results(shutdown.clone()));
    tasks.spawn(
        orchestrator
            .clone()
            .reconciler(Duration::from_secs(300), shutdown.clone()),
    );
    tasks.spawn(
        orchestrator
            .clone()
            .reaper(config.sandboxes.reap_interval, shutdown.clone()),
    );
    tasks.spawn(audit::prune(
        store.clone(),
        config.audit.keep_for,
        config.audit.prune_interval,
        shutdown.clone(),
    ));
    tasks.spawn(
        orchestrator
            .clone()
            .resource_sizer(config.sandboxes.resource_size_interval, shutdown.clone()),
    );
    if let Some(sleep_after) = config.sandboxes.sleep_after {
        tasks.spawn(orchestrator.clone().sleeper(sleep_after, shutdown.clone()));
    }
    let state = api::AppState {
        config: config.clone(),
        store,
        sessions,
        registry,
        nats,
        orchestrator,
        viewers: counters::Viewers::default(),
        throttle: throttle::LoginThrottle::new(
            config.auth.throttle_user_failures,
            config.auth.throttle_address_failures,
            config.auth.throttle_window,
        ),
        hooks: api::Hooks::new(secrets.hook_secret),
        streams: user_streams::UserStreams::default(),
        audit,
    };
    let app = api::router(state);
    tracing::info!(addr = %listener.local_addr().map_err(RunError::Serve)?, "control plane listening");
    let graceful = {
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(graceful);
    let result = tokio::select! {
        result = server => result.map_err(RunError::Serve),
        () = async { shutdown.cancelled().await; tokio::time::sleep(GRACE).await } => {
            tracing::warn!("in-flight requests did not finish within {GRACE:?}");
            Ok(())
        }
    };
    tasks.close();
    let _ = tokio::time::timeout(GRACE, tasks.wait()).await;
    result
}
