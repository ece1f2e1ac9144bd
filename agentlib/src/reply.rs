//! Answers to requests: [`respond`] publishes a [`Reply`] on the
//! request's reply subject, [`bad_request`] is the error for a request the
//! agent refuses as malformed.

use bytes::Bytes;
use sdp_bus::{Reply, RpcError, RpcErrorCode, encode};
use serde::Serialize;

use crate::state::Agent;

pub(crate) async fn respond<T: Serialize>(
    agent: &Agent,
    reply: Option<async_nats::Subject>,
    body: &Reply<T>,
) {
    let Some(reply) = reply else {
        tracing::warn!("request without a reply subject; not answered");
        return;
    };
    if let Err(err) = agent.client.publish(reply, Bytes::from(encode(body))).await {
        tracing::warn!(error = %err, "cannot send a reply");
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> RpcError {
    RpcError::new(RpcErrorCode::BadRequest, message)
}
