//! Gantry: takes a web application from a git commit to running on its
//! servers. `run` is the whole program; `main.rs` only parses arguments.

// The layers, from the bottom up; each imports only those above it here.
pub mod base;
pub mod cli;
pub mod config;
pub mod model;
pub mod error;
pub mod ledger;
pub mod remote;
pub mod data;
pub mod pipeline;
pub mod commands;

pub use commands::run;
