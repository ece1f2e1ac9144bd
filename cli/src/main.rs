//! `sdp`: parses the command line, reads the environment once, runs the
//! command on a single-threaded runtime and exits with its code (see
//! `sdp --help` for the table).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use sdp_cli::output::{self, Paint};
use sdp_cli::session::Env;
use sdp_cli::{Cli, Exit};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            let informational = matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            );
            if !informational && output::json_requested(&args) {
                let message = err.kind().to_string();
                let detail = err.to_string();
                let first = detail
                    .lines()
                    .next()
                    .map(|l| l.trim_start_matches("error: ").to_owned())
                    .unwrap_or(message);
                let _ = output::print_json(&output::error_json("usage", &first));
            }
            err.exit();
        }
    };
    let format = cli.output;
    let env = Env::from_process();
    let paint = Paint {
        color: std::io::IsTerminal::is_terminal(&std::io::stderr()) && !env.no_color,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return Exit::Unavailable.into();
        }
    };
    match runtime.block_on(sdp_cli::run(cli, env)) {
        Ok(exit) => exit.into(),
        Err(err) => {
            output::report(&err, format, paint);
            err.exit().into()
        }
    }
}
