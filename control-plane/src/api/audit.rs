//! The audit trail over HTTP: the layer that records one entry per
//! changing request (every POST, PUT, PATCH and DELETE of `/api` that
//! matched a route), and `GET /api/audit`.
//!
//! The layer sits outside the forgery check, so a refused request is
//! recorded too: 401, 403 and 429 as `denied`, any other error as
//! `failed`. The action comes from the route ([`action_for`]), the target
//! and sandbox from its path, the actor from the session (or, for a login,
//! the name tried), the address through `http.trusted_proxies`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sdp_api::paging::DEFAULT_LIMIT;
use sdp_api::{AuditAction, AuditOutcome, AuditPage, AuditQuery};

use super::access::is_admin;
use super::openapi::ErrorBody;
use super::paging::{self, Cursor, List};
use super::{ApiError, AppState};
use crate::audit::{BITBUCKET_PUSH, noted};
use crate::sessions::Session;
use crate::store::{AuditFilter, NewAuditEntry};

/// The error code of an error answer, for the entry's message.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// The action of a changing route (`path` as the router matched it, under
/// `/api`); `None` for reads and for paths that are no route.
pub fn action_for(method: &Method, path: &str) -> Option<AuditAction> {
    use AuditAction::*;
    let path = path.strip_prefix("/api")?;
    let action = match (method.as_str(), path) {
        ("POST", "/login") => Login,
        ("POST", "/logout") => Logout,
        ("POST", "/sandboxes") => SandboxCreate,
        ("PATCH", "/sandboxes/{name}") => SandboxUpdate,
        ("DELETE", "/sandboxes/{name}") => SandboxDelete,
        ("POST", "/sandboxes/{name}/probe") => SandboxProbe,
        ("POST", "/sandboxes/{name}/deployments") => Deploy,
        ("POST", "/sandboxes/{name}/deploy") => DeployTemplate,
        ("POST", "/deployments/{id}/cancel") => Cancel,
        ("POST", "/deployments/{id}/redeploy") => Rollback,
        ("PUT", "/sandboxes/{name}/routes/{service}") => RouteSet,
        ("DELETE", "/sandboxes/{name}/routes/{service}") => RouteReset,
        ("PUT", "/sandboxes/{name}/services/{repo}") => FollowSet,
        ("PUT", "/sandboxes/{name}/services/{repo}/env") => ServiceEnvSet,
        ("POST", "/environments") => EnvironmentCreate,
        ("PUT", "/environments/{name}") => EnvironmentUpdate,
        ("DELETE", "/environments/{name}") => EnvironmentDelete,
        ("POST", "/templates") => TemplateCreate,
        ("PUT", "/templates/{name}") => TemplateUpdate,
        ("DELETE", "/templates/{name}") => TemplateDelete,
        ("POST", "/hooks/bitbucket") => Push,
        ("POST", "/sandboxes/{name}/wake") => SandboxWake,
        ("POST", "/sandboxes/{name}/test-runs") => TestRunStart,
        ("POST", "/test-runs/{id}/cancel") => TestRunCancel,
        ("POST", "/sandboxes/{name}/resources/{resource}/reset") => ResourceReset,
        ("PUT", "/sandboxes/{name}/resources/{resource}") => ResourceSet,
        ("DELETE", "/sandboxes/{name}/resources/{resource}") => ResourceRemove,
        ("PUT", "/templates/{name}/notify") => TemplateUpdate,
        ("PUT", "/environments/{name}/notify") => EnvironmentUpdate,
        _ => return None,
    };
    Some(action)
}

/// The path's parameters in order: `/api/sandboxes/{name}/routes/{service}`
/// and `/api/sandboxes/s1/routes/users` give `["s1", "users"]`.
fn path_params<'a>(template: &str, path: &'a str) -> Vec<&'a str> {
    template
        .split('/')
        .zip(path.split('/'))
        .filter(|(pattern, _)| pattern.starts_with('{'))
        .map(|(_, value)| value)
        .collect()
}

fn outcome_of(status: StatusCode) -> AuditOutcome {
    match status {
        s if s.is_success() || s.is_redirection() => AuditOutcome::Ok,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
            AuditOutcome::Denied
        }
        _ => AuditOutcome::Failed,
    }
}

/// The layer: runs the request with a note open, then records one entry.
pub async fn record_changes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.extensions().get::<MatchedPath>().cloned();
    let Some((action, path)) = path
        .and_then(|path| action_for(request.method(), path.as_str()).map(|action| (action, path)))
    else {
        return next.run(request).await;
    };
    let at = Utc::now();
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            crate::client_addr::client(
                peer.ip(),
                request.headers(),
                &state.config.http.trusted_proxies,
            )
            .to_string()
        });
    let params: Vec<String> = path_params(path.as_str(), request.uri().path())
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (response, note) = noted(next.run(request)).await;
    let under_sandbox = path.as_str().starts_with("/api/sandboxes/");
    let sandbox = note
        .sandbox
        .or_else(|| under_sandbox.then(|| params.first().cloned()).flatten());
    let target = note.target.or_else(|| {
        if params.is_empty() {
            sandbox.clone()
        } else {
            Some(params.join("/"))
        }
    });
    let actor = match action {
        AuditAction::Push => Some(BITBUCKET_PUSH.to_owned()),
        _ => note.actor,
    };
    let status = response.status();
    let outcome = outcome_of(status);
    let code = response.extensions().get::<ErrorCode>().map(|code| code.0);
    let message = match (note.message, code) {
        (Some(note), Some(code)) => Some(format!("{} {code}: {note}", status.as_u16())),
        (Some(note), None) => Some(note),
        (None, Some(code)) => Some(format!("{} {code}", status.as_u16())),
        (None, None) if outcome != AuditOutcome::Ok => Some(status.as_u16().to_string()),
        (None, None) => None,
    };
    state
        .audit
        .record(NewAuditEntry {
            at,
            actor,
            action: note.action.unwrap_or(action),
            target,
            sandbox,
            address,
            outcome,
            message,
        })
        .await;
    response
}

fn time(name: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    // Empty is not a time: the document says RFC 3339.
    text.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "{name} must be an RFC 3339 time (2026-01-01T00:00:00Z)"
                ))
            })
    })
    .transpose()
}

/// The audit trail, newest first, a page at a time (`limit`, `cursor`;
/// the next page's cursor in `next_cursor` and `X-Next-Cursor`; `page` is
/// the deprecated way): an admin's is every entry; anyone else's the
/// entries they acted in and those of the sandboxes they own.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "list_audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of entries", body = AuditPage,
         headers(
            ("X-Next-Cursor" = String, description = "The next page's `cursor` (as `next_cursor`); absent on the last page"),
            ("Link" = String, description = "`<this request with the next cursor>; rel=\"next\"`; absent on the last page"),
         )),
        (status = 400, description = "An unknown action or parameter, a malformed time, page or limit, a malformed or another list's cursor (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No session (`unauthorized`)", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let action = match query.action.as_deref().filter(|a| !a.is_empty()) {
        Some(text) => Some(AuditAction::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("unknown action {text:?}: see docs/AUDIT.md"))
        })?),
        None => None,
    };
    let limit = paging::limit(query.limit, DEFAULT_LIMIT)?;
    let after = Cursor::id(List::Audit, query.cursor.as_deref())?;
    // A cursor wins over the deprecated page number.
    let page = if after.is_some() {
        1
    } else {
        query.page.unwrap_or(1)
    };
    if !(1..=1_000_000).contains(&page) {
        return Err(ApiError::bad_request(
            "page is 1 to 1000000 (deprecated: follow next_cursor instead)",
        ));
    }
    let nonempty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let filter = AuditFilter {
        visible_to: (!is_admin(&state, &session)).then(|| session.username.clone()),
        actor: nonempty(query.user),
        sandbox: nonempty(query.sandbox),
        action,
        since: time("since", query.since.as_deref())?,
        until: time("until", query.until.as_deref())?,
        after,
        offset: u64::from(page - 1) * u64::from(limit),
        limit: paging::probe(limit),
    };
    let rows = state.store.audit(&filter)?;
    let (entries, next_cursor) = paging::cut(rows, limit, |e| Cursor::of_id(List::Audit, e.id));
    // Clients from before cursors read `next_page`.
    let next_page = (after.is_none() && next_cursor.is_some()).then_some(page + 1);
    let body = AuditPage {
        entries,
        next_cursor: next_cursor.clone(),
        page,
        next_page,
    };
    Ok(paging::with_next(
        Json(body).into_response(),
        &uri,
        next_cursor.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every changing route of the document has an action: a new route
    /// cannot go unrecorded.
    #[test]
    fn every_changing_route_has_an_action() {
        let document = super::super::document();
        let mut changing = 0;
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if operation.is_some() {
                    changing += 1;
                    assert!(
                        action_for(&method, path).is_some(),
                        "{method} {path} has no audit action"
                    );
                }
            }
        }
        assert!(changing >= 21, "{changing}");
        assert_eq!(action_for(&Method::GET, "/api/sandboxes"), None);
    }

    #[test]
    fn params_come_from_the_path_by_position() {
        assert_eq!(
            path_params(
                "/api/sandboxes/{name}/routes/{service}",
                "/api/sandboxes/s1/routes/users"
            ),
            ["s1", "users"]
        );
        assert!(path_params("/api/login", "/api/login").is_empty());
    }

    #[test]
    fn refusals_are_denied_and_errors_failed() {
        assert_eq!(outcome_of(StatusCode::ACCEPTED), AuditOutcome::Ok);
        assert_eq!(outcome_of(StatusCode::FORBIDDEN), AuditOutcome::Denied);
        assert_eq!(outcome_of(StatusCode::UNAUTHORIZED), AuditOutcome::Denied);
        assert_eq!(
            outcome_of(StatusCode::TOO_MANY_REQUESTS),
            AuditOutcome::Denied
        );
        assert_eq!(outcome_of(StatusCode::CONFLICT), AuditOutcome::Failed);
        assert_eq!(outcome_of(StatusCode::BAD_GATEWAY), AuditOutcome::Failed);
    }
}
