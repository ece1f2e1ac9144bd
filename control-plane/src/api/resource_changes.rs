//! A sandbox's own resources, changed by its owner or an admin:
//! `PUT /api/sandboxes/{name}/resources/{resource}` adds one (or changes
//! it; over its template's of the same name) and
//! `DELETE /api/sandboxes/{name}/resources/{resource}` removes one: its
//! container and volume go from the agent at once, its variable from the
//! services at their next deploy. A new one is made at the next deploy.

use axum::Json;
use axum::extract::{Path, State};
use sdp_api::{ResourceBody, ResourceSpec, SandboxResource};
use sdp_bus::validate;

use super::access::{check_sandbox_name, sandbox_for_change};
use super::openapi::ErrorBody;
use super::resources::{check_effective, listing, resource_error};
use super::{ApiError, ApiJson, AppState};
use crate::sessions::Session;

/// Adds a resource to the sandbox's own (or changes it), over its
/// template's of the same name. Made at the next deploy; one of another
/// engine than the running one is removed first (its data with it).
#[utoipa::path(
    put,
    path = "/sandboxes/{name}/resources/{resource}",
    operation_id = "put_resource",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("resource" = String, Path, description = "The resource's name", example = "cache"),
    ),
    request_body = ResourceBody,
    responses(
        (status = 200, description = "The sandbox's resources", body = [SandboxResource]),
        (status = 400, description = "An invalid name, variable or seed, more than 10 of its own, or a variable another resource sets (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
        (status = 502, description = "The agent could not remove the one of another engine (`agent_error`)", body = ErrorBody),
    ),
)]
pub async fn put_resource(
    State(state): State<AppState>,
    session: Session,
    Path((name, resource)): Path<(String, String)>,
    ApiJson(body): ApiJson<ResourceBody>,
) -> Result<Json<Vec<SandboxResource>>, ApiError> {
    let sandbox = target(&state, &session, &name, &resource)?;
    let spec = body.named(&resource);
    let with = |mut own: Vec<ResourceSpec>| {
        own.retain(|r| r.name != spec.name);
        own.push(spec.clone());
        own.sort_by(|a, b| a.name.cmp(&b.name));
        own
    };
    let own = state.store.sandbox_resource_specs(&name)?;
    check_effective(&state, sandbox.template.as_deref(), &with(own))?;
    // Data of another engine cannot serve this one: it goes first.
    if let Some(row) = state.store.resource(&name, &resource)?
        && row.engine != spec.engine
    {
        state
            .orchestrator
            .remove_resource(&name, &resource)
            .await
            .map_err(resource_error)?;
    }
    state
        .store
        .change_sandbox_resource_specs(&name, |own| Ok::<_, ApiError>(with(own)))??
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    Ok(Json(listing(&state, &sandbox, true)?))
}

/// Removes a resource of the sandbox's own: its container and volume go
/// from its agent (idempotent), its variable from the services at their
/// next deploy. A template's resource of the same name then applies,
/// made afresh at the next deploy.
#[utoipa::path(
    delete,
    path = "/sandboxes/{name}/resources/{resource}",
    operation_id = "delete_resource",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("resource" = String, Path, description = "The resource's name", example = "cache"),
    ),
    responses(
        (status = 200, description = "The sandbox's resources", body = [SandboxResource]),
        (status = 400, description = "An invalid name (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox, or no such resource of its own (`not_found`)", body = ErrorBody),
        (status = 502, description = "The agent could not remove it (`agent_error`)", body = ErrorBody),
    ),
)]
pub async fn delete_resource(
    State(state): State<AppState>,
    session: Session,
    Path((name, resource)): Path<(String, String)>,
) -> Result<Json<Vec<SandboxResource>>, ApiError> {
    let sandbox = target(&state, &session, &name, &resource)?;
    if !state
        .store
        .sandbox_resource_specs(&name)?
        .iter()
        .any(|r| r.name == resource)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "sandbox {name} has no resource {resource} of its own \
                 (a template's resource is removed from its template)"
            ),
        ));
    }
    // The agent first: if it fails, the resource stays declared and can
    // be removed again.
    state
        .orchestrator
        .remove_resource(&name, &resource)
        .await
        .map_err(resource_error)?;
    state
        .store
        .change_sandbox_resource_specs(&name, |mut own| {
            own.retain(|r| r.name != resource);
            Ok::<_, ApiError>(own)
        })??
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    Ok(Json(listing(&state, &sandbox, true)?))
}

/// The sandbox whose own resource `resource` is to change: both names
/// checked (the sandbox noted for the audit first, so a refusal names it)
/// and the session its owner or an admin.
fn target(
    state: &AppState,
    session: &Session,
    name: &str,
    resource: &str,
) -> Result<crate::store::Sandbox, ApiError> {
    crate::audit::note_sandbox(name);
    check_sandbox_name(name)?;
    validate::resource_name("resource name", resource)?;
    sandbox_for_change(state, session, name)
}
