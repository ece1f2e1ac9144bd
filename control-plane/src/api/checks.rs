//! Checks on a sandbox that ask the agents, on request: the staleness of
//! its running services (`GET /api/sandboxes/{name}/staleness`) and the
//! route probe from its gateway (`POST /api/sandboxes/{name}/probe`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use sdp_api::SandboxStaleness;

use super::access::{credential, sandbox_for_change};
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::probe::{ProbeError, ProbeResult};
use crate::sessions::Session;
use crate::store::Sandbox;

fn sandbox(state: &AppState, name: &str) -> Result<Sandbox, ApiError> {
    state
        .store
        .sandbox(name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))
}

/// Whether each running service's branch has moved since its deployed
/// commit, and by how many commits (read with the caller's credential).
#[utoipa::path(
    get,
    path = "/sandboxes/{name}/staleness",
    operation_id = "sandbox_staleness",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    responses(
        (status = 200, description = "Per running service: `up_to_date`, `behind` (by `behind` commits, null when the agent cannot count) or `unknown` with the reason", body = SandboxStaleness),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn staleness(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Json<SandboxStaleness>, ApiError> {
    let sandbox = sandbox(&state, &name)?;
    let credential = credential(&state, &session)?;
    let services = crate::staleness::staleness(
        &state.store,
        &state.orchestrator.agents,
        &sandbox.name,
        &credential,
    )
    .await?;
    Ok(Json(SandboxStaleness {
        sandbox: sandbox.name,
        checked_at: crate::store::now_rfc3339(),
        services,
    }))
}

/// Checks every route of the sandbox from its gateway's own network: the
/// gateway's agent runs an HTTP GET of each target inside the gateway
/// container (5 s each, all at once) and names the broken hop (the
/// sandbox's owner or an admin: it makes the gateway send requests).
#[utoipa::path(
    post,
    path = "/sandboxes/{name}/probe",
    operation_id = "probe_routes",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    responses(
        (status = 200, description = "One check per route: `ok` with the HTTP `status` (any status is an answer), or the broken `hop` and the `error`", body = ProbeResult),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
        (status = 409, description = "The sandbox has no running gateway (`no_gateway`)", body = ErrorBody),
        (status = 501, description = "The gateway's agent does not serve `probe` (`not_supported`)", body = ErrorBody),
        (status = 502, description = "The gateway's agent failed (`agent_error`)", body = ErrorBody),
        (status = 503, description = "The gateway's agent does not answer (`no_agent`)", body = ErrorBody),
    ),
)]
pub async fn probe(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Json<ProbeResult>, ApiError> {
    let sandbox = sandbox_for_change(&state, &session, &name)?;
    let table = state.orchestrator.route_table(&sandbox).await?;
    match crate::probe::probe(&state.store, &state.orchestrator.agents, &name, &table).await {
        Ok(result) => Ok(Json(result)),
        Err(ProbeError::Store(err)) => Err(err.into()),
        Err(err @ ProbeError::NoGateway(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_gateway",
            format!("{err}: deploy the sandbox's gateway first"),
        )),
        Err(ProbeError::Agent(err)) => Err(err.into()),
    }
}
