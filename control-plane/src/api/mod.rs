//! The HTTP surface: REST under `/api`, the deployment WebSocket under
//! `/ws`, health probes, and the embedded dashboard at `/`.

mod auth;
mod catalog;
mod deployments;
mod error;
mod repos;
mod sandboxes;
mod unread_body;
mod ws;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rust_embed::RustEmbed;

use crate::agents::Registry;
use crate::config::Config;
use crate::sessions::{Session, Sessions};
use crate::store::Store;

pub use error::{ApiError, ApiJson};

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
    pub viewers: crate::metrics::Viewers,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route("/agents", get(agents))
        .route("/repos", get(repos::list))
        .route("/repos/{repo}/branches", get(repos::branches))
        .route(
            "/environments",
            get(catalog::list_environments).post(catalog::create_environment),
        )
        .route(
            "/environments/{name}",
            get(catalog::show_environment)
                .put(catalog::update_environment)
                .delete(catalog::delete_environment),
        )
        .route(
            "/templates",
            get(catalog::list_templates).post(catalog::create_template),
        )
        .route(
            "/templates/{name}",
            get(catalog::show_template)
                .put(catalog::update_template)
                .delete(catalog::delete_template),
        )
        .route("/sandboxes", get(sandboxes::list).post(sandboxes::create))
        .route(
            "/sandboxes/{name}",
            get(sandboxes::show)
                .patch(sandboxes::update)
                .delete(sandboxes::delete),
        )
        .route("/sandboxes/{name}/deploy", post(sandboxes::deploy_template))
        .route("/sandboxes/{name}/routes", get(sandboxes::routes))
        .route(
            "/sandboxes/{name}/routes/{service}",
            put(sandboxes::put_route).delete(sandboxes::delete_route),
        )
        .route("/sandboxes/{name}/deployments", post(deployments::create))
        .route("/deployments", get(deployments::list))
        .route("/deployments/{id}", get(deployments::show))
        .route("/deployments/{id}/cancel", post(deployments::cancel))
        .route("/deployments/{id}/logs", get(deployments::logs))
        .fallback(|| async { ApiError::not_found("API path") });
    Router::new()
        .nest("/api", api)
        .route("/ws/deployments/{id}", get(ws::deployment))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(dashboard)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(unread_body::close_if_body_unread))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::preview::entry,
        ))
        .with_state(state)
}

async fn agents(
    State(state): State<AppState>,
    _session: Session,
) -> Json<Vec<crate::agents::AgentView>> {
    Json(state.registry.views(state.config.agents.heartbeat_timeout))
}

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
        Json(serde_json::json!({ "nats": nats_up, "database": db_up })),
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

/// The caller's session, from the `sdp_session` cookie or a bearer token;
/// 401 otherwise.
impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = auth::token_from_headers(&parts.headers) else {
            return Err(ApiError::unauthorized("log in first: no session"));
        };
        state
            .sessions
            .lookup(&token)?
            .ok_or_else(|| ApiError::unauthorized("session expired or unknown: log in again"))
    }
}
