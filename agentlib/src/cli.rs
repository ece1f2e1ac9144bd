//! What an agent binary does before `run`: parse `--config` (and
//! `--check-config`, which stops after the config is loaded), load and
//! validate the config (exit 64 on a bad one), set up tracing, and turn
//! SIGINT/SIGTERM into the shutdown token (both from [`sdp_bus::process`],
//! shared with the control plane). Only binaries call this; the library
//! itself never installs signal handlers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::config::AgentConfig;
use crate::flavour::Flavour;

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
                .help("TOML config file; SDP_AGENT__<SECTION>__<KEY> env vars override it"),
        )
        .arg(
            clap::Arg::new("check-config")
                .long("check-config")
                .action(clap::ArgAction::SetTrue)
                .help("Load and check the config, then exit (0 valid, 64 not); connects nowhere"),
        )
        .get_matches();
    let file = args.get_one::<PathBuf>("config");
    let started = sdp_bus::process::start::<AgentConfig>(
        name,
        file.map(PathBuf::as_path),
        std::env::vars(),
        // The toolchains the config names are checked here too, so
        // --check-config refuses one that is not a toolchain.
        |config| {
            config.validate().map_err(|e| e.to_string())?;
            flavour
                .toolchains(config)
                .map(drop)
                .map_err(|reason| format!("invalid configuration: {reason}"))
        },
        |config| &config.log,
    );
    let (config, runtime) = match started {
        Ok(started) => started,
        Err(code) => return code,
    };
    if args.get_flag("check-config") {
        println!("{name}: config ok");
        return ExitCode::SUCCESS;
    }
    runtime.block_on(async {
        let shutdown = sdp_bus::process::shutdown_on_signal();
        match crate::agent::run(config, flavour, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                let chain = sdp_bus::process::error_chain(&err);
                tracing::error!(error = %chain, "agent failed");
                ExitCode::FAILURE
            }
        }
    })
}
