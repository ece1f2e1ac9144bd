//! `sdp-control-plane [--config FILE] [--check-config] [serve|persist|backup FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sdp_control_plane::config::Config;

#[derive(Parser)]
#[command(version, about = "SDP control plane: REST, WebSocket, persister")]
struct Cli {
    /// TOML config file; `SDP_CONTROL_PLANE__<SECTION>__<KEY>` variables
    /// override it (other `SDP_*` variables are ignored).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Load and check the config (file and `SDP_CONTROL_PLANE__*`), then exit:
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
    /// Write a consistent copy of the database to FILE while SDP runs
    /// (`VACUUM INTO`); see docs/SCALING.md for restoring it.
    Backup {
        /// Where the copy goes; it must not exist.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = sdp_bus::process::start::<Config>(
        "sdp-control-plane",
        cli.config.as_deref(),
        std::env::vars(),
        // The secret files named in config must be readable now, not at
        // the first webhook.
        |config| {
            config.check()?;
            sdp_control_plane::webhooks::secrets::load(config)
                .map(drop)
                .map_err(|e| sdp_bus::process::error_chain(&e))
        },
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
            // A persister of its own counts its refusals in its log only: it
            // serves no /metrics.
            sdp_control_plane::persister::run(
                &config.nats,
                &config.data_dir,
                Default::default(),
                shutdown,
            )
            .await?;
        }
        Command::Backup { file } => {
            let store = sdp_control_plane::store::Store::open(&config.data_dir.join("sdp.db"))?;
            store.backup_to(&file)?;
            tracing::info!(file = %file.display(), "database backed up");
        }
    }
    Ok(())
}
