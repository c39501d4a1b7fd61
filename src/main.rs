//! The `gantry` binary: parse the command line, run, exit with its status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = gantry::cli::args::Cli::parse();
    gantry::run(cli).into()
}
