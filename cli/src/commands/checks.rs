//! `sdp sandbox stale NAME` (`GET /api/sandboxes/{name}/staleness`) and
//! `sdp routes check SANDBOX` (`POST /api/sandboxes/{name}/probe`): checks
//! the control plane asks of agents. Both exit 0 when they could check;
//! what they found is in the output (`-o json`: `state` per service, `ok`
//! per route).

use sdp_api::{ServiceStaleness, StalenessState};

use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn stale(ctx: &Ctx, sandbox: &str) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let answer = client.staleness(sandbox).await?;
    if ctx.json() {
        output::print_json(&answer)?;
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = answer
        .services
        .iter()
        .map(|s| {
            vec![
                cell_of(&s.repo),
                cell_of(&s.branch),
                short(s.deployed_commit.as_deref()),
                short(s.head.as_deref()),
                staleness(s),
            ]
        })
        .collect();
    output::print(&render_table(
        &["service", "branch", "deployed", "head", "state"],
        &rows,
    ))?;
    Ok(Exit::Ok)
}

pub async fn check_routes(ctx: &Ctx, sandbox: &str) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let report = client.probe(sandbox).await?;
    if ctx.json() {
        output::print_json(&report)?;
        return Ok(Exit::Ok);
    }
    let paint = ctx.paint;
    let rows: Vec<Vec<String>> = report
        .routes
        .iter()
        .map(|r| {
            let (state, detail) = if r.ok {
                let latency = r
                    .latency_ms
                    .map_or_else(String::new, |ms| format!(" {ms} ms"));
                (
                    paint.green("ok"),
                    format!("HTTP {}{latency}", cell_of(&r.status)),
                )
            } else {
                (
                    paint.red("broken"),
                    format!("{}: {}", cell_of(&r.hop), cell_of(&r.error)),
                )
            };
            vec![
                cell_of(&r.service),
                cell_of(&r.source),
                cell_of(&r.target),
                state,
                detail,
            ]
        })
        .collect();
    output::print(&render_table(
        &["service", "source", "target", "check", "detail"],
        &rows,
    ))?;
    Ok(Exit::Ok)
}

/// `up to date`, `behind by 2`, `branch moved`, `unknown: <reason>`.
fn staleness(service: &ServiceStaleness) -> String {
    match service.state {
        StalenessState::UpToDate => "up to date".to_owned(),
        StalenessState::Behind => match service.behind {
            Some(n) if n > 0 => format!("behind by {n}"),
            _ => "branch moved".to_owned(),
        },
        StalenessState::Unknown => format!("unknown: {}", cell_of(&service.reason)),
    }
}

/// The first 12 hex digits of a commit, `-` when null.
fn short(commit: Option<&str>) -> String {
    commit.map_or_else(|| "-".to_owned(), |c| c.chars().take(12).collect())
}
