//! sdp-agentlib: everything the SDP agents share. A binary picks a
//! [`Flavour`] and calls [`run`].
//!
//! What runs inside [`run`] (one NATS connection, one Docker client):
//! - the request loop ([`agent`]): `deploy.request.<kind>` ([`deploy`]) and
//!   `agent.rpc.<kind>.{verify_credentials,list_repos,list_branches}`, all
//!   in queue group `agents.<kind>`, and `agent.cmd.<agent_id>.{teardown,reconcile}`
//!   ([`rpc`]); each message is handled in its own task;
//! - one task per runtime-log stream (`agent.cmd.<agent_id>.container_logs`,
//!   [`runtime_logs`]): a container's output to the control plane in
//!   batches on core NATS, with a credit window, never stored;
//! - `agent.rpc.<kind>.branch_status` ([`branch_status`]: how far a
//!   deployed branch moved) and `agent.cmd.<agent_id>.probe` ([`probe`]:
//!   a sandbox's routes checked from its gateway container);
//! - `agent.cmd.<agent_id>.{sleep,wake}` ([`power`]: a sandbox's
//!   containers stopped in place, or started again);
//! - `agent.rpc.<kind>.test_run` ([`test_run`]): a test command from a
//!   repo's branch in a build container against a sandbox, its output and
//!   JUnit counts ([`junit`]) on `deploy.progress.<id>` like a deployment's;
//! - `agent.cmd.<agent_id>.resource_ensure` ([`resource`]: a sandbox's
//!   database in a container with a volume, seeded, reset on request),
//!   `resource_remove` (its container and volume go) and `resource_sizes`
//!   (each running one's data size, asked at a bounded rate);
//! - a heartbeat task: `agent.heartbeat.<kind>.<id>` every 2 s;
//! - one task per deployment ([`job`]): queued → fetching ([`git`], into
//!   the repo's shared store [`git_store`]) →
//!   building ([`Flavour::build`], in a short-lived build container:
//!   [`build_container`]) → starting ([`docker`]) → health →
//!   result (or, for a `reuse_build` re-apply of a recorded build, queued →
//!   starting → health → result); the service's settings come from its
//!   `sdp.toml` ([`service`]), every event through one ordered [`EventSink`] on
//!   `deploy.progress.<id>` (JetStream), a failed container's last output
//!   among them ([`last_words`]); the job listens on
//!   `deploy.cancel.<id>` while it runs.
//!
//! Shutdown: the caller's token stops the loops and cancels the jobs; they
//! publish their results within a bounded grace period. [`cli::main`] is
//! the whole `main` of an agent binary (config, tracing, signals).
//!
//! Module layers (no module imports one above it; `scripts/lib/cycles.sh`
//! checks that no import circle forms): [`cli`] → [`agent`] (the loop,
//! heartbeats) → [`rpc`] (the table of subjects) → the handlers
//! ([`deploy`], [`branch_status`], [`probe`], [`power`], [`runtime_logs`],
//! [`resource`]) → [`job`] →
//! [`reply`] and [`state`] (the [`state::Agent`] every handler shares, the
//! table of unsettled jobs) → the parts (git, Docker, flavours, config,
//! [`host`]).

pub mod agent;
pub mod branch_status;
pub mod build_container;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod docker;
pub mod error;
pub mod events;
pub mod flavour;
pub mod git;
pub mod git_store;
pub mod go_toolchains;
pub mod go_version;
pub mod gomod;
pub mod host;
pub mod job;
pub mod junit;
pub mod last_words;
pub mod php;
pub mod power;
pub mod probe;
pub mod reply;
pub mod resource;
pub mod rpc;
pub mod runtime_logs;
pub mod service;
pub mod state;
pub mod test_run;

pub use agent::run;
pub use build_container::BuildBox;
pub use config::AgentConfig;
pub use error::{AgentError, ConfigError, DeployError};
pub use events::{EventSink, OutputLine};
pub use flavour::{BuildContext, ContainerSpec, Flavour, GoFlavour};
pub use host::hostname;
pub use php::PhpFlavour;
