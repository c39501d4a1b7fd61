//! The top layer: one file per command (or family of commands), and
//! `run`, which reads the arguments and dispatches them in one `match`.
//! Imports every layer; nothing imports it but `main.rs`.

pub mod check;
pub mod demo;
pub mod docs;
pub mod exec;
pub mod init;
pub mod lock;
pub mod setup;
pub mod status;

use std::path::Path;

use crate::base::time;
use crate::cli::args::{Cli, Command};
use crate::cli::exit::ExitStatus;
use crate::cli::output::{Printer, Verbosity};
use crate::config::{self, Config};
use crate::data::{backups, rehearse};
use crate::error::Error;
use crate::ledger::git;
use crate::pipeline::{deploy, plan, promote, summary, verify};
use crate::remote::site;

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
        site::set_lock_wait(wait);
    }
    let result = runtime.block_on(async {
        watch_signals(printer.clone());
        dispatch(&cli, &printer).await
    });
    match result {
        Ok(()) => ExitStatus::Success,
        Err(e) => {
            let status = e.exit_status();
            printer.error(&e.to_string());
            if printer.json_mode() {
                // With --json, stdout holds one document even for an error.
                printer.json(&serde_json::json!({
                    "error": {
                        "message": e.to_string(),
                        "exit_code": status as u8,
                    }
                }));
            }
            status
        }
    }
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
                printer.warn(
                    "interrupted: no new step will start; what this run changed is being put back",
                );
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

async fn dispatch(cli: &Cli, printer: &Printer) -> Result<(), Error> {
    match &cli.command {
        Command::Init { force, preset } => return init::init(*force, preset.as_deref(), printer),
        Command::Completions { shell } => {
            docs::completions(*shell, printer);
            return Ok(());
        }
        Command::Man => return docs::man(printer),
        Command::Schema => {
            printer.result(init::SCHEMA.trim_end());
            return Ok(());
        }
        Command::Demo {
            stop: true, dir, ..
        } => return demo::stop(dir.clone(), printer),
        Command::Demo { keep, dir, .. } => {
            let options = demo::DemoOptions {
                dir: dir.clone(),
                keep: *keep,
            };
            return demo::demo(&options, printer).await;
        }
        _ => {}
    }
    let config = load_config(cli.config.as_deref())?;
    if matches!(
        cli.command,
        Command::Status { .. }
            | Command::Log { .. }
            | Command::Exec { .. }
            | Command::Unlock { .. }
            | Command::Check { .. }
            | Command::Backups { .. }
    ) {
        printer.hide_steps();
    }
    match &cli.command {
        Command::Init { .. }
        | Command::Demo { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Schema => {
            unreachable!("handled above")
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
            setup::setup(&config, env, &options, printer).await
        }
        Command::Check { env } => check::check(&config, env.as_deref(), printer).await,
        Command::Plan { env, rev } => plan::plan(&config, env, rev, printer),
        Command::Deploy {
            env,
            rev,
            force,
            no_rehearse,
            redeploy,
        } => {
            let commit = git::Repo::at(&config.dir).resolve(rev)?;
            let options = promote::DeployOptions {
                command: format!("gantry deploy {env} {rev}"),
                force: *force,
                rehearse: !no_rehearse,
                redeploy: *redeploy,
            };
            let done = promote::deploy_env(&config, env, &commit, &options, printer).await?;
            summary::report(&done.summary, "Deployed", printer);
            summary::report_json(&done.summary, "deploy", &done.tags, printer);
            Ok(())
        }
        Command::Verify { env, health_only } => {
            let commit = verify::verify(&config, env, !health_only, printer).await?;
            if printer.json_mode() {
                printer.json(&serde_json::json!({
                    "action": "verify",
                    "env": env,
                    "commit": commit,
                    "outcome": "passed",
                    "checks": if *health_only || config.verify.is_none() { "health checks" } else { "health checks and functional tests" },
                }));
            }
            Ok(())
        }
        Command::Promote {
            from,
            to,
            force,
            no_rehearse,
        } => {
            let done = promote::promote(&config, from, to, *force, !no_rehearse, printer).await?;
            summary::report(&done.summary, "Promoted", printer);
            summary::report_json(&done.summary, "promote", &done.tags, printer);
            Ok(())
        }
        Command::Release { push, to } => {
            let options = promote::ReleaseOptions {
                push: *push,
                to: to.clone(),
            };
            promote::release(&config, &options, printer).await
        }
        Command::Rollback { env } => {
            let summary = deploy::rollback(&config, env, printer).await?;
            summary::report(&summary, "Rolled back", printer);
            let tags = promote::after_rollback(&config, env, &summary, printer);
            summary::report_json(&summary, "rollback", &tags, printer);
            Ok(())
        }
        Command::Rehearse { env, rev } => {
            let repo = git::Repo::at(&config.dir);
            let commit = repo.resolve(rev)?;
            repo.ensure_on_remote(&commit, &config.app.remote)?;
            let report = rehearse::rehearse(&config, env, &commit, printer).await?;
            if printer.json_mode() {
                printer.json(&serde_json::json!({
                    "action": "rehearse",
                    "env": report.env,
                    "commit": report.commit.sha,
                    "host": report.host,
                    "pending": report.pending,
                    "outcome": "passed",
                    "seconds": report.seconds,
                }));
            }
            Ok(())
        }
        Command::Backups { env } => backups::list(&config, env, printer).await,
        Command::Restore { env, backup, yes } => {
            backups::restore(&config, env, backup, *yes, printer).await
        }
        Command::Status { env, utc } => {
            status::status(&config, env.as_deref(), shown(*utc), printer).await
        }
        Command::Log { env, limit, utc } => {
            status::log(&config, env, *limit, shown(*utc), printer).await
        }
        Command::Lock { env, reason } => lock::lock(&config, env, reason.clone(), printer).await,
        Command::Unlock { env } => lock::unlock(&config, env, printer).await,
        Command::Exec { env, command } => exec::exec(&config, env, command, printer).await,
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
