//! Gantry's one integration test binary: real sshd hosts, real git
//! repositories, the real example app, the real `gantry` binary.

mod harness;

mod architecture;
mod archive;
mod balancer;
mod checks;
mod cli;
mod config_errors;
mod deploy;
mod django_apps;
mod examples;
mod faults;
mod fleet;
mod full_disk;
mod handover;
mod hooks;
mod hosts;
mod https;
mod locking;
mod migrations;
mod network;
mod pipeline;
mod put_back;
mod real_apps;
mod roles;
mod rollback_schema;
mod schema;
mod setup;
