//! `POST /api/login`'s body and answer, `GET /api/me`'s answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A git (Bitbucket) credential: it is checked against the probe repo and
/// kept in memory for the session only.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Not blank (it is trimmed), no control characters. The server takes
    /// up to 128 bytes; 32 characters are that many in any script.
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 32
    )]
    pub username: String,
    /// No NUL. The server takes up to 1024 bytes; 256 characters are that
    /// many in any script.
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\x00]*$")]
    pub password: String,
}

// No `Debug`: it holds the password.

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The session token, for `Authorization: Bearer`; the same is set as
    /// the `sdp_session` cookie.
    pub token: String,
    pub user: User,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub expires_at: DateTime<Utc>,
    /// Whether the session holds the git credential deploys need (not
    /// after a control-plane restart: log in again).
    pub can_deploy: bool,
}
