//! The one error shape of the API: `{"error": {"code", "message"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error the API answers: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: `bad_request`, `unauthorized`,
    /// `credential_expired`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `throttled`,
    /// `no_agent`, `not_configured`, `verify_failed`, `agent_error`,
    /// `git_refused`, `refused`, `busy`, `not_supported`,
    /// `nats_unavailable`, `internal`, …
    pub code: String,
    /// For people: what went wrong and what to do. Never internals.
    pub message: String,
    /// Set when a deployment was recorded before its dispatch failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
}
