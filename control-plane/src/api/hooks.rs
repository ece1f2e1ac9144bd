//! `POST /api/hooks/bitbucket`: push webhooks from Bitbucket Cloud
//! (`repo:push`) and Data Center (`repo:refs_changed`). No session: a
//! delivery proves itself with `X-Hub-Signature` (see [`crate::webhooks`]).
//!
//! In order: no secret configured → 404 `not_configured`; a body over
//! [`HOOK_BODY_LIMIT`] → 413; no or a wrong signature → 401; a delivery
//! seen within the replay window → 200 "duplicate"; another event kind →
//! 202 "ignored"; a push → the services with autodeploy on for its
//! branches are redeployed, 202 with their deployment ids (Bitbucket's
//! delivery log shows the answer). Nothing is deployed on any refusal.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sdp_bus::Secret;

use sdp_api::{HookAnswer, HookOutcome};

use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::webhooks::payload::{self, Delivery};
use crate::webhooks::{replay, signature};

/// Bitbucket's payloads are bigger than the API's own bodies (a Cloud push
/// lists commits); more than this is refused (413).
pub const HOOK_BODY_LIMIT: usize = 1024 * 1024;

/// The webhook secret and the deliveries already handled.
#[derive(Clone)]
pub struct Hooks {
    secret: Option<Secret>,
    deliveries: replay::Deliveries,
}

impl Hooks {
    pub fn new(secret: Option<Secret>) -> Self {
        Self {
            secret,
            deliveries: replay::Deliveries::default(),
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("a webhook body may be at most {HOOK_BODY_LIMIT} bytes"),
    )
}

/// The body, refused past the limit without reading the rest.
async fn read_limited(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let declared =
        header_text(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > HOOK_BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        if bytes.len() + chunk.len() > HOOK_BODY_LIMIT {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A push webhook from Bitbucket: redeploys the services with autodeploy
/// on for the pushed branch (no session; `X-Hub-Signature` proves the sender).
#[utoipa::path(
    post,
    path = "/hooks/bitbucket",
    operation_id = "bitbucket_hook",
    tag = "hooks",
    security(()),
    params(
        ("X-Event-Key" = String, Header, description = "`repo:push` (Cloud) or `repo:refs_changed` (Data Center); other kinds are ignored"),
        ("X-Hub-Signature" = String, Header, description = "`sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>`"),
        ("X-Request-UUID" = Option<String>, Header, description = "Cloud's delivery id (a repeat within 10 minutes is ignored)"),
        ("X-Request-Id" = Option<String>, Header, description = "Data Center's delivery id (a repeat within 10 minutes is ignored)"),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "The payload as Bitbucket sends it (at most 1 MiB)"),
    responses(
        (status = 200, description = "The same delivery (request id or body) was handled within the last 10 minutes: ignored", body = HookAnswer),
        (status = 202, description = "A push: the deployments it started (`triggered`) and the services with autodeploy on it did not redeploy (`skipped`); or an event kind that is ignored", body = HookAnswer),
        (status = 400, description = "No `X-Event-Key`, or the body is not that event's payload (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No `X-Hub-Signature`, or it does not match the body (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No webhook secret is configured (`not_configured`: set `webhooks.bitbucket_secret_file`)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB (`payload_too_large`)", body = ErrorBody),
    ),
)]
pub async fn bitbucket(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The required headers first: a delivery without them is malformed
    // whether or not webhooks are on (400/401, as documented, not 404).
    if header_text(&headers, "x-hub-signature").is_none() {
        return Err(ApiError::unauthorized(
            signature::SignatureError::Missing.to_string(),
        ));
    }
    if header_text(&headers, "x-event-key").is_none() {
        return Err(ApiError::bad_request("no X-Event-Key header"));
    }
    let Some(secret) = &state.hooks.secret else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "webhooks are off: set webhooks.bitbucket_secret_file in the control plane's config",
        ));
    };
    let body = read_limited(&headers, body).await?;
    if let Err(err) = signature::verify(secret, header_text(&headers, "x-hub-signature"), &body) {
        tracing::warn!(error = %err, "webhook refused");
        return Err(ApiError::unauthorized(err.to_string()));
    }
    let Some(event) = header_text(&headers, "x-event-key").map(str::trim) else {
        return Err(ApiError::bad_request("no X-Event-Key header"));
    };
    let request_id =
        header_text(&headers, "x-request-uuid").or_else(|| header_text(&headers, "x-request-id"));
    let keys = replay::keys(request_id, &body);
    if !state.hooks.deliveries.claim(&keys, Instant::now()) {
        let answer = HookAnswer::new(
            HookOutcome::Duplicate,
            event,
            "duplicate delivery (seen within the last 10 minutes), ignored",
        );
        return Ok((StatusCode::OK, Json(answer)).into_response());
    }
    // In a task of its own: Bitbucket hangs up after ~10 s, and a dropped
    // connection must not cancel a delivery half-dispatched, or leave it
    // claimed without being handled.
    let event = event.to_owned();
    let handling = tokio::spawn(async move {
        let handled = handle(&state, &event, &body).await;
        if handled.is_err() {
            // Bitbucket retries a failed delivery: that retry must be handled.
            state.hooks.deliveries.release(&keys);
        }
        handled
    });
    let handled = handling.await.map_err(|err| ApiError::internal(&err))?;
    Ok((StatusCode::ACCEPTED, Json(handled?)).into_response())
}

async fn handle(state: &AppState, event: &str, body: &[u8]) -> Result<HookAnswer, ApiError> {
    let push = match payload::parse(event, body) {
        Ok(Delivery::Push(push)) => push,
        Ok(Delivery::Ignored(why)) => return Ok(HookAnswer::new(HookOutcome::Ignored, event, why)),
        Err(err) => return Err(ApiError::bad_request(err.to_string())),
    };
    let outcome = state.orchestrator.on_push(&push).await?;
    for deployment in &outcome.triggered {
        let failed = deployment.error.is_some();
        state
            .audit
            .record(crate::audit::entry(
                crate::audit::BITBUCKET_PUSH,
                sdp_api::AuditAction::Deploy,
                Some(&deployment.sandbox),
                Some(format!("{}@{}", deployment.repo, deployment.branch)),
                if failed {
                    sdp_api::AuditOutcome::Failed
                } else {
                    sdp_api::AuditOutcome::Ok
                },
                Some(deployment.deployment_id.to_string()),
            ))
            .await;
    }
    let behind = outcome
        .skipped
        .iter()
        .filter(|s| s.note == crate::orchestrator::autodeploy::BEHIND_NOTE)
        .count();
    let mut message = format!(
        "{} service(s) of {} redeployed (autodeploy)",
        outcome.triggered.len(),
        push.repo
    );
    if behind > 0 {
        message.push_str(&format!(
            "; {behind} behind: no service credential is configured \
             (git.service_credential_file), deploy by hand"
        ));
    }
    Ok(HookAnswer {
        repo: Some(push.repo),
        triggered: outcome.triggered,
        skipped: outcome.skipped,
        ..HookAnswer::new(HookOutcome::Handled, event, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_without_a_length_is_cut_at_the_limit() {
        let headers = HeaderMap::new();
        let fits = read_limited(&headers, Body::from(vec![b'x'; HOOK_BODY_LIMIT]))
            .await
            .expect("at the limit");
        assert_eq!(fits.len(), HOOK_BODY_LIMIT);
        let over = read_limited(&headers, Body::from(vec![b'x'; HOOK_BODY_LIMIT + 1]))
            .await
            .expect_err("over the limit");
        assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, (HOOK_BODY_LIMIT + 1).into());
        let refused = read_limited(&declared, Body::empty())
            .await
            .expect_err("a declared length over the limit");
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
