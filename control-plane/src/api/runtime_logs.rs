//! `GET /api/deployments/{id}/runtime-logs`: a running deployment's
//! container output as chunked `text/plain`, one line per line, from the
//! agent that runs it ([`crate::runtime_logs`]); `follow=true` keeps it
//! open. The query is checked here, before any agent is asked.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sdp_bus::{DeploymentId, RpcErrorCode, Status};

use sdp_api::RuntimeLogsQuery;

use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::agent_client::AgentCallError;
use crate::runtime_logs::LogQuery;
use crate::sessions::Session;
use crate::user_streams::{StreamKind, StreamSlot};

/// The most lines `tail` may ask for.
pub const MAX_TAIL: u32 = 10_000;
/// Lines sent when neither `tail` nor `since` is given.
pub const DEFAULT_TAIL: u32 = 1000;
/// The longest search text, in characters.
pub const MAX_FILTER: usize = 256;

/// A slot for one more stream of `kind` for the caller, or 429
/// `too_many_streams` when they hold as many as one user may.
pub(super) fn open_stream(
    state: &AppState,
    session: &Session,
    kind: StreamKind,
) -> Result<StreamSlot, ApiError> {
    let limit = match kind {
        StreamKind::WebSocket => state.config.streams.websockets_per_user,
        StreamKind::RuntimeLogs => state.config.streams.runtime_logs_per_user,
    };
    state
        .streams
        .try_open(kind, &session.username, limit)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "you have {limit} {} open, the most one user may: close one and try again",
                    kind.describe()
                ),
            )
        })
}

/// Unix seconds from `since`: digits, or an RFC 3339 time.
fn parse_since(since: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "since must be an RFC 3339 time (2026-11-27T12:00:00Z) or unix seconds",
        )
    };
    let seconds = if !since.is_empty() && since.bytes().all(|b| b.is_ascii_digit()) {
        since.parse::<i64>().map_err(|_| bad())?
    } else {
        chrono::DateTime::parse_from_rfc3339(since)
            .map_err(|_| bad())?
            .timestamp()
    };
    // Docker takes a 32-bit time.
    if !(0..=i64::from(i32::MAX)).contains(&seconds) {
        return Err(ApiError::bad_request("since must be between 1970 and 2038"));
    }
    Ok(seconds)
}

fn log_query(query: RuntimeLogsQuery) -> Result<LogQuery, ApiError> {
    if query.tail.is_some_and(|t| t > MAX_TAIL) {
        return Err(ApiError::bad_request(format!(
            "tail must be between 0 and {MAX_TAIL}"
        )));
    }
    let since = query.since.as_deref().map(parse_since).transpose()?;
    let filter = query.q.filter(|q| !q.is_empty());
    if filter
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_FILTER)
    {
        return Err(ApiError::bad_request(format!(
            "q must be at most {MAX_FILTER} characters"
        )));
    }
    let tail = match (query.tail, since) {
        (Some(tail), _) => Some(tail),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_TAIL),
    };
    Ok(LogQuery {
        tail,
        since,
        follow: query.follow.unwrap_or(false),
        filter,
    })
}

/// The output of the deployment's running container (stdout and stderr),
/// never stored: straight from the agent that runs it.
#[utoipa::path(
    get,
    path = "/deployments/{id}/runtime-logs",
    operation_id = "deployment_runtime_logs",
    tag = "deployments",
    params(
        ("id" = String, Path, description = "The deployment's id"),
        RuntimeLogsQuery,
    ),
    responses(
        (status = 200, description = "The container's lines, chunked; with `follow=true` the response stays open until the viewer leaves or the container stops",
         content_type = "text/plain; charset=utf-8", body = String),
        (status = 400, description = "A bad `tail`, `since`, `q` or an unknown parameter (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such deployment (`not_found`)", body = ErrorBody),
        (status = 409, description = "The deployment is not running, or its container is not running on its agent (`not_running`)", body = ErrorBody),
        (status = 429, description = "The caller holds as many runtime-log streams as one user may (`too_many_streams`; `streams.runtime_logs_per_user`)", body = ErrorBody),
        (status = 501, description = "The deployment's agent does not serve runtime logs (`not_supported`)", body = ErrorBody),
        (status = 502, description = "The agent failed (`agent_error`)", body = ErrorBody),
        (status = 503, description = "The deployment's agent is offline (`no_agent`), or serves as many runtime-log streams as it may (`busy`)", body = ErrorBody),
    ),
)]
pub async fn runtime_logs(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    query: Result<Query<RuntimeLogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = DeploymentId::parse(&id).ok_or_else(|| ApiError::not_found("deployment"))?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = log_query(query)?;
    let deployment = state
        .store
        .deployment(id.as_str())?
        .ok_or_else(|| ApiError::not_found("deployment"))?;
    let not_running = |message: String| ApiError::new(StatusCode::CONFLICT, "not_running", message);
    if deployment.status != Status::Running {
        return Err(not_running(format!(
            "deployment is {}: runtime logs are served only while it is running",
            deployment.status
        )));
    }
    let Some(agent_id) = deployment.agent_id else {
        return Err(not_running("deployment has no agent".to_owned()));
    };
    // Held for as long as the response streams.
    let slot = open_stream(&state, &session, StreamKind::RuntimeLogs)?;
    let opened = crate::runtime_logs::open(
        &state.nats,
        &state.orchestrator.agents,
        &agent_id,
        &id,
        query,
        state.config.agents.request_timeout,
    )
    .await;
    let lines = match opened {
        Ok(lines) => lines,
        Err(AgentCallError::Refused { error, .. }) if error.code == RpcErrorCode::BadRequest => {
            return Err(not_running(error.message));
        }
        Err(err) => return Err(err.into()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // nginx (the shipped site) must pass chunks on as they come.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(lines.map(move |line| {
            let _held = &slot;
            line
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_unix_seconds() {
        assert_eq!(parse_since("1795000000").ok(), Some(1_795_000_000));
        assert_eq!(
            parse_since("2026-11-27T12:00:00Z").ok(),
            Some(1_795_780_800)
        );
        for bad in [
            "",
            "yesterday",
            "-5",
            "99999999999",
            "1e9",
            "3000-01-01T00:00:00Z",
        ] {
            assert!(parse_since(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tail_defaults_and_bounds() {
        let query = |tail, since: Option<&str>| RuntimeLogsQuery {
            tail,
            since: since.map(str::to_owned),
            follow: None,
            q: Some(String::new()),
        };
        let plain = log_query(query(None, None)).expect("valid");
        assert_eq!(plain.tail, Some(DEFAULT_TAIL));
        assert_eq!(plain.filter, None);
        let since = log_query(query(None, Some("10"))).expect("valid");
        assert_eq!(since.tail, None);
        assert!(log_query(query(Some(MAX_TAIL + 1), None)).is_err());
    }
}
