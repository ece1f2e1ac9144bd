//! Test support for SDP integration tests (a dev-dependency; never linked
//! into a service). Everything here drives the real thing through its CLI or
//! protocol, and cleans up after itself on `Drop`:
//!
//! - [`util`]: [`unique_id`], [`free_port`], [`init_tracing`], bounded waits
//!   on a condition ([`wait_for`], [`wait_for_blocking`] and their `try_`
//!   twins, which hand the timeout back to the caller).
//! - [`nats`]: [`NatsServer`], a `nats-server` child with JetStream in its own
//!   temp store dir; can be killed and restarted on the same port.
//! - [`git_server`]: [`GitServer`], git smart HTTP with basic auth; an axum
//!   app on a [`ServerThread`] that runs `git http-backend` as a CGI per
//!   request.
//! - [`server_thread`]: [`ServerThread`], an axum app on a thread of its own
//!   with a current-thread runtime, stopped on drop.
//! - [`fixture_repo`]: [`FixtureRepo`], what every fixture below is made
//!   on: a bare repo on a [`GitServer`] and the work clone it is pushed
//!   from, one commit per branch, then one per change.
//! - [`go_fixture`]: [`GoFixture`], a stdlib-only Go service committed to
//!   bare repos on a [`GitServer`], one branch per variant.
//! - [`realistic_fixture`]: [`RealisticGoFixture`], a Go service laid out
//!   as real ones are (`cmd/`, `internal/`, `vendor/`, `web/` read from the
//!   working directory, its port from a flag, Go >= 1.22), with `sdp.toml`.
//! - [`php_fixture`]: [`PhpGatewayFixture`], a plain-PHP API gateway (router
//!   script for `php -S`) that forwards `/users/...` and `/orders/...` to
//!   `$USERS_URL` / `$ORDERS_URL` and shows `$SDP_ROUTES_FILE`.
//! - [`qa_fixture`]: [`QaFixture`], a Go end-to-end suite of the `users`
//!   service with a JUnit-writing runner (`cmd/junit`); one branch fails.
//! - [`baseline`]: [`BaselineServer`], stands for the OpenShift baseline.
//! - [`repos_dir`]: [`ReposDir`], an agent-style directory of git repos whose
//!   `origin` points at the git server.
//! - [`docker`]: the imported busybox and PHP base images, the build image, the bridge gateway, and
//!   [`ContainerCleanup`] for labelled containers.
//! - [`resource_images`]: the postgres, mariadb and redis images of
//!   sandbox resources ([`ensure_resource_image`]).
//! - [`process`]: [`ChildGuard`], a child process SIGKILLed on drop.
//! - [`hosts`]: [`HostAddresses`], extra host addresses standing for
//!   several agent hosts.
//!
//! Helpers panic with a descriptive message on failure: they are for tests.

pub mod baseline;
mod cmd;
pub mod docker;
pub mod fixture_repo;
pub mod git_server;
pub mod go_fixture;
pub mod hosts;
pub mod nats;
pub mod php_fixture;
pub mod process;
pub mod qa_fixture;
pub mod realistic_fixture;
pub mod repos_dir;
pub mod resource_images;
pub mod server_thread;
pub mod util;

pub use baseline::BaselineServer;
pub use docker::{
    BUILD_IMAGE, BUSYBOX_IMAGE, ContainerCleanup, PHP_IMAGE, agent_micro_test_env,
    containers_with_label, docker_bridge_gateway, docker_create_named, docker_exists, docker_rm,
    ensure_build_image, ensure_busybox_image, ensure_php_image, published_addresses,
    shared_go_cache,
};
pub use fixture_repo::FixtureRepo;
pub use git_server::{GitServer, basic_auth_header};
pub use go_fixture::{
    GoFixture, crashing_service_source, go_main_source, unhealthy_service_source,
};
pub use hosts::HostAddresses;
pub use nats::{NatsCluster, NatsServer};
pub use php_fixture::{PhpGatewayFixture, php_gateway_source};
pub use process::ChildGuard;
pub use qa_fixture::QaFixture;
pub use realistic_fixture::{RealisticGoFixture, realistic_sdp_toml};
pub use repos_dir::ReposDir;
pub use resource_images::{RESOURCE_ENGINES, ensure_resource_image, resource_image_name};
pub use server_thread::ServerThread;
pub use util::{
    free_port, init_tracing, once_across_processes, try_wait_for, try_wait_for_blocking, unique_id,
    wait_for, wait_for_blocking,
};
