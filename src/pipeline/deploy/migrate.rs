//! The migrate phase, once per environment on its migrate host: ask the
//! app which database it opens, check for pending migrations, rehearse
//! them on a copy, back the database up, migrate, and check that the
//! database backed up is the one that changed. On failure the backup is
//! put back while the old release keeps serving.

use crate::config::Template;
use crate::data::database::{Db, Kind, Violation};
use crate::data::fingerprint::Fingerprint;
use crate::data::rehearse::{self, Source};
use crate::data::steps::{failed_migration, MigratePlan, NO_DATABASE_MARK};
use crate::data::wiring::{self, Answer};
use crate::error::{Error, HostProblem, Warning, WrongDatabase};
use crate::ledger::git::Commit;
use crate::remote::site::Site;

use super::{Rehearsal, Run};

/// Why the migrate phase stopped the deploy.
pub(super) enum Stop {
    /// A step failed on the migrate host; the recovery problems need a person.
    Host(HostProblem, Vec<HostProblem>),
    /// The deploy was refused before anything migrated (a failed
    /// rehearsal, an app that opens another database): this error says why.
    Refused(HostProblem, Error),
}

/// What the migrate phase did.
#[derive(Default)]
pub(super) struct Migration {
    pub rehearsal: Rehearsal,
    /// The database it migrated, kept so a failed activation can put it
    /// back; `None` when nothing ran.
    pub migrated: Option<Migrated>,
}

/// A migration that ran in this deploy.
pub(super) struct Migrated {
    pub db: Db,
    /// The backup taken just before it.
    pub backup: Option<String>,
    /// The migration created the database (there was none).
    pub created: bool,
    /// The database's fingerprint before the migration: what putting it
    /// back compares with.
    pub before: Option<Fingerprint>,
    /// When that fingerprint was read (UTC).
    pub since: String,
}

fn host(e: HostProblem) -> Stop {
    Stop::Host(e, Vec::new())
}

impl Run<'_> {
    pub(super) async fn migrate(
        &self,
        commit: &Commit,
        release: &str,
        migrate: &Template,
    ) -> Result<Migration, Stop> {
        let p = self.printer;
        let site = &self.sites[self.env.migrate_host];
        let plan = self
            .steps(site, release, &commit.sha)
            .migrate_plan(&self.env.database, migrate);
        self.ask_the_app(site, &plan).await?;
        let Some(missing_before) = self.pending(site, &plan).await? else {
            // Nothing to run, so nothing to fingerprint, back up or rehearse.
            p.host(site.name(), "no pending migrations");
            return Ok(Migration::default());
        };
        let before = match &plan.fingerprint {
            Some(step) => {
                let out = site.run(p, step, None).await.map_err(host)?;
                let mut f = Fingerprint::parse(&out.stdout);
                f.missing |= missing_before;
                Some(f)
            }
            None => None,
        };
        let rehearsal = match plan.db {
            Some(_) => self.rehearse_first(site, commit, release).await?,
            None => Rehearsal::NotNeeded,
        };
        self.account().rehearsal = rehearsal;
        // A database that did not exist before this deploy (the check may
        // have created an empty file) is not backed up: it is removed if
        // the migration fails.
        let created = before.as_ref().is_some_and(|f| f.missing);
        self.hold_writes().await.map_err(host)?;
        let since = crate::base::time::Utc::now().iso();
        let mut backup = None;
        if let (false, Some((step, path))) = (created, &plan.backup) {
            site.step(p, &step.name, None, &step.script, None)
                .await
                .map_err(host)?;
            backup = Some(path.clone());
            self.note(format!(
                "the database was backed up to {path} on {}",
                site.name()
            ));
        }
        let migrated = plan.db.as_ref().map(|db| Migrated {
            db: db.clone(),
            backup,
            created,
            before,
            since,
        });
        let problem = match site.run(p, &plan.migrate, None).await {
            Err(problem) => problem,
            Ok(_) => {
                let Some(migrated) = migrated else {
                    return Ok(Migration {
                        rehearsal,
                        migrated: None,
                    });
                };
                self.check_it_changed(site, &plan, &migrated).await?;
                self.prune_backups(site).await;
                return Ok(Migration {
                    rehearsal,
                    migrated: Some(migrated),
                });
            }
        };
        Err(self
            .migration_failed(site, release, problem, migrated)
            .await)
    }

    /// With the Django preset: refuses to migrate when the app opens
    /// another database than `[database]`.
    async fn ask_the_app(&self, site: &Site, plan: &MigratePlan) -> Result<(), Stop> {
        let (Some(db), Some(ask)) = (&plan.db, &plan.ask) else {
            return Ok(());
        };
        let out = site.run(self.printer, ask, None).await.map_err(host)?;
        if let Answer::Differs(app) = wiring::compare(db, &db.location, &out.stdout) {
            let error = Error::WrongDatabase(Box::new(WrongDatabase {
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
        Ok(())
    }

    /// Whether migrations are pending: `None` when not; else whether the
    /// database was missing before the check ran (SQLite: a check may
    /// create an empty file, which is not worth a backup).
    async fn pending(&self, site: &Site, plan: &MigratePlan) -> Result<Option<bool>, Stop> {
        let Some(check) = &plan.check else {
            return Ok(Some(false));
        };
        match site.run(self.printer, check, None).await {
            Ok(_) => Ok(None),
            Err(problem) if problem.unreachable => Err(host(problem)),
            Err(problem) => Ok(Some(problem.output.contains(NO_DATABASE_MARK))),
        }
    }

    /// Rehearses the pending migrations on a copy of the data, from the
    /// release just prepared; or says they are not (`--no-rehearse`).
    async fn rehearse_first(
        &self,
        site: &Site,
        commit: &Commit,
        release: &str,
    ) -> Result<Rehearsal, Stop> {
        let p = self.printer;
        if !self.rehearse {
            p.warn(Warning::NotRehearsed {
                env: self.env.name.clone(),
            });
            return Ok(Rehearsal::Skipped);
        }
        let source = Source::Prepared(release);
        match rehearse::rehearse_on(self.config, self.env, site, commit, release, source, p).await {
            Ok(report) => {
                if report.pending {
                    rehearse::announce(&report, p);
                }
                self.account().only_the_backup = report
                    .put_back
                    .as_ref()
                    .map(|f| matches!(f, crate::model::commit::Foreseen::Restore { .. }));
                self.account().findings = report.findings.clone();
                // Old and new code at once: a schema the serving release
                // cannot run on is refused before anything migrates.
                if let (Some(how), false) = (self.both_serve(), report.breaks.is_empty()) {
                    if !self.allow_incompatible {
                        let why = "the migrations break the release still serving";
                        return Err(Stop::Refused(
                            site.problem("rehearsal", None, None, why),
                            Error::BreaksTheServingRelease {
                                env: self.env.name.clone(),
                                how,
                                breaks: report.breaks,
                            },
                        ));
                    }
                }
                Ok(Rehearsal::Passed(report.seconds))
            }
            Err(error) => {
                let why = "the rehearsal on a copy of the data did not pass";
                Err(Stop::Refused(
                    site.problem("rehearsal", None, None, why),
                    error,
                ))
            }
        }
    }

    /// Whether the release serving now keeps serving beside the new one
    /// while it goes live: during a handover, or a rolling deploy.
    fn both_serve(&self) -> Option<&'static str> {
        if self.config.deploy.handover.is_some() {
            Some("a handover")
        } else if self.env.batch > 0 && self.env.batch < self.env.hosts.len() {
            Some("a rolling deploy")
        } else {
            None
        }
    }

    /// The database that was backed up must be the one that changed, when
    /// the check said migrations were pending; if not, the deploy stops
    /// (that database is as it was: nothing to put back).
    async fn check_it_changed(
        &self,
        site: &Site,
        plan: &MigratePlan,
        migrated: &Migrated,
    ) -> Result<(), Stop> {
        let (Some(_), Some(before)) = (&plan.check, &migrated.before) else {
            return Ok(());
        };
        let db = &migrated.db;
        let after = rehearse::read_fingerprint(site, db, &db.location, true, self.printer)
            .await
            .map_err(host)?;
        if !after.changes(before).is_empty() {
            return Ok(());
        }
        let problem = site.problem(
            "migrate",
            plan.migrate.shown.as_deref(),
            None,
            &format!(
                "the migrate command succeeded, but the database Gantry backed up ({}) did not change: the app migrated another database",
                db.shown()
            ),
        );
        // Nothing changed in the database Gantry protects: nothing to put back.
        Err(Stop::Host(problem, Vec::new()))
    }

    /// A failed migration: the database goes back (only what changed:
    /// nothing when the migration rolled back by itself), and the
    /// constraint it violated is read with the rows that violate it.
    async fn migration_failed(
        &self,
        site: &Site,
        release: &str,
        mut problem: HostProblem,
        migrated: Option<Migrated>,
    ) -> Stop {
        let p = self.printer;
        if let Some(name) = failed_migration(&problem.output) {
            problem.step = format!("migration {name}");
        }
        let Some(migrated) = migrated else {
            return host(problem);
        };
        let db = &migrated.db;
        let violation = Violation::parse(&problem.output);
        // SQLite: the violating rows are read from the backup, which holds
        // the data as it was before the migration.
        let mut rows = Vec::new();
        if let (Some(v), Some(path), Kind::Sqlite) = (&violation, &migrated.backup, db.engine) {
            rows = rehearse::violating_rows(site, db, path, v, p).await;
        }
        let recovery = self.put_database_back(&migrated, release).await;
        // PostgreSQL: from the database itself, as it is put back.
        if let (Some(v), Kind::Postgres, true) = (&violation, db.engine, recovery.is_empty()) {
            rows = rehearse::violating_rows(site, db, &db.location, v, p).await;
        }
        if let Some(v) = violation {
            self.account().constraint = Some((v.describe(), rows));
        }
        Stop::Host(problem, recovery)
    }

    /// Keeps the newest `keep_backups` backups on the migrate host.
    async fn prune_backups(&self, site: &Site) {
        let keep = self.env.database.keep_backups;
        let script = format!(
            "cd {} 2>/dev/null || exit 0\nls -1 | sort | head -n -{keep} | while read -r f; do rm -f -- \"$f\"; done",
            crate::base::shell::quote(&site.layout.backups())
        );
        if let Err(e) = site
            .step_always(self.printer, "prune backups", None, &script, None)
            .await
        {
            self.printer.warn(Warning::BackupsNotPruned {
                cause: e.to_string(),
            });
        }
    }
}
