//! Deployments: create (`POST /api/sandboxes/{name}/deployments`, a
//! branch's head or a chosen commit of it), list, show, cancel, redeploy
//! (rollback), and the whole log as text.

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sdp_bus::{DeployCancel, DeploymentId, Status, encode, validate};
use serde_json::json;

use sdp_api::paging::DEFAULT_LIMIT;
use sdp_api::{CancelRequested, DeploymentStarted, ListQuery, NewDeployment};

use super::access::{check_sandbox_name, credential, is_admin, sandbox_for_change, store_error};
use super::openapi::ErrorBody;
use super::paging::{self, Cursor, List};
use super::{ApiError, ApiJson, AppState};
use crate::orchestrator::{DeployError, Pin, Requester, Started};
use crate::sessions::Session;
use crate::store::{Deployment, DeploymentFilter};

/// Deploys a repo's branch into a sandbox (created on first deploy; else
/// owner or admin). Progress follows on `/ws/deployments/{id}`.
#[utoipa::path(
    post,
    path = "/sandboxes/{name}/deployments",
    operation_id = "create_deployment",
    tag = "deployments",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    request_body = NewDeployment,
    responses(
        (status = 202, description = "Dispatched to an agent", body = DeploymentStarted),
        (status = 400, description = "An invalid sandbox, repo or branch (`bad_request`), or the agent refused it (`refused`)", body = ErrorBody),
        (status = 403, description = "The sandbox is someone else's (`forbidden`)", body = ErrorBody),
        (status = 502, description = "The agent failed (`agent_error`; `deployment_id` names the failed deployment)", body = ErrorBody),
        (status = 503, description = "No agent took it, or no online agent holds the repo (`no_agent`), or the agent is at capacity (`busy`); `deployment_id` names the failed deployment", body = ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    Path(sandbox): Path<String>,
    ApiJson(body): ApiJson<NewDeployment>,
) -> Result<Response, ApiError> {
    crate::audit::note(|note| note.target = Some(format!("{}@{}", body.repo, body.branch)));
    // Everything is checked before anything is recorded or sent.
    check_sandbox_name(&sandbox)?;
    validate::repo(&body.repo)?;
    validate::branch(&body.branch)?;
    if let Some(commit) = &body.commit {
        validate::commit(commit)?;
    }
    // An early, clear answer; the store checks again as it records the
    // deployment, in the same step that makes a missing sandbox.
    if state.store.sandbox(&sandbox)?.is_some() {
        sandbox_for_change(&state, &session, &sandbox)?;
    }
    let credential = credential(&state, &session)?;
    let pin = Pin {
        commit: body.commit,
        redeploy_of: None,
    };
    let outcome = state
        .orchestrator
        .deploy_pinned(
            &sandbox,
            &body.repo,
            &body.branch,
            &pin,
            &Requester::of(&session, credential, is_admin(&state, &session)),
            false,
        )
        .await;
    started_response(outcome)
}

/// The answer to a deploy: 202 with the started deployment, or the error
/// of a dispatch no agent took (the deployment is recorded as failed).
fn started_response(outcome: Result<Started, DeployError>) -> Result<Response, ApiError> {
    match outcome {
        Ok(started) => Ok((
            StatusCode::ACCEPTED,
            Json(DeploymentStarted {
                id: started.id,
                status: started.status,
                agent_id: started.agent_id,
            }),
        )
            .into_response()),
        Err(DeployError::Store(err)) => Err(store_error(err)),
        Err(DeployError::Dispatch { id, source }) => {
            Err(ApiError::from(source).with_details(json!({ "deployment_id": id })))
        }
    }
}

/// Deployments, newest first, a page at a time (`limit`, `cursor`;
/// the next page's cursor in `X-Next-Cursor`).
#[utoipa::path(
    get,
    path = "/deployments",
    operation_id = "list_deployments",
    tag = "deployments",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the deployments, newest first", body = [Deployment],
         headers(
            ("X-Next-Cursor" = String, description = "The next page's `cursor`; absent on the last page"),
            ("Link" = String, description = "`<this request with the next cursor>; rel=\"next\"`; absent on the last page"),
         )),
        (status = 400, description = "An unknown status, a limit out of range, a malformed or another list's cursor, or an unknown parameter (`bad_request`)", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _session: Session,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status '{s}': use one of {}",
                Status::ALL.map(Status::as_str).join(", ")
            ))
        })?),
    };
    let limit = paging::limit(query.limit, DEFAULT_LIMIT)?;
    let filter = DeploymentFilter {
        sandbox: query.sandbox.filter(|s| !s.is_empty()),
        repo: query.repo.filter(|s| !s.is_empty()),
        status,
        reapply: query.reapply,
        limit: paging::probe(limit),
        after: Cursor::time(List::Deployments, query.cursor.as_deref())?,
    };
    let rows = state.store.deployments(&filter)?;
    let page = paging::cut(rows, limit, |d| {
        Cursor::of_time(List::Deployments, d.created_at, d.id.as_str())
    });
    Ok(paging::respond(&uri, page))
}

fn parse_id(id: &str) -> Result<DeploymentId, ApiError> {
    DeploymentId::parse(id).ok_or_else(|| ApiError::not_found("deployment"))
}

/// One deployment.
#[utoipa::path(
    get,
    path = "/deployments/{id}",
    operation_id = "show_deployment",
    tag = "deployments",
    params(("id" = String, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment", body = Deployment),
        (status = 404, description = "No such deployment (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> Result<Json<Deployment>, ApiError> {
    let id = parse_id(&id)?;
    state
        .store
        .deployment(id.as_str())?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("deployment"))
}

/// May the caller change what this deployment does: the owner of its
/// sandbox or an admin; with the sandbox gone, whoever made it.
fn check_may_change(
    state: &AppState,
    session: &Session,
    deployment: &Deployment,
) -> Result<(), ApiError> {
    crate::audit::note(|note| {
        note.sandbox = Some(deployment.sandbox.clone());
        note.target = Some(deployment.id.to_string());
    });
    if state.store.sandbox(&deployment.sandbox)?.is_some() {
        sandbox_for_change(state, session, &deployment.sandbox)?;
    } else if deployment.created_by != session.username && !is_admin(state, session) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "deployment {} was made by {}; only they or an admin may change it",
                deployment.id, deployment.created_by
            ),
        ));
    }
    Ok(())
}

/// Asks the agent to cancel an unsettled deployment (the owner of its
/// sandbox or an admin).
#[utoipa::path(
    post,
    path = "/deployments/{id}/cancel",
    operation_id = "cancel_deployment",
    tag = "deployments",
    params(("id" = String, Path, description = "The deployment's id")),
    responses(
        (status = 202, description = "The cancel was sent", body = CancelRequested),
        (status = 403, description = "The sandbox is someone else's (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such deployment (`not_found`)", body = ErrorBody),
        (status = 409, description = "The deployment is already settled (`conflict`)", body = ErrorBody),
        (status = 503, description = "The message bus is unreachable (`nats_unavailable`)", body = ErrorBody),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let deployment = state
        .store
        .deployment(id.as_str())?
        .ok_or_else(|| ApiError::not_found("deployment"))?;
    check_may_change(&state, &session, &deployment)?;
    if deployment.status.is_settled() {
        return Err(ApiError::conflict(format!(
            "deployment is already {}",
            deployment.status
        )));
    }
    send_cancel(&state, &id, DeployCancel::default()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CancelRequested {
            id,
            status: deployment.status,
            cancel_requested: true,
        }),
    )
        .into_response())
}

/// Publishes `deploy.cancel.<id>`: the agent running the deployment (or
/// test run) `id` listens there while it runs. Sending it twice is
/// harmless: the agent keeps the first reason.
pub(super) async fn send_cancel(
    state: &AppState,
    id: &DeploymentId,
    cancel: DeployCancel,
) -> Result<(), ApiError> {
    if let Err(err) = state
        .nats
        .publish(sdp_bus::subject::deploy_cancel(id), encode(&cancel).into())
        .await
    {
        tracing::error!(error = %err, "cannot publish cancel");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "nats_unavailable",
            "cannot reach the message bus; try again",
        ));
    }
    Ok(())
}

/// Deploys a deployment's recorded commit again, into its sandbox, from
/// its repo and branch: a rollback when that commit is older than what
/// runs. The new deployment names the old one in `redeploy_of`.
#[utoipa::path(
    post,
    path = "/deployments/{id}/redeploy",
    operation_id = "redeploy_deployment",
    tag = "deployments",
    params(("id" = String, Path, description = "The deployment whose commit to deploy again")),
    responses(
        (status = 202, description = "Dispatched to an agent", body = DeploymentStarted),
        (status = 400, description = "The agent refused it (`refused`)", body = ErrorBody),
        (status = 403, description = "The sandbox is someone else's (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such deployment (`not_found`)", body = ErrorBody),
        (status = 409, description = "The deployment recorded no commit, or its sandbox is gone (`conflict`)", body = ErrorBody),
        (status = 502, description = "The agent failed (`agent_error`; `deployment_id` names the failed deployment)", body = ErrorBody),
        (status = 503, description = "No agent took it, or no online agent holds the repo (`no_agent`), or the agent is at capacity (`busy`); `deployment_id` names the failed deployment", body = ErrorBody),
    ),
)]
pub async fn redeploy(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let original = state
        .store
        .deployment(id.as_str())?
        .ok_or_else(|| ApiError::not_found("deployment"))?;
    check_may_change(&state, &session, &original)?;
    let Some(commit) = original.commit.clone() else {
        return Err(ApiError::conflict(format!(
            "deployment {id} recorded no commit (it ended before checking one out): deploy the branch instead"
        )));
    };
    if state.store.sandbox(&original.sandbox)?.is_none() {
        return Err(ApiError::conflict(format!(
            "sandbox {} of deployment {id} is gone",
            original.sandbox
        )));
    }
    let credential = credential(&state, &session)?;
    let pin = Pin {
        commit: Some(commit),
        redeploy_of: Some(original.id.clone()),
    };
    let outcome = state
        .orchestrator
        .deploy_pinned(
            &original.sandbox,
            &original.repo,
            &original.branch,
            &pin,
            &Requester::of(&session, credential, is_admin(&state, &session)),
            false,
        )
        .await;
    started_response(outcome)
}

/// The deployment's whole log as text, one line per event.
#[utoipa::path(
    get,
    path = "/deployments/{id}/logs",
    operation_id = "deployment_logs",
    tag = "deployments",
    params(("id" = String, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The log so far (empty before the first line)",
         content_type = "text/plain; charset=utf-8", body = String,
         headers(("content-disposition" = String, description = "`inline; filename=\"<id>.log\"`"))),
        (status = 404, description = "No such deployment (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn logs(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // A test run's log is kept like a deployment's, under its id.
    if state.store.deployment(id.as_str())?.is_none()
        && state.store.test_run(id.as_str())?.is_none()
    {
        return Err(ApiError::not_found("deployment"));
    }
    let path = state.config.data_dir.join("logs").join(format!("{id}.log"));
    let body = match tokio::fs::File::open(&path).await {
        Ok(file) => Body::from_stream(tokio_util::io::ReaderStream::new(file)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Body::empty(),
        Err(err) => return Err(ApiError::internal(&err)),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{id}.log\""),
            ),
        ],
        body,
    )
        .into_response())
}
