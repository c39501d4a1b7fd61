//! Rehearsals: a commit's migrations run on a copy of an environment's
//! database before anything live is touched, on the migrate host, in a
//! scratch area (`.gantry/rehearsals/`) that cannot reach the real site.
//!
//! Isolation is by construction: the scratch release gets a scratch
//! `shared/` of its own, where the database file is a consistent copy
//! (SQLite backup API; PostgreSQL: a scratch database restored from
//! `pg_dump`), other shared files are copies and shared folders are empty,
//! so whatever the app's settings say, no path in the scratch release leads
//! to the real site's shared files. On top of that, the real database's
//! fingerprint is read before and after (a change is an error that says
//! what changed), the copy must show that the migrations ran on it, and
//! with the Django preset the app is asked which database it opens before
//! anything migrates. A deploy rehearses from the release it has just
//! prepared (hard-linked into the scratch area), so nothing is built twice;
//! `gantry rehearse` builds the commit in the scratch area.

use std::time::Instant;

use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::data::database::{hide_password, Db, Kind, Violation};
use crate::data::fingerprint::{self, Fingerprint};
use crate::data::schema::Diff;
use crate::data::steps::{failed_migration, Steps};
use crate::data::wiring::{self, Answer};
use crate::error::{CopyNotUsed, Error, HostProblem, Warning, WrongDatabase};
use crate::ledger::git::{Commit, Repo};
use crate::model::lock::LockInfo;
use crate::remote::locking;
use crate::remote::release::{self, Layout};
use crate::remote::site::{self, interrupted, Site};

pub use crate::data::rows::violating_rows;
pub use crate::model::commit::Report;

/// Where the rehearsal's release comes from.
pub enum Source<'a> {
    /// A complete release of the commit in `releases/`, just prepared by
    /// the deploy: hard-linked into the scratch area, never built again.
    Prepared(&'a str),
    /// The commit's archive: uploaded and built in the scratch area.
    Archive(&'a [u8]),
}

/// `gantry rehearse ENV REV`: takes the lock on the migrate host, builds
/// the commit in the scratch area and rehearses there.
pub async fn rehearse(
    config: &Config,
    env_name: &str,
    commit: &Commit,
    printer: &Printer,
) -> Result<Report, Error> {
    let env = config.environment(env_name)?;
    if config.deploy.migrate.is_none() {
        return Err(Error::NothingToRehearse);
    }
    if matches!(env.database.engine, crate::config::Engine::None) {
        return Err(Error::NoDatabase {
            env: env_name.to_string(),
        });
    }
    let repo = Repo::at(&config.dir);
    let archive = repo.archive(commit)?;
    // Only the host that runs migrations is involved.
    let host = env.hosts[env.migrate_host].clone();
    let scope = Environment {
        hosts: vec![host],
        migrate_host: 0,
        ..env.clone()
    };
    printer.headline(&format!(
        "Rehearsing the migrations of {} ({}) on a copy of {}'s database",
        commit.short(),
        commit.subject,
        env.name
    ));
    let info = LockInfo::new(
        &format!("gantry rehearse {env_name} {}", commit.short()),
        None,
        false,
    );
    let sites = locking::connect_locked(config, &scope, &info, printer).await?;
    let name = release::release_name(commit);
    let result = rehearse_on(
        config,
        env,
        &sites[0],
        commit,
        &name,
        Source::Archive(&archive),
        printer,
    )
    .await;
    locking::unlock(&sites, &info, printer).await;
    site::close(sites).await;
    printer.finish_hosts();
    let report = result?;
    announce(&report, printer);
    Ok(report)
}

/// Prints the outcome of a rehearsal that passed.
pub fn announce(report: &Report, printer: &Printer) {
    if report.pending {
        printer.headline(&format!(
            "Rehearsal passed: the migrations of {} ran on a copy of {}'s data in {}",
            report.commit.short(),
            report.env,
            crate::base::time::human(std::time::Duration::from_secs_f64(report.seconds))
        ));
        if let Some(foreseen) = &report.put_back {
            printer.headline(&foreseen.describe());
        }
    } else {
        printer.headline(&format!(
            "Rehearsal: {} has no pending migrations for {}",
            report.commit.short(),
            report.env
        ));
    }
}

/// Rehearses `commit`'s migrations on `site` (the migrate host, whose lock
/// the caller holds) against a copy of `env`'s database. The scratch area
/// is removed whatever happens. A failed migration is
/// `Error::RehearsalFailed`; a copy the app did not use, a database the
/// app does not open, or a real database that changed meanwhile are
/// errors of their own.
pub async fn rehearse_on(
    config: &Config,
    env: &Environment,
    site: &Site,
    commit: &Commit,
    name: &str,
    source: Source<'_>,
    printer: &Printer,
) -> Result<Report, Error> {
    let real = &site.layout;
    let layout = Layout::rehearsal(&real.path);
    let real_vars = release::run_vars(&site.spec, real, Some(name), Some(&commit.sha));
    let db = Db::new(
        &env.database,
        &real_vars,
        &release::env_file_prelude(config, &real_vars),
    )
    .ok_or_else(|| Error::NoDatabase {
        env: env.name.clone(),
    })?;
    let copy = db.copy_location(&real.shared(), &layout.shared(), &layout.rehearsals(), name);
    let fail = |p: HostProblem| Error::Hosts {
        what: format!("the rehearsal on a copy of `{}`'s database", env.name),
        problems: vec![p],
    };

    // Leftovers of an interrupted rehearsal go first.
    let scratch = crate::base::shell::quote(&layout.rehearsals());
    site.step(
        printer,
        "clear old rehearsals",
        None,
        &format!("rm -rf {scratch} && mkdir -p {scratch}"),
        None,
    )
    .await
    .map_err(fail)?;
    let before = read_fingerprint(site, &db, &db.location, false, printer)
        .await
        .map_err(fail)?;

    let scratch_copy = Scratch {
        config,
        env,
        site,
        layout: &layout,
        db: &db,
        copy: &copy,
        printer,
    };
    let report = Report {
        env: env.name.clone(),
        commit: commit.clone(),
        host: site.name().to_string(),
        pending: true,
        seconds: 0.0,
        migration: None,
        output: String::new(),
        violation: None,
        rows: Vec::new(),
        put_back: None,
        breaks: Vec::new(),
        findings: Vec::new(),
    };
    let result = match scratch_copy.prepare(name, commit, source).await {
        Ok(steps) => scratch_copy.migrate(&steps, report).await,
        Err(e) => Err(e),
    };

    // Always: no copy and no scratch release is left behind, and the real
    // database is what it was.
    delete_scratch(site, &db, &copy, &layout, printer).await;
    let after = read_fingerprint(site, &db, &db.location, true, printer)
        .await
        .map_err(fail)?;
    let changes = after.changes(&before);
    if !changes.structural.is_empty() {
        return Err(Error::RealDatabaseChanged(Box::new(
            crate::error::RealChanged {
                env: env.name.clone(),
                host: site.name().to_string(),
                database: db.shown(),
                changes: changes.all(),
            },
        )));
    }
    if !changes.content.is_empty() {
        printer.warn(Warning::WritesDuringRehearsal {
            env: env.name.clone(),
            changes: changes.content.clone(),
        });
    }
    let report = result?;
    if report.migration.is_some() {
        return Err(Error::RehearsalFailed(Box::new(report)));
    }
    Ok(report)
}

/// The copy of the database and of the release a rehearsal runs in.
pub(crate) struct Scratch<'a> {
    pub config: &'a Config,
    pub env: &'a Environment,
    pub site: &'a Site,
    /// The scratch layout under `.gantry/rehearsals/`.
    pub layout: &'a Layout,
    pub db: &'a Db,
    /// Where the copy of the database is.
    pub copy: &'a str,
    pub printer: &'a Printer,
}

impl Scratch<'_> {
    pub(crate) fn fail(&self, p: HostProblem) -> Error {
        Error::Hosts {
            what: format!("the rehearsal on a copy of `{}`'s database", self.env.name),
            problems: vec![p],
        }
    }

    /// Copies the shared files and the database, puts the release in the
    /// scratch area (from the prepared release or the archive), and checks
    /// that the app opens the copy. Returns the steps, seeing the copy.
    pub(crate) async fn prepare<'s>(
        &'s self,
        name: &'s str,
        commit: &'s Commit,
        source: Source<'_>,
    ) -> Result<Steps<'s>, Error> {
        let (site, layout, db, printer) = (self.site, self.layout, self.db, self.printer);
        let config = self.config;
        // The scratch shared folder first: copies only.
        let isolate = release::isolate_shared_script(
            &site.layout,
            layout,
            &config.deploy.shared,
            &config.setup.env_file,
            db.env_var.as_deref().map(|v| (v, self.copy)),
            (db.engine == Kind::Sqlite).then_some(db.location.as_str()),
        );
        site.step(printer, "isolate shared files", None, &isolate, None)
            .await
            .map_err(|p| self.fail(p))?;
        let copy_script = db.copy_script(self.copy);
        site.step(printer, "copy the database", None, &copy_script, None)
            .await
            .map_err(|p| self.fail(p))?;
        let mut steps = Steps::new(config, self.env, &site.spec, layout, name, &commit.sha);
        // The app's commands see the copy, never the real database.
        steps.db_env = db.app_env(self.copy);
        match source {
            Source::Prepared(release) => self.place(release, name).await?,
            Source::Archive(archive) => {
                steps.keep_source = false;
                for step in steps.prepare() {
                    let stdin = step.upload.then_some(archive);
                    site.run(printer, &step, stdin)
                        .await
                        .map_err(|p| self.fail(p))?;
                }
            }
        }
        self.ask_the_app(&steps).await?;
        Ok(steps)
    }

    /// Puts a copy of the prepared release `release` in the scratch area
    /// as `name`, with the scratch shared files.
    pub(crate) async fn place(&self, release: &str, name: &str) -> Result<(), Error> {
        let (site, layout) = (self.site, self.layout);
        let script = format!(
            "{}\n{}",
            release::clone_release_script(&site.layout.release(release), &layout.release(name)),
            release::link_shared_script(layout, name, &self.config.deploy.shared)
        );
        site.step(
            self.printer,
            "copy the prepared release",
            None,
            &script,
            None,
        )
        .await
        .map_err(|p| self.fail(p))?;
        Ok(())
    }

    /// The app is asked which database it opens: it must be the copy.
    async fn ask_the_app(&self, steps: &Steps<'_>) -> Result<(), Error> {
        let Some(step) = steps.ask_database(self.db, self.copy) else {
            return Ok(());
        };
        let out = self
            .site
            .run(self.printer, &step, None)
            .await
            .map_err(|p| self.fail(p))?;
        if let Answer::Differs(app) = wiring::compare(self.db, self.copy, &out.stdout) {
            return Err(Error::WrongDatabase(Box::new(WrongDatabase {
                env: self.env.name.clone(),
                host: self.site.name().to_string(),
                expected: hide_password(self.copy),
                env_var: self.db.env_var.clone(),
                app: app.describe(),
                rehearsal: true,
            })));
        }
        Ok(())
    }

    /// Checks for pending migrations and runs them on the copy; the copy
    /// must show that they ran on it.
    async fn migrate(&self, steps: &Steps<'_>, mut report: Report) -> Result<Report, Error> {
        let (site, db, copy, printer, env) =
            (self.site, self.db, self.copy, self.printer, self.env);
        let copy_before = read_fingerprint(site, db, copy, false, printer)
            .await
            .map_err(|p| self.fail(p))?;
        let mut checked = false;
        if let Some(check) = &env.database.check {
            let step = steps.command("check pending migrations", check, false);
            match site.run(printer, &step, None).await {
                Ok(_) => {
                    report.pending = false;
                    return Ok(report);
                }
                Err(p) if p.unreachable || interrupted() => return Err(self.fail(p)),
                Err(_) => checked = true,
            }
        }
        let Some(migrate) = &self.config.deploy.migrate else {
            return Ok(report);
        };
        report.findings = crate::data::checks::collect(env, site, steps, db.engine, printer)
            .await
            .map_err(|p| self.fail(p))?;
        if env.database.checks == crate::config::Checks::Strict && !report.findings.is_empty() {
            let mut migrations: Vec<String> = report
                .findings
                .iter()
                .map(|f| f.migration.clone())
                .collect();
            migrations.dedup();
            return Err(Error::MigrationChecks {
                env: env.name.clone(),
                migrations,
            });
        }
        let step = steps.command("migrate the copy", migrate, false);
        let started = Instant::now();
        let result = site.run(printer, &step, None).await;
        report.seconds = started.elapsed().as_secs_f64();
        let problem = match result {
            Ok(_) => {
                let copy_after = read_fingerprint(site, db, copy, false, printer)
                    .await
                    .map_err(|p| self.fail(p))?;
                let unchanged = copy_after.changes(&copy_before).is_empty();
                if checked && unchanged {
                    return Err(Error::CopyNotUsed(Box::new(CopyNotUsed {
                        env: env.name.clone(),
                        host: site.name().to_string(),
                        copy: hide_password(copy),
                        env_var: db.env_var.clone(),
                        check: env
                            .database
                            .check
                            .as_ref()
                            .map(|c| c.render(&steps.vars()))
                            .unwrap_or_default(),
                    })));
                }
                if !checked && unchanged {
                    printer.warn(Warning::CopyUnchanged);
                }
                report.breaks = Diff::between(&copy_before.objects, &copy_after.objects)
                    .breaks_the_old_release();
                report.put_back = Some(self.foresee(steps, &copy_before, &copy_after).await);
                return Ok(report);
            }
            Err(p) if p.unreachable || interrupted() => return Err(self.fail(p)),
            Err(p) => p,
        };
        report.migration = failed_migration(&problem.output).or(Some("(unknown)".into()));
        report.output = problem.detail.clone();
        report.violation = Violation::parse(&problem.output);
        if let Some(v) = &report.violation {
            report.rows = violating_rows(site, db, copy, v, printer).await;
        }
        Ok(report)
    }
}

/// Removes a rehearsal's copy of the database and its scratch area
/// (`layout`'s rehearsals); a failure is a warning.
pub(crate) async fn delete_scratch(
    site: &Site,
    db: &Db,
    copy: &str,
    layout: &Layout,
    printer: &Printer,
) {
    let scratch = crate::base::shell::quote(&layout.rehearsals());
    let cleanup = format!("{}\nrm -rf {scratch}", db.drop_copy_script(copy));
    if let Err(p) = site
        .step_always(printer, "delete the copy", None, &cleanup, None)
        .await
    {
        printer.warn(Warning::CopyNotDeleted {
            cause: p.to_string(),
        });
    }
}

/// Reads the fingerprint of the database at `location`; `always` reads it
/// even after an interrupt, for checking after the fact.
pub async fn read_fingerprint(
    site: &Site,
    db: &Db,
    location: &str,
    always: bool,
    printer: &Printer,
) -> Result<Fingerprint, HostProblem> {
    let script = fingerprint::script(db, location);
    let name = "fingerprint the database";
    let out = if always {
        site.step_always(printer, name, None, &script, None).await
    } else {
        site.step(printer, name, None, &script, None).await
    };
    out.map(|o| Fingerprint::parse(&o.stdout))
}
