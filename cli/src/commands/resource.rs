//! `sdp resource ls SANDBOX` and `sdp resource reset SANDBOX RESOURCE`
//! over `/api/sandboxes/{name}/resources`: a sandbox's databases (state,
//! size, URL; its password shown to the owner and admins only), and a
//! reset (data dropped, seeded anew; the URL stays). `sdp resource add
//! SANDBOX NAME=ENGINE:ENV_VAR` and `sdp resource rm SANDBOX RESOURCE`
//! change the sandbox's own resources (`PUT`/`DELETE
//! …/resources/{resource}`).

use clap::{Args, Subcommand};
use sdp_api::{ResourceBody, ResourceSpec, SandboxResource};
use sdp_bus::{ResourceEngine, ResourceSeed};

use crate::output::{self, render_table};
use crate::{CliError, Ctx, Exit};

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// A sandbox's resources: engine, state, size, URL.
    Ls(ResourceLsArgs),
    /// Drop a resource's data and seed it anew (owner or admin); waits
    /// until it is ready again.
    Reset(ResourceResetArgs),
    /// Add a resource to the sandbox itself, or change one (owner or
    /// admin): made at the next deploy.
    Add(ResourceAddArgs),
    /// Remove a resource of the sandbox's own (owner or admin): its
    /// container and data go now, its variable at the next deploy.
    Rm(ResourceResetArgs),
}

#[derive(Debug, Args)]
pub struct ResourceAddArgs {
    /// The sandbox.
    pub sandbox: String,
    /// `NAME=ENGINE:ENV_VAR`, e.g. `cache=redis:REDIS_URL` (engines:
    /// postgres, mariadb, redis).
    #[arg(value_parser = parse_spec)]
    pub spec: ResourceSpec,
    /// Seed a new database with this repo's file (with --seed-branch and
    /// --seed-path).
    #[arg(long, requires_all = ["seed_branch", "seed_path"], conflicts_with = "seed_dump")]
    pub seed_repo: Option<String>,
    #[arg(long, requires = "seed_repo")]
    pub seed_branch: Option<String>,
    #[arg(long, requires = "seed_repo")]
    pub seed_path: Option<String>,
    /// Seed a new database with this dump under the agent's
    /// resources.dumps_dir.
    #[arg(long)]
    pub seed_dump: Option<String>,
}

impl ResourceAddArgs {
    fn seed(&self) -> Option<ResourceSeed> {
        match (
            &self.seed_repo,
            &self.seed_branch,
            &self.seed_path,
            &self.seed_dump,
        ) {
            (Some(repo), Some(branch), Some(path), _) => Some(ResourceSeed::Repo {
                repo: repo.clone(),
                branch: branch.clone(),
                path: path.clone(),
            }),
            (_, _, _, Some(file)) => Some(ResourceSeed::Dump { file: file.clone() }),
            _ => None,
        }
    }
}

/// `NAME=ENGINE:ENV_VAR` as a spec (without a seed); the server checks
/// the name and variable.
pub fn parse_spec(text: &str) -> Result<ResourceSpec, String> {
    let shape = || format!("{text:?}: expected NAME=ENGINE:ENV_VAR, e.g. db=postgres:DATABASE_URL");
    let (name, rest) = text.split_once('=').ok_or_else(shape)?;
    let (engine, env_var) = rest.split_once(':').ok_or_else(shape)?;
    let engine = ResourceEngine::parse(engine)
        .ok_or_else(|| format!("unknown engine {engine:?}: postgres, mariadb or redis"))?;
    if name.is_empty() || env_var.is_empty() {
        return Err(shape());
    }
    Ok(ResourceSpec {
        name: name.to_owned(),
        engine,
        env_var: env_var.to_owned(),
        seed: None,
    })
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
    /// The resource's name.
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
        ResourceCommand::Add(args) => {
            let seed = args.seed();
            let ResourceSpec {
                name,
                engine,
                env_var,
                ..
            } = args.spec;
            let body = ResourceBody {
                engine,
                env_var,
                seed,
            };
            let list = client.put_resource(&args.sandbox, &name, &body).await?;
            if !ctx.json() {
                eprintln!("{name} added to {}: made at its next deploy", args.sandbox);
            }
            list
        }
        ResourceCommand::Rm(args) => {
            let list = client
                .delete_resource(&args.sandbox, &args.resource)
                .await?;
            if !ctx.json() {
                eprintln!(
                    "{} removed from {} (its data with it)",
                    args.resource, args.sandbox
                );
            }
            list
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
    fn a_spec_reads_name_engine_and_variable() {
        let spec = parse_spec("db=postgres:DATABASE_URL").expect("spec");
        assert_eq!(
            (spec.name.as_str(), spec.engine, spec.env_var.as_str()),
            ("db", ResourceEngine::Postgres, "DATABASE_URL")
        );
        for bad in ["db", "db=postgres", "db=mongo:X", "=redis:X", "c=redis:"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(8 * 1024 * 1024 + 400 * 1024), "8.4 MiB");
        assert_eq!(human_size(300 * 1024), "300 KiB");
    }
}
