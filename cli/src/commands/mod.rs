//! One module per command; [`dispatch`] maps the parsed command to it.

pub mod agent_check;
mod agents;
mod audit;
mod auth;
mod autodeploy;
mod cancel;
mod checks;
mod deliveries;
mod deploy;
mod env;
mod history;
mod logs;
pub mod notify;
mod open;
pub mod resource;
mod rollback;
mod routes;
mod sandbox;
mod tap;
mod test;
mod wake;

use clap::CommandFactory;

use crate::args::{Cli, Command};
use crate::{CliError, Ctx, Exit};

pub async fn dispatch(ctx: &Ctx, command: Command) -> Result<Exit, CliError> {
    match command {
        Command::Login(args) => auth::login(ctx, args).await,
        Command::Logout => auth::logout(ctx).await,
        Command::Whoami => auth::whoami(ctx).await,
        Command::Sandbox(command) => sandbox::run(ctx, command).await,
        Command::Deploy(args) => deploy::run(ctx, args).await,
        Command::Rollback(args) => rollback::run(ctx, args).await,
        Command::Logs(args) => logs::run(ctx, args).await,
        Command::History(args) => history::run(ctx, args).await,
        Command::Audit(args) => audit::run(ctx, args).await,
        Command::Deliveries(args) => deliveries::run(ctx, args).await,
        Command::Routes(args) => routes::run(ctx, args).await,
        Command::Autodeploy(args) => autodeploy::run(ctx, args).await,
        Command::Follow(args) => autodeploy::run_follow(ctx, args).await,
        Command::Env(args) => env::run(ctx, args).await,
        Command::Resource(command) => resource::run(ctx, command).await,
        Command::Notify(command) => notify::run(ctx, command).await,
        Command::Cancel { id } => cancel::run(ctx, &id).await,
        Command::Agents => agents::run(ctx).await,
        Command::Agent(command) => agent_check::run(ctx, command).await,
        Command::Open { sandbox } => open::run(ctx, &sandbox).await,
        Command::Tap(args) => tap::run(ctx, args).await,
        Command::Test(args) => test::run(ctx, args).await,
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "sdp", &mut out);
            crate::output::print(&String::from_utf8_lossy(&out))?;
            Ok(Exit::Ok)
        }
    }
}
