//! `sdp-control-plane [--config FILE] [--check-config] [serve|persist]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sdp_control_plane::config::Config;

#[derive(Parser)]
#[command(version, about = "SDP control plane: REST, WebSocket, persister")]
struct Cli {
    /// TOML config file; `SDP_<SECTION>__<KEY>` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Load and check the config (file and `SDP_*` variables), then exit:
    /// 0 if it is valid, 64 if not. Binds nothing, connects nowhere.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the WebSocket bridge and the dashboard (the default).
    Serve,
    /// Run only the log persister.
    Persist,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = sdp_bus::process::start::<Config>(
        "sdp-control-plane",
        cli.config.as_deref(),
        std::env::vars(),
        |_| Ok(()),
        |config| &config.log,
    );
    let (config, runtime) = match started {
        Ok(started) => started,
        Err(code) => return code,
    };
    if cli.check_config {
        println!("sdp-control-plane: config ok");
        return ExitCode::SUCCESS;
    }
    match runtime.block_on(serve(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(command: Command, config: Config) -> anyhow::Result<()> {
    let shutdown = sdp_bus::process::shutdown_on_signal();
    match command {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.http.addr).await?;
            sdp_control_plane::run(config, listener, shutdown).await?;
        }
        Command::Persist => {
            sdp_control_plane::persister::run(&config.nats, &config.data_dir, shutdown).await?;
        }
    }
    Ok(())
}
