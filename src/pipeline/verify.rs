//! `gantry verify ENV`: checks what an environment runs. Every host must
//! run the same complete release; each host's health check must pass; then
//! the project's own functional tests run on this machine, with the
//! environment described to them through variables (`[verify] env`), and
//! their output streamed. The outcome is recorded against the commit, in
//! the ledger and in each host's history.

use std::process::Stdio;

use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::error::{Done, Error, Warning};
use crate::ledger::git::Repo;
use crate::ledger::{self, Event};
use crate::model::history::{Action, Outcome, Record};
use crate::remote::health;
use crate::remote::inspect::{self, SiteStatus};
use crate::remote::release;
use crate::remote::site::{self, each, Site};

/// What an environment runs.
#[derive(Debug, Clone)]
pub struct Running {
    pub commit: String,
    pub release: String,
}

/// Reads the release every host of `env` serves; they must agree.
pub async fn running(
    sites: &[Site],
    env: &Environment,
    printer: &Printer,
) -> Result<Running, Error> {
    let results = each(sites, 32, |s| async move {
        s.step(
            printer,
            "read current",
            None,
            &inspect::status_script(&s.layout),
            None,
        )
        .await
        .map(|out| inspect::parse_status(&out.stdout))
    })
    .await;
    let mut states: Vec<(&str, SiteStatus)> = Vec::new();
    let mut problems = Vec::new();
    for (s, r) in sites.iter().zip(results) {
        match r {
            Ok(state) => states.push((s.name(), state)),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Hosts {
            what: format!("reading what `{}` runs", env.name),
            problems,
        });
    }
    let mut reasons = Vec::new();
    for (host, state) in &states {
        if state.commit.is_none() || state.release.is_none() {
            reasons.push(format!("{host}: nothing is deployed"));
        }
    }
    let first = &states[0].1;
    if reasons.is_empty()
        && states
            .iter()
            .any(|(_, s)| s.commit != first.commit || s.release != first.release)
    {
        reasons.push(format!(
            "the hosts do not run the same release: {}",
            states
                .iter()
                .map(|(h, s)| format!("{h}: {}", s.release.as_deref().unwrap_or("-")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !reasons.is_empty() {
        return Err(Error::VerifyFailed {
            env: env.name.clone(),
            commit: first.commit.clone().unwrap_or_default(),
            reasons,
        });
    }
    Ok(Running {
        commit: first.commit.clone().expect("checked"),
        release: first.release.clone().expect("checked"),
    })
}

/// Verifies `env_name`: health checks, then the functional tests when
/// `functional` is set and `[verify]` is configured. Returns the commit.
pub async fn verify(
    config: &Config,
    env_name: &str,
    functional: bool,
    printer: &Printer,
) -> Result<String, Error> {
    let env = config.environment(env_name)?;
    printer.headline(&format!("Verifying {}", env.name));
    let sites = site::connect(config, env, printer).await?;
    let result = run(config, env, &sites, functional, printer).await;
    let (running, outcome) = match result {
        Ok(pair) => pair,
        Err(e) => {
            site::close(sites).await;
            printer.finish_hosts();
            return Err(e);
        }
    };
    let passed = outcome.is_ok();
    let checks = if functional && config.verify.is_some() {
        "health checks and functional tests"
    } else {
        "health checks"
    };
    // Record in each host's history, then in the ledger.
    each(&sites, 32, |s| {
        let running = &running;
        let outcome = &outcome;
        async move {
            let mut record = Record::new(Action::Verify, &env.name, s.name(), outcome_of(passed));
            record.commit = Some(running.commit.clone());
            record.release = Some(running.release.clone());
            record.message = Some(match outcome {
                Ok(()) => checks.to_string(),
                Err(reasons) => reasons.join("; "),
            });
            s.record(printer, &record).await;
        }
    })
    .await;
    site::close(sites).await;
    printer.finish_hosts();
    let repo = Repo::at(&config.dir);
    let mut event = Event::new(Action::Verify, &env.name, outcome_of(passed));
    event.release = Some(running.release.clone());
    event.hosts = env.hosts.iter().map(|h| h.name.clone()).collect();
    event.detail = Some(match &outcome {
        Ok(()) => checks.to_string(),
        Err(reasons) => reasons.join("; "),
    });
    if let Err(e) = ledger::record(&repo, &config.app.remote, &running.commit, &event) {
        printer.warn(Warning::NotRecorded {
            done: Done::Verification,
            cause: e.to_string(),
        });
    }
    match outcome {
        Ok(()) => {
            printer.headline(&format!(
                "Verified {}: {} passed for commit {}",
                env.name,
                checks,
                &running.commit[..running.commit.len().min(8)]
            ));
            Ok(running.commit)
        }
        Err(reasons) => Err(Error::VerifyFailed {
            env: env.name.clone(),
            commit: running.commit,
            reasons,
        }),
    }
}

type Checked = Result<(), Vec<String>>;

async fn run(
    config: &Config,
    env: &Environment,
    sites: &[Site],
    functional: bool,
    printer: &Printer,
) -> Result<(Running, Checked), Error> {
    let running = running(sites, env, printer).await?;
    let mut reasons = Vec::new();
    if let Some(check) = &config.deploy.health {
        let results = each(sites, 32, |s| {
            let running = &running;
            async move {
                let vars = release::run_vars(
                    &s.spec,
                    &s.layout,
                    Some(&running.release),
                    Some(&running.commit),
                );
                let url = check.url.render(&vars);
                let body = check.body.as_ref().map(|b| b.render(&vars));
                printer.host(s.name(), &format!("health check {url}"));
                health::check_from(check, &url, body.as_deref(), s, false)
                    .await
                    .map_err(|f| {
                        format!(
                            "{}: health check GET {} did not pass after {} attempts: {}",
                            s.name(),
                            f.url,
                            f.attempts,
                            f.last
                        )
                    })
            }
        })
        .await;
        reasons.extend(results.into_iter().filter_map(Result::err));
    }
    if reasons.is_empty() && functional {
        if let Some(verify) = &config.verify {
            let first = &sites[0];
            let vars = release::run_vars(
                &first.spec,
                &first.layout,
                Some(&running.release),
                Some(&running.commit),
            );
            let command = verify.command.render_shell(&vars);
            printer.finish_hosts();
            printer.headline(&format!(
                "Running the functional tests against {}: {command}",
                env.name
            ));
            let mut cmd = tokio::process::Command::new("sh");
            cmd.arg("-c")
                .arg(&command)
                .current_dir(&config.dir)
                .stdin(Stdio::null());
            // The tests' output is progress, not a result: it goes to stderr.
            if let Some(err) = stderr_stdio() {
                cmd.stdout(err);
            }
            cmd.env("GANTRY_ENV", &env.name)
                .env("GANTRY_COMMIT", &running.commit);
            // The repository's virtualenv, when it has one (in the app's
            // folder or at the root): its `python` runs the tests, as
            // `source .venv/bin/activate` would.
            if let Some(venv) = local_venv(&config.dir, config.app.root.as_deref()) {
                let path = std::env::var_os("PATH").unwrap_or_default();
                let mut paths = vec![venv.join("bin")];
                paths.extend(std::env::split_paths(&path));
                if let Ok(joined) = std::env::join_paths(paths) {
                    cmd.env("PATH", joined).env("VIRTUAL_ENV", &venv);
                }
            }
            for (name, value) in &verify.env {
                cmd.env(name, value.render(&vars));
            }
            match cmd.status().await {
                Ok(status) if status.success() => {}
                Ok(status) => reasons.push(format!(
                    "functional tests failed: `{command}` exited with {}",
                    status
                        .code()
                        .map_or("a signal".to_string(), |c| format!("status {c}"))
                )),
                Err(e) => reasons.push(format!(
                    "functional tests could not start: `{command}`: {e}"
                )),
            }
        }
    }
    Ok((
        running,
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        },
    ))
}

/// This process's stderr, duplicated, for a child's stdout.
fn stderr_stdio() -> Option<Stdio> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    Some(Stdio::from(fd))
}

fn outcome_of(passed: bool) -> Outcome {
    if passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    }
}

/// The repository's virtualenv: `.venv` in the app's folder, else at the
/// repository's root.
fn local_venv(dir: &std::path::Path, root: Option<&str>) -> Option<std::path::PathBuf> {
    root.map(|r| dir.join(r).join(".venv"))
        .into_iter()
        .chain([dir.join(".venv")])
        .find(|v| v.join("bin/python").exists())
}
