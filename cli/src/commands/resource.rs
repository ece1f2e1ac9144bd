//! `sdp resource ls SANDBOX` and `sdp resource reset SANDBOX RESOURCE`
//! over `/api/sandboxes/{name}/resources`: a sandbox's databases (state,
//! size, URL; its password shown to the owner and admins only), and a
//! reset (data dropped, seeded anew; the URL stays).

use clap::{Args, Subcommand};
use sdp_api::SandboxResource;

use crate::output::{self, render_table};
use crate::{CliError, Ctx, Exit};

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// A sandbox's resources: engine, state, size, URL.
    Ls(ResourceLsArgs),
    /// Drop a resource's data and seed it anew (owner or admin); waits
    /// until it is ready again.
    Reset(ResourceResetArgs),
}

#[derive(Debug, Args)]
pub struct ResourceLsArgs {
    /// The sandbox.
    pub sandbox: String,
}

#[derive(Debug, Args)]
pub struct ResourceResetArgs {
    /// The sandbox.
    pub sandbox: String,
    /// The resource's name (as its template declares it).
    pub resource: String,
}

pub async fn run(ctx: &Ctx, command: ResourceCommand) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let resources = match command {
        ResourceCommand::Ls(args) => client.resources(&args.sandbox).await?,
        ResourceCommand::Reset(args) => {
            let reset = client.reset_resource(&args.sandbox, &args.resource).await?;
            if !ctx.json() {
                eprintln!(
                    "{} of {} reset and seeded anew",
                    args.resource, args.sandbox
                );
            }
            vec![reset]
        }
    };
    if ctx.json() {
        output::print_json(&resources)?;
    } else {
        output::print(&table(&resources))?;
    }
    Ok(Exit::Ok)
}

/// Sizes as people read them: `812 KiB`, `3.4 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn table(resources: &[SandboxResource]) -> String {
    let rows: Vec<Vec<String>> = resources
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.engine.as_str().to_owned(),
                r.state.as_str().to_owned(),
                human_size(r.size_bytes),
                r.env_var.clone(),
                r.url
                    .clone()
                    .or_else(|| r.error.clone())
                    .unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    render_table(&["name", "engine", "state", "size", "env", "url"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(8 * 1024 * 1024 + 400 * 1024), "8.4 MiB");
        assert_eq!(human_size(300 * 1024), "300 KiB");
    }
}
