//! A sandbox's resources (databases its template or the sandbox itself
//! declares): `GET /api/sandboxes/{name}/resources` (anyone logged in; the
//! URL's password only for the sandbox's owner and admins) and
//! `POST /api/sandboxes/{name}/resources/{resource}/reset` (owner or
//! admin: its data dropped and seeded anew). A template's and a sandbox's
//! `resources` are checked here ([`check_specs`], [`check_effective`]);
//! a sandbox's own are changed in `resource_changes.rs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sdp_api::{ResourceOrigin, ResourceSpec, ResourceState, SandboxResource};
use sdp_bus::{ResourceEngine, ResourceSeed, validate};

use super::access::{check_sandbox_name, credential, is_admin, sandbox_for_change};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::orchestrator::resources::{ResourceError, resource_url};
use crate::orchestrator::sandbox_resources::effective_specs;
use crate::sessions::Session;
use crate::store::{Sandbox, StoredResource};

/// What stands for the password in a URL shown to anyone but the owner.
const HIDDEN: &str = "***";

/// A template's resources: valid unique names and variables, a seed only
/// for an SQL engine, with a valid repo, branch and relative path or file.
pub(super) fn check_specs(specs: &[ResourceSpec]) -> Result<(), ApiError> {
    if specs.len() > 10 {
        return Err(ApiError::bad_request("at most 10 resources"));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut vars = std::collections::BTreeSet::new();
    for spec in specs {
        validate::resource_name("resource name", &spec.name)?;
        let var_ok = spec.env_var.len() <= 64
            && spec
                .env_var
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
            && spec
                .env_var
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !var_ok || spec.env_var == "PORT" || spec.env_var.starts_with("SDP_") {
            return Err(ApiError::bad_request(format!(
                "resource {}: env_var must be 1-64 of A-Z 0-9 _ (not PORT or SDP_*)",
                spec.name
            )));
        }
        if !names.insert(&spec.name) || !vars.insert(&spec.env_var) {
            return Err(ApiError::bad_request(format!(
                "resource {} or its env_var is listed twice",
                spec.name
            )));
        }
        match &spec.seed {
            None => {}
            Some(_) if spec.engine == ResourceEngine::Redis => {
                return Err(ApiError::bad_request(format!(
                    "resource {}: a redis resource cannot be seeded",
                    spec.name
                )));
            }
            Some(ResourceSeed::Repo { repo, branch, path }) => {
                validate::repo(repo)?;
                validate::branch(branch)?;
                check_relative(&spec.name, path)?;
            }
            Some(ResourceSeed::Dump { file }) => check_relative(&spec.name, file)?,
        }
    }
    Ok(())
}

/// A sandbox's own resources (checked by [`check_specs`]) over its
/// template's: no two different resources may set one variable.
pub(super) fn check_effective(
    state: &AppState,
    template: Option<&str>,
    own: &[ResourceSpec],
) -> Result<(), ApiError> {
    check_specs(own)?;
    let template = match template {
        Some(name) => state.store.template(name)?,
        None => None,
    };
    let declared = template.map(|t| t.resources).unwrap_or_default();
    effective_specs(&declared, own).map_err(ApiError::bad_request)?;
    Ok(())
}

/// A failed resource operation as the API answers it.
pub(super) fn resource_error(err: ResourceError) -> ApiError {
    match err {
        ResourceError::Store(err) => err.into(),
        ResourceError::NoAgent => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no online agent runs sandbox resources",
        ),
        ResourceError::Clash(why) => ApiError::conflict(why),
        err @ ResourceError::Agent { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, "agent_error", err.to_string())
        }
    }
}

fn check_relative(resource: &str, path: &str) -> Result<(), ApiError> {
    let plain = !path.is_empty()
        && path.len() <= 1024
        && std::path::Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "resource {resource}: a seed path is relative, without . or .."
        )))
    }
}

fn view(
    state: &AppState,
    resource: StoredResource,
    origin: ResourceOrigin,
    with_password: bool,
) -> Result<SandboxResource, ApiError> {
    let url = if with_password {
        let password = state
            .store
            .resource_password(&resource.sandbox, &resource.name)?
            .unwrap_or_else(|| sdp_bus::Secret::new(HIDDEN));
        resource_url(&resource, &password)
    } else {
        resource_url(&resource, &sdp_bus::Secret::new(HIDDEN))
    };
    Ok(SandboxResource {
        name: resource.name,
        engine: resource.engine,
        env_var: resource.env_var,
        state: resource.state,
        url,
        agent_id: resource.agent_id,
        size_bytes: resource.size_bytes,
        size_at: resource.size_at,
        origin,
        error: resource.error,
        updated_at: resource.updated_at,
    })
}

/// One not made yet: the next deploy makes it. Dated by its sandbox, so
/// a listing reads the same until something changes.
fn pending(sandbox: &Sandbox, spec: ResourceSpec, origin: ResourceOrigin) -> SandboxResource {
    SandboxResource {
        name: spec.name,
        engine: spec.engine,
        env_var: spec.env_var,
        state: ResourceState::Pending,
        url: None,
        agent_id: None,
        size_bytes: 0,
        size_at: None,
        origin,
        error: None,
        updated_at: sandbox.created_at,
    }
}

/// The sandbox's resources as `GET …/resources` answers: each effective
/// one (its row, or pending), then rows no longer declared (a template
/// dropped them; their data stays until the sandbox goes), by name.
pub(super) fn listing(
    state: &AppState,
    sandbox: &Sandbox,
    with_password: bool,
) -> Result<Vec<SandboxResource>, ApiError> {
    let template = match &sandbox.template {
        Some(name) => state.store.template(name)?,
        None => None,
    };
    let specs = state
        .orchestrator
        .sandbox_resources(&sandbox.name, template.as_ref())
        .or_else(|err| match err {
            // A template changed under the sandbox's own: show the rows.
            ResourceError::Clash(_) => Ok(Vec::new()),
            err => Err(resource_error(err)),
        })?;
    let mut rows = state.store.resources(&sandbox.name)?;
    let mut list = Vec::new();
    for (spec, origin) in specs {
        match rows.iter().position(|r| r.name == spec.name) {
            Some(i) => list.push(view(state, rows.remove(i), origin, with_password)?),
            None => list.push(pending(sandbox, spec, origin)),
        }
    }
    for row in rows {
        list.push(view(state, row, ResourceOrigin::Template, with_password)?);
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

fn sandbox(state: &AppState, name: &str) -> Result<Sandbox, ApiError> {
    check_sandbox_name(name)?;
    state
        .store
        .sandbox(name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))
}

/// The sandbox's resources: state, size, URL (with its password for the
/// owner and admins, `***` in its place for anyone else).
#[utoipa::path(
    get,
    path = "/sandboxes/{name}/resources",
    operation_id = "list_resources",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    responses(
        (status = 200, description = "The resources", body = [SandboxResource]),
        (status = 400, description = "An invalid sandbox name (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn list_resources(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Json<Vec<SandboxResource>>, ApiError> {
    let sandbox = sandbox(&state, &name)?;
    let owner = sandbox.owner == session.username || is_admin(&state, &session);
    Ok(Json(listing(&state, &sandbox, owner)?))
}

/// Resets a resource (owner or admin): its data is dropped and seeded
/// anew from its seed (the sandbox's own spec, else its template's); its
/// URL stays. Answers when it is ready
/// again.
#[utoipa::path(
    post,
    path = "/sandboxes/{name}/resources/{resource}/reset",
    operation_id = "reset_resource",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("resource" = String, Path, description = "The resource's name", example = "db"),
    ),
    responses(
        (status = 200, description = "Reset and ready", body = SandboxResource),
        (status = 400, description = "An invalid name (`bad_request`)", body = ErrorBody),
        (status = 401, description = "The session's git credential is gone (`credential_expired`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox, or it has no such resource (`not_found`)", body = ErrorBody),
        (status = 409, description = "Two of its resources set one variable (`conflict`)", body = ErrorBody),
        (status = 502, description = "The agent could not reset it (`agent_error`)", body = ErrorBody),
        (status = 503, description = "No agent runs resources (`unavailable`)", body = ErrorBody),
    ),
)]
pub async fn reset_resource(
    State(state): State<AppState>,
    session: Session,
    Path((name, resource)): Path<(String, String)>,
) -> Result<Json<SandboxResource>, ApiError> {
    check_sandbox_name(&name)?;
    validate::resource_name("resource name", &resource)?;
    let sandbox = sandbox_for_change(&state, &session, &name)?;
    let template = match &sandbox.template {
        Some(template) => state.store.template(template)?,
        None => None,
    };
    let (spec, origin) = state
        .orchestrator
        .sandbox_resources(&name, template.as_ref())
        .map_err(resource_error)?
        .into_iter()
        .find(|(r, _)| r.name == resource)
        .ok_or_else(|| ApiError::not_found("resource"))?;
    let credential = credential(&state, &session)?;
    let stored = state
        .orchestrator
        .reset_resource(&name, &spec, &credential)
        .await
        .map_err(resource_error)?;
    Ok(Json(view(&state, stored, origin, true)?))
}
