//! `sdp agents`: `GET /api/agents`.

use serde_json::Value;

use crate::output::{self, cell, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let agents: Value = client.get("/api/agents").await?;
    if ctx.json() {
        output::print_json(&agents)?;
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = agents
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                cell(&a["id"]),
                cell(&a["kind"]),
                cell(&a["host"]),
                if a["online"] == true {
                    "online"
                } else {
                    "offline"
                }
                .to_owned(),
                a["running"].as_array().map_or(0, Vec::len).to_string(),
                cell(&a["capacity"]),
                cell(&a["build_cache"]),
                cell(&a["toolchains"]),
                cell(&a["last_seen"]),
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
