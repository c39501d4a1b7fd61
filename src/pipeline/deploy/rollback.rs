//! A rollback: the release before the one each host serves, activated on
//! every host at once through the same activation as a deploy; a failure
//! puts every host back.

use crate::error::{Error, Failure};
use crate::model::history::{Action, Outcome, Record};
use crate::remote::prune;
use crate::remote::site::{self, each, each_host};

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cli::output::Printer;
use crate::config::{Config, Point};
use crate::model::lock::LockInfo;
use crate::remote::locking;
use crate::remote::site::Site;

use super::{per_host, Options, Prepared, Rehearsal, Run, Summary, Switched};

/// Switches every host of `env_name` back to the release before the one it
/// serves.
pub async fn rollback(
    config: &Config,
    env_name: &str,
    code_only: bool,
    printer: &Printer,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let env = config.environment(env_name)?;
    printer.headline(&format!("Rolling back {}", env.name));
    let info = LockInfo::new(&format!("gantry rollback {}", env.name), None, false);
    let options = Options::rollback(&info.command);
    let body = async |sites: &[Site]| {
        let run = Run::new(config, env, printer, sites, &options, &info);
        let (release, commit) = run.rollback(code_only).await?;
        Ok::<_, Error>(Summary {
            env: env.name.clone(),
            release,
            commit,
            hosts: env.hosts.len(),
            seconds: started.elapsed().as_secs_f64(),
            rehearsal: Rehearsal::NotNeeded,
            noop: false,
            forced: false,
            uploaded: BTreeMap::new(),
            per_host: per_host(sites, &Prepared::default()),
            findings: Vec::new(),
            migrations: Vec::new(),
            hooks: Vec::new(),
        })
    };
    let rolled = locking::with_locked(config, env, &info, printer, body).await?;
    let (commit, release, outcome) = match &rolled {
        Ok(s) => (s.commit.as_str(), s.release.as_str(), "ok"),
        Err(_) => ("", "", "failed"),
    };
    let told = super::hooks::Told {
        env,
        commit,
        release,
        outcome: Some(outcome),
    };
    let after = super::hooks::run_here(config, Point::AfterRollback, &told, printer).await?;
    rolled.map(|s| Summary {
        hooks: after.into_iter().collect(),
        ..s
    })
}

impl Run<'_> {
    /// Activates the release before the current one on every host; on a
    /// failure every host goes back. The schema goes back too, unless
    /// `code_only` (`rollback_schema`). Returns the release and its commit.
    pub(super) async fn rollback(&self, code_only: bool) -> Result<(String, String), Error> {
        let targets = self.targets().await?;
        let mut problems = Vec::new();
        // The schema first: refused here, nothing has changed yet.
        let target = &targets[self.env.migrate_host].name;
        let reversing = match code_only {
            true => None,
            false => self.schema_back(target).await?,
        };
        // Activate each host's target; on failure, put every host back.
        let mut switched = Vec::new();
        let indexes: Vec<usize> = (0..self.sites.len()).collect();
        let targets_ref = &targets;
        let results = each(
            &indexes,
            self.env.parallel.max(indexes.len()),
            |&index| async move {
                let target = &targets_ref[index];
                let commit = target.commit.clone().unwrap_or_default();
                let (previous, was_switched, result) =
                    self.activate_one(index, &target.name, &commit).await;
                (index, previous, was_switched, result)
            },
        )
        .await;
        for (index, previous, was_switched, result) in results {
            if was_switched {
                switched.push(Switched { index, previous });
            }
            if let Err(p) = result {
                problems.push(p);
            }
        }
        if !problems.is_empty() {
            let recovery = self.switch_back(&switched, &targets[0].name).await;
            for site in self.sites {
                let mut record = Record::new(
                    Action::Rollback,
                    &self.env.name,
                    site.name(),
                    Outcome::Failed,
                );
                record.previous = site.serving.clone();
                site.record(self.printer, &record).await;
            }
            return Err(Error::Failed(Box::new(Failure {
                action: "rollback".into(),
                env: self.env.name.clone(),
                problems,
                serving: self.serving(),
                recovery,
                notes: Vec::new(),
                constraint: None,
                interrupted: site::interrupted(),
                stuck: self.account().stuck.clone(),
            })));
        }
        // The code is back: the migrations it does not run on are reversed.
        let schema = match &reversing {
            Some(r) => Some(self.reverse_for_rollback(r).await),
            None => None,
        };
        for (site, target) in self.sites.iter().zip(&targets) {
            let mut record =
                Record::new(Action::Rollback, &self.env.name, site.name(), Outcome::Ok);
            if let Some(Err(p)) = &schema {
                record.message = Some(format!("code rolled back; the schema was not: {}", p.step));
            }
            record.commit = target.commit.clone();
            record.release = Some(target.name.clone());
            record.previous = site.serving.clone();
            site.record(self.printer, &record).await;
            self.printer
                .host(site.name(), &format!("serving {}", target.name));
        }
        match schema {
            Some(Ok(done)) => self.printer.headline(&done),
            Some(Err(problem)) => {
                return Err(Error::Hosts {
                    what: format!(
                    "taking the schema back after the rollback of `{}` (the code is rolled back)",
                    self.env.name
                ),
                    problems: vec![problem],
                })
            }
            None => {}
        }
        let first = &targets[0];
        Ok((first.name.clone(), first.commit.clone().unwrap_or_default()))
    }

    /// The release before the one each host serves (a release of every
    /// host, or the problems that say why there is none).
    pub(super) async fn targets(&self) -> Result<Vec<prune::Listed>, Error> {
        // Find the release before the current one on every host.
        let listed = each_host(self.sites, |site| async move {
            let out = site
                .step(
                    self.printer,
                    "list releases",
                    None,
                    &prune::list_script(&site.layout),
                    None,
                )
                .await?;
            let (releases, current) = prune::parse_list(&out.stdout);
            let complete: Vec<_> = releases
                .into_iter()
                .filter(|r| r.commit.is_some())
                .collect();
            let Some(current) = current else {
                return Err(site.problem(
                    "rollback",
                    None,
                    None,
                    "no release is live here, so there is nothing to roll back",
                ));
            };
            let position = complete.iter().position(|r| r.name == current);
            match position {
                Some(i) if i > 0 => Ok(complete[i - 1].clone()),
                _ => Err(site.problem(
                    "rollback",
                    None,
                    None,
                    &format!("no release older than `{current}` is kept here"),
                )),
            }
        })
        .await;
        let mut targets = Vec::new();
        let mut problems = Vec::new();
        for result in listed {
            match result {
                Ok(t) => targets.push(t),
                Err(p) => problems.push(p),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Hosts {
                what: format!("rollback of `{}` (nothing was changed)", self.env.name),
                problems,
            });
        }
        Ok(targets)
    }
}

impl Options {
    /// A rollback's: nothing rehearsed or held, the release activated even
    /// though it was once served.
    pub(super) fn rollback(command: &str) -> Options {
        Options {
            command: command.to_string(),
            rehearse: false,
            redeploy: true,
            maintenance: false,
            allow_incompatible: false,
        }
    }
}
