//! `GET /api/repos` and `GET /api/repos/{repo}/branches`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sdp_bus::{BranchInfo, RepoInfo, validate};

use super::sandboxes::credential;
use super::{ApiError, AppState};
use crate::sessions::Session;

pub async fn list(State(state): State<AppState>, _session: Session) -> Json<Vec<RepoInfo>> {
    let kinds = state.orchestrator.online_kinds();
    Json(state.orchestrator.repos.list(&kinds, true).await)
}

pub async fn branches(
    State(state): State<AppState>,
    session: Session,
    Path(repo): Path<String>,
) -> Result<Json<Vec<BranchInfo>>, ApiError> {
    validate::repo(&repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
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
        Err(err) if err.is_no_agent() => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_agent",
            format!("no {kind} agent is online to list branches"),
        )),
        Err(err) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_error",
            err.to_string(),
        )),
    }
}
