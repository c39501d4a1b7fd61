//! The schema's part of a rollback (`data::reversal`): before any host is
//! switched, the migrate host compares the database with the record of
//! the release rolled back to; migrations applied since are kept when that
//! release runs on them, reversed (rehearsed on a copy, backed up first)
//! when they can be, and the rollback is refused when they cannot. The
//! reversal runs once the code is back, from the release being left.

use crate::data::database::Db;
use crate::data::fingerprint::Fingerprint;
use crate::data::rehearse::read_fingerprint;
use crate::data::reversal::{self, Back, BACKUP_THERE, NO_RECORD};
use crate::data::steps::Steps;
use crate::data::undo;
use crate::error::{Error, HostProblem, RollbackRefused, Warning};

use super::Run;

/// What a rollback would do to the schema, read without changing anything.
pub(super) struct Decision {
    /// The release being left.
    pub left: String,
    db: Db,
    /// The record of the release rolled back to, and the database now.
    recorded: Fingerprint,
    now: Fingerprint,
    pub back: Back,
    /// The backup taken before the release being left migrated, its age.
    pub backup: Option<(String, String)>,
}

/// A reversal the rollback will run once the code is back.
pub(super) struct Reversing {
    db: Db,
    /// The release being left (it has the migrations' files), its commit.
    left: (String, String),
    /// The record of the release rolled back to.
    recorded: Fingerprint,
    /// The migrations to reverse, in the order applied.
    applied: Vec<String>,
    /// The backup taken just before.
    backup: String,
}

impl Run<'_> {
    fn schema_problem(&self, p: HostProblem) -> Error {
        Error::Hosts {
            what: format!("the rollback of `{}` (nothing was changed)", self.env.name),
            problems: vec![p],
        }
    }

    /// What the rollback to `target` would do to the schema, read from the
    /// migrate host without changing anything; `None` without a database,
    /// a release being left, or a record of `target`'s schema.
    pub(super) async fn schema_decision(&self, target: &str) -> Result<Option<Decision>, Error> {
        let site = &self.sites[self.env.migrate_host];
        let p = self.printer;
        let Some(left) = site.serving.clone() else {
            return Ok(None);
        };
        let Some(db) = reversal::database(self.config, self.env, site, &left) else {
            return Ok(None);
        };
        // The backup taken before the release being left migrated.
        let backup_name = format!("{left}.{}", db.backup_extension());
        let backup_path = format!("{}/{backup_name}", site.layout.backups());
        let script = reversal::read_record_script(&site.layout, target, &backup_path);
        let out = site
            .step(p, "read the schema's record", None, &script, None)
            .await
            .map_err(|e| self.schema_problem(e))?;
        if out.stdout.contains(NO_RECORD) {
            p.warn(Warning::NoSchemaRecord {
                release: target.to_string(),
            });
            return Ok(None);
        }
        let recorded = Fingerprint::parse(&out.stdout);
        let backup = out.stdout.contains(BACKUP_THERE).then(|| {
            let age = crate::base::time::since_compact(&backup_name)
                .map_or("some time".into(), crate::base::time::age);
            (backup_name, age)
        });
        let now = read_fingerprint(site, &db, &db.location, false, p)
            .await
            .map_err(|e| self.schema_problem(e))?;
        let reversible = undo::reversible(self.config, self.env.database.reverse.as_ref());
        let back = reversal::decide(&recorded, &now, reversible);
        Ok(Some(Decision {
            left,
            db,
            recorded,
            now,
            back,
            backup,
        }))
    }

    /// The refusal of the rollback to `target`.
    pub(super) fn refusal(
        &self,
        target: &str,
        d: &Decision,
        migrations: Vec<String>,
        why: String,
    ) -> Error {
        Error::RollbackNeedsTheSchema(Box::new(RollbackRefused {
            env: self.env.name.clone(),
            release: target.to_string(),
            migrations,
            why,
            backup: d.backup.clone(),
        }))
    }

    /// How the reversal of `d` would be run, as people read it.
    pub(super) fn reversal_shown(&self, d: &Decision, applied: &[String]) -> Option<String> {
        let site = &self.sites[self.env.migrate_host];
        let commit = site.serving_commit.clone().unwrap_or_default();
        let steps = Steps::new(
            self.config,
            self.env,
            &site.spec,
            &site.layout,
            &d.left,
            &commit,
        );
        let reverse = self.env.database.reverse.as_ref();
        undo::reverse_command(
            self.config,
            reverse,
            &steps.vars(),
            &d.recorded.applied,
            applied,
        )
        .map(|r| r.shown)
    }

    /// Decides what the rollback to `target` does to the schema, rehearses
    /// a reversal and backs up; `Err` refuses the rollback.
    pub(super) async fn schema_back(&self, target: &str) -> Result<Option<Reversing>, Error> {
        let site = &self.sites[self.env.migrate_host];
        let p = self.printer;
        let Some(d) = self.schema_decision(target).await? else {
            return Ok(None);
        };
        let applied = match d.back.clone() {
            Back::Nothing => return Ok(None),
            Back::Keep { applied } => {
                p.headline(&format!(
                    "The schema stays: {} only add what {target} never reads",
                    applied.join(", ")
                ));
                return Ok(None);
            }
            Back::Cannot { applied, why } => return Err(self.refusal(target, &d, applied, why)),
            Back::Reverse { applied } => applied,
        };
        p.headline(&format!(
            "Rehearsing the reversal of {} on a copy of {}'s data",
            applied.join(", "),
            self.env.name
        ));
        let commit = site.serving_commit.clone().unwrap_or_default();
        let rehearsed = reversal::rehearse(
            self.config,
            self.env,
            site,
            &d.db,
            (&d.left, &commit),
            (target, &d.recorded, &d.now),
            &applied,
            p,
        )
        .await?;
        match rehearsed {
            Err(why) => return Err(self.refusal(target, &d, applied, why)),
            Ok(false) => p.warn(Warning::NotTriedOnTheCopy {
                release: target.to_string(),
            }),
            Ok(true) => {}
        }
        let backup = format!(
            "{}/{}-before-rollback.{}",
            site.layout.backups(),
            d.left,
            d.db.backup_extension()
        );
        let script = d.db.backup_script(&backup);
        site.step(p, "back up the database", None, &script, None)
            .await
            .map_err(|e| self.schema_problem(e))?;
        Ok(Some(Reversing {
            db: d.db,
            left: (d.left, commit),
            recorded: d.recorded,
            applied,
            backup,
        }))
    }

    /// Runs the reversal on the real database (the code is back); when it
    /// fails, or leaves another schema, the database is saved as it is and
    /// the backup put back. Returns what to tell.
    pub(super) async fn reverse_for_rollback(&self, r: &Reversing) -> Result<String, HostProblem> {
        let site = &self.sites[self.env.migrate_host];
        let p = self.printer;
        let (left, commit) = (&r.left.0, &r.left.1);
        let steps = Steps::new(
            self.config,
            self.env,
            &site.spec,
            &site.layout,
            left,
            commit,
        );
        let reverse = self.env.database.reverse.as_ref();
        let reversal = undo::reverse_command(
            self.config,
            reverse,
            &steps.vars(),
            &r.recorded.applied,
            &r.applied,
        )
        .ok_or_else(|| {
            site.problem(
                "reverse migrations",
                None,
                None,
                "the migrations' names cannot be given to a reversal",
            )
        })?;
        let failure = match site.run(p, &undo::step(&steps, &reversal), None).await {
            Ok(_) => match read_fingerprint(site, &r.db, &r.db.location, true, p).await {
                Ok(back)
                    if matches!(
                        undo::decide(&r.recorded, &back, false),
                        undo::Undo::Nothing | undo::Undo::Keep { .. }
                    ) =>
                {
                    return Ok(format!(
                        "the schema is back: {} reversed on the database, every row kept (backup before it: {})",
                        r.applied.join(", "),
                        r.backup
                    ))
                }
                Ok(_) => site.problem(
                    "reverse migrations",
                    None,
                    None,
                    "the reversal left a schema the release rolled back to does not run on",
                ),
                Err(e) => e,
            },
            Err(e) => e,
        };
        // Put the database back as it was before the reversal.
        let saved = crate::data::backups::saved_path(&site.layout, &r.db);
        let script = crate::data::restore::script(&r.db, &r.backup, &saved);
        let restored = site
            .step_always(p, "restore the backup", None, &script, None)
            .await;
        let mut problem = failure;
        problem.detail.push_str(&match restored {
            Ok(_) => format!("\nthe database was put back as it was before the reversal (from {}; as it was after it: {saved}): the schema is the one the release left made, and the code is rolled back", r.backup),
            Err(e) => format!("\nputting the backup {} back failed too: {}", r.backup, e.detail.trim()),
        });
        Err(problem)
    }
}
