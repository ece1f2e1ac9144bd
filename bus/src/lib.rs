//! The SDP bus: what travels between the control plane, the agents and the
//! log persister over NATS.
//!
//! - [`subject`]: subject names and queue groups. Subjects carry
//!   only server-made tokens ([`DeploymentId`], agent ids, kinds).
//! - [`message`]: the payloads. Every payload carries `"v": 1`.
//! - [`codec`]: JSON encode/decode; unknown fields are ignored, an unknown
//!   major version is refused with [`CodecError::UnsupportedVersion`].
//! - [`service`]: how a service runs (settings, overrides) and their checks.
//! - [`validate`]: checks on user input shared by both ends (branch and repo
//!   names), run before anything reaches git, Docker or the filesystem.
//! - [`nats`], [`settings`]: the shared `[nats]` config section, connecting,
//!   and loading typed config from TOML + env under each binary's prefix.
//! - [`process`]: what every binary's `main` shares: the `[log]` section,
//!   tracing setup, SIGINT/SIGTERM as a shutdown token.
//! - [`stream`]: the `DEPLOY_PROGRESS` JetStream stream definition.
//!
//! This crate pulls in neither axum nor bollard: both agents and the control
//! plane depend on it.

pub mod codec;
pub mod message;
pub mod nats;
pub mod process;
pub mod resource;
pub mod service;
pub mod settings;
pub mod stream;
pub mod subject;
pub mod test_run;
pub mod validate;

pub use codec::{CodecError, PROTOCOL_VERSION, decode, encode};
pub use message::*;
pub use resource::{
    ResourceEngine, ResourceEnsure, ResourceReady, ResourceRemove, ResourceRemoved, ResourceSeed,
    ResourceSize, ResourceSizeList, ResourceSizes,
};
pub use test_run::{JunitSummary, TestOutcome, TestRunRequest};
