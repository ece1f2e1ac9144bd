//! `sdp tap [SUBJECT]`: prints bus messages as JSON lines
//! `{"subject", "data"}` (data parsed when it is JSON), for hosts without
//! the `nats` CLI. The URL and creds file come from flags or env; a user
//! and password only from `SDP_NATS_USER` / `SDP_NATS_PASSWORD`, never
//! from arguments. Stops on Ctrl-C or after `--count` messages.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::args::TapArgs;
use crate::nats::{self, NatsTarget};
use crate::output;
use crate::{CliError, Ctx, Exit};

/// One message as a JSON line.
pub fn line(subject: &str, payload: &[u8]) -> String {
    let data = serde_json::from_slice::<Value>(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    json!({ "subject": subject, "data": data }).to_string()
}

pub async fn run(ctx: &Ctx, args: TapArgs) -> Result<Exit, CliError> {
    let nats_error = |source: Box<dyn std::error::Error + Send + Sync>| CliError::Nats {
        url: args.nats_url.clone(),
        source,
    };
    let client = nats::connect(
        ctx,
        "sdp-tap",
        NatsTarget {
            url: &args.nats_url,
            creds: args.nats_creds.as_ref(),
            tls_ca: args.nats_tls_ca.as_ref(),
        },
    )
    .await?;
    let mut subscription = client
        .subscribe(args.subject.clone())
        .await
        .map_err(|e| nats_error(Box::new(e)))?;
    // The subscription is registered once the server has seen it.
    client.flush().await.map_err(|e| nats_error(Box::new(e)))?;
    eprintln!("Listening on {} at {}", args.subject, args.nats_url);
    let mut seen = 0u64;
    while args.count.is_none_or(|count| seen < count) {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { break };
                output::print(&format!("{}\n", line(message.subject.as_str(), &message.payload)))?;
                seen += 1;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_are_embedded_and_others_quoted() {
        assert_eq!(
            line("deploy.progress.d1", br#"{"v":1,"seq":3}"#),
            r#"{"data":{"seq":3,"v":1},"subject":"deploy.progress.d1"}"#
        );
        assert_eq!(
            line("x", b"not json"),
            r#"{"data":"not json","subject":"x"}"#
        );
    }
}
