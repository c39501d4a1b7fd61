//! Gantry: takes a web application from a git commit to running on its
//! servers. `run` is the whole program; `main.rs` only parses arguments.

// The layers, from the bottom up; each imports only those above it here.
pub mod base;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod error;
pub mod ledger;
pub mod model;
pub mod pipeline;
pub mod remote;

pub use commands::run;
