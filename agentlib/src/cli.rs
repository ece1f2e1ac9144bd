//! What an agent binary does before `run`: parse `--config`, load and
//! validate the config (exit 64 on a bad one), set up tracing, and turn
//! SIGINT/SIGTERM into the shutdown token. Only binaries call this; the
//! library itself never installs signal handlers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::LogFormat;
use crate::{AgentConfig, Flavour};

/// The whole `main` of an agent binary named `name`.
pub fn main(name: &'static str, about: &'static str, flavour: Arc<dyn Flavour>) -> ExitCode {
    let args = clap::Command::new(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            clap::Arg::new("config")
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML config file; SDP_<SECTION>__<KEY> env vars override it"),
        )
        .get_matches();
    let file = args.get_one::<PathBuf>("config");
    let config =
        match sdp_bus::settings::load::<AgentConfig>(file.map(PathBuf::as_path), std::env::vars())
            .map_err(|e| e.to_string())
            .and_then(|c| c.validate().map(|()| c).map_err(|e| e.to_string()))
        {
            Ok(config) => config,
            Err(err) => {
                eprintln!("{name}: {err}");
                return ExitCode::from(64); // EX_USAGE
            }
        };

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("{name}: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(signal_to(shutdown.clone()));
        match crate::run(config, flavour, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                let chain: Vec<String> =
                    std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
                        .map(ToString::to_string)
                        .collect();
                tracing::error!(error = %chain.join(": "), "agent failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// Cancels `token` on SIGINT or SIGTERM.
async fn signal_to(token: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            token.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}
