//! The HTTP surface: REST under `/api`, the deployment WebSocket under
//! `/ws`, health probes, and the embedded dashboard at `/`. The OpenAPI
//! document of all but the dashboard is generated from the handlers
//! ([`openapi`]) and served at `/api/openapi.json`.

mod access;
pub mod audit;
mod auth;
mod autodeploy;
mod checks;
mod cookie;
mod deployments;
mod error;
mod forgery;
mod hooks;
mod notify;
mod openapi;
mod paging;
mod power;
pub mod preview;
mod repos;
mod resource_changes;
mod resources;
mod runtime_logs;
mod sandboxes;
mod service_env;
mod templates;
mod test_runs;
mod unread_body;
mod view;
mod ws;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rust_embed::RustEmbed;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use sdp_api::Readiness;

use crate::agents::Registry;
use crate::config::Config;
use crate::sessions::{Session, Sessions};
use crate::store::Store;

pub use cookie::COOKIE as SESSION_COOKIE;
pub use error::{ApiError, ApiJson};
pub use hooks::Hooks;

/// Request bodies are small JSON objects; anything bigger is refused (413).
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub sessions: Sessions,
    pub registry: Registry,
    pub nats: async_nats::Client,
    pub orchestrator: crate::orchestrator::Orchestrator,
    pub throttle: crate::throttle::LoginThrottle,
    pub viewers: crate::counters::Viewers,
    /// Push webhooks: the secret and the deliveries already handled.
    pub hooks: Hooks,
    /// Each user's open WebSockets and runtime-log streams.
    pub streams: crate::user_streams::UserStreams,
    /// The audit trail's recorder.
    pub audit: crate::audit::Audit,
}

/// Every route of the API, each documented by its handler's
/// `#[utoipa::path]` (`routes!` takes nothing else), so the router and the
/// OpenAPI document cannot drift apart.
fn routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(agents))
        .routes(routes!(repos::list))
        .routes(routes!(repos::branches))
        .routes(routes!(
            templates::list_environments,
            templates::create_environment
        ))
        .routes(routes!(
            templates::show_environment,
            templates::update_environment,
            templates::delete_environment
        ))
        .routes(routes!(
            templates::list_templates,
            templates::create_template
        ))
        .routes(routes!(
            templates::show_template,
            templates::update_template,
            templates::delete_template
        ))
        .routes(routes!(sandboxes::list, sandboxes::create))
        .routes(routes!(
            sandboxes::show,
            sandboxes::update,
            sandboxes::delete
        ))
        .routes(routes!(sandboxes::deploy_template))
        .routes(routes!(power::wake))
        .routes(routes!(sandboxes::routes))
        .routes(routes!(sandboxes::put_route, sandboxes::delete_route))
        .routes(routes!(checks::staleness))
        .routes(routes!(checks::probe))
        .routes(routes!(deployments::create))
        .routes(routes!(deployments::list))
        .routes(routes!(deployments::show))
        .routes(routes!(deployments::cancel))
        .routes(routes!(deployments::logs))
        .routes(routes!(autodeploy::put_service))
        .routes(routes!(
            service_env::show_service_env,
            service_env::put_service_env
        ))
        .routes(routes!(resources::list_resources))
        .routes(routes!(resources::reset_resource))
        .routes(routes!(
            resource_changes::put_resource,
            resource_changes::delete_resource
        ))
        .routes(routes!(hooks::bitbucket))
        .routes(routes!(runtime_logs::runtime_logs))
        .routes(routes!(deployments::redeploy))
        .routes(routes!(audit::list))
        .routes(routes!(test_runs::list, test_runs::start))
        .routes(routes!(test_runs::show))
        .routes(routes!(test_runs::cancel))
        .routes(routes!(notify::list_deliveries))
        .routes(routes!(
            notify::show_template_notify,
            notify::put_template_notify
        ))
        .routes(routes!(
            notify::show_environment_notify,
            notify::put_environment_notify
        ))
        .routes(routes!(openapi::document_json))
        .fallback(|| async { ApiError::not_found("API path") });
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api", api)
        .routes(routes!(ws::deployment))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The OpenAPI document of [`router`], as `GET /api/openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::finish(routes().into_openapi())
}

pub fn router(state: AppState) -> Router {
    let (routes, _) = routes().split_for_parts();
    routes
        .fallback(dashboard)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forgery::refuse_forged,
        ))
        // Outside the forgery check: a forged request is recorded, refused.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record_changes,
        ))
        .layer(axum::middleware::from_fn(unread_body::close_if_body_unread))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            preview::entry,
        ))
        .with_state(state)
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    security(()),
    responses((status = 200, description = "The process is up", content_type = "text/plain", body = String, example = "ok")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// The agents that sent a heartbeat since the control plane started.
#[utoipa::path(
    get,
    path = "/agents",
    operation_id = "list_agents",
    tag = "agents",
    responses((status = 200, description = "Every known agent, online or not", body = [crate::agents::AgentView])),
)]
async fn agents(
    State(state): State<AppState>,
    _session: Session,
) -> Json<Vec<crate::agents::AgentView>> {
    Json(state.registry.views(state.config.agents.heartbeat_timeout))
}

/// Prometheus/OpenMetrics text: deployments by status, agents, viewers.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "Metrics in the OpenMetrics text format",
         content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 500, description = "The store cannot be read (`internal`)", body = openapi::ErrorBody),
    ),
)]
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = crate::metrics::render(
        &state.store,
        &state.registry,
        &state.viewers,
        state.config.agents.heartbeat_timeout,
    )?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Readiness: NATS connected and the database answering.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "NATS or the database is down", body = Readiness),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let nats_up = state.nats.connection_state() == async_nats::connection::State::Connected;
    let db_up = state.store.ping().is_ok();
    let status = if nats_up && db_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            nats: nats_up,
            database: db_up,
        }),
    )
        .into_response()
}

#[derive(RustEmbed)]
#[folder = "../dashboard/"]
struct Dashboard;

async fn dashboard(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match Dashboard::get(path) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'".to_owned(),
                ),
            ],
            file.data,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The caller's session, from the session cookie or a bearer token; 401
/// otherwise, and for two session cookies.
impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let cookie = cookie::cookie_name(&state.config.http);
        let Some(presented) = auth::presented_token(&parts.headers, cookie)? else {
            return Err(ApiError::unauthorized("log in first: no session"));
        };
        let session = state
            .sessions
            .lookup(&presented.token)?
            .ok_or_else(|| ApiError::unauthorized("session expired or unknown: log in again"))?;
        crate::audit::note_actor(&session.username);
        Ok(session)
    }
}
