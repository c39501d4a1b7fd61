//! The command line, as clap parses it. Only this file knows the syntax.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::ExitStatus;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("GANTRY_COMMIT"), ")");

/// Deploy a git commit to your servers over SSH: atomic releases,
/// rollback, locks, parallel and rolling deploys.
#[derive(Debug, Parser)]
#[command(name = "gantry", version = VERSION, after_help = ExitStatus::HELP)]
pub struct Cli {
    /// The config file (default: `gantry.toml` here or in a folder above).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print the output of every command run on the hosts.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Machine-readable output (for `plan`, `status`, `log`).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented `gantry.toml` in the current folder.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate the config, connect to the hosts and check what they need.
    Check {
        /// Only this environment.
        env: Option<String>,
    },
    /// Print exactly what a deploy would run, host by host; run nothing.
    Plan {
        env: String,
        /// The commit to deploy.
        #[arg(default_value = "HEAD")]
        rev: String,
    },
    /// Deploy a commit that is on the remote (default: HEAD).
    Deploy {
        env: String,
        #[arg(default_value = "HEAD")]
        rev: String,
    },
    /// Switch every host back to the release before the current one.
    Rollback { env: String },
    /// What is live where.
    Status {
        /// Only this environment.
        env: Option<String>,
    },
    /// The history of deploys, rollbacks and locks of an environment.
    Log {
        env: String,
        /// How many entries to show, newest last.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
    },
    /// Hold deploys to an environment until `gantry unlock`.
    Lock {
        env: String,
        /// Why, for whoever meets the lock.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Clear an environment's lock (for example a stale one), recording who
    /// cleared it.
    Unlock { env: String },
    /// Run a command on every host of an environment, in `current`.
    Exec {
        env: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}
