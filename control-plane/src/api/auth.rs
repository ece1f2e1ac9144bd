//! `POST /api/login`, `POST /api/logout`, `GET /api/me`.

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use sdp_bus::{CredentialsVerified, GitCredential, Secret, VerifyCredentials};

use sdp_api::{LoginBody, LoginResponse, Me, User};

use super::cookie::cookie_name;
use super::openapi::ErrorBody;
use super::{ApiError, ApiJson, AppState};
use crate::agent_client::AgentCallError;
use crate::sessions::Session;
use crate::throttle::Throttled;

/// The session token a request presents, and how.
pub struct Presented {
    pub token: String,
    /// Sent by the browser on its own (the cookie), not by a client that
    /// holds the token: the forgery checks apply.
    pub by_cookie: bool,
}

/// The request carries the session cookie more than once (one may have
/// been planted by another host of the site): which one is the user's
/// cannot be told, so neither is used.
#[derive(Debug)]
pub struct TwoSessionCookies;

impl From<TwoSessionCookies> for ApiError {
    fn from(_: TwoSessionCookies) -> Self {
        ApiError::unauthorized(
            "the request carries two session cookies: clear this site's cookies and log in again",
        )
    }
}

/// The session token of a request: `Authorization: Bearer` (which no
/// page can add to a request without the token), else the cookie named
/// `cookie`, which must then be there once.
pub fn presented_token(
    headers: &HeaderMap,
    cookie: &str,
) -> Result<Option<Presented>, TwoSessionCookies> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let presented = if let Some(token) = bearer {
        Presented {
            token: token.trim().to_owned(),
            by_cookie: false,
        }
    } else {
        let mut cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| name.trim() == cookie)
            .map(|(_, value)| value.trim().to_owned());
        let Some(token) = cookies.next() else {
            return Ok(None);
        };
        if cookies.next().is_some() {
            return Err(TwoSessionCookies);
        }
        Presented {
            token,
            by_cookie: true,
        }
    };
    Ok((!presented.token.is_empty() && presented.token.len() <= 128).then_some(presented))
}

/// The session token of a request, if it presents exactly one.
pub fn token_from_headers(headers: &HeaderMap, cookie: &str) -> Option<String> {
    presented_token(headers, cookie)
        .ok()
        .flatten()
        .map(|presented| presented.token)
}

/// Logs in with a git credential; answers the session token and sets the
/// `sdp_session` cookie. A session the client came with ends.
#[utoipa::path(
    post,
    path = "/login",
    operation_id = "login",
    tag = "session",
    security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse,
         headers(("set-cookie" = String, description = "`sdp_session=<token>; Path=/; HttpOnly; SameSite=Strict; Max-Age=…` (`__Host-sdp_session=…; Secure` with `http.secure_cookies`)"))),
        (status = 401, description = "Wrong username or password (`unauthorized`)", body = ErrorBody),
        (status = 429, description = "Too many failed logins for the user or address (`throttled`)", body = ErrorBody,
         headers(("retry-after" = u64, description = "Seconds until a login may be tried again"))),
        (status = 502, description = "The agent could not check the credential (`verify_failed`)", body = ErrorBody),
        (status = 503, description = "Login is not configured (`not_configured`) or no agent is online (`no_agent`)", body = ErrorBody),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let username = body.username.trim();
    crate::audit::note_actor(username);
    if username.is_empty() || body.password.is_empty() {
        return Err(ApiError::bad_request("username and password are required"));
    }
    // A NUL cannot travel in a git credential (libgit2 takes C strings):
    // refused here, not reported as the agent failing to check it.
    if username.len() > 128
        || body.password.len() > 1024
        || username.chars().any(char::is_control)
        || body.password.contains('\0')
    {
        return Err(ApiError::bad_request(
            "username or password is too long or malformed",
        ));
    }
    let credential = GitCredential {
        username: username.to_owned(),
        password: Secret::new(body.password),
    };
    let client =
        crate::client_addr::client(peer.ip(), &headers, &state.config.http.trusted_proxies);
    // The slot is taken before git is asked: parallel attempts past the
    // limit never reach it.
    let attempt = match state.throttle.reserve(username, client) {
        Ok(attempt) => attempt,
        Err(throttled) => return Ok(throttled_response(&throttled)),
    };
    match verify(&state, &credential).await {
        Ok(()) => attempt.succeeded(),
        Err(err) => {
            if err.status == StatusCode::UNAUTHORIZED {
                attempt.failed();
            }
            return Err(err);
        }
    }

    // A login rotates the token: the session the client came with ends.
    let cookie_name = cookie_name(&state.config.http);
    if let Some(old) = token_from_headers(&headers, cookie_name) {
        state.sessions.end(&crate::sessions::hash_token(&old))?;
    }
    let new = state.sessions.create(credential)?;
    let expires_at = DateTime::from_timestamp(new.session.expires_at, 0).unwrap_or_default();
    let cookie = format!(
        "{cookie_name}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        new.token,
        state.config.auth.session_max.as_secs(),
        if state.config.http.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = Json(LoginResponse {
        token: new.token,
        user: User {
            username: new.session.username,
        },
        expires_at,
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// 429 with `Retry-After`.
fn throttled_response(throttled: &Throttled) -> Response {
    let minutes = throttled.retry_after.as_secs().div_ceil(60).max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        format!(
            "too many failed logins for this {}: try again in {minutes} minute(s)",
            throttled.by
        ),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&throttled.retry_after.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Asks one agent of each configured kind, in order, to `git ls-remote`
/// the credential check repo with the credential.
async fn verify(state: &AppState, credential: &GitCredential) -> Result<(), ApiError> {
    if state.config.auth.credential_check_repo.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "login is not configured: set auth.credential_check_repo to a private git repo",
        ));
    }
    let request = VerifyCredentials {
        probe_repo: state.config.auth.credential_check_repo.clone(),
        credential: credential.clone(),
    };
    for kind in &state.config.auth.verify_kinds {
        let outcome = state
            .orchestrator
            .agents
            .rpc::<_, CredentialsVerified>(
                kind,
                sdp_bus::subject::VERIFY_CREDENTIALS,
                &request,
                state.config.agents.request_timeout * 2,
            )
            .await;
        return match outcome {
            Ok(_) => Ok(()),
            // This kind cannot check credentials now: the next may.
            Err(err) if err.is_no_agent() || err.is_not_supported() => continue,
            Err(err @ AgentCallError::Request { .. }) => {
                tracing::error!(error = %err, "credential check request failed");
                continue;
            }
            Err(err) if err.is_unauthorized() => {
                Err(ApiError::unauthorized("wrong username or password"))
            }
            Err(AgentCallError::Refused { error, .. }) => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "verify_failed",
                format!("could not check the credential: {}", error.message),
            )),
            Err(err) => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "verify_failed",
                format!("agent answered the credential check with a malformed reply: {err}"),
            )),
        };
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_agent",
        "no agent is online to check credentials: start an agent and try again",
    ))
}

/// Ends the session and clears the cookie.
#[utoipa::path(
    post,
    path = "/logout",
    operation_id = "logout",
    tag = "session",
    responses((status = 204, description = "Logged out",
               headers(("set-cookie" = String, description = "Clears the session cookie")))),
)]
pub async fn logout(State(state): State<AppState>, session: Session) -> Result<Response, ApiError> {
    state.sessions.end(&session.token_hash)?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let secure = if state.config.http.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cleared = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        cookie_name(&state.config.http)
    );
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Who the session belongs to.
#[utoipa::path(
    get,
    path = "/me",
    operation_id = "me",
    tag = "session",
    responses((status = 200, description = "The session's user", body = Me)),
)]
pub async fn me(State(state): State<AppState>, session: Session) -> Json<Me> {
    let expires_at = DateTime::from_timestamp(session.expires_at, 0).unwrap_or_default();
    Json(Me {
        can_deploy: state.sessions.credential(&session).is_some(),
        username: session.username,
        expires_at,
    })
}
