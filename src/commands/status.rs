//! `gantry status`: what is live where, read from the hosts and the
//! ledger in the git remote.

use serde::Serialize;

use crate::cli::output::Printer;
use std::collections::BTreeMap;

use crate::base::time::{self, Shown};
use crate::config::{Config, Environment};
use crate::error::{Error, HostProblem, Warning};
use crate::ledger::git::Repo;
use crate::ledger::Event;
use crate::model::history;
use crate::model::history::{Action, Outcome};
use crate::remote::inspect;
use crate::remote::site::{self, each};

/// One environment as `status` shows it.
struct EnvStatus<'a> {
    env: &'a Environment,
    hosts: Vec<HostState>,
    /// The commit every reachable host runs, when they agree.
    commit: Option<String>,
    events: Vec<crate::ledger::Event>,
    /// This environment's tags on that commit, as the remote has them now.
    tags: Vec<String>,
}

/// A host's name and what it said, or why it did not answer.
type HostState = (String, Result<inspect::SiteStatus, String>);

impl<'a> EnvStatus<'a> {
    /// An environment's status from what its hosts said and the ledger.
    fn new(
        env: &'a Environment,
        hosts: Vec<HostState>,
        repo: &Repo,
        remote_tags: &BTreeMap<String, Vec<String>>,
    ) -> EnvStatus<'a> {
        let commits: Vec<Option<&String>> = hosts
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .map(|s| s.commit.as_ref())
            .collect();
        let commit = match commits.first() {
            Some(Some(first)) if commits.iter().all(|c| *c == Some(*first)) => {
                Some((*first).clone())
            }
            _ => None,
        };
        let events = commit
            .as_deref()
            .map(|c| crate::ledger::events(repo, c))
            .unwrap_or_default();
        let tags = commit
            .as_deref()
            .and_then(|c| remote_tags.get(c))
            .map(|names| {
                names
                    .iter()
                    .filter(|n| crate::ledger::belongs(&env.tags, n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        EnvStatus {
            env,
            hosts,
            commit,
            events,
            tags,
        }
    }

    fn verification(&self) -> Option<&crate::ledger::Event> {
        self.events
            .iter()
            .rev()
            .find(|e| e.event == Action::Verify && e.env == self.env.name)
    }

    fn deployed(&self) -> Option<&crate::ledger::Event> {
        self.events.iter().rev().find(|e| {
            matches!(e.event, Action::Deploy | Action::Rollback) && e.env == self.env.name
        })
    }
}

pub async fn status(
    config: &Config,
    only: Option<&str>,
    shown: Shown,
    printer: &Printer,
) -> Result<(), Error> {
    let envs = match only {
        Some(name) => vec![config.environment(name)?],
        None => config.environments.iter().collect(),
    };
    let repo = Repo::at(&config.dir);
    let remote = &config.app.remote;
    if let Err(e) = crate::ledger::sync(&repo, remote) {
        printer.warn(Warning::LedgerNotFetched {
            remote: remote.to_string(),
            cause: e.to_string(),
        });
    }
    let remote_tags = crate::ledger::remote_tags_by_commit(&repo, remote).unwrap_or_else(|e| {
        printer.warn(Warning::TagsNotRead {
            remote: remote.to_string(),
            cause: e.to_string(),
        });
        Default::default()
    });
    let mut problems = Vec::new();
    let mut report = Vec::new();
    for env in envs {
        let hosts = read_hosts(config, env, printer, &mut problems).await?;
        report.push(EnvStatus::new(env, hosts, &repo, &remote_tags));
    }
    printer.finish_hosts();
    let status = Status { report, repo };
    if printer.json_mode() {
        printer.json(&status.report());
    } else {
        printer.result(status.report().text(shown).trim_end());
    }
    if problems.iter().any(|p| p.unreachable) {
        Err(Error::Hosts {
            what: "status".into(),
            problems,
        })
    } else {
        Ok(())
    }
}

/// What each host of `env` says; the hosts that did not answer go into
/// `problems` too.
async fn read_hosts(
    config: &Config,
    env: &Environment,
    printer: &Printer,
    problems: &mut Vec<HostProblem>,
) -> Result<Vec<HostState>, Error> {
    let mut hosts = Vec::new();
    let sites = match site::connect(config, env, printer).await {
        Ok(sites) => sites,
        Err(Error::Unreachable { problems: p, .. }) => {
            for problem in p {
                hosts.push((problem.host.clone(), Err(problem.detail.clone())));
                problems.push(problem);
            }
            return Ok(hosts);
        }
        Err(e) => return Err(e),
    };
    let results = each(&sites, 32, |site| async move {
        let script = inspect::status_script(&site.layout);
        site.step(printer, "status", None, &script, None).await
    })
    .await;
    for (site, result) in sites.iter().zip(results) {
        match result {
            Ok(out) => hosts.push((
                site.name().to_string(),
                Ok(inspect::parse_status(&out.stdout)),
            )),
            Err(p) => {
                hosts.push((site.name().to_string(), Err(p.detail.clone())));
                problems.push(p);
            }
        }
    }
    site::close(sites).await;
    Ok(hosts)
}

/// Every environment's status, and the repository to name commits from.
struct Status<'a> {
    report: Vec<EnvStatus<'a>>,
    repo: Repo,
}

impl Status<'_> {
    /// How far an environment is behind the one it requires.
    fn behind(&self, s: &EnvStatus) -> Option<(String, usize)> {
        let required = s.env.requires.as_deref()?;
        let upstream = self.report.iter().find(|r| r.env.name == required)?;
        let n = self
            .repo
            .count_between(s.commit.as_deref()?, upstream.commit.as_deref()?)?;
        Some((required.to_string(), n))
    }

    fn subject(&self, sha: &str) -> String {
        self.repo
            .resolve(sha)
            .map(|c| c.subject)
            .unwrap_or_default()
    }

    /// Every environment's report: what `--json` prints, and what the
    /// text is drawn from.
    fn report(&self) -> StatusReport<'_> {
        let environments = self
            .report
            .iter()
            .map(|r| EnvReport {
                name: &r.env.name,
                commit: r.commit.as_deref(),
                subject: r.commit.as_deref().map(|c| self.subject(c)),
                verified: r
                    .verification()
                    .is_some_and(|v| v.outcome == Outcome::Passed),
                verification: r.verification(),
                tags: &r.tags,
                deployed: r.deployed(),
                behind: self.behind(r).map(|(env, commits)| Behind { env, commits }),
                hosts: r
                    .hosts
                    .iter()
                    .map(|(name, state)| {
                        let roles = r.env.hosts.iter().find(|h| &h.name == name);
                        let roles = roles.map(|h| h.roles.as_slice()).unwrap_or_default();
                        HostReport::new(name, roles, state)
                    })
                    .collect(),
            })
            .collect();
        StatusReport { environments }
    }
}

/// `status`, as `--json` prints it.
#[derive(Serialize)]
struct StatusReport<'a> {
    environments: Vec<EnvReport<'a>>,
}

#[derive(Serialize)]
struct EnvReport<'a> {
    name: &'a str,
    /// The commit every reachable host runs, when they agree.
    commit: Option<&'a str>,
    subject: Option<String>,
    verified: bool,
    verification: Option<&'a Event>,
    tags: &'a [String],
    deployed: Option<&'a Event>,
    behind: Option<Behind>,
    hosts: Vec<HostReport<'a>>,
}

#[derive(Serialize)]
struct Behind {
    env: String,
    commits: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
enum HostReport<'a> {
    Reachable {
        host: &'a str,
        roles: &'a [String],
        reachable: bool,
        release: Option<&'a str>,
        commit: Option<&'a str>,
        locked: Option<LockReport<'a>>,
        last: Option<&'a history::Record>,
        activated: Option<&'a str>,
        mismatch: Option<String>,
        running: &'a [String],
        #[serde(skip)]
        site: &'a inspect::SiteStatus,
    },
    Unreachable {
        host: &'a str,
        roles: &'a [String],
        reachable: bool,
        error: &'a str,
    },
}

#[derive(Serialize)]
struct LockReport<'a> {
    by: String,
    since: &'a str,
    command: &'a str,
    stale: bool,
}

impl<'a> HostReport<'a> {
    fn new(
        host: &'a str,
        roles: &'a [String],
        state: &'a Result<inspect::SiteStatus, String>,
    ) -> HostReport<'a> {
        match state {
            Ok(s) => HostReport::Reachable {
                host,
                roles,
                reachable: true,
                release: s.release.as_deref(),
                commit: s.commit.as_deref(),
                locked: s.lock.as_ref().map(|l| LockReport {
                    by: format!("{}@{}", l.user, l.machine),
                    since: &l.since,
                    command: &l.command,
                    stale: l.is_stale(),
                }),
                last: s.last.as_ref(),
                activated: s.activated.as_deref(),
                mismatch: s.mismatch(),
                running: &s.running,
                site: s,
            },
            Err(e) => HostReport::Unreachable {
                host,
                roles,
                reachable: false,
                error: e,
            },
        }
    }
}

impl EnvReport<'_> {
    /// The environment's line: its commit, tags, last deploy, verification
    /// and lag.
    fn line(&self, shown: Shown) -> String {
        let mut line = self.name.to_string();
        let nothing = self
            .hosts
            .iter()
            .all(|h| matches!(h, HostReport::Reachable { commit: None, .. }));
        match (self.commit, &self.subject) {
            (Some(c), subject) => line.push_str(&format!(
                "  {} ({})",
                &c[..c.len().min(8)],
                subject.as_deref().unwrap_or("")
            )),
            (None, _) if nothing => line.push_str("  nothing deployed"),
            (None, _) => line.push_str("  hosts differ"),
        }
        if !self.tags.is_empty() {
            line.push_str(&format!("  {}", self.tags.join(" ")));
        }
        if let Some(d) = self.deployed {
            let how = if d.event == Action::Rollback {
                "rolled back to"
            } else {
                "deployed"
            };
            line.push_str(&format!(
                "  {how} {} by {}",
                time::show(&d.time, shown),
                d.by
            ));
            if d.forced {
                line.push_str(" (forced past the gate)");
            }
        }
        if self.commit.is_some() {
            line.push_str(match self.verification {
                Some(v) if v.outcome == Outcome::Passed => "  verified",
                Some(_) => "  verification failed",
                None => "  not verified",
            });
        }
        if let Some(Behind { env, commits }) = &self.behind {
            line.push_str(&match commits {
                0 => format!("  up to date with {env}"),
                1 => format!("  1 commit behind {env}"),
                n => format!("  {n} commits behind {env}"),
            });
        }
        line
    }
}

impl StatusReport<'_> {
    fn text(&self, shown: Shown) -> String {
        let mut text = String::new();
        for env in &self.environments {
            text.push_str(&format!("{}\n", env.line(shown)));
            for host in &env.hosts {
                host_lines(&mut text, env.name, host, shown);
            }
        }
        text
    }
}

/// A host's lines under its environment: what it serves, its last action,
/// steps still running, a mismatch, its lock.
fn host_lines(text: &mut String, env: &str, host: &HostReport, shown: Shown) {
    // Roles are named when a host has any but the web app.
    let named = |host: &str, roles: &[String]| match roles {
        [web] if web == crate::config::WEB => host.to_string(),
        _ => format!("{host} [{}]", roles.join(", ")),
    };
    let (name, site) = match host {
        HostReport::Unreachable {
            host, roles, error, ..
        } => {
            let first = error.lines().next().unwrap_or("");
            let host = named(host, roles);
            text.push_str(&format!("  {host}  unreachable: {first}\n"));
            return;
        }
        HostReport::Reachable {
            host, roles, site, ..
        } => (named(host, roles), site),
    };
    let host_line = if site.missing || site.release.is_none() {
        "nothing deployed".to_string()
    } else {
        let mut l = site.release.clone().unwrap_or_default();
        if let Some(last) = &site.last {
            let when = time::show(&last.time, shown);
            l.push_str(&format!("  last: {} {} {when}", last.action, last.outcome));
        }
        l
    };
    text.push_str(&format!("  {name}  {host_line}\n"));
    for step in &site.running {
        text.push_str(&format!("    still running (pid, step): {step}\n"));
    }
    if let Some(mismatch) = site.mismatch() {
        text.push_str(&format!(
            "    mismatch: {mismatch}; settle it with `gantry deploy {env}` (after `gantry unlock {env}` if a stale lock is left)\n"
        ));
    }
    if let Some(lock) = &site.lock {
        let mut lock = lock.clone();
        lock.since = time::show(&lock.since, shown);
        text.push_str(&format!("    locked: {}\n", lock.describe()));
    }
}
