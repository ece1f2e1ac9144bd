//! Sandboxes (`/api/sandboxes[/{name}]`), deploying a whole template
//! (`/deploy`), and routes (`/routes[/{service}]`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sdp_bus::{GitCredential, RouteSource, Status, validate};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, ApiJson, AppState};
use crate::orchestrator::{Requester, Started, plan_template};
use crate::routing::EffectiveRoute;
use crate::sessions::Session;
use crate::store::{NewSandbox, Sandbox, is_constraint};

#[derive(Serialize)]
pub struct SandboxView {
    #[serde(flatten)]
    sandbox: Sandbox,
    /// The environment it runs with: its own, else its template's.
    effective_environment: Option<String>,
    services: Vec<ServiceView>,
    /// Where its gateway answers; the same for the sandbox's whole life.
    gateway_url: Option<String>,
    /// `http://<name>.<http.preview_domain>/`, if a preview domain is set.
    preview_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    routes: Option<Vec<EffectiveRoute>>,
}

#[derive(Serialize)]
struct ServiceView {
    repo: String,
    kind: Option<String>,
    branch: Option<String>,
    status: Option<Status>,
    deployment_id: Option<String>,
    commit: Option<String>,
    url: Option<String>,
}

pub(super) fn check_sandbox_name(name: &str) -> Result<(), ApiError> {
    validate::resource_name("sandbox name", name).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The sandbox, if the caller may change it: its owner or an admin.
pub(super) fn sandbox_for_change(
    state: &AppState,
    session: &Session,
    name: &str,
) -> Result<Sandbox, ApiError> {
    let sandbox = state
        .store
        .sandbox(name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    let admin = state.config.auth.admins.contains(&session.username);
    if sandbox.owner != session.username && !admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "sandbox {name} belongs to {}; only its owner or an admin may change it",
                sandbox.owner
            ),
        ));
    }
    Ok(sandbox)
}

pub(super) fn credential(state: &AppState, session: &Session) -> Result<GitCredential, ApiError> {
    state.sessions.credential(session).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "credential_expired",
            "the control plane restarted since you logged in: log in again to deploy",
        )
    })
}

async fn view(
    state: &AppState,
    sandbox: Sandbox,
    with_routes: bool,
) -> Result<SandboxView, ApiError> {
    let latest = state.store.latest_deployments(&sandbox.name)?;
    let template = match &sandbox.template {
        Some(name) => state.store.template(name)?,
        None => None,
    };
    let gateway_url = state.store.running_gateway_url(&sandbox.name)?;
    let preview_url =
        state.config.http.preview_domain.as_ref().map(|domain| {
            crate::preview::url(domain, state.config.http.secure_cookies, &sandbox.name)
        });
    let mut services: Vec<ServiceView> = latest
        .into_iter()
        .map(|d| ServiceView {
            repo: d.repo,
            kind: Some(d.kind),
            branch: Some(d.branch),
            status: Some(d.status),
            deployment_id: Some(d.id),
            commit: d.commit,
            url: d.url,
        })
        .collect();
    if let Some(template) = &template {
        let planned = template.gateway.iter().chain(template.services.iter());
        for planned in planned {
            if !services.iter().any(|s| s.repo == planned.repo) {
                services.push(ServiceView {
                    repo: planned.repo.clone(),
                    kind: None,
                    branch: Some(planned.branch.clone()),
                    status: None,
                    deployment_id: None,
                    commit: None,
                    url: None,
                });
            }
        }
    }
    services.sort_by(|a, b| a.repo.cmp(&b.repo));
    let routes = if with_routes {
        Some(state.orchestrator.route_table(&sandbox).await?.routes)
    } else {
        None
    };
    Ok(SandboxView {
        effective_environment: crate::routing::environment_name(&sandbox, template.as_ref()),
        sandbox,
        services,
        gateway_url,
        preview_url,
        routes,
    })
}

pub async fn list(
    State(state): State<AppState>,
    _session: Session,
) -> Result<Json<Vec<SandboxView>>, ApiError> {
    let mut views = Vec::new();
    for sandbox in state.store.sandboxes()? {
        views.push(view(&state, sandbox, false).await?);
    }
    Ok(Json(views))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    ttl_hours: Option<u32>,
    #[serde(default)]
    pinned: bool,
}

fn check_ttl(ttl: u32) -> Result<(), ApiError> {
    if !(1..=24 * 90).contains(&ttl) {
        return Err(ApiError::bad_request(
            "ttl_hours must be between 1 and 2160 (90 days)",
        ));
    }
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    session: Session,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
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
    Ok((
        StatusCode::CREATED,
        Json(view(&state, created, true).await?),
    )
        .into_response())
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    pinned: Option<bool>,
    #[serde(default)]
    ttl_hours: Option<u32>,
    #[serde(default)]
    renew: bool,
}

pub async fn update(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> Result<Json<SandboxView>, ApiError> {
    sandbox_for_change(&state, &session, &name)?;
    if let Some(ttl) = body.ttl_hours {
        check_ttl(ttl)?;
    }
    state
        .store
        .update_sandbox(&name, body.pinned, body.ttl_hours, body.renew)?;
    show(State(state), session, Path(name)).await
}

pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    sandbox_for_change(&state, &session, &name)?;
    let report = state.orchestrator.teardown(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(report)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// Branch per repo, over the template's defaults.
    #[serde(default)]
    branches: BTreeMap<String, String>,
    /// Deploy only these services (and the gateway); default: all.
    #[serde(default)]
    only: Option<Vec<String>>,
}

pub async fn deploy_template(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: empty means the template as it is.
    let body: DeployBody = if body.iter().all(u8::is_ascii_whitespace) {
        DeployBody::default()
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
    let outcomes = state
        .orchestrator
        .deploy_plan(&name, plan, &Requester::of(&session, credential))
        .await?;
    let started: Vec<serde_json::Value> = outcomes
        .into_iter()
        .map(|(planned, outcome)| match outcome {
            Ok(Started {
                id,
                repo,
                branch,
                status,
                ..
            }) => json!({ "id": id, "repo": repo, "branch": branch, "status": status }),
            Err((id, source)) => json!({
                "id": id, "repo": planned.repo, "branch": planned.branch, "status": Status::Failed,
                "error": source.to_string(),
            }),
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "deployments": started })),
    )
        .into_response())
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    target: String,
}

/// A route target: an http(s) URL with a host, no whitespace or control
/// characters (it becomes an env var of the gateway).
fn check_target(target: &str) -> Result<(), ApiError> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"));
    let ok = target.len() <= 2048
        && !target.chars().any(|c| c.is_whitespace() || c.is_control())
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
    if !ok {
        return Err(ApiError::bad_request(
            "target must be an http:// or https:// URL with a host, without spaces",
        ));
    }
    Ok(())
}

pub async fn put_route(
    State(state): State<AppState>,
    session: Session,
    Path((name, service)): Path<(String, String)>,
    ApiJson(body): ApiJson<RouteBody>,
) -> Result<Json<EffectiveRoute>, ApiError> {
    validate::repo(&service).map_err(|e| ApiError::bad_request(e.to_string()))?;
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

pub async fn delete_route(
    State(state): State<AppState>,
    session: Session,
    Path((name, service)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    validate::repo(&service).map_err(|e| ApiError::bad_request(e.to_string()))?;
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
