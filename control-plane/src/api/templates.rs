//! Templates and the environments they run with:
//! `/api/environments[/{name}]`, `/api/templates[/{name}]`. Anyone logged in reads them; their creator
//! or an admin changes or deletes them (one made before creators were
//! recorded: admins only). An environment's secret variables are written
//! here and never read back: answers name them in `secret_keys`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sdp_bus::validate;

use sdp_api::{EnvironmentVars, NewEnvironment, TemplateBody};

use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, AppState};
use crate::sessions::Session;
use crate::store::{
    Editor, Environment, EnvironmentWrite, Guarded, RepoBranch, Template, is_constraint,
};

fn check_name(what: &'static str, name: &str) -> Result<(), ApiError> {
    Ok(validate::resource_name(what, name)?)
}

/// The caller as an editor of environments and templates.
pub(super) fn editor<'a>(state: &AppState, session: &'a Session) -> Editor<'a> {
    Editor {
        user: &session.username,
        admin: state.config.auth.admins.contains(&session.username),
    }
}

/// 403 for a change of what someone else created.
pub(super) fn not_yours(what: &str, name: &str, created_by: Option<&str>) -> ApiError {
    let message = match created_by {
        Some(creator) => format!(
            "{what} {name} was created by {creator}; only its creator or an admin may change it"
        ),
        None => format!(
            "{what} {name} was created before creators were recorded; only an admin may change it"
        ),
    };
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// Plain and secret variables of one write: valid names and values, none
/// reserved (`PORT`, `SDP_*`), at most 500 in all, no key both plain and a
/// secret value.
fn check_write(
    vars: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, Option<String>>,
) -> Result<(), ApiError> {
    if vars.len() + secrets.len() > 500 {
        return Err(ApiError::bad_request("at most 500 variables"));
    }
    let secret_values = secrets
        .iter()
        .map(|(k, v)| (k, v.as_deref().unwrap_or_default()));
    for (key, value) in vars
        .iter()
        .map(|(k, v)| (k, v.as_str()))
        .chain(secret_values)
    {
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
    // SDP sets these in every container: such a variable would never
    // reach one. (Removing a secret of that name stays allowed.)
    let set_secrets = secrets.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k);
    if let Some(key) = vars
        .keys()
        .chain(set_secrets)
        .find(|k| sdp_bus::service::is_reserved_env_key(k))
    {
        return Err(ApiError::bad_request(format!(
            "variable {key:?} is reserved: SDP sets PORT and every SDP_* variable in each container itself"
        )));
    }
    if let Some(key) = secrets
        .iter()
        .find(|(key, value)| value.is_some() && vars.contains_key(*key))
        .map(|(key, _)| key)
    {
        return Err(ApiError::bad_request(format!(
            "{key} is in both vars and secrets: a variable is plain or secret"
        )));
    }
    Ok(())
}

fn check_repo_branch(what: &str, rb: &RepoBranch) -> Result<(), ApiError> {
    validate::repo(&rb.repo).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    validate::branch(&rb.branch).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    rb.overrides
        .check()
        .map_err(|e| ApiError::bad_request(format!("{what}: overrides: {e}")))?;
    // The route's key becomes a variable of the gateway's container.
    if let Some(key) = &rb.overrides.route_env
        && sdp_bus::service::is_reserved_env_key(key)
    {
        return Err(ApiError::bad_request(format!(
            "{what}: overrides: route_env {key:?} is reserved: SDP sets PORT and every SDP_* variable itself"
        )));
    }
    Ok(())
}

/// Every environment, by name.
#[utoipa::path(
    get,
    path = "/environments",
    operation_id = "list_environments",
    tag = "templates",
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
    tag = "templates",
    request_body = NewEnvironment,
    responses(
        (status = 201, description = "Created", body = Environment),
        (status = 400, description = "An invalid name or variable (`bad_request`)", body = ErrorBody),
        (status = 409, description = "The name is taken (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn create_environment(
    State(state): State<AppState>,
    session: Session,
    ApiJson(body): ApiJson<NewEnvironment>,
) -> Result<Response, ApiError> {
    crate::audit::note(|note| {
        note.target = Some(body.name.clone());
        note.message = secret_names(body.secrets.keys());
    });
    check_name("environment name", &body.name)?;
    let secrets = body
        .secrets
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    check_write(&body.vars, &secrets)?;
    let write = EnvironmentWrite {
        vars: &body.vars,
        secrets: &secrets,
    };
    match state
        .store
        .create_environment(&body.name, &write, &session.username)
    {
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
    tag = "templates",
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

/// Replaces an environment's plain variables and sets or removes secret
/// ones (its creator or an admin).
#[utoipa::path(
    put,
    path = "/environments/{name}",
    operation_id = "update_environment",
    tag = "templates",
    params(("name" = String, Path, description = "The environment's name", example = "baseline")),
    request_body = EnvironmentVars,
    responses(
        (status = 200, description = "Updated", body = Environment),
        (status = 400, description = "An invalid variable (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not its creator or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such environment (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn update_environment(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<EnvironmentVars>,
) -> Result<Json<Environment>, ApiError> {
    crate::audit::note(|note| note.message = secret_names(body.secrets.keys()));
    check_write(&body.vars, &body.secrets)?;
    let write = EnvironmentWrite {
        vars: &body.vars,
        secrets: &body.secrets,
    };
    match state
        .store
        .update_environment(&name, &write, editor(&state, &session))?
    {
        Guarded::Done => show_environment(State(state), session, Path(name)).await,
        Guarded::NotFound => Err(ApiError::not_found("environment")),
        Guarded::NotYours(creator) => Err(not_yours("environment", &name, creator.as_deref())),
    }
}

/// Deletes an environment no sandbox or template uses (its creator or an
/// admin).
#[utoipa::path(
    delete,
    path = "/environments/{name}",
    operation_id = "delete_environment",
    tag = "templates",
    params(("name" = String, Path, description = "The environment's name", example = "baseline")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not its creator or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such environment (`not_found`)", body = ErrorBody),
        (status = 409, description = "A sandbox or template uses it (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn delete_environment(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let editor = editor(&state, &session);
    let environment = state
        .store
        .environment(&name)?
        .ok_or_else(|| ApiError::not_found("environment"))?;
    if !editor.may_change(environment.created_by.as_deref()) {
        return Err(not_yours(
            "environment",
            &name,
            environment.created_by.as_deref(),
        ));
    }
    let in_use = || -> Result<ApiError, ApiError> {
        let users = state.store.environment_users(&name)?;
        Ok(ApiError::conflict(format!(
            "environment {name} is in use by {}",
            users.join(", ")
        )))
    };
    if !state.store.environment_users(&name)?.is_empty() {
        return Err(in_use()?);
    }
    match state.store.delete_environment(&name, editor) {
        Ok(Guarded::Done) => Ok(StatusCode::NO_CONTENT),
        Ok(Guarded::NotFound) => Err(ApiError::not_found("environment")),
        Ok(Guarded::NotYours(creator)) => Err(not_yours("environment", &name, creator.as_deref())),
        // Taken into use since the check above.
        Err(err) if is_constraint(&err) => Err(in_use()?),
        Err(err) => Err(err.into()),
    }
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
    if let Some(tests) = &body.tests {
        super::test_runs::check_plan(&crate::orchestrator::test_runs::TestPlan::of(tests))?;
    }
    super::resources::check_specs(&body.resources)?;
    Ok(())
}

/// Every template, by name.
#[utoipa::path(
    get,
    path = "/templates",
    operation_id = "list_templates",
    tag = "templates",
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
    tag = "templates",
    request_body = TemplateBody,
    responses(
        (status = 201, description = "Created", body = Template),
        (status = 400, description = "A missing or invalid name, repo, branch or environment (`bad_request`)", body = ErrorBody),
        (status = 409, description = "The name is taken (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn create_template(
    State(state): State<AppState>,
    session: Session,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, ApiError> {
    let Some(name) = body.name.clone() else {
        return Err(ApiError::bad_request("name is required"));
    };
    crate::audit::note(|note| note.target = Some(name.clone()));
    check_name("template name", &name)?;
    check_template(&state, &body)?;
    match state.store.create_template(
        &name,
        body.environment.as_deref(),
        body.gateway.as_ref(),
        &body.services,
        &body.resources,
        &session.username,
    ) {
        Ok(_) => state.store.set_template_tests(&name, body.tests.as_ref())?,
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
    tag = "templates",
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

/// Replaces a template's environment, gateway and services (its creator
/// or an admin).
#[utoipa::path(
    put,
    path = "/templates/{name}",
    operation_id = "update_template",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name", example = "web")),
    request_body = TemplateBody,
    responses(
        (status = 200, description = "Updated", body = Template),
        (status = 400, description = "A rename, or an invalid repo, branch or environment (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not its creator or an admin (`forbidden`)", body = ErrorBody),
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
    match state.store.update_template(
        &name,
        body.environment.as_deref(),
        body.gateway.as_ref(),
        &body.services,
        &body.resources,
        editor(&state, &session),
    )? {
        Guarded::Done => {
            state.store.set_template_tests(&name, body.tests.as_ref())?;
            show_template(State(state), session, Path(name)).await
        }
        Guarded::NotFound => Err(ApiError::not_found("template")),
        Guarded::NotYours(creator) => Err(not_yours("template", &name, creator.as_deref())),
    }
}

/// Deletes a template no sandbox uses (its creator or an admin).
#[utoipa::path(
    delete,
    path = "/templates/{name}",
    operation_id = "delete_template",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name", example = "web")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not its creator or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`)", body = ErrorBody),
        (status = 409, description = "A sandbox uses it (`conflict`)", body = ErrorBody),
    ),
)]
pub async fn delete_template(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let editor = editor(&state, &session);
    let template = state
        .store
        .template(&name)?
        .ok_or_else(|| ApiError::not_found("template"))?;
    if !editor.may_change(template.created_by.as_deref()) {
        return Err(not_yours("template", &name, template.created_by.as_deref()));
    }
    let in_use = || -> Result<ApiError, ApiError> {
        let users = state.store.template_users(&name)?;
        Ok(ApiError::conflict(format!(
            "template {name} is in use by {}",
            users.join(", ")
        )))
    };
    if !state.store.template_users(&name)?.is_empty() {
        return Err(in_use()?);
    }
    match state.store.delete_template(&name, editor) {
        Ok(Guarded::Done) => Ok(StatusCode::NO_CONTENT),
        Ok(Guarded::NotFound) => Err(ApiError::not_found("template")),
        Ok(Guarded::NotYours(creator)) => Err(not_yours("template", &name, creator.as_deref())),
        // Taken into use since the check above.
        Err(err) if is_constraint(&err) => Err(in_use()?),
        Err(err) => Err(err.into()),
    }
}

/// The audit note of a write that names secrets: their names, never a
/// value.
fn secret_names<'a>(names: impl Iterator<Item = &'a String>) -> Option<String> {
    let names: Vec<&str> = names.map(String::as_str).collect();
    (!names.is_empty()).then(|| format!("secrets: {}", names.join(", ")))
}
