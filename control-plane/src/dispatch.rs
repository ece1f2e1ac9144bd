//! Sending a deployment to an agent: `deploy.request.<kind>` to the queue
//! group of the kind, and what the reply (or its absence) means.

use std::time::Duration;

use sdp_bus::{DeployAccepted, DeployRequest, Reply, decode, encode};

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("no {kind} agent is online to take the deployment")]
    NoAgent { kind: String },
    #[error("no {kind} agent answered within {}s", timeout.as_secs())]
    Timeout { kind: String, timeout: Duration },
    #[error("the agent refused the deployment: {0}")]
    Refused(String),
    #[error("the request to the agent failed: {0}")]
    Request(String),
}

pub async fn send(
    client: &async_nats::Client,
    kind: &str,
    request: &DeployRequest,
    timeout: Duration,
) -> Result<DeployAccepted, DispatchError> {
    let subject = sdp_bus::subject::deploy_request(kind);
    let pending = client.request(subject, encode(request).into());
    let reply = match tokio::time::timeout(timeout, pending).await {
        Err(_) => {
            return Err(DispatchError::Timeout {
                kind: kind.to_owned(),
                timeout,
            });
        }
        Ok(Err(err)) => {
            return Err(match err.kind() {
                async_nats::RequestErrorKind::NoResponders => DispatchError::NoAgent {
                    kind: kind.to_owned(),
                },
                async_nats::RequestErrorKind::TimedOut => DispatchError::Timeout {
                    kind: kind.to_owned(),
                    timeout,
                },
                _ => DispatchError::Request(err.to_string()),
            });
        }
        Ok(Ok(reply)) => reply,
    };
    decode::<Reply<DeployAccepted>>(&reply.payload)
        .map_err(|err| DispatchError::Request(format!("malformed reply: {err}")))?
        .into_result()
        .map_err(|err| DispatchError::Refused(err.message))
}
