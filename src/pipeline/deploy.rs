//! A deploy of one commit to one environment, in the phases of the design:
//! prepare (every host, in parallel: upload, link shared, build; nothing
//! serving changes), migrate (once), activate (switch `current`, restart,
//! health check; all at once or in batches; any failure switches every
//! switched host back), finish (history, prune). The lock is held from
//! before prepare until after finish, and released on every path.
//! `rollback` reuses activation to go back one release.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use crate::cli::output::Printer;
use crate::config::{Config, Environment, Template};
use crate::data::database::{Db, Kind};
use crate::data::fingerprint::Fingerprint;
use crate::data::steps::{failed_migration, Steps};
use crate::error::{Error, Failure, HostProblem};
use crate::ledger::git::{Commit, Repo};
use crate::model::history::Record;
use crate::model::lock::LockInfo;
use crate::remote::activation::{self, Activation, HostState, Verdict};
use crate::remote::health;
use crate::remote::release;
use crate::remote::site::{self, each, Site};

/// What a successful deploy or rollback did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub env: String,
    pub release: String,
    pub commit: String,
    pub hosts: usize,
    pub seconds: f64,
    /// What became of the rehearsal of this deploy's migrations.
    pub rehearsal: Rehearsal,
    /// Every host already served the commit: nothing was done.
    pub noop: bool,
    /// Bytes of source sent to each host (only what changed, when the host
    /// kept the last upload's source).
    pub uploaded: std::collections::BTreeMap<String, u64>,
    /// Per host: its name, what it served before, and how long preparing
    /// the release took there.
    pub per_host: Vec<(String, Option<String>, Option<f64>)>,
}

/// The rehearsal of a deploy's migrations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rehearsal {
    /// No database, no migrate command, or nothing pending.
    NotNeeded,
    /// Passed on a copy of the data, in this many seconds.
    Passed(f64),
    /// Skipped with `--no-rehearse` while migrations were pending.
    Skipped,
}

impl Rehearsal {
    /// How the history and the ledger record it.
    pub fn record(self) -> Option<String> {
        match self {
            Rehearsal::NotNeeded => None,
            Rehearsal::Passed(_) => Some("passed".into()),
            Rehearsal::Skipped => Some("skipped".into()),
        }
    }
}

/// How a deploy runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who asked, for the lock record.
    pub command: String,
    /// The deploy went past a gate (`--force`); recorded.
    pub forced: bool,
    /// Rehearse pending migrations on a copy first (`--no-rehearse` clears it; recorded).
    pub rehearse: bool,
    /// Deploy even when every host already serves the commit.
    pub redeploy: bool,
}

/// Deploys `commit` to `env_name`.
pub async fn deploy(
    config: &Config,
    env_name: &str,
    commit: &Commit,
    options: &Options,
    printer: &Printer,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let env = config.environment(env_name)?;
    let repo = Repo::at(&config.dir);
    let archive = repo.archive(commit)?;
    let release = release::release_name(commit);
    printer.headline(&format!(
        "Deploying {} ({}) to {} ({} host{})",
        commit.short(),
        commit.subject,
        env.name,
        env.hosts.len(),
        if env.hosts.len() == 1 { "" } else { "s" }
    ));
    let info = LockInfo::new(&options.command, None, false);
    let sites = site::connect_locked(config, env, &info, printer).await?;
    // A deploy of what every host already serves does nothing.
    if !options.redeploy
        && sites
            .iter()
            .all(|s| s.serving_commit.as_deref() == Some(commit.sha.as_str()))
    {
        let per_host = sites
            .iter()
            .map(|s| (s.name().to_string(), s.serving.clone(), None))
            .collect();
        let serving = sites[0].serving.clone().unwrap_or_default();
        site::unlock(&sites, &info, printer).await;
        site::close(sites).await;
        printer.finish_hosts();
        printer.headline(&format!(
            "`{}` already serves {} on every host; nothing to do (`--redeploy` deploys it again)",
            env.name,
            commit.short()
        ));
        return Ok(Summary {
            env: env.name.clone(),
            release: serving,
            commit: commit.sha.clone(),
            hosts: env.hosts.len(),
            seconds: started.elapsed().as_secs_f64(),
            rehearsal: Rehearsal::NotNeeded,
            noop: true,
            uploaded: Default::default(),
            per_host,
        });
    }
    // A host that keeps the source of an earlier upload gets only what
    // changed since.
    let mut deltas = std::collections::BTreeMap::new();
    for base in sites.iter().filter_map(|s| s.source_commit.clone()) {
        if deltas.contains_key(&base) {
            continue;
        }
        if let Ok(Some(delta)) = repo.delta(&base, commit) {
            deltas.insert(base, delta);
        }
    }
    let run = Run {
        config,
        env,
        printer,
        sites: &sites,
        deltas,
        created: Mutex::default(),
        forced: options.forced,
        rehearse: options.rehearse,
        rehearsal: Mutex::new(Rehearsal::NotNeeded),
        notes: Mutex::default(),
        constraint: Mutex::default(),
        stuck: Mutex::default(),
        prepared: Mutex::default(),
        uploaded: Mutex::default(),
        migrated: Mutex::default(),
    };
    let result = run.deploy(commit, &release, &archive).await;
    let rehearsal = *run.rehearsal.lock().expect("rehearsal lock");
    let uploaded = run.uploaded.lock().expect("uploaded lock").clone();
    let prepared = run.prepared.lock().expect("timings lock").clone();
    let per_host = sites
        .iter()
        .map(|s| {
            (
                s.name().to_string(),
                s.serving.clone(),
                prepared.get(s.name()).copied(),
            )
        })
        .collect();
    site::unlock(&sites, &info, printer).await;
    site::close(sites).await;
    printer.finish_hosts();
    result?;
    Ok(Summary {
        env: env.name.clone(),
        release,
        commit: commit.sha.clone(),
        hosts: env.hosts.len(),
        seconds: started.elapsed().as_secs_f64(),
        rehearsal,
        noop: false,
        uploaded,
        per_host,
    })
}

/// Switches every host of `env_name` back to the release before the one it
/// serves.
pub async fn rollback(
    config: &Config,
    env_name: &str,
    printer: &Printer,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let env = config.environment(env_name)?;
    printer.headline(&format!("Rolling back {}", env.name));
    let info = LockInfo::new(&format!("gantry rollback {}", env.name), None, false);
    let sites = site::connect_locked(config, env, &info, printer).await?;
    let run = Run {
        config,
        env,
        printer,
        sites: &sites,
        deltas: Default::default(),
        created: Mutex::default(),
        forced: false,
        rehearse: false,
        rehearsal: Mutex::new(Rehearsal::NotNeeded),
        notes: Mutex::default(),
        constraint: Mutex::default(),
        stuck: Mutex::default(),
        prepared: Mutex::default(),
        uploaded: Mutex::default(),
        migrated: Mutex::default(),
    };
    let result = run.rollback().await;
    let per_host = sites
        .iter()
        .map(|s| (s.name().to_string(), s.serving.clone(), None))
        .collect();
    site::unlock(&sites, &info, printer).await;
    site::close(sites).await;
    printer.finish_hosts();
    let (release, commit) = result?;
    Ok(Summary {
        env: env.name.clone(),
        release,
        commit,
        hosts: env.hosts.len(),
        seconds: started.elapsed().as_secs_f64(),
        rehearsal: Rehearsal::NotNeeded,
        noop: false,
        uploaded: Default::default(),
        per_host,
    })
}

/// A host that was switched in this run, and where it was before.
struct Switched {
    index: usize,
    previous: Option<String>,
}

struct Run<'a> {
    config: &'a Config,
    env: &'a Environment,
    printer: &'a Printer,
    sites: &'a [Site],
    /// Hosts on which this run created the new release folder: the only
    /// ones where a failure may remove it.
    created: Mutex<HashSet<String>>,
    forced: bool,
    /// Rehearse pending migrations before running them.
    rehearse: bool,
    rehearsal: Mutex<Rehearsal>,
    /// What happened to the database, for the report.
    notes: Mutex<Vec<String>>,
    /// A constraint the data violates, with the rows that violate it.
    constraint: Mutex<Option<(String, Vec<String>)>>,
    /// Hosts that run the new release and could not be put back, with it.
    stuck: Mutex<Vec<(String, String)>>,
    /// Seconds each host took to prepare the release.
    prepared: Mutex<std::collections::BTreeMap<String, f64>>,
    /// Bytes of source sent to each host.
    uploaded: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Deltas from each base commit the hosts keep the source of.
    deltas: std::collections::BTreeMap<String, crate::ledger::git::Delta>,
    /// The database this deploy migrated, and how to put it back.
    migrated: Mutex<Option<Migrated>>,
}

/// Why the migrate phase stopped the deploy.
enum Stop {
    /// A step failed on the migrate host; the recovery problems need a person.
    Host(HostProblem, Vec<HostProblem>),
    /// The deploy was refused before anything migrated (a failed
    /// rehearsal, an app that opens another database): this error says why.
    Refused(HostProblem, Error),
}

/// A migration that ran in this deploy.
struct Migrated {
    db: Db,
    /// The backup taken just before it.
    backup: Option<String>,
    /// The migration created the database (there was none).
    created: bool,
}

impl<'a> Run<'a> {
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

    async fn deploy(&self, commit: &Commit, release: &str, archive: &[u8]) -> Result<(), Error> {
        // Prepare: nothing that serves changes.
        let prepared = each(self.sites, self.env.parallel, |site| {
            self.prepare(site, commit, release, archive)
        })
        .await;
        let problems: Vec<HostProblem> = prepared.into_iter().filter_map(Result::err).collect();
        if !problems.is_empty() {
            return Err(self
                .abandon("deploy", commit, release, problems, Vec::new())
                .await);
        }

        // Migrate, once per environment.
        if let Some(migrate) = &self.config.deploy.migrate {
            match self.migrate(commit, release, migrate).await {
                Ok(()) => {}
                Err(Stop::Host(p, recovery)) => {
                    return Err(self
                        .abandon("deploy", commit, release, vec![p], recovery)
                        .await)
                }
                Err(Stop::Refused(p, error)) => {
                    // The releases are removed and the failure recorded; the
                    // reason is the refusal itself.
                    let _ = self
                        .abandon("deploy", commit, release, vec![p], Vec::new())
                        .await;
                    return Err(error);
                }
            }
        }

        // An interrupt during the migration: the database goes back.
        if site::interrupted() {
            let recovery = self.put_back(&[], release).await;
            return Err(self
                .abandon(
                    "deploy",
                    commit,
                    release,
                    vec![self.interrupt_problem("migrate")],
                    recovery,
                )
                .await);
        }

        // Activate, batch by batch.
        let mut switched = Vec::new();
        let problems = match self.activate(release, &commit.sha, &mut switched).await {
            Err(problems) => problems,
            Ok(()) if site::interrupted() => vec![self.interrupt_problem("activate")],
            Ok(()) => {
                self.finish(commit, release).await;
                if !site::interrupted() {
                    return Ok(());
                }
                // Interrupted while finishing: what this run changed goes back.
                vec![self.interrupt_problem("finish")]
            }
        };
        let recovery = self.put_back(&switched, release).await;
        Err(self
            .abandon("deploy", commit, release, problems, recovery)
            .await)
    }

    /// Records the deploy on every host and prunes old releases.
    async fn finish(&self, commit: &Commit, release: &str) {
        each(self.sites, 32, |site| async move {
            let mut record = Record::new("deploy", &self.env.name, site.name(), "ok");
            record.forced = self.forced;
            record.rehearsal = self.rehearsal.lock().expect("rehearsal lock").record();
            record.commit = Some(commit.sha.clone());
            record.release = Some(release.to_string());
            record.previous = site.serving.clone();
            site.record(self.printer, &record).await;
            self.prune(site, release).await;
            self.printer
                .host(site.name(), &format!("serving {release}"));
        })
        .await;
    }

    /// The problem an interrupt makes of the phase it came in.
    fn interrupt_problem(&self, phase: &str) -> HostProblem {
        let site = &self.sites[self.env.migrate_host];
        HostProblem {
            host: site.name().to_string(),
            step: phase.to_string(),
            command: None,
            code: None,
            detail: "interrupted (Ctrl-C or SIGTERM)".into(),
            unreachable: false,
            output: String::new(),
            key: None,
        }
    }

    /// Asks the app which database it opens, checks for pending
    /// migrations, rehearses them on a copy, backs the database up,
    /// migrates, and checks that the database it backed up is the one that
    /// changed; on failure the backup is put back while the old release
    /// keeps serving.
    async fn migrate(
        &self,
        commit: &Commit,
        release: &str,
        migrate: &Template,
    ) -> Result<(), Stop> {
        let p = self.printer;
        let site = &self.sites[self.env.migrate_host];
        let steps = self.steps(site, release, &commit.sha);
        let plan = steps.migrate_plan(&self.env.database, migrate);
        let host = |e: HostProblem| Stop::Host(e, Vec::new());
        if let (Some(db), Some(ask)) = (&plan.db, &plan.ask) {
            let out = site.run(p, ask, None).await.map_err(host)?;
            if let crate::data::wiring::Answer::Differs(app) =
                crate::data::wiring::compare(db, &db.location, &out.stdout)
            {
                let error = Error::WrongDatabase(Box::new(crate::error::WrongDatabase {
                    env: self.env.name.clone(),
                    host: site.name().to_string(),
                    expected: db.shown(),
                    env_var: db.env_var.clone(),
                    app: app.describe(),
                    rehearsal: false,
                }));
                let problem = site.problem(&ask.name, None, None, "the app opens another database");
                return Err(Stop::Refused(problem, error));
            }
        }
        // The check says whether migrations are pending, and (SQLite)
        // whether the database existed before it ran: a check may create
        // an empty file, which is not worth a backup.
        let (pending, missing_before) = match &plan.check {
            None => (true, false),
            Some(check) => match site.run(p, check, None).await {
                Ok(out) => (
                    false,
                    out.stdout.contains(crate::data::steps::NO_DATABASE_MARK),
                ),
                Err(problem) if problem.unreachable => return Err(host(problem)),
                Err(problem) => (
                    true,
                    problem
                        .output
                        .contains(crate::data::steps::NO_DATABASE_MARK),
                ),
            },
        };
        if !pending {
            // Nothing to run, so nothing to fingerprint, back up or rehearse.
            p.host(site.name(), "no pending migrations");
            return Ok(());
        }
        let before = match &plan.fingerprint {
            Some(step) => {
                let mut f =
                    Fingerprint::parse(&site.run(p, step, None).await.map_err(host)?.stdout);
                f.missing |= missing_before;
                Some(f)
            }
            None => None,
        };
        if plan.db.is_some() {
            if self.rehearse {
                let rehearsed = crate::data::rehearse::rehearse_on(
                    self.config,
                    self.env,
                    site,
                    commit,
                    release,
                    crate::data::rehearse::Source::Prepared(release),
                    p,
                )
                .await;
                match rehearsed {
                    Ok(report) => {
                        if report.pending {
                            crate::data::rehearse::announce(&report, p);
                        }
                        *self.rehearsal.lock().expect("rehearsal lock") =
                            Rehearsal::Passed(report.seconds);
                    }
                    Err(error) => {
                        let problem = site.problem(
                            "rehearsal",
                            None,
                            None,
                            "the rehearsal on a copy of the data did not pass",
                        );
                        return Err(Stop::Refused(problem, error));
                    }
                }
            } else {
                p.warn(&format!(
                    "migrations are pending on `{}` and are not rehearsed (--no-rehearse; recorded)",
                    self.env.name
                ));
                *self.rehearsal.lock().expect("rehearsal lock") = Rehearsal::Skipped;
            }
        }
        let mut backup = None;
        // A database that did not exist before this deploy (the check may
        // have created an empty file) is not backed up: it is removed if
        // the migration fails.
        let created_db = before.as_ref().is_some_and(|f| f.missing);
        if let (false, Some((step, path))) = (created_db, &plan.backup) {
            site.step(p, &step.name, None, &step.script, None)
                .await
                .map_err(host)?;
            backup = Some(path.clone());
            self.note(format!(
                "the database was backed up to {} on {}",
                path,
                site.name()
            ));
        }
        let step = &plan.migrate;
        let mut problem = match site.run(p, step, None).await {
            Ok(_) => {
                let Some(db) = &plan.db else { return Ok(()) };
                // The database that was backed up must be the one that
                // changed, when the check said migrations were pending.
                if let (Some(_), Some(before)) = (&plan.check, &before) {
                    let after =
                        crate::data::rehearse::read_fingerprint(site, db, &db.location, true, p)
                            .await
                            .map_err(host)?;
                    if after.changes(before).is_empty() {
                        let problem = site.problem(
                            "migrate",
                            step.shown.as_deref(),
                            None,
                            &format!(
                                "the migrate command succeeded, but the database Gantry backed up ({}) did not change: the app migrated another database",
                                db.shown()
                            ),
                        );
                        let recovery = self
                            .put_database_back(db, backup.as_deref(), created_db, true)
                            .await;
                        return Err(Stop::Host(problem, recovery));
                    }
                }
                self.prune_backups(site, db).await;
                // Kept, in case activation fails and the old release must
                // get its database back.
                *self.migrated.lock().expect("migrated lock") = Some(Migrated {
                    db: db.clone(),
                    backup,
                    created: created_db,
                });
                return Ok(());
            }
            Err(problem) => problem,
        };
        if let Some(name) = failed_migration(&problem.output) {
            problem.step = format!("migration {name}");
        }
        let Some(db) = &plan.db else {
            return Err(host(problem));
        };
        let violation = crate::data::database::Violation::parse(&problem.output);
        // SQLite: the violating rows are read from the backup, which holds
        // the data as it was before the migration.
        let mut rows = Vec::new();
        if let (Some(v), Some(path), crate::data::database::Kind::Sqlite) =
            (&violation, &backup, db.engine)
        {
            rows = crate::data::rehearse::violating_rows(site, db, path, v, p).await;
        }
        let recovery = self
            .put_database_back(db, backup.as_deref(), created_db, true)
            .await;
        // PostgreSQL: from the database itself, once restored.
        if let (Some(v), crate::data::database::Kind::Postgres, true) =
            (&violation, db.engine, recovery.is_empty())
        {
            rows = crate::data::rehearse::violating_rows(site, db, &db.location, v, p).await;
        }
        if let Some(v) = violation {
            *self.constraint.lock().expect("constraint lock") = Some((v.describe(), rows));
        }
        Err(Stop::Host(problem, recovery))
    }

    /// Puts the database back as it was before this deploy's migration:
    /// the backup restored (and, for SQLite, the serving release restarted
    /// so it reopens the file), or a database the migration created
    /// removed. `restart` restarts (and checks) the serving release on the
    /// migrate host after a SQLite restore, unless something else will.
    /// Returns the problems met; those need a person.
    async fn put_database_back(
        &self,
        db: &Db,
        backup: Option<&str>,
        created: bool,
        restart: bool,
    ) -> Vec<HostProblem> {
        let p = self.printer;
        let site = &self.sites[self.env.migrate_host];
        let mut recovery = Vec::new();
        if let Some(path) = backup {
            match site
                .step_always(
                    p,
                    "restore the database",
                    None,
                    &db.restore_script(path),
                    None,
                )
                .await
            {
                Ok(_) => {
                    self.note(format!(
                        "the database was restored from {path} (taken just before the migration)"
                    ));
                    // A SQLite app still holds the replaced file open: restart
                    // the release that serves, so it reopens the restored one.
                    if let (Kind::Sqlite, Some(serving), true) = (db.engine, &site.serving, restart)
                    {
                        if let Err(e) = self.restart_and_check(site, serving, "", true).await {
                            recovery.push(e);
                        }
                    }
                }
                Err(mut e) => {
                    e.detail.push_str(&format!(
                        "\nthe backup is at {path} on {}; restore it with `gantry restore {} {}`",
                        site.name(),
                        self.env.name,
                        path.rsplit('/').next().unwrap_or(path)
                    ));
                    recovery.push(e);
                }
            }
        } else if created && db.engine == Kind::Sqlite {
            // There was no database before: leave none.
            if let Err(e) = site
                .step_always(
                    p,
                    "remove the new database",
                    None,
                    &db.remove_script(),
                    None,
                )
                .await
            {
                recovery.push(e);
            }
        }
        recovery
    }

    fn note(&self, text: String) {
        self.notes.lock().expect("notes lock").push(text);
    }

    /// Keeps the newest `keep_backups` backups on the migrate host.
    async fn prune_backups(&self, site: &Site, _db: &Db) {
        let keep = self.env.database.keep_backups;
        let script = format!(
            "cd {} 2>/dev/null || exit 0\nls -1 | sort | head -n -{keep} | while read -r f; do rm -f -- \"$f\"; done",
            crate::base::shell::quote(&site.layout.backups())
        );
        if let Err(e) = site
            .step_always(self.printer, "prune backups", None, &script, None)
            .await
        {
            self.printer
                .warn(&format!("could not prune old backups: {e}"));
        }
    }

    async fn prepare(
        &self,
        site: &Site,
        commit: &Commit,
        release: &str,
        archive: &[u8],
    ) -> Result<(), HostProblem> {
        let started = Instant::now();
        let steps = self.steps(site, release, &commit.sha);
        for step in steps.prepare() {
            if step.upload {
                let sent = self
                    .upload(site, release, &commit.sha, &step, archive)
                    .await?;
                self.created
                    .lock()
                    .expect("created lock")
                    .insert(site.name().to_string());
                self.uploaded
                    .lock()
                    .expect("uploaded lock")
                    .insert(site.name().to_string(), sent);
                continue;
            }
            let out = site
                .step(
                    self.printer,
                    &step.name,
                    step.shown.as_deref(),
                    &step.script,
                    None,
                )
                .await?;
            if out.stdout.contains(crate::data::steps::REUSED_MARK) {
                self.printer.host(
                    site.name(),
                    &format!("{} skipped: inputs unchanged, outputs reused", step.name),
                );
            }
        }
        self.prepared
            .lock()
            .expect("timings lock")
            .insert(site.name().to_string(), started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Uploads the release: only what changed when the host keeps the
    /// source of an earlier upload, else (or if that fails) the whole
    /// archive. Returns the bytes sent.
    async fn upload(
        &self,
        site: &Site,
        release: &str,
        commit: &str,
        full: &crate::remote::release::Planned,
        archive: &[u8],
    ) -> Result<u64, HostProblem> {
        let delta = site
            .source_commit
            .as_ref()
            .and_then(|base| self.deltas.get(base));
        if let Some(delta) = delta {
            let script = format!(
                "{}\n{}",
                release::upload_delta_script(
                    &site.layout,
                    release,
                    &delta.base,
                    &delta.deleted,
                    !delta.archive.is_empty(),
                ),
                release::keep_source_script(&site.layout, release, commit)
            );
            let stdin = (!delta.archive.is_empty()).then_some(delta.archive.as_slice());
            let name = format!(
                "upload {} changed, {} deleted",
                delta.changed,
                delta.deleted.len()
            );
            match site.step(self.printer, &name, None, &script, stdin).await {
                Ok(_) => return Ok(delta.archive.len() as u64),
                Err(p) if p.unreachable => return Err(p),
                Err(p) => self.printer.warn(&format!(
                    "{}: the delta upload failed ({}); sending the whole archive",
                    site.name(),
                    p.detail.lines().last().unwrap_or("")
                )),
            }
        }
        site.step(self.printer, &full.name, None, &full.script, Some(archive))
            .await?;
        Ok(archive.len() as u64)
    }

    /// Switches hosts to `release` in batches, restarting and checking each.
    /// Every host that was switched is pushed onto `switched`, so a failure
    /// can put them all back.
    async fn activate(
        &self,
        release: &str,
        commit: &str,
        switched: &mut Vec<Switched>,
    ) -> Result<(), Vec<HostProblem>> {
        let indexes: Vec<usize> = (0..self.sites.len()).collect();
        let size = if self.env.batch == 0 {
            indexes.len()
        } else {
            self.env.batch
        };
        for batch in indexes.chunks(size.max(1)) {
            let results = each(batch, self.env.parallel.max(batch.len()), |&i| {
                self.activate_one(i, release, commit)
            })
            .await;
            let mut problems = Vec::new();
            for (i, (previous, was_switched, result)) in batch.iter().zip(results) {
                if was_switched {
                    switched.push(Switched {
                        index: *i,
                        previous,
                    });
                }
                if let Err(p) = result {
                    problems.push(p);
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
        }
        Ok(())
    }

    /// Activates `release` on host `i` through the host-side activation
    /// (switch, restart, host-side health check, put back by the host on
    /// failure), then makes the health check from here when it is not made
    /// on the host. Returns where `current` pointed before, whether the
    /// host may still be on `release` (so that a failure elsewhere puts it
    /// back), and the outcome.
    async fn activate_one(
        &self,
        i: usize,
        release: &str,
        commit: &str,
    ) -> (Option<String>, bool, Result<(), HostProblem>) {
        let site = &self.sites[i];
        let p = self.printer;
        let previous = site.serving.clone();
        let vars = release::run_vars(&site.spec, &site.layout, Some(release), Some(commit));
        let health = self.config.deploy.health.as_ref();
        let (restart, check) = self.activation_steps(site, release, commit);
        let activation = Activation {
            layout: &site.layout,
            release,
            put_back: Some(previous.as_deref()),
            restart: restart.as_ref().map(|r| r.script.clone()),
            check,
        };
        let step = if restart.is_some() {
            "switch, restart"
        } else {
            "switch"
        };
        let out = match site
            .step(p, step, None, &activation.run_script(), None)
            .await
        {
            Ok(out) => out,
            // Refused before it started (not switched), or the connection
            // broke: the host finishes by itself, where is unknown here.
            Err(e) => return (previous, e.unreachable, Err(e)),
        };
        match activation::parse(&out.stdout) {
            Verdict::Ok => {}
            Verdict::Failed {
                step,
                code,
                state,
                detail,
            } => {
                let problem = HostProblem {
                    host: site.name().to_string(),
                    command: (step == "restart")
                        .then(|| restart.as_ref().and_then(|r| r.shown.clone()))
                        .flatten(),
                    step,
                    code,
                    output: detail.clone(),
                    detail,
                    unreachable: false,
                    key: None,
                };
                let switched = match state {
                    HostState::Old | HostState::Back => false,
                    HostState::New | HostState::Unknown => true,
                    HostState::Stuck => {
                        self.stuck(site.name(), release);
                        false
                    }
                };
                return (previous, switched, Err(problem));
            }
        }
        if let Some(check) = health.filter(|h| !h.on_host) {
            let url = check.url.render(&vars);
            p.host(site.name(), &format!("health check {url}"));
            let body = check.body.as_ref().map(|b| b.render(&vars));
            if let Err(f) = health::check_from(check, &url, body.as_deref(), site, true).await {
                return (
                    previous,
                    true,
                    Err(site.problem("health check", None, None, &f.to_string())),
                );
            }
        }
        (previous, true, Ok(()))
    }

    /// What an activation of `release` runs on `site`: the restart (a step,
    /// for its command in reports) and the host-side health check.
    fn activation_steps(
        &self,
        site: &Site,
        release: &str,
        commit: &str,
    ) -> (Option<crate::remote::release::Planned>, Option<String>) {
        let vars = release::run_vars(&site.spec, &site.layout, Some(release), Some(commit));
        let steps = self.steps(site, release, commit);
        let restart = self
            .config
            .deploy
            .restart
            .as_ref()
            .map(|r| steps.command("restart", r, true));
        let check = self
            .config
            .deploy
            .health
            .as_ref()
            .filter(|h| h.on_host)
            .map(|h| {
                let body = h.body.as_ref().map(|b| b.render(&vars));
                activation::host_check_script(h, &h.url.render(&vars), body.as_deref())
            });
        (restart, check)
    }

    /// Restarts `release` in `current` on `site` and checks it: after a
    /// SQLite restore, so the serving release reopens the restored file.
    async fn restart_and_check(
        &self,
        site: &Site,
        release: &str,
        commit: &str,
        always: bool,
    ) -> Result<(), HostProblem> {
        let p = self.printer;
        let vars = release::run_vars(&site.spec, &site.layout, Some(release), Some(commit));
        if let Some(restart) = &self.config.deploy.restart {
            let steps = self.steps(site, release, commit);
            let step = steps.command("restart", restart, true);
            if always {
                site.run_always(p, &step, None).await?;
            } else {
                site.run(p, &step, None).await?;
            }
        }
        if let Some(check) = &self.config.deploy.health {
            let url = check.url.render(&vars);
            p.host(site.name(), &format!("health check {url}"));
            let body = check.body.as_ref().map(|b| b.render(&vars));
            if let Err(f) = health::check_from(check, &url, body.as_deref(), site, !always).await {
                return Err(site.problem("health check", None, None, &f.to_string()));
            }
        }
        Ok(())
    }

    /// A host that runs `release` and could not be put back.
    fn stuck(&self, host: &str, release: &str) {
        self.stuck
            .lock()
            .expect("stuck lock")
            .push((host.to_string(), release.to_string()));
    }

    /// Puts every switched host back where it was, through the host-side
    /// activation (switch back, restart the old release), even after an
    /// interrupt. Returns the problems met; the hosts they name could not
    /// be put back, run the new release, and need a person.
    async fn switch_back(&self, switched: &[Switched], release: &str) -> Vec<HostProblem> {
        let results = each(switched, 32, |s| async move {
            let site = &self.sites[s.index];
            let p = self.printer;
            let Some(previous) = &s.previous else {
                // No release was live here before: none is now.
                let script = release::switch_back_script(&site.layout, None);
                return site
                    .step_always(p, "switch back", None, &script, None)
                    .await
                    .map(|_| ());
            };
            // The old release's commit is not known here: its check looks
            // at the status (a `{commit}` in the body matches anything).
            let vars = release::run_vars(&site.spec, &site.layout, Some(previous), Some(""));
            let health = self.config.deploy.health.as_ref();
            let (restart, check) = self.activation_steps(site, previous, "");
            let activation = Activation {
                layout: &site.layout,
                release: previous,
                put_back: None,
                restart: restart.map(|r| r.script),
                check,
            };
            let out = site
                .step_always(p, "switch back", None, &activation.run_script(), None)
                .await?;
            match activation::parse(&out.stdout) {
                Verdict::Ok => match health.filter(|h| !h.on_host) {
                    None => Ok(()),
                    Some(check) => {
                        let url = check.url.render(&vars);
                        p.host(site.name(), &format!("health check {url}"));
                        let body = check.body.as_ref().map(|b| b.render(&vars));
                        health::check_from(check, &url, body.as_deref(), site, false)
                            .await
                            .map_err(|f| {
                                site.problem(
                                    "putting back: health check",
                                    None,
                                    None,
                                    &f.to_string(),
                                )
                            })
                    }
                },
                Verdict::Failed {
                    step, code, detail, ..
                } => Err(HostProblem {
                    host: site.name().to_string(),
                    step: format!("putting back: {step}"),
                    command: None,
                    code,
                    output: detail.clone(),
                    detail,
                    unreachable: false,
                    key: None,
                }),
            }
        })
        .await;
        let mut problems = Vec::new();
        for result in results {
            if let Err(problem) = result {
                self.stuck(&problem.host, release);
                problems.push(problem);
            }
        }
        problems
    }

    /// Puts back what this deploy changed: every switched host first; then
    /// the database, but only when every host that ran the new release is
    /// back (otherwise those hosts keep the migrated database they need,
    /// and the note says so). Returns the problems that need a person.
    async fn put_back(&self, switched: &[Switched], release: &str) -> Vec<HostProblem> {
        let mut recovery = self.switch_back(switched, release).await;
        let migrated = self.migrated.lock().expect("migrated lock").take();
        if let Some(m) = migrated {
            let stuck: Vec<String> = self
                .stuck
                .lock()
                .expect("stuck lock")
                .iter()
                .map(|(h, _)| h.clone())
                .collect();
            if stuck.is_empty() {
                recovery.extend(
                    self.put_database_back(&m.db, m.backup.as_deref(), m.created, true)
                        .await,
                );
            } else {
                let kept = m
                    .backup
                    .as_deref()
                    .map(|b| format!("; the backup taken before the migration is {b}"))
                    .unwrap_or_default();
                self.note(format!(
                    "the database was kept migrated, because {} still run{} the new release on it{kept}",
                    stuck.join(", "),
                    if stuck.len() == 1 { "s" } else { "" }
                ));
            }
        }
        recovery
    }

    /// Removes the new release everywhere, records the failure, and builds
    /// the error with what every host serves now.
    async fn abandon(
        &self,
        action: &str,
        commit: &Commit,
        release: &str,
        problems: Vec<HostProblem>,
        mut recovery: Vec<HostProblem>,
    ) -> Error {
        let problems_ref = &problems;
        let created = self.created.lock().expect("created lock").clone();
        let created = &created;
        let discarded = each(self.sites, 32, |site| async move {
            let problems = problems_ref;
            let result = if created.contains(site.name()) {
                site.step_always(
                    self.printer,
                    "discard release",
                    None,
                    &release::discard_script(&site.layout, release),
                    None,
                )
                .await
                .map(|_| ())
            } else {
                Ok(())
            };
            let mut record = Record::new(action, &self.env.name, site.name(), "failed");
            record.commit = Some(commit.sha.clone());
            record.release = Some(release.to_string());
            record.previous = site.serving.clone();
            record.message = Some(match problems.iter().find(|p| p.host == site.name()) {
                Some(p) => format!("{} failed here; old release kept", p.step),
                None => "failed on another host; old release kept".to_string(),
            });
            site.record(self.printer, &record).await;
            result
        })
        .await;
        recovery.extend(
            discarded
                .into_iter()
                .filter_map(Result::err)
                .filter(|p| p.unreachable),
        );
        Error::Failed(Box::new(Failure {
            action: action.to_string(),
            env: self.env.name.clone(),
            problems,
            serving: self.serving(),
            recovery,
            notes: std::mem::take(&mut *self.notes.lock().expect("notes lock")),
            constraint: self.constraint.lock().expect("constraint lock").take(),
            interrupted: site::interrupted(),
            stuck: self.stuck.lock().expect("stuck lock").clone(),
        }))
    }

    fn serving(&self) -> Vec<(String, String)> {
        self.sites
            .iter()
            .map(|s| {
                (
                    s.name().to_string(),
                    s.serving
                        .clone()
                        .unwrap_or_else(|| "nothing (no release was live)".to_string()),
                )
            })
            .collect()
    }

    /// Deletes old releases on one host; a failure only warns.
    async fn prune(&self, site: &Site, release: &str) {
        let Ok(out) = site
            .step_always(
                self.printer,
                "prune",
                None,
                &release::list_script(&site.layout),
                None,
            )
            .await
        else {
            return;
        };
        let (releases, _) = release::parse_list(&out.stdout);
        let doomed = release::to_prune(
            &releases,
            Some(release),
            site.serving.as_deref(),
            self.config.deploy.keep_releases,
        );
        if doomed.is_empty() {
            return;
        }
        let paths: Vec<String> = doomed.iter().map(|d| site.layout.release(d)).collect();
        let script = format!("rm -rf {}", crate::base::shell::join(&paths));
        if let Err(p) = site
            .step_always(self.printer, "prune", None, &script, None)
            .await
        {
            self.printer
                .warn(&format!("could not prune old releases: {p}"));
        }
    }

    async fn rollback(&self) -> Result<(String, String), Error> {
        // Find the release before the current one on every host.
        let listed = each(self.sites, 32, |site| async move {
            let out = site
                .step(
                    self.printer,
                    "list releases",
                    None,
                    &release::list_script(&site.layout),
                    None,
                )
                .await?;
            let (releases, current) = release::parse_list(&out.stdout);
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
                let mut record = Record::new("rollback", &self.env.name, site.name(), "failed");
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
                stuck: self.stuck.lock().expect("stuck lock").clone(),
            })));
        }
        for (site, target) in self.sites.iter().zip(&targets) {
            let mut record = Record::new("rollback", &self.env.name, site.name(), "ok");
            record.commit = target.commit.clone();
            record.release = Some(target.name.clone());
            record.previous = site.serving.clone();
            site.record(self.printer, &record).await;
            self.printer
                .host(site.name(), &format!("serving {}", target.name));
        }
        let first = &targets[0];
        Ok((first.name.clone(), first.commit.clone().unwrap_or_default()))
    }
}
