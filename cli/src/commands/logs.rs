//! `sdp logs ID [-f]`: the whole log as text, or (`-f`) the deployment
//! followed live over the WebSocket, resuming after a drop from the last
//! seq seen. Log lines go to stdout, phases and the outcome to stderr;
//! with `-o json -f` every event is one JSON line on stdout. Following
//! exits with the deployment's outcome, like `sdp deploy`.
//!
//! `sdp logs --runtime [-f] [--tail N] [--since T] [--grep S] ID`: the
//! running container's own output (`GET /api/deployments/{id}/runtime-logs`),
//! copied to stdout as it arrives; exits 0 when the stream ends.

use std::io::Write;

use sdp_api::RuntimeLogsQuery;
use sdp_api::client::ClientError;

use crate::args::LogsArgs;
use crate::follow::{Follower, Update};
use crate::output::{self, cell_of};
use crate::progress::{LogTo, Progress};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: LogsArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    if args.runtime {
        return runtime(&client, &args).await;
    }
    let deployment = client.deployment(&args.id).await?;
    if !args.follow {
        let text = client.deployment_logs(&args.id).await?;
        output::print(&text)?;
        return Ok(Exit::Ok);
    }
    let label = format!(
        "{}@{}",
        cell_of(&deployment.repo),
        cell_of(&deployment.branch)
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

async fn runtime(client: &crate::api::Client, args: &LogsArgs) -> Result<Exit, CliError> {
    let query = RuntimeLogsQuery {
        tail: args.tail,
        since: args.since.clone(),
        follow: args.follow.then_some(true),
        q: args.grep.clone(),
    };
    let mut response = client.runtime_logs(&args.id, &query).await?;
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|source| ClientError::Network {
                url: client.base().to_owned(),
                source,
            })?;
        let Some(chunk) = chunk else {
            return Ok(Exit::Ok);
        };
        // Raw bytes: a chunk may end inside a UTF-8 character.
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&chunk)
            .and_then(|()| stdout.flush())
            .map_err(CliError::Output)?;
    }
}
