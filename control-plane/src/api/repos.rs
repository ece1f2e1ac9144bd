//! `GET /api/repos` and `GET /api/repos/{repo}/branches`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sdp_bus::{BranchInfo, RepoInfo, validate};

use super::access::credential;
use super::openapi::ErrorBody;
use super::{ApiError, AppState};
use crate::sessions::Session;

/// The repos in the online agents' `repos_dir`s.
#[utoipa::path(
    get,
    path = "/repos",
    operation_id = "list_repos",
    tag = "agents",
    responses((status = 200, description = "Every repo an online agent holds", body = [RepoInfo])),
)]
pub async fn list(State(state): State<AppState>, _session: Session) -> Json<Vec<RepoInfo>> {
    let kinds = state.orchestrator.online_kinds();
    Json(state.orchestrator.repos.list(&kinds, true).await)
}

/// A repo's branches on its remote, read with the session's credential.
#[utoipa::path(
    get,
    path = "/repos/{repo}/branches",
    operation_id = "list_branches",
    tag = "agents",
    params(("repo" = String, Path, description = "A repo name, as `GET /api/repos` lists it", example = "users")),
    responses(
        (status = 200, description = "The remote's branches", body = [BranchInfo]),
        (status = 400, description = "An invalid repo name (`bad_request`)", body = ErrorBody),
        (status = 403, description = "The git server refused the credential (`git_refused`)", body = ErrorBody),
        (status = 404, description = "No online agent holds the repo (`not_found`)", body = ErrorBody),
        (status = 501, description = "The repo's agents do not serve `list_branches` (`not_supported`)", body = ErrorBody),
        (status = 502, description = "The agent failed (`agent_error`)", body = ErrorBody),
        (status = 503, description = "No agent of the repo's kind is online (`no_agent`)", body = ErrorBody),
    ),
)]
pub async fn branches(
    State(state): State<AppState>,
    session: Session,
    Path(repo): Path<String>,
) -> Result<Json<Vec<BranchInfo>>, ApiError> {
    validate::repo(&repo)?;
    let Some(kind) = state
        .registry
        .kind_for_repo(&repo, state.config.agents.heartbeat_timeout)
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no online agent holds repo {repo}"),
        ));
    };
    let credential = credential(&state, &session)?;
    match state
        .orchestrator
        .repos
        .branches(&kind, &repo, credential)
        .await
    {
        Ok(branches) => Ok(Json(branches)),
        Err(err) if err.is_unauthorized() => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "git_refused",
            format!("the git server refused your credential for {repo}"),
        )),
        Err(err) => Err(err.into()),
    }
}
