//! Test runs: start one against a sandbox (`POST
//! /api/sandboxes/{name}/test-runs`, its owner or an admin), the sandbox's
//! history (`GET`, newest first), one run (`GET /api/test-runs/{id}`),
//! cancel one (`POST /api/test-runs/{id}/cancel`: `deploy.cancel.<id>`,
//! as a deployment's). A run's log and live events are the deployment
//! ones of its id.

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sdp_api::paging::DEFAULT_LIMIT;
use sdp_api::{NewTestRun, TestRun, TestRunTrigger, TestRunsQuery};
use sdp_bus::{DeploymentId, validate};
use serde_json::json;

use super::access::{check_sandbox_name, credential, is_admin, sandbox_for_change};
use super::openapi::ErrorBody;
use super::paging::{self, Cursor, List};
use super::{ApiError, ApiJson, AppState};
use crate::orchestrator::test_runs::{DEFAULT_BRANCH, TestPlan, TestRunError};
use crate::sessions::Session;
use crate::store::PageOf;

/// The plan of a run: the body's fields over the template's `tests`.
fn plan(body: NewTestRun, template: Option<sdp_api::TestSettings>) -> Result<TestPlan, ApiError> {
    let repo = body
        .repo
        .or_else(|| template.as_ref().map(|t| t.repo.clone()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "name the repo of the tests: the sandbox's template has no `tests`",
            )
        })?;
    // The template's branch, command and report only go with its repo.
    let template = template.filter(|t| t.repo == repo);
    let branch = body
        .branch
        .or_else(|| template.as_ref().and_then(|t| t.branch.clone()))
        .unwrap_or_else(|| DEFAULT_BRANCH.to_owned());
    let command = body
        .command
        .or_else(|| template.as_ref().map(|t| t.command.clone()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "name the test command: the sandbox's template has none for {repo}"
            ))
        })?;
    let junit = body
        .junit
        .or_else(|| template.as_ref().and_then(|t| t.junit.clone()));
    let plan = TestPlan {
        repo,
        branch,
        command,
        junit,
    };
    check_plan(&plan)?;
    Ok(plan)
}

/// The checks the agent makes again: a bad plan is refused before
/// anything is recorded.
pub(super) fn check_plan(plan: &TestPlan) -> Result<(), ApiError> {
    validate::repo(&plan.repo)?;
    validate::branch(&plan.branch)?;
    sdp_bus::test_run::check_command(&plan.command).map_err(ApiError::bad_request)?;
    if let Some(path) = &plan.junit {
        sdp_bus::test_run::check_junit_path(path).map_err(ApiError::bad_request)?;
    }
    Ok(())
}

/// Starts a test run against the sandbox (its owner or an admin): the
/// body's repo, branch, command and JUnit path, each defaulting to the
/// template's `tests`. Its output follows on `/ws/deployments/{id}`.
#[utoipa::path(
    post,
    path = "/sandboxes/{name}/test-runs",
    operation_id = "start_test_run",
    tag = "test-runs",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha")),
    request_body = NewTestRun,
    responses(
        (status = 202, description = "Dispatched to an agent", body = TestRun),
        (status = 400, description = "A bad repo, branch, command or JUnit path, or none given and none in the template (`bad_request`), or the agent refused it (`refused`)", body = ErrorBody),
        (status = 403, description = "The sandbox is someone else's (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such sandbox (`not_found`)", body = ErrorBody),
        (status = 501, description = "The repo's agents do not run tests (`not_supported`)", body = ErrorBody),
        (status = 502, description = "The agent failed (`agent_error`; `test_run_id` names the failed run)", body = ErrorBody),
        (status = 503, description = "No agent took it, or no online agent holds the repo (`no_agent`); `test_run_id` names the failed run", body = ErrorBody),
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    session: Session,
    Path(sandbox): Path<String>,
    ApiJson(body): ApiJson<NewTestRun>,
) -> Result<Response, ApiError> {
    check_sandbox_name(&sandbox)?;
    let row = sandbox_for_change(&state, &session, &sandbox)?;
    let template = match &row.template {
        Some(name) => state.store.template(name)?.and_then(|t| t.tests),
        None => None,
    };
    let plan = plan(body, template)?;
    let credential = credential(&state, &session)?;
    let preview_url = state
        .config
        .http
        .preview_domain
        .as_ref()
        .map(|domain| super::preview::url(domain, state.config.http.secure_cookies, &sandbox));
    let started = state
        .orchestrator
        .start_test_run(
            &sandbox,
            &plan,
            TestRunTrigger::Manual,
            &session.username,
            credential,
            preview_url,
        )
        .await;
    match started {
        Ok(run) => Ok((StatusCode::ACCEPTED, Json(run)).into_response()),
        Err(TestRunError::Store(err)) => Err(err.into()),
        Err(TestRunError::Dispatch { id, source }) => {
            Err(ApiError::from(source).with_details(json!({ "test_run_id": id })))
        }
    }
}

/// The sandbox's test runs, newest first, a page at a time (`limit`,
/// `cursor`; the next page's cursor in `X-Next-Cursor`).
#[utoipa::path(
    get,
    path = "/sandboxes/{name}/test-runs",
    operation_id = "list_test_runs",
    tag = "test-runs",
    params(("name" = String, Path, description = "The sandbox's name", example = "alpha"), TestRunsQuery),
    responses(
        (status = 200, description = "A page of the runs, newest first", body = [TestRun],
         headers(
            ("X-Next-Cursor" = String, description = "The next page's `cursor`; absent on the last page"),
            ("Link" = String, description = "`<this request with the next cursor>; rel=\"next\"`; absent on the last page"),
         )),
        (status = 400, description = "An invalid sandbox name, a limit out of range, a malformed or another list's cursor, or an unknown parameter (`bad_request`)", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _session: Session,
    Path(sandbox): Path<String>,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<TestRunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    check_sandbox_name(&sandbox)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = paging::limit(query.limit, DEFAULT_LIMIT)?;
    let page = PageOf {
        after: Cursor::time(List::TestRuns, query.cursor.as_deref())?,
        limit: paging::probe(limit),
    };
    let rows = state.store.test_runs_page(&sandbox, &page)?;
    let page = paging::cut(rows, limit, |r| {
        Cursor::of_time(List::TestRuns, r.created_at, r.id.as_str())
    });
    Ok(paging::respond(&uri, page))
}

/// One test run.
#[utoipa::path(
    get,
    path = "/test-runs/{id}",
    operation_id = "show_test_run",
    tag = "test-runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = TestRun),
        (status = 404, description = "No such test run (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> Result<Json<TestRun>, ApiError> {
    find_run(&state, &id).map(Json)
}

/// The run of `id`; 404 for an id of no run (or no id at all).
fn find_run(state: &AppState, id: &str) -> Result<TestRun, ApiError> {
    let id = DeploymentId::parse(id).ok_or_else(|| ApiError::not_found("test run"))?;
    state
        .store
        .test_run(id.as_str())?
        .ok_or_else(|| ApiError::not_found("test run"))
}

/// Cancels a run that has not ended: its agent stops the command and
/// removes its container, and the run ends `cancelled` with who asked in
/// its log. Allowed to whoever may change the sandbox and to whoever
/// started the run. Asking again while it stops sends the cancel again
/// (harmless).
#[utoipa::path(
    post,
    path = "/test-runs/{id}/cancel",
    operation_id = "cancel_test_run",
    tag = "test-runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "The cancel was sent; the run as it was when sent (`cancelled` follows)", body = TestRun),
        (status = 403, description = "Neither the sandbox's owner, an admin, nor the run's starter (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such test run (`not_found`)", body = ErrorBody),
        (status = 409, description = "The run already ended (`conflict`)", body = ErrorBody),
        (status = 503, description = "The message bus is unreachable (`nats_unavailable`)", body = ErrorBody),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = find_run(&state, &id)?;
    crate::audit::note(|note| {
        note.sandbox = Some(run.sandbox.clone());
        note.target = Some(run.id.to_string());
    });
    if run.created_by != session.username && !is_admin(&state, &session) {
        // Not the starter: the sandbox's owner (a sandbox gone leaves
        // only the starter and admins).
        match state.store.sandbox(&run.sandbox)? {
            Some(_) => {
                sandbox_for_change(&state, &session, &run.sandbox)?;
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "test run {} was started by {}; only they, the sandbox's owner or an admin may cancel it",
                        run.id, run.created_by
                    ),
                ));
            }
        }
    }
    if run.status.is_settled() {
        return Err(ApiError::conflict(format!(
            "test run {} already ended {}; nothing to cancel",
            run.id,
            run.status.as_str()
        )));
    }
    let cancel = sdp_bus::DeployCancel {
        by: Some(session.username.clone()),
    };
    super::deployments::send_cancel(&state, &run.id, cancel).await?;
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> sdp_api::TestSettings {
        sdp_api::TestSettings {
            repo: "qa".into(),
            branch: Some("release".into()),
            command: vec!["go".into(), "run".into(), "./cmd/e2e".into()],
            junit: Some("report.xml".into()),
            after_deploy: false,
        }
    }

    #[test]
    fn the_body_overrides_the_template() {
        let defaults = plan(NewTestRun::default(), Some(settings())).expect("plan");
        assert_eq!(
            (defaults.repo.as_str(), defaults.branch.as_str()),
            ("qa", "release")
        );
        assert_eq!(defaults.junit.as_deref(), Some("report.xml"));
        let body = NewTestRun {
            branch: Some("fix".into()),
            ..Default::default()
        };
        assert_eq!(plan(body, Some(settings())).expect("plan").branch, "fix");
        // Another repo takes nothing of the template's.
        let other = NewTestRun {
            repo: Some("other".into()),
            ..Default::default()
        };
        assert!(plan(other, Some(settings())).is_err(), "no command");
    }

    #[test]
    fn a_bad_plan_is_refused() {
        assert!(plan(NewTestRun::default(), None).is_err());
        let escape = NewTestRun {
            junit: Some("../x.xml".into()),
            ..Default::default()
        };
        assert!(plan(escape, Some(settings())).is_err());
    }
}
