//! The REST API's contract as Rust types: every request body, query and
//! response of `/api` and `/ws`, with the OpenAPI schemas the control
//! plane's document is generated from (`GET /api/openapi.json`).
//!
//! - [`session`]: login, logout, the caller (`/api/login`, `/api/me`).
//! - [`templates`]: templates and the environments they run with.
//! - [`sandboxes`]: sandboxes, their services, routes and env.
//! - [`deployments`]: deployments, their queries, runtime logs, the
//!   WebSocket's query.
//! - [`checks`]: staleness and route probes.
//! - [`audit`]: the audit trail.
//! - [`test_runs`]: test runs against a sandbox and a template's test settings.
//! - [`resources`]: a sandbox's databases.
//! - [`notify`]: build statuses and outgoing webhooks, their deliveries.
//! - [`paging`]: `limit` and `cursor` of the lists that grow, and the
//!   headers that carry the next page's cursor.
//! - [`agents`], [`hooks`], [`ops`], [`error`]: the rest.
//! - [`rules`]: the patterns the schemas state (what `sdp_bus::validate`
//!   checks), and a reader of whole numbers written as `12.0`.
//! - `client` (feature `client`): a typed async client on reqwest, for the
//!   CLI and the tests.
//!
//! The control plane serializes these and deserializes the requests, so a
//! renamed field is a compile error on both sides. Checks that need the
//! server's state (does the environment exist, is the caller the owner)
//! stay in the control plane; the schemas state every check that does
//! not. A change here is a change of the wire: the control plane's
//! OpenAPI snapshot test shows it.

pub mod agents;
pub mod audit;
pub mod checks;
pub mod deployments;
pub mod error;
pub mod hooks;
pub mod notify;
pub mod ops;
pub mod paging;
pub mod resources;
pub mod rules;
pub mod sandboxes;
pub mod session;
pub mod templates;
pub mod test_runs;
pub mod timestamp;

#[cfg(feature = "client")]
pub mod client;

pub use agents::AgentView;
pub use audit::{AuditAction, AuditEntry, AuditOutcome, AuditPage, AuditQuery};
pub use checks::{ProbeResult, ProbedGateway, SandboxStaleness, ServiceStaleness, StalenessState};
pub use deployments::{
    CancelRequested, Deployment, DeploymentStarted, ListQuery, NewDeployment, PhaseAt,
    RuntimeLogsQuery, WsQuery,
};
pub use error::{ErrorBody, ErrorDetail};
pub use hooks::{HookAnswer, HookOutcome, PushDeployment, PushSkipped};
pub use notify::{
    BuildState, DeliveriesQuery, Delivery, DeliveryKind, DeliveryOutcome, NotifyEvent,
    NotifyTarget, TemplateNotify,
};
pub use ops::Readiness;
pub use paging::{Page, SandboxesQuery, TestRunsQuery};
pub use resources::{ResourceBody, ResourceOrigin, ResourceSpec, ResourceState, SandboxResource};
pub use sandboxes::{
    AgentTeardown, EffectiveRoute, NewSandbox, PushedHead, RouteBody, Sandbox, SandboxPatch,
    SandboxState, SandboxView, ServiceAutodeploy, ServiceEnv, ServiceEnvWrite, ServiceView,
    TeardownReport, TemplateDeploy, TemplateDeployStarted, TemplateDeployment,
};
pub use session::{LoginBody, LoginResponse, Me, User};
pub use templates::{
    Environment, EnvironmentVars, NewEnvironment, RepoBranch, Template, TemplateBody,
};
pub use test_runs::{NewTestRun, TestRun, TestRunStatus, TestRunTrigger, TestSettings};
