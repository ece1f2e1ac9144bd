//! Sandboxes (`/api/sandboxes[/{name}]`), deploying a whole template
//! (`/deploy`), and routes (`/routes[/{service}]`). A service's autodeploy
//! and env are in `autodeploy.rs` and `service_env.rs`.

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sdp_bus::{RouteSource, Status, validate};

use sdp_api::paging::DEFAULT_SANDBOX_LIMIT;
use sdp_api::{
    RouteBody, SandboxPatch, SandboxView, SandboxesQuery, TemplateDeploy, TemplateDeployStarted,
    TemplateDeployment,
};

use super::access::{check_sandbox_name, credential, is_admin, sandbox_for_change, store_error};
use super::openapi::ErrorBody;
use super::paging::{self, Cursor, List};
use super::view::{view, views};
use super::{ApiError, ApiJson, AppState};
use crate::orchestrator::{Requester, Started, TeardownReport, plan_template};
use crate::routing::EffectiveRoute;
use crate::sessions::Session;
use crate::store::{NewSandbox, PageOf, is_constraint};

/// The sandboxes by name, a page at a time (`limit`, `cursor`;
/// the next page's cursor in `X-Next-Cursor`; the default page holds 500).
#[utoipa::path(
    get,
    path = "/sandboxes",
    operation_id = "list_sandboxes",
    tag = "sandboxes",
    params(SandboxesQuery),
    responses(
        (status = 200, description = "A page of the sandboxes by name (without route tables)", body = [SandboxView],
         headers(
            ("X-Next-Cursor" = String, description = "The next page's `cursor`; absent on the last page"),
            ("Link" = String, description = "`<this request with the next cursor>; rel=\"next\"`; absent on the last page"),
         )),
        (status = 400, description = "A limit out of range, a malformed or another list's cursor, or an unknown parameter (`bad_request`)", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _session: Session,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<SandboxesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = paging::limit(query.limit, DEFAULT_SANDBOX_LIMIT)?;
    let page = PageOf {
        after: Cursor::name(List::Sandboxes, query.cursor.as_deref())?,
        limit: paging::probe(limit),
    };
    let rows = state.store.sandboxes_page(&page)?;
    let (rows, next) = paging::cut(rows, limit, |s| Cursor::of_name(List::Sandboxes, &s.name));
    Ok(paging::respond(&uri, (views(&state, rows)?, next)))
}

fn check_ttl(ttl: u32) -> Result<(), ApiError> {
    if !(1..=24 * 90).contains(&ttl) {
        return Err(ApiError::bad_request(
            "ttl_hours must be between 1 and 2160 (90 days)",
        ));
    }
    Ok(())
}

/// Creates a sandbox owned by the caller, with resources of its own if
/// `resources` lists any (over its template's, by name).
#[utoipa::path(
    post,
    path = "/sandboxes",
    operation_id = "create_sandbox",
    tag = "sandboxes",
    request_body = sdp_api::NewSandbox,
    responses(
        (status = 201, description = "Created", body = SandboxView),
        (status = 400, description = "An invalid name, TTL or resource, a resource variable its template's set too, or an unknown template or environment (`bad_request`)", body = ErrorBody),
        (status = 409, description = "The name is taken (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    ApiJson(body): ApiJson<sdp_api::NewSandbox>,
) -> Result<Response, ApiError> {
    crate::audit::note_sandbox(&body.name);
    check_sandbox_name(&body.name)?;
    let ttl_hours = body
        .ttl_hours
        .unwrap_or(state.config.sandboxes.default_ttl_hours);
    check_ttl(ttl_hours)?;
    if let Some(template) = &body.template
        && state.store.template(template)?.is_none()
    {
        return Err(ApiError::bad_request(format!(
            "template {template:?} does not exist"
        )));
    }
    if let Some(environment) = &body.environment
        && state.store.environment(environment)?.is_none()
    {
        return Err(ApiError::bad_request(format!(
            "environment {environment:?} does not exist"
        )));
    }
    super::resources::check_effective(&state, body.template.as_deref(), &body.resources)?;
    let created = match state.store.insert_sandbox(&NewSandbox {
        name: &body.name,
        owner: &session.username,
        template: body.template.as_deref(),
        environment: body.environment.as_deref(),
        ttl_hours,
        pinned: body.pinned,
    }) {
        Ok(created) => created,
        Err(err) if is_constraint(&err) => {
            return Err(ApiError::conflict(format!(
                "sandbox {} already exists",
                body.name
            )));
        }
        Err(err) => return Err(err.into()),
    };
    if !body.resources.is_empty() {
        let own = body.resources.clone();
        state
            .store
            .change_sandbox_resource_specs(&body.name, |_| Ok::<_, ApiError>(own))??;
    }
    Ok((
        StatusCode::CREATED,
        Json(view(&state, created, true).await?),
    )
        .into_response())
}

/// One sandbox, with its route table.
#[utoipa::path(
    get,
    path = "/sandboxes/{name}",
    operation_id = "show_sandbox",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    responses(
        (status = 200, description = "The sandbox", body = SandboxView),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    let sandbox = state
        .store
        .sandbox(&name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    Ok(Json(view(&state, sandbox, true).await?))
}

/// Pins, unpins, re-times or renews a sandbox (owner or admin).
#[utoipa::path(
    patch,
    path = "/sandboxes/{name}",
    operation_id = "update_sandbox",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    request_body = SandboxPatch,
    responses(
        (status = 200, description = "Updated", body = SandboxView),
        (status = 400, description = "An invalid TTL (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SandboxPatch>,
) -> Result<Json<SandboxView>, ApiError> {
    // Which of pin, lifetime and renew was asked, for the audit trail.
    let asked: Vec<String> = [
        body.pinned.map(|pinned| {
            if pinned {
                "pin".to_owned()
            } else {
                "unpin".to_owned()
            }
        }),
        body.ttl_hours.map(|hours| format!("ttl {hours}h")),
        body.renew.then(|| "renew".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    crate::audit::note(|note| note.message = Some(asked.join(", ")));
    sandbox_for_change(&state, &session, &name)?;
    if let Some(ttl) = body.ttl_hours {
        check_ttl(ttl)?;
    }
    state
        .store
        .update_sandbox(&name, body.pinned, body.ttl_hours, body.renew)?;
    show(State(state), session, Path(name)).await
}

/// Tears a sandbox down on every online agent and deletes it (owner or
/// admin).
#[utoipa::path(
    delete,
    path = "/sandboxes/{name}",
    operation_id = "delete_sandbox",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    responses(
        (status = 202, description = "Torn down: what each agent removed", body = TeardownReport),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    sandbox_for_change(&state, &session, &name)?;
    let report = state.orchestrator.teardown(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(report)).into_response())
}

/// Deploys the sandbox's template: the gateway and every service (or
/// `only` some), with branch overrides (owner or admin).
#[utoipa::path(
    post,
    path = "/sandboxes/{name}/deploy",
    operation_id = "deploy_template",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    request_body(content = TemplateDeploy, description = "Optional; empty means the template as it is"),
    responses(
        (status = 202, description = "Deployments started", body = TemplateDeployStarted),
        (status = 400, description = "An invalid body, no template, or an unknown service (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn deploy_template(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: empty means the template as it is.
    let body: TemplateDeploy = if body.iter().all(u8::is_ascii_whitespace) {
        TemplateDeploy::default()
    } else if !super::error::is_object(&body) {
        return Err(ApiError::bad_request(
            "invalid body: the request body must be a JSON object",
        ));
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    let sandbox = sandbox_for_change(&state, &session, &name)?;
    let Some(template) = sandbox
        .template
        .as_ref()
        .and_then(|t| state.store.template(t).transpose())
        .transpose()?
    else {
        return Err(ApiError::bad_request(format!(
            "sandbox {name} has no template to deploy"
        )));
    };
    let plan = plan_template(&template, &body.branches, body.only.as_deref())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let credential = credential(&state, &session)?;
    let requester = Requester::of(&session, credential, is_admin(&state, &session));
    let outcomes = state
        .orchestrator
        .deploy_plan(&name, plan, &requester)
        .await
        .map_err(store_error)?;
    let deployments = outcomes
        .into_iter()
        .map(|(planned, outcome)| match outcome {
            Ok(Started {
                id,
                repo,
                branch,
                status,
                ..
            }) => TemplateDeployment {
                id,
                repo,
                branch,
                status,
                error: None,
            },
            Err((id, source)) => TemplateDeployment {
                id,
                repo: planned.repo,
                branch: planned.branch,
                status: Status::Failed,
                error: Some(source.to_string()),
            },
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(TemplateDeployStarted { deployments }),
    )
        .into_response())
}

/// The sandbox's route table: where its gateway sends each service.
#[utoipa::path(
    get,
    path = "/sandboxes/{name}/routes",
    operation_id = "list_routes",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    responses(
        (status = 200, description = "The routes", body = [EffectiveRoute]),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn routes(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
) -> Result<Json<Vec<EffectiveRoute>>, ApiError> {
    let sandbox = state
        .store
        .sandbox(&name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    Ok(Json(state.orchestrator.route_table(&sandbox).await?.routes))
}

/// A route target: an http(s) URL with a host, no whitespace or control
/// characters (it becomes an env var of the gateway).
fn check_target(target: &str) -> Result<(), ApiError> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"));
    let ok = target.len() <= 2048
        && !target.chars().any(|c| c.is_whitespace() || c.is_control())
        && rest.is_some_and(has_host);
    if !ok {
        return Err(ApiError::bad_request(
            "target must be an http:// or https:// URL with a host, without spaces",
        ));
    }
    Ok(())
}

/// Whether a URL's part after `scheme://` starts with a host: the
/// authority (up to `/`, `?` or `#`) is not empty and holds no `[` or `]`
/// (an IPv6 literal is not taken: URL parsers refuse a bracketed host
/// that is not a valid address, and a name does as well). As
/// `sdp_api::rules::ROUTE_TARGET` states it.
fn has_host(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty() && !authority.contains(['[', ']'])
}

/// Sets a manual route and re-applies the gateway (owner or admin).
#[utoipa::path(
    put,
    path = "/sandboxes/{name}/routes/{service}",
    operation_id = "put_route",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("service" = String, Path, description = "The service (repo name)", example = "users"),
    ),
    request_body = RouteBody,
    responses(
        (status = 200, description = "The route as it now is", body = EffectiveRoute),
        (status = 400, description = "An invalid service or target (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn put_route(
    State(state): State<AppState>,
    session: Session,
    Path((name, service)): Path<(String, String)>,
    ApiJson(body): ApiJson<RouteBody>,
) -> Result<Json<EffectiveRoute>, ApiError> {
    validate::repo(&service)?;
    check_target(&body.target)?;
    let sandbox = sandbox_for_change(&state, &session, &name)?;
    state
        .store
        .set_route(&name, &service, &body.target, RouteSource::Manual)?;
    reapply(&state, &session, &name).await;
    let routes = state.orchestrator.route_table(&sandbox).await?.routes;
    routes
        .into_iter()
        .find(|r| r.service == service)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("route"))
}

/// Removes a manual route and re-applies the gateway (owner or admin).
#[utoipa::path(
    delete,
    path = "/sandboxes/{name}/routes/{service}",
    operation_id = "delete_route",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("service" = String, Path, description = "The service (repo name)", example = "users"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "An invalid service (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox or manual route (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn delete_route(
    State(state): State<AppState>,
    session: Session,
    Path((name, service)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    validate::repo(&service)?;
    sandbox_for_change(&state, &session, &name)?;
    if !state
        .store
        .delete_route(&name, &service, RouteSource::Manual)?
    {
        return Err(ApiError::not_found("manual route"));
    }
    reapply(&state, &session, &name).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks for the gateway to be re-applied after a route change (in the
/// background: the route is stored, and the re-apply shows in the
/// history).
async fn reapply(state: &AppState, session: &Session, sandbox: &str) {
    let credential = state.sessions.credential(session);
    state
        .orchestrator
        .reapply_gateway(sandbox, credential.map(|c| (session.token_hash.clone(), c)));
}
