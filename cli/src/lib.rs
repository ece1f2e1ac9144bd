//! `sdp`: the SDP command line for developers. It talks to the control
//! plane only, over its REST API and the deployment WebSocket (and, for
//! `sdp tap`, straight to NATS).
//!
//! - [`args`]: the clap command line; [`commands`]: one module per command.
//! - [`api`]: the REST client (bearer token, the API's error shape).
//! - [`follow`]: a deployment's WebSocket, resumed with `?after=<seq>`.
//! - [`progress`]: phases, spinner and log on stderr; [`output`]: tables,
//!   JSON and errors on stdout; [`listing`]: the list commands' tables.
//! - [`session`]: the stored login (0600) and `SDP_URL`/`SDP_TOKEN`.
//! - [`target`]: `REPO@BRANCH`; [`exit`]: the documented exit codes;
//!   [`error`]: the crate's one error type.
//!
//! `main` reads the environment once ([`session::Env`]) and calls [`run`];
//! nothing below it reads the process environment.

pub mod api;
pub mod args;
pub mod commands;
pub mod error;
pub mod exit;
pub mod follow;
pub mod listing;
pub mod nats;
pub mod output;
pub mod progress;
pub mod session;
pub mod target;

use std::io::IsTerminal;

pub use args::Cli;
pub use error::CliError;
pub use exit::Exit;

use output::{Format, Paint};
use session::Env;

/// What every command gets: the global flags, the environment and what
/// the terminal can show.
pub struct Ctx {
    pub format: Format,
    pub url: Option<String>,
    pub env: Env,
    /// Colour on stderr.
    pub paint: Paint,
    pub stdout_tty: bool,
    pub stderr_tty: bool,
}

impl Ctx {
    pub fn new(cli: &Cli, env: Env) -> Ctx {
        let stderr_tty = std::io::stderr().is_terminal();
        Ctx {
            format: cli.output,
            url: cli.url.clone(),
            paint: Paint {
                color: stderr_tty && !env.no_color,
            },
            env,
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty,
        }
    }

    /// A REST client for the resolved control plane and token.
    pub fn client(&self) -> Result<api::Client, CliError> {
        let stored = session::load(&self.env)?;
        let (url, token) = session::resolve(
            self.url.as_deref(),
            self.env.token.as_deref(),
            stored.as_ref(),
        )?;
        Ok(api::Client::new(&url, token))
    }

    /// A client that has a token.
    pub fn logged_in(&self) -> Result<api::Client, CliError> {
        let client = self.client()?;
        api::require_token(&client)?;
        Ok(client)
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

/// Runs the parsed command; the exit it asks for.
pub async fn run(cli: Cli, env: Env) -> Result<Exit, CliError> {
    let ctx = Ctx::new(&cli, env);
    commands::dispatch(&ctx, cli.command).await
}
