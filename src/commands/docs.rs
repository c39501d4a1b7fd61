//! The commands that print Gantry's own documents: shell completions, the
//! man page and the config's JSON schema.

use crate::cli::output::Printer;
use crate::error::Error;

/// Prints a completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell, printer: &Printer) -> Result<(), Error> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut crate::cli::args::Cli::command(),
        "gantry",
        &mut out,
    );
    printer.result(String::from_utf8_lossy(&out).trim_end());
    Ok(())
}

/// The man page, drawn from the same definitions as `--help`.
pub fn man(printer: &Printer) -> Result<(), Error> {
    use clap::CommandFactory;
    let command = crate::cli::args::Cli::command()
        .after_help(crate::cli::exit::ExitStatus::HELP)
        .name("gantry");
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .map_err(|e| Error::io("stdout", e))?;
    printer.result(String::from_utf8_lossy(&out).trim_end());
    Ok(())
}

/// The JSON Schema of `gantry.toml`.
pub fn schema(printer: &Printer) -> Result<(), Error> {
    printer.result(super::init::SCHEMA.trim_end());
    Ok(())
}
