//! The one error type of the REST API: `{"error": {"code", "message"}}`
//! with the right status. Internal causes are logged, never sent.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sdp_bus::RpcErrorCode;
use sdp_bus::validate::InvalidName;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::agent_client::AgentCallError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields beside code and message (e.g. the deployment id).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// Logs `err` with its chain and answers 500 with no detail.
    pub fn internal(err: &dyn std::error::Error) -> Self {
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the control plane's log has the details",
        )
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// An agent's answer, or its absence, as the REST API's one answer to it
/// (every handler's; one that knows better — the login's 401, runtime
/// logs' 409 for a container that is not running — matches first):
///
/// | error | status | code |
/// | --- | --- | --- |
/// | no agent online, none answered in time, none holds the repo | 503 | `no_agent` |
/// | the agent does not serve the method (heartbeat, `unknown_method`) | 501 | `not_supported` |
/// | refused: the git server refused the credential | 403 | `git_refused` |
/// | refused: a bad request (unknown branch, …) | 400 | `refused` |
/// | refused: unavailable (at capacity, shutting down) | 503 | `busy` |
/// | refused otherwise, malformed reply, forged acceptance, NATS failure | 502 | `agent_error` |
impl From<AgentCallError> for ApiError {
    fn from(err: AgentCallError) -> Self {
        let (status, code) = match &err {
            AgentCallError::NoResponders { .. }
            | AgentCallError::Timeout { .. }
            | AgentCallError::NoHolder { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_agent"),
            AgentCallError::NotSupported { .. } => (StatusCode::NOT_IMPLEMENTED, "not_supported"),
            AgentCallError::Refused { error, .. } => match error.code {
                RpcErrorCode::Unauthorized => (StatusCode::FORBIDDEN, "git_refused"),
                RpcErrorCode::BadRequest => (StatusCode::BAD_REQUEST, "refused"),
                RpcErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
                RpcErrorCode::Internal | RpcErrorCode::UnknownMethod | RpcErrorCode::Other(_) => {
                    (StatusCode::BAD_GATEWAY, "agent_error")
                }
            },
            AgentCallError::Malformed { .. }
            | AgentCallError::Request { .. }
            | AgentCallError::ForgedAccept { .. } => (StatusCode::BAD_GATEWAY, "agent_error"),
        };
        Self::new(status, code, err.to_string())
    }
}

/// A name that breaks its rule (sandbox, repo, branch, commit): 400 naming
/// the rule.
impl From<InvalidName> for ApiError {
    fn from(err: InvalidName) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::internal(&err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some(serde_json::Value::Object(extra)), Some(map)) =
            (self.details, error.as_object_mut())
        {
            map.extend(extra);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        // For the audit trail's entry of the request.
        response
            .extensions_mut()
            .insert(super::audit::ErrorCode(self.code));
        response
    }
}

/// `Json<T>` whose rejections use the API's error shape (413 for bodies
/// over the limit, 415 for a wrong content type, 400/422 for bad JSON).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "request body is too large",
                    )
                } else {
                    ApiError::bad_request("the request body could not be read")
                }
            })?;
        let req = Request::from_parts(parts, Body::from(bytes.clone()));
        let value = match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        // serde takes a struct from an array too (`[null, null]`): a body
        // is an object.
        if !is_object(&bytes) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_request",
                "the request body must be a JSON object",
            ));
        }
        Ok(Self(value))
    }
}

/// Whether a JSON text is an object (its first non-blank byte is `{`).
pub fn is_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_request",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_owned(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "expected Content-Type: application/json".to_owned(),
        _ => rejection.body_text(),
    };
    ApiError::new(status, code, message)
}

#[cfg(test)]
mod tests {
    use sdp_bus::RpcError;

    use super::*;

    fn status_and_code(err: AgentCallError) -> (u16, &'static str) {
        let api = ApiError::from(err);
        (api.status.as_u16(), api.code)
    }

    fn refused(code: RpcErrorCode) -> AgentCallError {
        AgentCallError::Refused {
            method: "deploy",
            error: RpcError::new(code, "why"),
        }
    }

    #[test]
    fn every_agent_error_has_one_answer() {
        let target = || "agent a-1".to_owned();
        let cases = [
            (
                AgentCallError::NoResponders {
                    target: target(),
                    method: "deploy",
                },
                (503, "no_agent"),
            ),
            (
                AgentCallError::Timeout {
                    target: target(),
                    method: "deploy",
                    timeout: std::time::Duration::from_secs(1),
                },
                (503, "no_agent"),
            ),
            (
                AgentCallError::NoHolder {
                    repo: "edge".into(),
                },
                (503, "no_agent"),
            ),
            (
                AgentCallError::NotSupported {
                    target: target(),
                    method: "probe",
                },
                (501, "not_supported"),
            ),
            (refused(RpcErrorCode::Unauthorized), (403, "git_refused")),
            (refused(RpcErrorCode::BadRequest), (400, "refused")),
            (refused(RpcErrorCode::Unavailable), (503, "busy")),
            (refused(RpcErrorCode::Internal), (502, "agent_error")),
            (
                refused(RpcErrorCode::Other("new".into())),
                (502, "agent_error"),
            ),
            (
                AgentCallError::Malformed {
                    method: "deploy",
                    reason: "x".into(),
                },
                (502, "agent_error"),
            ),
            (
                AgentCallError::ForgedAccept {
                    answered: "b".into(),
                    why: "x".into(),
                },
                (502, "agent_error"),
            ),
        ];
        for (err, expected) in cases {
            let shown = err.to_string();
            assert_eq!(status_and_code(err), expected, "{shown}");
        }
    }

    #[test]
    fn a_repo_no_agent_holds_is_named_in_the_answer() {
        let api = ApiError::from(AgentCallError::NoHolder {
            repo: "edge".into(),
        });
        assert!(api.message.contains("repo edge"), "{}", api.message);
    }

    #[test]
    fn an_unsupported_method_says_so() {
        let api = ApiError::from(AgentCallError::NotSupported {
            target: "agent s-1".into(),
            method: "container_logs",
        });
        assert_eq!(
            api.message,
            "container_logs is not supported by the agent s-1"
        );
    }
}
