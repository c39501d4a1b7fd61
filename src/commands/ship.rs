//! The commands that move a commit: `deploy`, `verify`, `promote`,
//! `rollback` and `rehearse`, each with its closing report (text, or one
//! JSON document with `--json`).

use crate::cli::output::Printer;
use crate::config::Config;
use crate::data::rehearse;
use crate::error::Error;
use crate::ledger::git::Repo;
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
    if printer.json_mode() {
        let checks = if health_only || config.verify.is_none() {
            "health checks"
        } else {
            "health checks and functional tests"
        };
        printer.json(&serde_json::json!({
            "action": "verify",
            "env": env,
            "commit": commit,
            "outcome": "passed",
            "checks": checks,
        }));
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

pub async fn rollback(config: &Config, env: &str, printer: &Printer) -> Result<(), Error> {
    let done = deploy::rollback(config, env, printer).await?;
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
