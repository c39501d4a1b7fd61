//! The commands that move a commit: `deploy`, `verify`, `promote`,
//! `rollback` and `rehearse`, each with its closing report (text, or one
//! JSON document with `--json`).

use serde::Serialize;

use crate::cli::output::Printer;
use crate::config::Config;
use crate::data::rehearse;
use crate::error::Error;
use crate::ledger::git::Repo;
use crate::model::history::{Action, Outcome};
use crate::pipeline::{deploy, promote, summary, verify as check};

pub async fn deploy(
    config: &Config,
    env: &str,
    rev: &str,
    options: &promote::DeployOptions,
    printer: &Printer,
) -> Result<(), Error> {
    let commit = Repo::at(&config.dir).resolve(rev)?;
    let done = promote::deploy_env(config, env, &commit, options, printer).await?;
    summary::report(&done.summary, "Deployed", printer);
    summary::report_json(&done.summary, "deploy", &done.tags, printer);
    Ok(())
}

pub async fn verify(
    config: &Config,
    env: &str,
    health_only: bool,
    printer: &Printer,
) -> Result<(), Error> {
    let commit = check::verify(config, env, !health_only, printer).await?;
    let checks = if health_only || config.verify.is_none() {
        "health checks"
    } else {
        "health checks and functional tests"
    };
    if printer.json_mode() {
        printer.json(&Verified {
            action: Action::Verify,
            env,
            commit: &commit,
            outcome: Outcome::Passed,
            checks,
        });
    }
    Ok(())
}

pub async fn promote(
    config: &Config,
    from: &str,
    to: &str,
    force: bool,
    rehearse: bool,
    printer: &Printer,
) -> Result<(), Error> {
    let done = promote::promote(config, from, to, force, rehearse, printer).await?;
    summary::report(&done.summary, "Promoted", printer);
    summary::report_json(&done.summary, "promote", &done.tags, printer);
    Ok(())
}

/// What a rollback takes back besides the code.
pub struct RollbackHow<'a> {
    /// Nothing: the schema stays as it is.
    pub code_only: bool,
    /// The database, from this backup (asked first unless `yes`).
    pub restore_backup: Option<&'a str>,
    pub yes: bool,
}

pub async fn rollback(
    config: &Config,
    env: &str,
    how: &RollbackHow<'_>,
    printer: &Printer,
) -> Result<(), Error> {
    // Asked before anything changes.
    if let Some(backup) = how.restore_backup {
        crate::data::backups::confirm_restore(env, backup, how.yes, printer)?;
    }
    let code_only = how.code_only || how.restore_backup.is_some();
    let done = deploy::rollback(config, env, code_only, printer).await?;
    if let Some(backup) = how.restore_backup {
        crate::data::backups::restore(config, env, backup, true, printer).await?;
    }
    summary::report(&done, "Rolled back", printer);
    let tags = promote::after_rollback(config, env, &done, printer);
    summary::report_json(&done, "rollback", &tags, printer);
    Ok(())
}

pub async fn rehearse(
    config: &Config,
    env: &str,
    rev: &str,
    printer: &Printer,
) -> Result<(), Error> {
    let repo = Repo::at(&config.dir);
    let commit = repo.resolve(rev)?;
    repo.ensure_on_remote(&commit, &config.app.remote)?;
    let report = rehearse::rehearse(config, env, &commit, printer).await?;
    if printer.json_mode() {
        printer.json(&Rehearsed {
            action: "rehearse",
            env: &report.env,
            commit: &report.commit.sha,
            host: &report.host,
            pending: report.pending,
            outcome: Outcome::Passed,
            seconds: report.seconds,
            findings: &report.findings,
        });
    }
    Ok(())
}

/// `verify --json`.
#[derive(Serialize)]
struct Verified<'a> {
    action: Action,
    env: &'a str,
    commit: &'a str,
    outcome: Outcome,
    checks: &'a str,
}

/// `rehearse --json`.
#[derive(Serialize)]
struct Rehearsed<'a> {
    action: &'a str,
    env: &'a str,
    commit: &'a str,
    host: &'a str,
    pending: bool,
    outcome: Outcome,
    seconds: f64,
    /// What the checks of the migrations' SQL found.
    findings: &'a [crate::model::commit::Finding],
}
