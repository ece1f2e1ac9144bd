//! `sdp sandbox wake NAME` (`POST /api/sandboxes/{name}/wake`): wakes a
//! sleeping sandbox and returns once its services are healthy, showing
//! the sandbox as `sdp sandbox show` does.

use crate::{CliError, Ctx, Exit, api};

pub async fn run(ctx: &Ctx, client: &api::Client, name: &str) -> Result<Exit, CliError> {
    if !ctx.json() {
        eprintln!("Waking sandbox {name}…");
    }
    let woken = client.wake_sandbox(name).await?;
    super::sandbox::show_one(ctx, &woken)
}
