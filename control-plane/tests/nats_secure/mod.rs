mod auth;
mod e2e;
mod harness;
mod permissions;
mod production_conf;
