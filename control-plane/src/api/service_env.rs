//! A sandbox's own env for one of its services:
//! `GET`/`PUT /api/sandboxes/{name}/services/{repo}/env`. Anyone logged in
//! reads its keys; the values only the sandbox's owner and admins, who
//! alone change it. At deploy it is merged over the template's env for
//! the service (`DeployRequest.overrides.env`); a change re-applies the
//! service when it runs (its build again, the new env).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use sdp_bus::{service, validate};

use sdp_api::{ServiceEnv, ServiceEnvWrite};

use super::access::{check_sandbox_name, is_admin, sandbox_for_change};
use super::openapi::ErrorBody;
use super::view::view;
use super::{ApiError, ApiJson, AppState};
use crate::sessions::Session;
use crate::store::{Sandbox, Template};

fn check_path(name: &str, repo: &str) -> Result<(), ApiError> {
    check_sandbox_name(name)?;
    Ok(validate::repo(repo)?)
}

fn template_of(state: &AppState, sandbox: &Sandbox) -> Result<Option<Template>, ApiError> {
    Ok(match &sandbox.template {
        Some(name) => state.store.template(name)?,
        None => None,
    })
}

/// The template's env for `repo` (its gateway or one of its services).
fn template_env(template: Option<&Template>, repo: &str) -> BTreeMap<String, String> {
    template
        .and_then(|t| {
            t.services
                .iter()
                .chain(t.gateway.iter())
                .find(|s| s.repo == repo)
        })
        .map(|s| s.overrides.env.clone())
        .unwrap_or_default()
}

/// Whether `repo` is a service of the sandbox: deployed in it, or in its
/// template.
async fn is_service(state: &AppState, sandbox: &Sandbox, repo: &str) -> Result<bool, ApiError> {
    Ok(view(state, sandbox.clone(), false)
        .await?
        .services
        .iter()
        .any(|s| s.repo == repo))
}

/// The sandbox's env for one of its services (values for its owner and
/// admins; keys for everyone).
#[utoipa::path(
    get,
    path = "/sandboxes/{name}/services/{repo}/env",
    operation_id = "show_service_env",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("repo" = String, Path, description = "The service (repo name)", example = "users"),
    ),
    responses(
        (status = 200, description = "The env", body = ServiceEnv),
        (status = 400, description = "An invalid sandbox or repo name (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such sandbox, or the service is neither deployed in it, nor in its template, nor given an env (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show_service_env(
    State(state): State<AppState>,
    session: Session,
    Path((name, repo)): Path<(String, String)>,
) -> Result<Json<ServiceEnv>, ApiError> {
    check_path(&name, &repo)?;
    let sandbox = state
        .store
        .sandbox(&name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    let env = state.store.service_env(&name, &repo)?;
    if env.is_empty() && !is_service(&state, &sandbox, &repo).await? {
        return Err(ApiError::not_found("service"));
    }
    let may_see = sandbox.owner == session.username || is_admin(&state, &session);
    let template = template_of(&state, &sandbox)?;
    Ok(Json(ServiceEnv {
        keys: env.keys().cloned().collect(),
        env: may_see.then_some(env),
        template_env: template_env(template.as_ref(), &repo),
        sandbox: name,
        repo,
        reapplying: false,
    }))
}

/// Replaces the sandbox's env for one of its services (owner or admin);
/// a running service is re-applied with it (its build again).
#[utoipa::path(
    put,
    path = "/sandboxes/{name}/services/{repo}/env",
    operation_id = "put_service_env",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("repo" = String, Path, description = "The service (repo name)", example = "users"),
    ),
    request_body = ServiceEnvWrite,
    responses(
        (status = 200, description = "The env as it now is", body = ServiceEnv),
        (status = 400, description = "An invalid name, key or value, a reserved key (`PORT`, `SDP_*`), or too many variables (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox, or the service is neither deployed in it, nor in its template, nor given an env (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn put_service_env(
    State(state): State<AppState>,
    session: Session,
    Path((name, repo)): Path<(String, String)>,
    ApiJson(body): ApiJson<ServiceEnvWrite>,
) -> Result<Json<ServiceEnv>, ApiError> {
    check_path(&name, &repo)?;
    service::check_env(&body.env).map_err(ApiError::bad_request)?;
    let sandbox = sandbox_for_change(&state, &session, &name)?;
    let before = state.store.service_env(&name, &repo)?;
    if before.is_empty() && !is_service(&state, &sandbox, &repo).await? {
        return Err(ApiError::not_found("service"));
    }
    let template = template_of(&state, &sandbox)?;
    let template_env = template_env(template.as_ref(), &repo);
    // What the agent will be sent must pass its own check too.
    let mut merged = template_env.clone();
    merged.extend(body.env.clone());
    service::check_env(&merged)
        .map_err(|e| ApiError::bad_request(format!("with the template's env: {e}")))?;
    if !state.store.set_service_env(&name, &repo, &body.env)? {
        return Err(ApiError::not_found("sandbox"));
    }
    let reapplying = before != body.env && runs(&state, &name, &repo)?;
    if reapplying {
        let credential = state.sessions.credential(&session);
        state.orchestrator.reapply_service(
            &name,
            &repo,
            credential.map(|c| (session.token_hash.clone(), c)),
        );
    }
    Ok(Json(ServiceEnv {
        sandbox: name,
        keys: body.env.keys().cloned().collect(),
        env: Some(body.env),
        template_env,
        repo,
        reapplying,
    }))
}

/// Whether the newest deployment of `repo` in the sandbox runs or is on
/// its way (a re-apply waits for it to settle, then re-applies if it runs).
fn runs(state: &AppState, sandbox: &str, repo: &str) -> Result<bool, ApiError> {
    Ok(state.store.latest_deployments(sandbox)?.iter().any(|d| {
        d.repo == repo && (d.status == sdp_bus::Status::Running || !d.status.is_settled())
    }))
}
