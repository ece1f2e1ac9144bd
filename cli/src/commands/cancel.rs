//! `sdp cancel ID`: `POST /api/deployments/{id}/cancel`.

use crate::output;
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, id: &str) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let answer = client.cancel(id).await?;
    if ctx.json() {
        output::print_json(&answer)?;
    } else {
        eprintln!("Cancel requested for {id}.");
    }
    Ok(Exit::Ok)
}
