//! `sdp agents`: `GET /api/agents`.

use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let agents = client.agents().await?;
    if ctx.json() {
        output::print_json(&agents)?;
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                cell_of(&a.id),
                cell_of(&a.kind),
                cell_of(&a.host),
                if a.online { "online" } else { "offline" }.to_owned(),
                a.running.len().to_string(),
                cell_of(&a.capacity),
                cell_of(&a.build_cache),
                cell_of(&a.toolchains),
                cell_of(&a.last_seen),
            ]
        })
        .collect();
    output::print(&render_table(
        &[
            "id",
            "kind",
            "host",
            "state",
            "running",
            "capacity",
            "cache",
            "toolchains",
            "last seen",
        ],
        &rows,
    ))?;
    Ok(Exit::Ok)
}
