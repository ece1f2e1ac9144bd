//! sdp-agent-gateway: the agent for the PHP API gateway of each sandbox
//! (`kind = gateway`: composer install, `php -S`, routes.json).
//! Reads the config, sets up tracing, turns SIGINT/SIGTERM into a
//! cancellation token and runs [`sdp_agentlib::run`] with the PHP flavour.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sdp_agentlib::config::LogFormat;
use sdp_agentlib::{AgentConfig, PhpFlavour};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "SDP agent: runs the PHP API gateway of each sandbox")]
struct Args {
    /// TOML config file; `SDP_<SECTION>__<KEY>` env vars override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config: AgentConfig =
        match sdp_bus::settings::load(args.config.as_deref(), std::env::vars())
            .map_err(|e| e.to_string())
            .and_then(|c: AgentConfig| c.validate().map(|()| c).map_err(|e| e.to_string()))
        {
            Ok(config) => config,
            Err(err) => {
                eprintln!("sdp-agent-gateway: {err}");
                return ExitCode::from(64);
            }
        };

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_to(shutdown.clone()));

    match sdp_agentlib::run(config, Arc::new(PhpFlavour::default()), shutdown).await {
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
