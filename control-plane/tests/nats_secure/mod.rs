mod auth;
mod e2e;
mod generated_auth;
mod harness;
mod permissions;
mod production_conf;
