//! What every SDP binary does around its component's `run`: the `[log]`
//! config section and tracing set up from it, and SIGINT/SIGTERM turned
//! into a shutdown token. Only `main` functions call these: library code
//! never installs a subscriber or a signal handler, so tests pass their own
//! token.

use std::path::Path;
use std::process::ExitCode;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// The exit code of a bad configuration (`EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;

/// The start of every SDP `main`: loads the config of binary `name` from
/// `file` and `env` and `check`s it (on failure: `<name>: <error>` on
/// stderr and exit code 64, before anything binds), sets up tracing from
/// its `[log]` section, and builds the runtime.
pub fn start<T: Settings>(
    name: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    check: impl FnOnce(&T) -> Result<(), String>,
    log: impl FnOnce(&T) -> &LogConfig,
) -> Result<(T, tokio::runtime::Runtime), ExitCode> {
    let config = crate::settings::load::<T>(file, env)
        .map_err(|e| e.to_string())
        .and_then(|config| check(&config).map(|()| config));
    let config = match config {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{name}: {err}");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    init_tracing(log(&config));
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => Ok((config, runtime)),
        Err(err) => {
            eprintln!("{name}: cannot start the runtime: {err}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `log.format`: human-readable lines or one JSON object per line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The `[log]` section every binary shares.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

/// Targets whose debug output holds what must never be logged, kept at
/// `info` whatever `RUST_LOG` says: bollard's debug lines print each
/// Docker request body, and a container's create body holds its env (an
/// environment's secret variables).
const QUIET_TARGETS: &[&str] = &["bollard=info"];

/// Installs the global tracing subscriber: `RUST_LOG` (default `info`),
/// in the configured format; [`QUIET_TARGETS`] stay quiet.
pub fn init_tracing(log: &LogConfig) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for directive in QUIET_TARGETS {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// A token cancelled on the first SIGINT or SIGTERM. Call it inside the
/// runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            token.cancel();
        }
    });
    token
}

/// Waits for SIGINT or SIGTERM (only SIGINT if SIGTERM cannot be watched).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// An error and its sources, `outer: inner: …`, for the one log line a
/// binary writes when its component fails.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(err), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
