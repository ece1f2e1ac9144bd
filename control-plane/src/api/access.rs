//! Who may do what, for every handler: a valid sandbox name, the
//! caller's admin rights, the sandbox a caller may change (its owner or an
//! admin, else 403), a store error as the API answers it, and the
//! session's git credential (401 once the control plane restarted).

use axum::http::StatusCode;
use sdp_bus::{GitCredential, validate};

use super::{ApiError, AppState};
use crate::sessions::Session;
use crate::store::{Sandbox, StoreError};

pub(super) fn check_sandbox_name(name: &str) -> Result<(), ApiError> {
    Ok(validate::resource_name("sandbox name", name)?)
}

/// Whether the caller is in `auth.admins`.
pub(super) fn is_admin(state: &AppState, session: &Session) -> bool {
    state.config.auth.admins.contains(&session.username)
}

/// 403: the sandbox is someone else's.
pub(super) fn not_owner(name: &str, owner: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("sandbox {name} belongs to {owner}; only its owner or an admin may change it"),
    )
}

/// A store error as the API answers it: a deployment refused because the
/// sandbox became someone else's is a 403, anything else a 500.
pub(super) fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NotOwner { sandbox, owner } => not_owner(&sandbox, &owner),
        err => err.into(),
    }
}

/// The sandbox, if the caller may change it: its owner or an admin.
pub(super) fn sandbox_for_change(
    state: &AppState,
    session: &Session,
    name: &str,
) -> Result<Sandbox, ApiError> {
    let sandbox = state
        .store
        .sandbox(name)?
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    if sandbox.owner != session.username && !is_admin(state, session) {
        return Err(not_owner(name, &sandbox.owner));
    }
    Ok(sandbox)
}

pub(super) fn credential(state: &AppState, session: &Session) -> Result<GitCredential, ApiError> {
    state.sessions.credential(session).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "credential_expired",
            "the control plane restarted since you logged in: log in again to deploy",
        )
    })
}
