//! End-to-end tests of the spine on real parts: log in, deploy a
//! Go service from a branch, watch it live, redeploy, and the failure paths.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod authz;
mod autodeploy;
mod backup;
mod bad_input;
mod cleanup;
mod cli;
mod cluster;
mod contract;
mod faults;
mod flow;
mod forgery;
mod gateways;
mod hardening;
mod hostile_bus;
mod notify;
mod paging;
mod persister;
mod placement;
mod preview;
mod probe;
mod read_your_events;
mod resources;
mod rollback;
mod routing;
mod runtime_logs;
mod sandbox_resources;
mod sandbox_ttl;
mod sandboxes;
mod secrets;
mod service_env;
mod sessions;
mod sleep;
mod sleep_entry;
mod soak;
mod staleness;
mod stranger_agent;
mod test_run_cancel;
mod test_run_network;
mod test_runs;
mod webhooks;
