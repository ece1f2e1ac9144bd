//! `sdp logs ID [-f]`: the whole log as text, or (`-f`) the deployment
//! followed live over the WebSocket, resuming after a drop from the last
//! seq seen. Log lines go to stdout, phases and the outcome to stderr;
//! with `-o json -f` every event is one JSON line on stdout. Following
//! exits with the deployment's outcome, like `sdp deploy`.

use serde_json::Value;

use crate::api::segment;
use crate::args::LogsArgs;
use crate::follow::{Follower, Update};
use crate::output::{self, cell};
use crate::progress::{LogTo, Progress};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: LogsArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let deployment: Value = client
        .get(&format!("/api/deployments/{}", segment(&args.id)))
        .await?;
    if !args.follow {
        let text = client
            .get_text(&format!("/api/deployments/{}/logs", segment(&args.id)))
            .await?;
        output::print(&text)?;
        return Ok(Exit::Ok);
    }
    let label = format!(
        "{}@{}",
        cell(&deployment["repo"]),
        cell(&deployment["branch"])
    );
    let mut follower = Follower::new(&client, &args.id, 0);
    let outcome = if ctx.json() {
        follower
            .run(|update| {
                if let Update::Event(event) = update {
                    let line = String::from_utf8_lossy(&sdp_bus::encode(event)).into_owned();
                    let _ = output::print(&format!("{line}\n"));
                }
            })
            .await?
    } else {
        let mut progress = Progress::new(&label, ctx.stderr_tty, ctx.paint, LogTo::Stdout);
        follower.run(|update| progress.update(update)).await?
    };
    Ok(Exit::for_status(outcome.status).unwrap_or(Exit::Failed))
}
