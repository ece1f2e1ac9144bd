//! Push webhooks from Bitbucket, the parts that need no HTTP: the handler
//! (`api/hooks.rs`, `POST /api/hooks/bitbucket`) runs them in this order:
//! - [`signature`]: `X-Hub-Signature: sha256=<HMAC-SHA256 of the raw body>`
//!   with the secret of `webhooks.bitbucket_secret_file`, compared in
//!   constant time;
//! - [`replay`]: deliveries seen in the last 10 minutes, by request id
//!   (`X-Request-UUID` from Cloud, `X-Request-Id` from Data Center) and by
//!   the body's digest (the id is not signed);
//! - [`payload`]: Cloud `repo:push` and Data Center `repo:refs_changed`
//!   bodies, turned into one [`payload::Push`] (SDP repo = the repository
//!   slug; the moved branches and their new commits);
//! - then the orchestrator (`orchestrator/autodeploy.rs`) redeploys the
//!   services with autodeploy on for those branches.
//!
//! [`secrets`] reads the two files named in config (the webhook secret and
//! the read-only service credential push deployments fetch with) once, at
//! start; both stay in [`sdp_bus::Secret`]s.

pub mod payload;
pub mod replay;
pub mod secrets;
pub mod signature;
