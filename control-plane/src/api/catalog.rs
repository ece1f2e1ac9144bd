//! Environments and templates: `/api/environments[/{name}]`,
//! `/api/templates[/{name}]`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sdp_bus::validate;
use serde::Deserialize;

use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, AppState};
use crate::sessions::Session;
use crate::store::{Environment, RepoBranch, Template, is_constraint, object_only};

fn check_name(what: &'static str, name: &str) -> Result<(), ApiError> {
    validate::resource_name(what, name).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Env var keys as a shell and PHP's getenv take them; values bounded.
fn check_vars(vars: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if vars.len() > 500 {
        return Err(ApiError::bad_request("at most 500 variables"));
    }
    for (key, value) in vars {
        let mut chars = key.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && key.len() <= 128;
        if !ok {
            return Err(ApiError::bad_request(format!(
                "invalid variable name {key:?}: use letters, digits and _ (not first a digit), at most 128"
            )));
        }
        if value.len() > 8192 || value.contains('\0') {
            return Err(ApiError::bad_request(format!(
                "value of {key} is longer than 8192 bytes or holds a NUL"
            )));
        }
    }
    Ok(())
}

fn check_repo_branch(what: &str, rb: &RepoBranch) -> Result<(), ApiError> {
    validate::repo(&rb.repo).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    validate::branch(&rb.branch).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    if let Some(package) = &rb.overrides.main_package
        && (package.starts_with(['/', '-']) || package.split('/').any(|c| c == ".."))
    {
        return Err(ApiError::bad_request(format!(
            "{what}: main_package must be a relative path inside the repo"
        )));
    }
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "baseline")]
    name: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentVars {
    vars: BTreeMap<String, String>,
}

/// Every environment, by name.
#[utoipa::path(
    get,
    path = "/environments",
    operation_id = "list_environments",
    tag = "catalog",
    responses((status = 200, description = "The environments", body = [Environment])),
)]
pub async fn list_environments(
    State(state): State<AppState>,
    _session: Session,
) -> Result<Json<Vec<Environment>>, ApiError> {
    Ok(Json(state.store.environments()?))
}

/// Creates an environment.
#[utoipa::path(
    post,
    path = "/environments",
    operation_id = "create_environment",
    tag = "catalog",
    request_body = NewEnvironment,
    responses(
        (status = 201, description = "Created", body = Environment),
        (status = 400, description = "An invalid name or variable (`bad_request`)", body = ErrorBody),
        (status = 409, description = "The name is taken (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn create_environment(
    State(state): State<AppState>,
    _session: Session,
    ApiJson(body): ApiJson<NewEnvironment>,
) -> Result<Response, ApiError> {
    check_name("environment name", &body.name)?;
    check_vars(&body.vars)?;
    match state.store.put_environment(&body.name, &body.vars, true) {
        Ok(_) => {}
        Err(err) if is_constraint(&err) => {
            return Err(ApiError::conflict(format!(
                "environment {} already exists",
                body.name
            )));
        }
        Err(err) => return Err(err.into()),
    }
    let created = state
        .store
        .environment(&body.name)?
        .ok_or_else(|| ApiError::not_found("environment"))?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// One environment.
#[utoipa::path(
    get,
    path = "/environments/{name}",
    operation_id = "show_environment",
    tag = "catalog",
    params(("name" = String, Path, description = "The environment's name", example = "baseline")),
    responses(
        (status = 200, description = "The environment", body = Environment),
        (status = 404, description = "No such environment (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show_environment(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
) -> Result<Json<Environment>, ApiError> {
    state
        .store
        .environment(&name)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("environment"))
}

/// Replaces an environment's variables.
#[utoipa::path(
    put,
    path = "/environments/{name}",
    operation_id = "update_environment",
    tag = "catalog",
    params(("name" = String, Path, description = "The environment's name", example = "baseline")),
    request_body = EnvironmentVars,
    responses(
        (status = 200, description = "Updated", body = Environment),
        (status = 400, description = "An invalid variable (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such environment (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn update_environment(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<EnvironmentVars>,
) -> Result<Json<Environment>, ApiError> {
    check_vars(&body.vars)?;
    if !state.store.put_environment(&name, &body.vars, false)? {
        return Err(ApiError::not_found("environment"));
    }
    show_environment(State(state), _session, Path(name)).await
}

/// Deletes an environment no sandbox or template uses.
#[utoipa::path(
    delete,
    path = "/environments/{name}",
    operation_id = "delete_environment",
    tag = "catalog",
    params(("name" = String, Path, description = "The environment's name", example = "baseline")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such environment (`not_found`)", body = ErrorBody),
        (status = 409, description = "A sandbox or template uses it (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn delete_environment(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let users = state.store.environment_users(&name)?;
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "environment {name} is in use by {}",
            users.join(", ")
        )));
    }
    if !state.store.delete_environment(&name)? {
        return Err(ApiError::not_found("environment"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A template to create (`name` required) or to replace (`name`, if
/// given, must be the path's).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$", example = "web")]
    name: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default, deserialize_with = "object_only::optional")]
    gateway: Option<RepoBranch>,
    #[serde(default, deserialize_with = "object_only::many")]
    services: Vec<RepoBranch>,
}

fn check_template(state: &AppState, body: &TemplateBody) -> Result<(), ApiError> {
    if let Some(environment) = &body.environment {
        check_name("environment name", environment)?;
        if state.store.environment(environment)?.is_none() {
            return Err(ApiError::bad_request(format!(
                "environment {environment} does not exist"
            )));
        }
    }
    if let Some(gateway) = &body.gateway {
        check_repo_branch("gateway", gateway)?;
    }
    if body.services.len() > 100 {
        return Err(ApiError::bad_request("at most 100 services"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for service in &body.services {
        check_repo_branch(&format!("service {}", service.repo), service)?;
        if !seen.insert(&service.repo) {
            return Err(ApiError::bad_request(format!(
                "service {} is listed twice",
                service.repo
            )));
        }
    }
    Ok(())
}

/// Every template, by name.
#[utoipa::path(
    get,
    path = "/templates",
    operation_id = "list_templates",
    tag = "catalog",
    responses((status = 200, description = "The templates", body = [Template])),
)]
pub async fn list_templates(
    State(state): State<AppState>,
    _session: Session,
) -> Result<Json<Vec<Template>>, ApiError> {
    Ok(Json(state.store.templates()?))
}

/// Creates a template.
#[utoipa::path(
    post,
    path = "/templates",
    operation_id = "create_template",
    tag = "catalog",
    request_body = TemplateBody,
    responses(
        (status = 201, description = "Created", body = Template),
        (status = 400, description = "A missing or invalid name, repo, branch or environment (`bad_request`)", body = ErrorBody),
        (status = 409, description = "The name is taken (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn create_template(
    State(state): State<AppState>,
    _session: Session,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, ApiError> {
    let Some(name) = body.name.clone() else {
        return Err(ApiError::bad_request("name is required"));
    };
    check_name("template name", &name)?;
    check_template(&state, &body)?;
    match state.store.put_template(
        &name,
        body.environment.as_deref(),
        body.gateway.as_ref(),
        &body.services,
        true,
    ) {
        Ok(_) => {}
        Err(err) if is_constraint(&err) => {
            return Err(ApiError::conflict(format!(
                "template {name} already exists"
            )));
        }
        Err(err) => return Err(err.into()),
    }
    let created = state
        .store
        .template(&name)?
        .ok_or_else(|| ApiError::not_found("template"))?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// One template.
#[utoipa::path(
    get,
    path = "/templates/{name}",
    operation_id = "show_template",
    tag = "catalog",
    params(("name" = String, Path, description = "The template's name", example = "web")),
    responses(
        (status = 200, description = "The template", body = Template),
        (status = 404, description = "No such template (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show_template(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
) -> Result<Json<Template>, ApiError> {
    state
        .store
        .template(&name)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("template"))
}

/// Replaces a template's environment, gateway and services.
#[utoipa::path(
    put,
    path = "/templates/{name}",
    operation_id = "update_template",
    tag = "catalog",
    params(("name" = String, Path, description = "The template's name", example = "web")),
    request_body = TemplateBody,
    responses(
        (status = 200, description = "Updated", body = Template),
        (status = 400, description = "A rename, or an invalid repo, branch or environment (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn update_template(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Json<Template>, ApiError> {
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request("a template cannot be renamed"));
    }
    check_template(&state, &body)?;
    if !state.store.put_template(
        &name,
        body.environment.as_deref(),
        body.gateway.as_ref(),
        &body.services,
        false,
    )? {
        return Err(ApiError::not_found("template"));
    }
    show_template(State(state), session, Path(name)).await
}

/// Deletes a template no sandbox uses.
#[utoipa::path(
    delete,
    path = "/templates/{name}",
    operation_id = "delete_template",
    tag = "catalog",
    params(("name" = String, Path, description = "The template's name", example = "web")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such template (`not_found`)", body = ErrorBody),
        (status = 409, description = "A sandbox uses it (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn delete_template(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let users = state.store.template_users(&name)?;
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "template {name} is in use by {}",
            users.join(", ")
        )));
    }
    if !state.store.delete_template(&name)? {
        return Err(ApiError::not_found("template"));
    }
    Ok(StatusCode::NO_CONTENT)
}
