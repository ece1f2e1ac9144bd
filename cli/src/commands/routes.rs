//! `sdp routes SANDBOX`, `routes set SANDBOX SERVICE TARGET`,
//! `routes reset SANDBOX SERVICE` over `/api/sandboxes/{name}/routes`
//! (and `routes check SANDBOX`, in [`super::checks`]).

use sdp_api::EffectiveRoute;

use crate::args::{RoutesAction, RoutesArgs};
use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: RoutesArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let sandbox = match args.action {
        None => args
            .sandbox
            .ok_or_else(|| CliError::Usage("name a sandbox: sdp routes SANDBOX".to_owned()))?,
        Some(RoutesAction::Set {
            sandbox,
            service,
            target,
        }) => {
            client.put_route(&sandbox, &service, &target).await?;
            if !ctx.json() {
                eprintln!("{service} in {sandbox} now goes to {target}");
            }
            sandbox
        }
        Some(RoutesAction::Check { sandbox }) => {
            return super::checks::check_routes(ctx, &sandbox).await;
        }
        Some(RoutesAction::Reset { sandbox, service }) => {
            client.delete_route(&sandbox, &service).await?;
            if !ctx.json() {
                eprintln!("{service} in {sandbox}: manual route removed");
            }
            sandbox
        }
    };
    let routes = client.routes(&sandbox).await?;
    if ctx.json() {
        output::print_json(&routes)?;
    } else {
        output::print(&table(&routes))?;
    }
    Ok(Exit::Ok)
}

/// The routes as a table: service, source, target, env key.
pub fn table(routes: &[EffectiveRoute]) -> String {
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            vec![
                cell_of(&r.service),
                cell_of(&r.source),
                cell_of(&r.target),
                cell_of(&r.env_key),
            ]
        })
        .collect();
    render_table(&["service", "source", "target", "env"], &rows)
}
