//! A deploy of one commit to one environment, in the phases of the design,
//! each in its own file and returning what it did:
//!
//! - `noop`: when the ledger says the environment went live with the
//!   commit, every host asked what it serves first, without the lock.
//! - `start`: every host as soon as it is connected: the lock, then the
//!   prepare where the host does not serve the commit yet.
//! - `prepare`: every host, in parallel: upload (only what changed when it
//!   can), link shared, build; nothing serving changes.
//! - `migrate`: once: ask the app which database it opens, rehearse on a
//!   copy, back up, migrate, check the database that changed.
//! - `activate`: switch `current`, restart, health check, all at once or
//!   in batches; any failure switches every switched host back, then the
//!   database.
//! - `finish`: history and pruning; or, after a failure, `abandon`.
//! - `rollback`: activation of the release before, on every host, and
//!   the schema taken back with it (`rollback_schema`); `plan_rollback`
//!   says what it would do.
//!
//! Deploy and rollback run in one frame (`locking::with_locked`, or
//! `locking::while_held` after `start`): the lock is held from before
//! prepare until after finish, and released on every path.

mod activate;
mod finish;
mod hooks;
mod maintenance;
mod migrate;
mod noop;
mod outcome;
mod plan_rollback;
mod prepare;
mod put_back;
mod rejoin;
mod roles;
mod rollback;
mod rollback_schema;
mod start;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cli::output::Printer;
use crate::config::{Config, Environment, Point};
use crate::data::steps::Steps;
use crate::error::{Error, HostProblem};
use crate::ledger::git::{Commit, Delta, Repo};
use crate::model::lock::LockInfo;
use crate::remote::site::{self, Site};
use crate::remote::{locking, release};

use migrate::{Migrated, Migration, Stop};
pub use outcome::{HostSummary, Rehearsal, Summary};
pub use plan_rollback::plan_rollback;
pub use rollback::rollback;
pub use start::Go;
use start::Started;

/// How a deploy runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who asked, for the lock record.
    pub command: String,
    /// Rehearse pending migrations on a copy first (`--no-rehearse` clears it; recorded).
    pub rehearse: bool,
    /// Deploy even when every host already serves the commit.
    pub redeploy: bool,
    /// Hold writes while migrations run (`--maintenance`; also
    /// `database.maintenance`).
    pub maintenance: bool,
    /// Run migrations that break the serving release even when both serve
    /// at once (`--allow-incompatible`).
    pub allow_incompatible: bool,
}

/// The headline of a deploy, printed before connecting.
pub fn announce(env: &Environment, commit: &Commit, printer: &Printer) {
    let hosts = env.hosts.len();
    printer.headline(&format!(
        "Deploying {} ({}) to {} ({hosts} host{})",
        commit.short(),
        commit.subject,
        env.name,
        if hosts == 1 { "" } else { "s" }
    ));
}

/// Deploys `commit` to `env_name`. Connecting starts at once; `go` is
/// git's checks of the commit and the gate, which decide before any host
/// is locked.
pub async fn deploy(
    config: &Config,
    env_name: &str,
    commit: &Commit,
    options: &Options,
    go: impl std::future::Future<Output = Result<Go, Error>>,
    started: Instant,
    printer: &Printer,
) -> Result<Summary, Error> {
    let env = config.environment(env_name)?;
    let release = release::release_name(commit);
    let told = |outcome| hooks::Told {
        env,
        commit: &commit.sha,
        release: &release,
        outcome,
    };
    // Before anything is locked or changed.
    let (before, mut deployed) =
        match hooks::run_here(config, Point::BeforeDeploy, &told(None), printer).await {
            Ok(before) => {
                let run = (commit, release.as_str());
                let deployed = lock_and_deploy(config, env, run, options, go, started, printer);
                (before, deployed.await)
            }
            Err(e) => (None, Err(e)),
        };
    let (point, outcome) = match &deployed {
        Ok(summary) if summary.noop => return deployed,
        Ok(_) => (Point::AfterDeploy, "ok"),
        Err(_) => (Point::OnFailure, "failed"),
    };
    let after = hooks::run_here(config, point, &told(Some(outcome)), printer).await?;
    if let Ok(summary) = &mut deployed {
        let on_hosts = std::mem::take(&mut summary.hooks);
        summary.hooks = before.into_iter().chain(on_hosts).chain(after).collect();
    }
    deployed
}

/// The deploy from the lock to the unlock.
async fn lock_and_deploy(
    config: &Config,
    env: &Environment,
    (commit, release): (&Commit, &str),
    options: &Options,
    go: impl std::future::Future<Output = Result<Go, Error>>,
    started: Instant,
    printer: &Printer,
) -> Result<Summary, Error> {
    let release = release.to_string();
    let hosts = env.hosts.len();
    let info = LockInfo::new(&options.command, None, false);
    let run = Run::new(config, env, printer, &[], options, &info);
    let (go, sites, early) = match run.start(go, commit, &release, options.redeploy).await? {
        Started::Locked { go, sites, early } => (go, sites, early),
        Started::Served { go, sites } => {
            let summary = run.noop_summary(&sites, commit, started, go.forced);
            site::close(sites).await;
            noop::say_noop(env, commit, printer);
            return Ok(summary);
        }
        Started::Wait { go, sites } => {
            let sites = locking::lock(sites, &env.name, &info, printer).await?;
            (go, sites, Vec::new())
        }
    };
    let body = async |sites: &[Site]| {
        // A deploy of what every host already serves does nothing (the
        // start prepared none of them).
        let sha = Some(commit.sha.as_str());
        let serves = |s: &Site| s.serving_commit.as_deref() == sha;
        if !options.redeploy && sites.iter().all(|s| serves(s) && !s.env_changed) {
            return Ok::<_, Error>(run.noop_summary(sites, commit, started, go.forced));
        }
        let changed: Vec<&str> = sites
            .iter()
            .filter(|s| serves(s) && s.env_changed)
            .map(Site::name)
            .collect();
        if !changed.is_empty() {
            printer.headline(&format!(
                "The env file changed on {} since the app started: deploying {} again so the app reads it",
                changed.join(", "),
                commit.short()
            ));
        }
        let run = Run {
            sites,
            forced: go.forced,
            ..run
        };
        let (rehearsal, done) = run.deploy(commit, &release, &go.archive, early).await?;
        let findings = std::mem::take(&mut run.account().findings);
        let migrations = std::mem::take(&mut run.account().applied);
        let warned = std::mem::take(&mut run.account().hooks_warned);
        let on_hosts = [Point::AfterPrepare, Point::BeforeSwitch, Point::AfterSwitch];
        let hooks = on_hosts
            .into_iter()
            .filter(|p| config.hook(*p).is_some())
            .map(|p| hooks::ran(p, !warned.contains(&p.key())))
            .collect();
        Ok(Summary {
            env: env.name.clone(),
            release: release.clone(),
            commit: commit.sha.clone(),
            hosts,
            seconds: started.elapsed().as_secs_f64(),
            rehearsal,
            noop: false,
            forced: go.forced,
            per_host: per_host(sites, &done),
            uploaded: done.uploaded,
            findings,
            migrations,
            hooks,
        })
    };
    let summary: Summary = locking::while_held(sites, &info, printer, body).await?;
    if summary.noop {
        noop::say_noop(env, commit, printer);
    }
    Ok(summary)
}

/// What the prepare phase did on every host.
#[derive(Debug, Default)]
struct Prepared {
    /// Seconds each host took.
    seconds: BTreeMap<String, f64>,
    /// Bytes of source sent to each host.
    uploaded: BTreeMap<String, u64>,
}

fn per_host(sites: &[Site], done: &Prepared) -> Vec<HostSummary> {
    sites
        .iter()
        .map(|s| HostSummary {
            host: s.name().to_string(),
            before: s.serving.clone(),
            prepared: done.seconds.get(s.name()).copied(),
        })
        .collect()
}

/// The deltas from each base commit the hosts keep the source of (a host
/// gets only what changed since), each made the first time a host needs it.
#[derive(Default)]
struct Deltas(tokio::sync::Mutex<BTreeMap<String, Option<Arc<Delta>>>>);

impl Deltas {
    /// The delta from `base` to `commit`; `None` when git cannot make one
    /// (the base is not in this repository, or too much changed).
    /// `archive` is the commit's, as every host without a base gets it.
    async fn from(
        &self,
        dir: &Path,
        base: &str,
        commit: &Commit,
        archive: &[u8],
    ) -> Option<Arc<Delta>> {
        let mut made = self.0.lock().await;
        if let Some(delta) = made.get(base) {
            return delta.clone();
        }
        let (repo, from, to) = (Repo::at(dir), base.to_string(), commit.clone());
        let archive = archive.to_vec();
        let delta = tokio::task::spawn_blocking(move || repo.delta(&from, &to, &archive))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .map(Arc::new);
        made.insert(base.to_string(), delta.clone());
        delta
    }
}

/// A host that was switched in this run, and where it was before.
struct Switched {
    index: usize,
    previous: Option<String>,
}

/// What a failing run has to say: collected across phases for the report.
#[derive(Default)]
struct Account {
    /// What happened to the database.
    notes: Vec<String>,
    /// A constraint the data violates, with the rows that violate it.
    constraint: Option<(String, Vec<String>)>,
    /// Hosts that run the new release and could not be put back, with it.
    stuck: Vec<(String, String)>,
    /// What became of the rehearsal, for the record of a failed deploy.
    rehearsal: Rehearsal,
    /// Whether the rehearsal found that only the backup could put this
    /// deploy back (`None`: it did not tell).
    only_the_backup: Option<bool>,
    /// What the checks of the migrations' SQL found.
    findings: Vec<crate::model::commit::Finding>,
    /// The migrations applied when the new release went live.
    applied: Vec<String>,
    /// The hosts' hooks that failed but were advisory, by point.
    hooks_warned: Vec<&'static str>,
}

/// One deploy or rollback of one environment, on hosts already locked.
struct Run<'a> {
    config: &'a Config,
    env: &'a Environment,
    printer: &'a Printer,
    sites: &'a [Site],
    /// This run's lock, given back by the finish phase's script.
    info: &'a LockInfo,
    forced: bool,
    /// Rehearse pending migrations before running them.
    rehearse: bool,
    /// Run migrations that break the serving release while both serve.
    allow_incompatible: bool,
    /// When to hold writes on every host while migrations run.
    maintenance: crate::config::Maintenance,
    /// Writes are held now (the maintenance file is on the hosts).
    holding: std::sync::atomic::AtomicBool,
    /// Deltas from each base commit the hosts keep the source of.
    deltas: Deltas,
    /// Hosts on which this run created the new release folder: the only
    /// ones where a failure may remove it.
    created: Mutex<HashSet<String>>,
    /// What a failure report says, filled in by every phase.
    account: Mutex<Account>,
}

impl<'a> Run<'a> {
    fn new(
        config: &'a Config,
        env: &'a Environment,
        printer: &'a Printer,
        sites: &'a [Site],
        options: &Options,
        info: &'a LockInfo,
    ) -> Run<'a> {
        Run {
            config,
            env,
            printer,
            sites,
            info,
            forced: false,
            rehearse: options.rehearse,
            allow_incompatible: options.allow_incompatible,
            maintenance: if options.maintenance {
                crate::config::Maintenance::Always
            } else {
                env.database.maintenance
            },
            holding: Default::default(),
            deltas: Deltas::default(),
            created: Mutex::default(),
            account: Mutex::default(),
        }
    }

    /// The steps of `release` on `site`, with this run's config.
    fn steps<'s>(&'s self, site: &'s Site, release: &'s str, commit: &'s str) -> Steps<'s> {
        Steps::new(
            self.config,
            self.env,
            &site.spec,
            &site.layout,
            release,
            commit,
        )
    }

    fn account(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().expect("account lock")
    }

    /// The phases in order; on a failure, what this run changed is put
    /// back and the error says what every host serves now.
    async fn deploy(
        &self,
        commit: &Commit,
        release: &str,
        archive: &[u8],
        early: Vec<prepare::Early>,
    ) -> Result<(Rehearsal, Prepared), Error> {
        let prepared = self.prepare(commit, release, archive, early).await;
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(problems) => return Err(self.abandon(commit, release, problems, vec![]).await),
        };
        if let Err(problems) = self.hook_after_prepare(release, &commit.sha).await {
            return Err(self.abandon(commit, release, problems, vec![]).await);
        }
        let migration = match &self.config.deploy.migrate {
            None => Migration::default(),
            Some(migrate) => match self.migrate(commit, release, migrate).await {
                Ok(migration) => migration,
                Err(Stop::Host(p, recovery)) => {
                    return Err(self.abandon(commit, release, vec![p], recovery).await)
                }
                Err(Stop::Refused(p, error)) => {
                    // The releases are removed and the failure recorded; the
                    // reason is the refusal itself.
                    let _ = self.abandon(commit, release, vec![p], vec![]).await;
                    return Err(error);
                }
            },
        };
        let Migration {
            rehearsal,
            migrated,
        } = migration;
        // An interrupt during the migration: the database goes back.
        if site::interrupted() {
            let recovery = self.put_back(&[], release, migrated).await;
            let problems = vec![self.interrupt_problem("migrate")];
            return Err(self.abandon(commit, release, problems, recovery).await);
        }
        let activated = self.activate(release, &commit.sha).await;
        let problems = match activated.problems {
            Some(problems) => problems,
            None if site::interrupted() => vec![self.interrupt_problem("activate")],
            None => {
                self.release_writes().await;
                self.finish(commit, release, rehearsal).await;
                if !site::interrupted() {
                    return Ok((rehearsal, prepared));
                }
                // Interrupted while finishing: what this run changed goes back.
                vec![self.interrupt_problem("finish")]
            }
        };
        let recovery = self.put_back(&activated.switched, release, migrated).await;
        Err(self.abandon(commit, release, problems, recovery).await)
    }

    /// The problem an interrupt makes of the phase it came in.
    fn interrupt_problem(&self, phase: &str) -> HostProblem {
        let site = &self.sites[self.env.migrate_host];
        HostProblem {
            host: site.name().to_string(),
            step: phase.to_string(),
            detail: "interrupted (Ctrl-C or SIGTERM)".into(),
            ..HostProblem::default()
        }
    }

    /// Puts back what this deploy changed: every switched host first; then
    /// the database, but only when every host that ran the new release is
    /// back (otherwise those hosts keep the migrated database they need,
    /// and the note says so). Returns the problems that need a person.
    async fn put_back(
        &self,
        switched: &[Switched],
        release: &str,
        migrated: Option<Migrated>,
    ) -> Vec<HostProblem> {
        let mut recovery = self.switch_back(switched, release).await;
        let Some(m) = migrated else {
            return recovery;
        };
        let stuck: Vec<String> = self
            .account()
            .stuck
            .iter()
            .map(|(h, _)| h.clone())
            .collect();
        if stuck.is_empty() {
            recovery.extend(self.put_database_back(&m, release).await);
        } else {
            self.data_note(crate::error::PutBack::KeptForStuckHosts {
                hosts: stuck,
                backup: m.backup.clone(),
            });
        }
        recovery
    }

    fn note(&self, text: String) {
        self.account().notes.push(text);
    }
}
