//! Deployments: the body that starts one, the list's query, what they
//! look like, cancel's answer, and the queries of runtime logs and of the
//! deployment WebSocket.

use chrono::{DateTime, Utc};
use sdp_bus::{DeploymentId, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What to deploy: a repo an agent holds, at a branch (its head, or a
/// commit on it).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    #[schema(
        pattern = "^[a-z0-9]([a-z0-9_-]|\\.[a-z0-9_-])*\\.?$",
        max_length = 63,
        example = "users"
    )]
    pub repo: String,
    #[schema(min_length = 1, max_length = 200, example = "main")]
    pub branch: String,
    /// A full commit id on the branch (its head or an ancestor) to deploy
    /// instead of the head; the agent refuses one that is not on the
    /// branch, before building anything.
    #[serde(default)]
    #[schema(pattern = "^([0-9a-f]{40}|[0-9a-f]{64})$")]
    pub commit: Option<String>,
}

/// A deployment that was dispatched to an agent.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentStarted {
    #[schema(value_type = String)]
    pub id: DeploymentId,
    pub status: Status,
    pub agent_id: String,
}

/// `GET /api/deployments`'s filters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this sandbox's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Only this repo's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Only those in this status (empty: any).
    #[param(schema_with = status_filter)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `true`: only gateway re-applies; `false`: all but them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reapply: Option<bool>,
    /// At most this many, newest first (1 to 500; default 100).
    #[param(minimum = 1, maximum = 500)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `X-Next-Cursor` of the page before, passed back unchanged
    /// (leave out for the first page).
    #[param(pattern = "^dep1\\.[0-9]{1,13}\\.[A-Za-z0-9_-]{1,64}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A status name, or empty for any.
fn status_filter() -> utoipa::openapi::Object {
    let names = std::iter::once("").chain(Status::ALL.map(Status::as_str));
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names))
        .description(Some("Only those in this status (empty: any)"))
        .build()
}

/// A deployment as the API shows it (fields may be added, not renamed).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    #[schema(value_type = String)]
    pub id: DeploymentId,
    pub sandbox: String,
    pub repo: String,
    pub branch: String,
    pub commit: Option<String>,
    pub kind: String,
    pub agent_id: Option<String>,
    pub status: Status,
    pub url: Option<String>,
    pub error: Option<String>,
    pub phases: Vec<PhaseAt>,
    pub created_by: String,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub updated_at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The highest event seq persisted so far.
    pub last_seq: u64,
    /// A re-apply (the same build: a gateway's with new routes, or a
    /// service's with its new env), not a deployment someone asked for.
    pub reapply: bool,
    /// The commit the request asked for (`null`: the branch's head); the
    /// agent refuses one that is not on the branch. `commit` is what was
    /// checked out.
    pub requested_commit: Option<String>,
    /// A redeploy (rollback): the deployment whose commit this one deploys
    /// again.
    #[schema(value_type = Option<String>)]
    pub redeploy_of: Option<DeploymentId>,
    /// Whether this deployment's container serves its (sandbox, service)
    /// now: the newest `running` one of them. Derived from the statuses,
    /// so it changes exactly when they do.
    pub live: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PhaseAt {
    pub phase: Status,
    #[serde(with = "crate::timestamp")]
    pub at: DateTime<Utc>,
}

/// A cancel that was sent to the agent.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelRequested {
    #[schema(value_type = String)]
    pub id: DeploymentId,
    /// The status when the cancel was sent; `cancelled` follows.
    pub status: Status,
    pub cancel_requested: bool,
}

/// `GET /api/sandboxes/{name}/services/{repo}/runtime-logs`' query.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuntimeLogsQuery {
    /// The last this many lines first (0 to 10000; default 1000 when
    /// `since` is not given, else every line since then).
    #[param(minimum = 0, maximum = 10000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
    /// Only lines written since then: RFC 3339 (`2026-11-27T12:00:00Z`) or
    /// unix seconds, between 1970 and 2038. (The pattern states a part of
    /// what the server takes that holds whatever the offset: days 1 to
    /// 28, years 1971 to 2037, unix seconds of up to 9 digits.)
    #[param(
        pattern = "^([0-9]{1,9}|(197[1-9]|19[89][0-9]|20[0-2][0-9]|203[0-7])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$",
        example = "2026-11-27T12:00:00Z"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Keep the response open and send new lines as they come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<bool>,
    /// Only lines containing this text (plain, case-sensitive; at most 256
    /// characters).
    #[param(max_length = 256)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

/// `GET /ws/deployments/{id}`'s query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WsQuery {
    /// Only events with a greater seq (resume).
    #[serde(default)]
    pub after: u64,
}
