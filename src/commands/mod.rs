//! The top layer: one file per command (or family of commands), and
//! `run`, which reads the arguments and dispatches them in one `match`.
//! Imports every layer; nothing imports it but `main.rs`.

pub mod check;
pub mod demo;
pub mod docs;
pub mod exec;
pub mod init;
pub mod lock;
pub mod log;
pub mod setup;
pub mod ship;
pub mod status;

use std::path::Path;

use crate::base::time;
use crate::cli::args::{Cli, Command};
use crate::cli::exit::ExitStatus;
use crate::cli::output::{Printer, Verbosity};
use crate::config::{self, Config};
use crate::data::backups;
use crate::error::{Error, Warning};
use crate::pipeline::{plan, promote};
use crate::remote::{locking, pool, site};

/// Runs one command and says how it ended.
pub fn run(cli: Cli) -> ExitStatus {
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let printer = std::sync::Arc::new(Printer::new(verbosity, cli.json));
    // Many hosts at once need many descriptors.
    crate::base::limits::raise_open_files();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            printer.error(&format!("cannot start the async runtime: {e}"));
            return ExitStatus::Error;
        }
    };
    if let Some(wait) = cli.lock_wait {
        locking::set_lock_wait(wait);
    }
    let result = runtime.block_on(async {
        watch_signals(printer.clone());
        let result = dispatch(&cli, &printer).await;
        pool::close_all().await;
        result
    });
    match result {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            let status = match e.exit_status() {
                // A step that failed because Ctrl-C or SIGTERM stopped it:
                // the run was interrupted, whatever the step said.
                ExitStatus::Failed | ExitStatus::Error | ExitStatus::Unreachable
                    if site::interrupted() =>
                {
                    ExitStatus::Interrupted
                }
                status => status,
            };
            printer.error(&e.to_string());
            if printer.json_mode() {
                // With --json, stdout holds one document even for an error.
                printer.json(&ErrorReport {
                    error: ErrorBody {
                        message: e.to_string(),
                        hints: e.hints(),
                        exit_code: status as u8,
                    },
                });
            }
            status
        }
    }
}

/// An error as `--json` prints it: stdout holds one document even then.
#[derive(serde::Serialize)]
struct ErrorReport {
    error: ErrorBody,
}

#[derive(serde::Serialize)]
struct ErrorBody {
    message: String,
    hints: Vec<String>,
    exit_code: u8,
}

/// Ctrl-C and SIGTERM stop new steps from starting; what already ran is
/// put back and the lock released before Gantry exits.
fn watch_signals(printer: std::sync::Arc<Printer>) {
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if !site::interrupted() {
                printer.warn(Warning::Interrupted);
            }
            site::interrupt();
        }
    });
}

fn shown(utc: bool) -> time::Shown {
    if utc {
        time::Shown::Utc
    } else {
        time::Shown::Local
    }
}

/// Every command, one arm each; the config is read by those that need it.
async fn dispatch(cli: &Cli, printer: &Printer) -> Result<(), Error> {
    if cli.command.hides_steps() {
        printer.hide_steps();
    }
    let config = || load_config(cli.config.as_deref());
    match &cli.command {
        Command::Init { force, preset } => init::init(*force, preset.as_deref(), printer),
        Command::Completions { shell } => docs::completions(*shell, printer),
        Command::Man => docs::man(printer),
        Command::Schema => docs::schema(printer),
        Command::Demo {
            stop: true, dir, ..
        } => demo::stop(dir.clone(), printer),
        Command::Demo { keep, dir, .. } => {
            let options = demo::DemoOptions {
                dir: dir.clone(),
                keep: *keep,
            };
            demo::demo(&options, printer).await
        }
        Command::Setup {
            env,
            force,
            dry_run,
        } => {
            let options = setup::Options {
                force: *force,
                dry_run: *dry_run,
            };
            setup::setup(&config()?, env, &options, printer).await
        }
        Command::Check { env } => check::check(&config()?, env.as_deref(), printer).await,
        Command::Plan {
            env,
            rollback: true,
            ..
        } => crate::pipeline::deploy::plan_rollback(&config()?, env, printer).await,
        Command::Plan { env, rev, .. } => plan::plan(&config()?, env, rev, printer),
        Command::Deploy {
            env,
            rev,
            force,
            no_rehearse,
            redeploy,
            maintenance,
            allow_incompatible,
        } => {
            let options = promote::DeployOptions {
                command: format!("gantry deploy {env} {rev}"),
                force: *force,
                rehearse: !no_rehearse,
                redeploy: *redeploy,
                maintenance: *maintenance,
                allow_incompatible: *allow_incompatible,
            };
            ship::deploy(&config()?, env, rev, &options, printer).await
        }
        Command::Verify { env, health_only } => {
            ship::verify(&config()?, env, *health_only, printer).await
        }
        Command::Promote {
            from,
            to,
            force,
            no_rehearse,
        } => ship::promote(&config()?, from, to, *force, !no_rehearse, printer).await,
        Command::Release { push, to } => {
            let options = promote::ReleaseOptions {
                push: *push,
                to: to.clone(),
            };
            promote::release(&config()?, &options, printer).await
        }
        Command::Rollback {
            env,
            code_only,
            restore_backup,
            yes,
        } => {
            let how = ship::RollbackHow {
                code_only: *code_only,
                restore_backup: restore_backup.as_deref(),
                yes: *yes,
            };
            ship::rollback(&config()?, env, &how, printer).await
        }
        Command::Rehearse { env, rev } => ship::rehearse(&config()?, env, rev, printer).await,
        Command::Backups { env } => backups::list(&config()?, env, printer).await,
        Command::Restore { env, backup, yes } => {
            backups::restore(&config()?, env, backup, *yes, printer).await
        }
        Command::Status { env, utc } => {
            status::status(&config()?, env.as_deref(), shown(*utc), printer).await
        }
        Command::Log { env, limit, utc } => {
            log::log(&config()?, env, *limit, shown(*utc), printer).await
        }
        Command::Lock { env, reason } => lock::lock(&config()?, env, reason.clone(), printer).await,
        Command::Unlock { env } => lock::unlock(&config()?, env, printer).await,
        Command::Exec { env, role, command } => {
            exec::exec(&config()?, env, role.as_deref(), command, printer).await
        }
    }
}

pub fn load_config(explicit: Option<&Path>) -> Result<Config, Error> {
    let file = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let here = std::env::current_dir().map_err(|e| Error::io(".", e))?;
            config::find(&here).ok_or(Error::NoConfig { start: here })?
        }
    };
    Ok(config::load(&file)?)
}
