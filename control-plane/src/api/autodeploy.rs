//! Autodeploy (a push to a service's branch redeploys it):
//! `PUT /api/sandboxes/{name}/services/{repo}` `{autodeploy}` (or its first
//! name, `{follow}`) turns it on or off for one service of a sandbox (owner
//! or admin); every sandbox view shows each service's `autodeploy` (and
//! `follow`, deprecated) and, when a push to its branch could not be
//! deployed, `pushed_head` ("behind: deploy by hand"; `view.rs`). The push
//! side is `orchestrator/autodeploy.rs`.

use axum::Json;
use axum::extract::{Path, State};
use sdp_bus::validate;

use sdp_api::{ServiceAutodeploy, ServiceView};

use super::access::{check_sandbox_name, sandbox_for_change};
use super::openapi::ErrorBody;
use super::view::view;
use super::{ApiError, ApiJson, AppState};
use crate::sessions::Session;

/// Turns autodeploy on or off for a service of the sandbox (owner or
/// admin): a push to the branch of its newest deployment then redeploys
/// it. The body's `autodeploy` may also be sent as `follow` (deprecated).
#[utoipa::path(
    put,
    path = "/sandboxes/{name}/services/{repo}",
    operation_id = "put_service",
    tag = "sandboxes",
    params(
        ("name" = String, Path, description = "The sandbox's name", example = "alpha"),
        ("repo" = String, Path, description = "The service (repo name)", example = "users"),
    ),
    request_body = ServiceAutodeploy,
    responses(
        (status = 200, description = "The service as it now is", body = ServiceView),
        (status = 400, description = "An invalid sandbox or repo name (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not the owner or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox, or the service is neither deployed in it nor in its template (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn put_service(
    State(state): State<AppState>,
    session: Session,
    Path((name, repo)): Path<(String, String)>,
    ApiJson(body): ApiJson<ServiceAutodeploy>,
) -> Result<Json<ServiceView>, ApiError> {
    let asked = if body.autodeploy {
        "follow on"
    } else {
        "follow off"
    };
    crate::audit::note(|note| note.message = Some(asked.to_owned()));
    check_sandbox_name(&name)?;
    validate::repo(&repo)?;
    let sandbox = sandbox_for_change(&state, &session, &name)?;
    let known = view(&state, sandbox.clone(), false)
        .await?
        .services
        .iter()
        .any(|s| s.repo == repo);
    if !known {
        return Err(ApiError::not_found("service"));
    }
    state.store.set_autodeploy(&name, &repo, body.autodeploy)?;
    view(&state, sandbox, false)
        .await?
        .services
        .into_iter()
        .find(|s| s.repo == repo)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("service"))
}
