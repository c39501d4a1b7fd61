//! Gantry: takes a web application from a git commit to running on its
//! servers. `run` is the whole program; `main.rs` only parses arguments.

pub mod activation;
pub mod backups;
pub mod cli;
pub mod commands;
pub mod commit;
pub mod config;
pub mod database;
pub mod demo;
pub mod deploy;
pub mod error;
pub mod exit;
pub mod fingerprint;
pub mod git;
pub mod health;
pub mod history;
pub mod host;
pub mod init;
pub mod ledger;
pub mod lock;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod rehearse;
pub mod release;
pub mod secrets;
pub mod setup;
pub mod shell;
pub mod site;
pub mod status;
pub mod steps;
pub mod time;
pub mod verify;
pub mod wiring;

use cli::{Cli, Command};
use error::Error;
use exit::ExitStatus;
use output::{Printer, Verbosity};

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
            commands::completions(*shell, printer);
            return Ok(());
        }
        Command::Man => return commands::man(printer),
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
    let config = commands::load_config(cli.config.as_deref())?;
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
        Command::Check { env } => commands::check(&config, env.as_deref(), printer).await,
        Command::Plan { env, rev } => plan::plan(&config, env, rev, printer),
        Command::Deploy {
            env,
            rev,
            force,
            no_rehearse,
            redeploy,
        } => {
            let commit = git::Repo::at(&config.dir).resolve(rev)?;
            let options = pipeline::DeployOptions {
                command: format!("gantry deploy {env} {rev}"),
                force: *force,
                rehearse: !no_rehearse,
                redeploy: *redeploy,
            };
            let done = pipeline::deploy_env(&config, env, &commit, &options, printer).await?;
            commands::report(&done.summary, "Deployed", printer);
            commands::report_json(&done.summary, "deploy", &done.tags, printer);
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
            let done = pipeline::promote(&config, from, to, *force, !no_rehearse, printer).await?;
            commands::report(&done.summary, "Promoted", printer);
            commands::report_json(&done.summary, "promote", &done.tags, printer);
            Ok(())
        }
        Command::Release { push, to } => {
            let options = pipeline::ReleaseOptions {
                push: *push,
                to: to.clone(),
            };
            pipeline::release(&config, &options, printer).await
        }
        Command::Rollback { env } => {
            let summary = deploy::rollback(&config, env, printer).await?;
            commands::report(&summary, "Rolled back", printer);
            let tags = pipeline::after_rollback(&config, env, &summary, printer);
            commands::report_json(&summary, "rollback", &tags, printer);
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
        Command::Lock { env, reason } => {
            commands::lock(&config, env, reason.clone(), printer).await
        }
        Command::Unlock { env } => commands::unlock(&config, env, printer).await,
        Command::Exec { env, command } => commands::exec(&config, env, command, printer).await,
    }
}
