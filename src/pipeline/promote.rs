//! The release pipeline: gates between environments (`requires`), a deploy
//! followed by its record in the ledger and its tags, `promote`, and
//! `release`, which runs the whole procedure: pushed? → first environment →
//! verify → next environment(s) in the `requires` chain → verify → tags.

use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::error::{Done, Error, Warning};
use crate::ledger::git::{Commit, Repo};
use crate::ledger::{self, Event};
use crate::model::history::{Action, Outcome};
use crate::pipeline::deploy::{self, Summary};
use crate::pipeline::{summary, verify};
use crate::remote::site;

/// A finished deploy and the tags it made.
pub struct Deployed {
    pub summary: Summary,
    pub tags: Vec<String>,
    pub forced: bool,
}

/// How `deploy_env` runs: who asked, and what the user forced or skipped.
#[derive(Default)]
pub struct DeployOptions {
    /// What the lock record shows.
    pub command: String,
    /// Go past the gate (`--force`).
    pub force: bool,
    /// Rehearse pending migrations first (cleared by `--no-rehearse`).
    pub rehearse: bool,
    /// Hold writes while migrations run (`--maintenance`).
    pub maintenance: bool,
    /// Deploy even when every host already serves the commit.
    pub redeploy: bool,
    /// Run migrations that break the serving release while both serve.
    pub allow_incompatible: bool,
}

/// Deploys `commit` to `env_name` through its gate (the deploy rehearses
/// pending migrations on a copy of the data first), then records it in the
/// ledger and tags it.
pub async fn deploy_env(
    config: &Config,
    env_name: &str,
    commit: &Commit,
    options: &DeployOptions,
    printer: &Printer,
) -> Result<Deployed, Error> {
    let started = std::time::Instant::now();
    let env = config.environment(env_name)?;
    let repo = Repo::at(&config.dir);
    deploy::announce(env, commit, printer);
    // Connecting changes nothing on the hosts: it runs while git checks
    // that the commit is on the remote, reads the ledger and makes the
    // archive; the gate decides before anything is locked.
    let checked = {
        let (repo, commit, remote) = (repo.clone(), commit.clone(), config.app.remote.clone());
        tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Error> {
            let refs = repo.remote_refs(&remote)?;
            repo.on_remote(&commit, &remote, &refs)?;
            ledger::sync_with(&repo, &remote, &refs)?;
            repo.archive(&commit)
        })
    };
    let gated = std::sync::OnceLock::new();
    let go = async {
        let archive = checked.await.expect("the git checks do not panic")?;
        let (forced, said) = gate(&repo, env, commit, options.force, printer)?;
        let _ = gated.set(said);
        // What the ledger, just brought up to date, says: a hint only,
        // the hosts decide (`deploy/noop`).
        let ask_first = !options.redeploy && ledger::went_live(&repo, &env.name, &commit.sha);
        Ok(deploy::Go {
            archive,
            forced,
            ask_first,
        })
    };
    let deploy_options = deploy::Options {
        command: options.command.clone(),
        rehearse: options.rehearse,
        redeploy: options.redeploy,
        maintenance: options.maintenance,
        allow_incompatible: options.allow_incompatible,
    };
    let summary = deploy::deploy(
        config,
        env_name,
        commit,
        &deploy_options,
        go,
        started,
        printer,
    )
    .await?;
    let forced = summary.forced;
    let gate = gated.into_inner().unwrap_or_default();
    if summary.noop {
        // Nothing changed: no tag moves, nothing new for the ledger.
        return Ok(Deployed {
            summary,
            tags: Vec::new(),
            forced,
        });
    }

    let hosts: Vec<String> = env.hosts.iter().map(|h| h.name.clone()).collect();
    let message = format!(
        "Deployed to {} ({}) by {} at {}\nrelease: {}\nverification: {gate}",
        env.name,
        hosts.join(", "),
        crate::model::lock::who(),
        crate::base::time::Utc::now().iso(),
        summary.release,
    );
    let tags = match ledger::tag(&repo, &config.app.remote, commit, &env.tags, &message) {
        Ok(t) => t,
        Err(e) => {
            printer.warn(Warning::NotTagged {
                cause: e.to_string(),
            });
            Vec::new()
        }
    };
    let mut event = Event::new(Action::Deploy, &env.name, Outcome::Ok);
    event.forced = forced;
    event.rehearsal = summary.rehearsal.record();
    event.release = Some(summary.release.clone());
    event.hosts = hosts;
    event.tags = tags.clone();
    event.migrations = summary.migrations.clone();
    event.hooks = summary.hooks.clone();
    if let Err(e) = ledger::record(&repo, &config.app.remote, &commit.sha, &event) {
        printer.warn(Warning::NotRecorded {
            done: Done::Deploy,
            cause: e.to_string(),
        });
    }
    if !tags.is_empty() {
        printer.headline(&format!(
            "Tagged {} and pushed to `{}`",
            tags.join(", "),
            config.app.remote
        ));
    }
    Ok(Deployed {
        summary,
        tags,
        forced,
    })
}

/// After a rollback: the environment's moving tag goes back to the commit
/// it serves again, and the ledger records the rollback against it. A
/// failure here only warns: the hosts are already rolled back.
/// Returns the tags it moved.
pub fn after_rollback(
    config: &Config,
    env_name: &str,
    summary: &Summary,
    printer: &Printer,
) -> Vec<String> {
    let Ok(env) = config.environment(env_name) else {
        return Vec::new();
    };
    let repo = Repo::at(&config.dir);
    let remote = &config.app.remote;
    let commit = match repo.resolve(&summary.commit) {
        Ok(c) => c,
        Err(e) => {
            printer.warn(Warning::RollbackCommitMissing {
                commit: summary.commit.to_string(),
                cause: e.to_string(),
            });
            return Vec::new();
        }
    };
    let message = format!(
        "Rolled back {} to release {} by {} at {}",
        env.name,
        summary.release,
        crate::model::lock::who(),
        crate::base::time::Utc::now().iso()
    );
    let moved = match ledger::move_back(&repo, remote, &commit, &env.tags, &message) {
        Ok(Some(tag)) => {
            printer.headline(&format!(
                "Moved {tag} back to {} and pushed it to `{remote}`",
                commit.short()
            ));
            vec![tag]
        }
        Ok(None) => Vec::new(),
        Err(e) => {
            printer.warn(Warning::TagNotMoved {
                cause: e.to_string(),
            });
            Vec::new()
        }
    };
    let mut event = Event::new(Action::Rollback, &env.name, Outcome::Ok);
    event.release = Some(summary.release.clone());
    event.hosts = summary.per_host.iter().map(|h| h.host.clone()).collect();
    event.hooks = summary.hooks.clone();
    if let Err(e) = ledger::record(&repo, remote, &commit.sha, &event) {
        printer.warn(Warning::NotRecorded {
            done: Done::Rollback,
            cause: e.to_string(),
        });
    }
    moved
}

/// Checks `env`'s gate for `commit`. Returns whether it was forced, and a
/// line for the tag's message.
fn gate(
    repo: &Repo,
    env: &Environment,
    commit: &Commit,
    force: bool,
    printer: &Printer,
) -> Result<(bool, String), Error> {
    let Some(required) = &env.requires else {
        return Ok((false, "no gate".to_string()));
    };
    let events = ledger::events(repo, &commit.sha);
    if let Some(v) = ledger::verified(&events, required) {
        return Ok((
            false,
            format!("passed on {required} at {} by {}", v.time, v.by),
        ));
    }
    if force {
        printer.warn(Warning::Forced {
            commit: commit.short().to_string(),
            required: required.to_string(),
            env: env.name.clone(),
        });
        return Ok((
            true,
            format!("not verified on {required}; forced past the gate"),
        ));
    }
    let last_verified = ledger::last_verified(repo, required).and_then(|(sha, event)| {
        repo.resolve(&sha)
            .ok()
            .map(|c| Box::new((c, format!("verified {} by {}", event.time, event.by))))
    });
    Err(Error::NotVerified {
        env: env.name.clone(),
        required: required.clone(),
        commit: Box::new(commit.clone()),
        last_verified,
    })
}

/// Deploys to `to` exactly the commit `from` runs, which must be verified
/// there (unless `force`).
pub async fn promote(
    config: &Config,
    from: &str,
    to: &str,
    force: bool,
    rehearse: bool,
    printer: &Printer,
) -> Result<Deployed, Error> {
    let from_env = config.environment(from)?;
    config.environment(to)?;
    let sites = site::connect(config, from_env, printer).await?;
    let running = verify::running(&sites, from_env, printer).await;
    site::close(sites).await;
    printer.finish_hosts();
    let running = running?;
    let repo = Repo::at(&config.dir);
    let commit = repo.resolve(&running.commit)?;
    ledger::sync(&repo, &config.app.remote)?;
    if ledger::verified(&ledger::events(&repo, &commit.sha), from).is_none() && !force {
        return Err(Error::NotVerified {
            env: to.to_string(),
            required: from.to_string(),
            commit: Box::new(commit),
            last_verified: None,
        });
    }
    printer.headline(&format!(
        "Promoting {} ({}) from {from} to {to}",
        commit.short(),
        commit.subject
    ));
    let command = format!("gantry promote {from} {to}");
    let options = DeployOptions {
        command,
        force,
        rehearse,
        ..DeployOptions::default()
    };
    deploy_env(config, to, &commit, &options, printer).await
}

/// Options of `gantry release`.
pub struct ReleaseOptions {
    /// Push HEAD to the remote first.
    pub push: bool,
    /// The last environment of the chain; default: the only chain's end.
    pub to: Option<String>,
}

/// The whole procedure for HEAD.
pub async fn release(
    config: &Config,
    options: &ReleaseOptions,
    printer: &Printer,
) -> Result<(), Error> {
    let commit = ready_to_release(config, options, printer)?;
    let remote = &config.app.remote;
    let chain = chain(config, options.to.as_deref())?;
    printer.headline(&format!(
        "Releasing {} ({}) through {}",
        commit.short(),
        commit.subject,
        chain
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    ));
    let mut tree = vec![format!(
        "✓ {} ({}) is on `{remote}`",
        commit.short(),
        commit.subject
    )];
    let stop = |tree: &mut Vec<String>, rest: &[&Environment], cause: Error| {
        for env in rest {
            tree.push(format!(
                "· {}: not started; it still serves what it served",
                env.name
            ));
        }
        Error::ReleaseStopped {
            tree: std::mem::take(tree),
            cause: Box::new(cause),
        }
    };
    let mut deployed = Vec::new();
    for (i, env) in chain.iter().enumerate() {
        // Each deploy rehearses its pending migrations on a copy of the
        // environment's data, from the release it has just built.
        let options = DeployOptions {
            command: "gantry release".into(),
            rehearse: true,
            ..DeployOptions::default()
        };
        match deploy_env(config, &env.name, &commit, &options, printer).await {
            Ok(d) => {
                summary::report(&d.summary, "Deployed", printer);
                deployed.push(summary::summary_json(&d.summary, "deploy", &d.tags));
                tree.extend(deployed_lines(&env.name, &d, remote));
            }
            Err(e) => {
                tree.push(summary::failed_line(&env.name, &e));
                return Err(stop(&mut tree, &chain[i + 1..], e));
            }
        }
        // Environments that others wait on get the functional tests; the
        // end of the chain gets its health checks.
        let functional = i + 1 < chain.len() || chain.len() == 1;
        match verify::verify(config, &env.name, functional, printer).await {
            Ok(_) => tree.push(format!(
                "✓ {}: verified ({})",
                env.name,
                if functional && config.verify.is_some() {
                    "health checks and functional tests"
                } else {
                    "health checks"
                }
            )),
            Err(e) => {
                tree.push(format!(
                    "✗ {}: verification failed; it serves {} (recorded as failed)",
                    env.name,
                    commit.short()
                ));
                return Err(stop(&mut tree, &chain[i + 1..], e));
            }
        }
    }
    printer.summary("Released:", &tree);
    if printer.json_mode() {
        printer.json(&ReleaseReport {
            action: "release",
            commit: &commit.sha,
            subject: &commit.subject,
            environments: &deployed,
            steps: &tree,
        });
    }
    Ok(())
}

/// HEAD, committed and on the remote (pushed first with `--push`).
fn ready_to_release(
    config: &Config,
    options: &ReleaseOptions,
    printer: &Printer,
) -> Result<Commit, Error> {
    let repo = Repo::at(&config.dir);
    repo.ensure_clean()?;
    let commit = repo.resolve("HEAD")?;
    let remote = &config.app.remote;
    if options.push {
        printer.headline(&format!("Pushing {} to `{remote}`", commit.short()));
        repo.push_head(remote)?;
    }
    repo.ensure_on_remote(&commit, remote)
        .map_err(|e| match e {
            Error::NotOnRemote { commit, remote, .. } => Error::NotOnRemote {
                commit,
                remote,
                in_release: true,
            },
            other => other,
        })?;
    Ok(commit)
}

/// The release's lines for an environment deployed: rehearsal, deploy, tags.
fn deployed_lines(env: &str, d: &Deployed, remote: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if let deploy::Rehearsal::Passed(seconds) = d.summary.rehearsal {
        lines.push(format!(
            "✓ {env}: migrations rehearsed on a copy of its data ({})",
            crate::base::time::human(std::time::Duration::from_secs_f64(seconds))
        ));
    }
    let hosts = d.summary.hosts;
    lines.push(format!(
        "✓ {env}: deployed release {} to {hosts} host{}",
        d.summary.release,
        if hosts == 1 { "" } else { "s" }
    ));
    if !d.tags.is_empty() {
        lines.push(format!(
            "✓ {env}: tagged {} and pushed to `{remote}`",
            d.tags.join(", ")
        ));
    }
    lines
}

/// The environments from the root of the `requires` chain to `to` (or to
/// the end of the only chain).
pub fn chain<'a>(config: &'a Config, to: Option<&str>) -> Result<Vec<&'a Environment>, Error> {
    let end = match to {
        Some(name) => config.environment(name)?,
        None => {
            let ends: Vec<&Environment> = config
                .environments
                .iter()
                .filter(|e| {
                    !config
                        .environments
                        .iter()
                        .any(|o| o.requires.as_deref() == Some(e.name.as_str()))
                })
                .collect();
            let chained: Vec<&Environment> = ends
                .iter()
                .copied()
                .filter(|e| e.requires.is_some())
                .collect();
            match (chained.as_slice(), ends.as_slice()) {
                ([one], _) => *one,
                ([], [only]) => *only,
                _ => {
                    return Err(Error::ReleaseEndUnclear {
                        ends: ends.iter().map(|e| e.name.clone()).collect(),
                    })
                }
            }
        }
    };
    let mut chain = vec![end];
    while let Some(required) = chain.last().and_then(|e| e.requires.as_deref()) {
        chain.push(config.environment(required)?);
    }
    chain.reverse();
    Ok(chain)
}

/// `release --json`: each environment's deploy report, and the steps.
#[derive(serde::Serialize)]
struct ReleaseReport<'a> {
    action: &'static str,
    commit: &'a str,
    subject: &'a str,
    environments: &'a [serde_json::Value],
    steps: &'a [String],
}
