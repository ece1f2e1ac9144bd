//! Production NATS security, on the real nats-server: TLS, the
//! real `nats/auth.conf` (one user per component, subject permissions, no
//! anonymous access), `nats/production.conf` parsing, and a whole deployment
//! with every component connected over TLS as its own user.
//!
//! Run: `cargo build --workspace --bins && cargo nextest run -p
//! sdp-control-plane nats_secure`. The tests live in `nats_secure/`:
//! - `harness`: certificates (`nats/gen-dev-certs.sh`), a nats-server with
//!   TLS that includes the real `auth.conf`, probe clients that record the
//!   permission violations the server reports;
//! - `auth`: who may connect, and how;
//! - `permissions`: what each user may publish and subscribe to, core and
//!   JetStream;
//! - `production_conf`: `nats-server -t` on `production.conf`;
//! - `generated_auth`: `nats/gen-auth.sh` renders the shipped `auth.conf`,
//!   and a user it generates for a new agent id is confined to its own
//!   heartbeat and commands;
//! - `e2e`: login, deploy, run, watch, with TLS and per-component users.

// The e2e Stack's process helpers (spawning with logs, the agent binary,
// waiting for readiness) are shared; the secured server is this binary's.
mod common;
#[path = "nats_secure/mod.rs"]
mod nats_secure;
