//! The dashboard in a real headless Chromium against a whole SDP stack
//! (nats-server, git server, control plane, micro agent, Docker).
//!
//! Run with `cargo build --workspace --bins && cargo nextest run -p
//! sdp-control-plane browser`. Screenshots of the main pages land in
//! `docs/screenshots/`.

#[path = "common/mod.rs"]
mod common;

#[path = "browser/driver.rs"]
mod driver;

#[path = "browser/flows.rs"]
mod flows;

#[path = "browser/audit.rs"]
mod audit;
#[path = "browser/checks.rs"]
mod checks;
#[path = "browser/notify.rs"]
mod notify;
#[path = "browser/refresh.rs"]
mod refresh;
#[path = "browser/resources.rs"]
mod resources;
#[path = "browser/runtime_logs.rs"]
mod runtime_logs;
#[path = "browser/secrets.rs"]
mod secrets;
#[path = "browser/service_env.rs"]
mod service_env;
#[path = "browser/sleep.rs"]
mod sleep;
#[path = "browser/team_page.rs"]
mod team_page;
#[path = "browser/test_runs.rs"]
mod test_runs;
