//! Notifications over REST: `GET /api/deliveries` (the last outcome of
//! each build status and webhook sent), and the outgoing webhooks of a
//! template (`GET`/`PUT /api/templates/{name}/notify`) and of an
//! environment (`…/environments/{name}/notify`). Anyone logged in reads
//! deliveries and webhooks by origin; the full URLs (a webhook URL is a
//! secret) only the owner's creator and admins, who alone set them. A URL
//! set must pass [`crate::notify::guard`] (no internal hosts).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::Response;
use sdp_api::paging::DEFAULT_LIMIT;
use sdp_api::{DeliveriesQuery, Delivery, NotifyTarget, TemplateNotify};
use sdp_bus::validate;

use super::access::is_admin;
use super::openapi::ErrorBody;
use super::paging::{self, Cursor, List};
use super::templates::{editor, not_yours};
use super::{ApiError, ApiJson, AppState};
use crate::notify::guard::Guard;
use crate::notify::webhook;
use crate::sessions::Session;
use crate::store::{Guarded, PageOf};

/// Deliveries of build statuses and outgoing webhooks, newest first, a
/// page at a time (`limit`, `cursor`; the next page's cursor in
/// `X-Next-Cursor`).
#[utoipa::path(
    get,
    path = "/deliveries",
    operation_id = "list_deliveries",
    tag = "notifications",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "A page of the deliveries with their last outcome, newest first", body = [Delivery],
         headers(
            ("X-Next-Cursor" = String, description = "The next page's `cursor`; absent on the last page"),
            ("Link" = String, description = "`<this request with the next cursor>; rel=\"next\"`; absent on the last page"),
         )),
        (status = 400, description = "A limit out of range, a malformed or another list's cursor, or an unknown parameter (`bad_request`)", body = ErrorBody),
    ),
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    _session: Session,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    // A filter only (bound as a parameter): a name no sandbox has lists
    // nothing, as `GET /api/deployments?sandbox=` does.
    let sandbox = query.sandbox.filter(|s| !s.is_empty());
    let limit = paging::limit(query.limit, DEFAULT_LIMIT)?;
    let page = PageOf {
        after: Cursor::id(List::Deliveries, query.cursor.as_deref())?,
        limit: paging::probe(limit),
    };
    let rows = state.store.deliveries(sandbox.as_deref(), &page)?;
    let page = paging::cut(rows, limit, |d| Cursor::of_id(List::Deliveries, d.id));
    Ok(paging::respond(&uri, page))
}

fn check_template_name(name: &str) -> Result<(), ApiError> {
    Ok(validate::resource_name("template name", name)?)
}

fn check_environment_name(name: &str) -> Result<(), ApiError> {
    Ok(validate::resource_name("environment name", name)?)
}

/// The URLs as `session` may see them: in full for who may change the
/// owner (made by `creator`), else their origins only.
fn shown(
    state: &AppState,
    session: &Session,
    creator: Option<&str>,
    mut targets: Vec<NotifyTarget>,
) -> TemplateNotify {
    if !editor(state, session).may_change(creator) {
        for target in &mut targets {
            target.url = webhook::origin(&target.url);
        }
    }
    TemplateNotify { targets }
}

/// A template's outgoing webhooks: full URLs for its creator and admins,
/// their origins for everyone else.
#[utoipa::path(
    get,
    path = "/templates/{name}/notify",
    operation_id = "show_template_notify",
    tag = "notifications",
    params(("name" = String, Path, description = "The template's name", example = "web")),
    responses(
        (status = 200, description = "Its webhooks", body = TemplateNotify),
        (status = 400, description = "An invalid template name (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show_template_notify(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Json<TemplateNotify>, ApiError> {
    check_template_name(&name)?;
    let template = state
        .store
        .template(&name)?
        .ok_or_else(|| ApiError::not_found("template"))?;
    let targets = state.store.template_notify(&name)?;
    Ok(Json(shown(
        &state,
        &session,
        template.created_by.as_deref(),
        targets,
    )))
}

/// Replaces a template's outgoing webhooks (its creator or an admin).
#[utoipa::path(
    put,
    path = "/templates/{name}/notify",
    operation_id = "put_template_notify",
    tag = "notifications",
    params(("name" = String, Path, description = "The template's name", example = "web")),
    request_body = TemplateNotify,
    responses(
        (status = 200, description = "Its webhooks now", body = TemplateNotify),
        (status = 400, description = "An invalid template name, a URL that is not https (or loopback http where allowed), a host that is or resolves to an internal address, or more than 10 (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not its creator or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn put_template_notify(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TemplateNotify>,
) -> Result<Json<TemplateNotify>, ApiError> {
    check_template_name(&name)?;
    check_targets(&state, &body.targets).await?;
    let verdict =
        state
            .store
            .set_template_notify(&name, &body.targets, editor(&state, &session))?;
    settled(&state, &session, "template", &name, verdict, body)
}

/// An environment's outgoing webhooks (every sandbox that runs with it
/// sends there): full URLs for its creator and admins, their origins for
/// everyone else.
#[utoipa::path(
    get,
    path = "/environments/{name}/notify",
    operation_id = "show_environment_notify",
    tag = "notifications",
    params(("name" = String, Path, description = "The environment's name", example = "baseline")),
    responses(
        (status = 200, description = "Its webhooks", body = TemplateNotify),
        (status = 400, description = "An invalid environment name (`bad_request`)", body = ErrorBody),
        (status = 404, description = "No such environment (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn show_environment_notify(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Json<TemplateNotify>, ApiError> {
    check_environment_name(&name)?;
    let environment = state
        .store
        .environment(&name)?
        .ok_or_else(|| ApiError::not_found("environment"))?;
    let targets = state.store.environment_notify(&name)?;
    Ok(Json(shown(
        &state,
        &session,
        environment.created_by.as_deref(),
        targets,
    )))
}

/// Replaces an environment's outgoing webhooks (its creator or an admin).
#[utoipa::path(
    put,
    path = "/environments/{name}/notify",
    operation_id = "put_environment_notify",
    tag = "notifications",
    params(("name" = String, Path, description = "The environment's name", example = "baseline")),
    request_body = TemplateNotify,
    responses(
        (status = 200, description = "Its webhooks now", body = TemplateNotify),
        (status = 400, description = "An invalid environment name, a URL that is not https (or loopback http where allowed), a host that is or resolves to an internal address, or more than 10 (`bad_request`)", body = ErrorBody),
        (status = 403, description = "Not its creator or an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such environment (`not_found`)", body = ErrorBody),
    ),
)]
pub async fn put_environment_notify(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TemplateNotify>,
) -> Result<Json<TemplateNotify>, ApiError> {
    check_environment_name(&name)?;
    check_targets(&state, &body.targets).await?;
    let verdict =
        state
            .store
            .set_environment_notify(&name, &body.targets, editor(&state, &session))?;
    settled(&state, &session, "environment", &name, verdict, body)
}

/// The answer to a `PUT …/notify` once the store said how it went.
fn settled(
    state: &AppState,
    session: &Session,
    what: &str,
    name: &str,
    verdict: Guarded,
    body: TemplateNotify,
) -> Result<Json<TemplateNotify>, ApiError> {
    match verdict {
        Guarded::Done => {
            tracing::info!(
                owner = what,
                name,
                user = session.username,
                admin = is_admin(state, session),
                count = body.targets.len(),
                "webhooks set"
            );
            Ok(Json(body))
        }
        Guarded::NotFound => Err(ApiError::not_found(what)),
        Guarded::NotYours(creator) => Err(not_yours(what, name, creator.as_deref())),
    }
}

async fn check_targets(state: &AppState, targets: &[NotifyTarget]) -> Result<(), ApiError> {
    if targets.len() > 10 {
        return Err(ApiError::bad_request(
            "at most 10 webhooks per template or environment",
        ));
    }
    for target in targets {
        if target.url.len() > 2000 {
            return Err(ApiError::bad_request(
                "a webhook URL is at most 2000 characters",
            ));
        }
        if target.events.len() > 4 {
            return Err(ApiError::bad_request("at most 4 events per webhook"));
        }
        webhook::check_url(&target.url, state.config.notify.allow_loopback_http)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    // Where they lead, once each is well-formed (a name is resolved). A
    // name that does not resolve now leads nowhere yet: it is taken, and
    // checked again before every delivery, as every webhook is.
    let guard = Guard::new(&state.config, Some(state.store.clone()));
    for target in targets {
        match guard.check(&target.url).await {
            Ok(_) => {}
            Err(refused) if refused.is_transient() => {
                tracing::info!(reason = %refused, "webhook host unresolved when set; checked at delivery");
            }
            Err(refused) => return Err(ApiError::bad_request(refused.to_string())),
        }
    }
    Ok(())
}
