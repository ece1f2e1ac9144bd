//! Waking a sleeping sandbox by hand (`POST /api/sandboxes/{name}/wake`);
//! sleeping is the sleeper's ([`crate::orchestrator::Power`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use sdp_api::SandboxView;

use super::access::sandbox_for_change;
use super::openapi::ErrorBody;
use super::view::view;
use super::{ApiError, AppState};
use crate::orchestrator::WakeError;
use crate::sessions::Session;

/// Wakes a sleeping sandbox and answers once its services are healthy (an
/// awake one answers at once) (owner or admin).
#[utoipa::path(
    post,
    path = "/sandboxes/{name}/wake",
    operation_id = "wake_sandbox",
    tag = "sandboxes",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    responses(
        (status = 200, description = "Awake: the sandbox", body = SandboxView),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
        (status = 503, description = "The wake failed; the sandbox stays asleep (`wake_failed`)", body = ErrorBody),
    ),
)]
pub async fn wake(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Json<SandboxView>, ApiError> {
    sandbox_for_change(&state, &session, &name)?;
    match state.orchestrator.wake(&name).await {
        Ok(()) => {}
        Err(WakeError::NoSandbox(_)) => return Err(ApiError::not_found("sandbox")),
        Err(err) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "wake_failed",
                err.to_string(),
            ));
        }
    }
    let sandbox = state
        .store
        .sandbox(&name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    Ok(Json(view(&state, sandbox, true).await?))
}
