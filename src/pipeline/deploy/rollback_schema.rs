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

    /// Decides what the rollback to `target` does to the schema, rehearses
    /// a reversal and backs up; `Err` refuses the rollback.
    pub(super) async fn schema_back(&self, target: &str) -> Result<Option<Reversing>, Error> {
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
        let refuse = |migrations: Vec<String>, why: String| {
            Error::RollbackNeedsTheSchema(Box::new(RollbackRefused {
                env: self.env.name.clone(),
                release: target.to_string(),
                migrations,
                why,
                backup: backup.clone(),
            }))
        };
        let applied = match reversal::decide(&recorded, &now, reversible) {
            Back::Nothing => return Ok(None),
            Back::Keep { applied } => {
                p.headline(&format!(
                    "The schema stays: {} only add what {target} never reads",
                    applied.join(", ")
                ));
                return Ok(None);
            }
            Back::Cannot { applied, why } => return Err(refuse(applied, why)),
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
            &db,
            (&left, &commit),
            (&recorded, &now),
            &applied,
            p,
        )
        .await?;
        if let Err(why) = rehearsed {
            return Err(refuse(applied, why));
        }
        let backup = format!(
            "{}/{left}-before-rollback.{}",
            site.layout.backups(),
            db.backup_extension()
        );
        site.step(
            p,
            "back up the database",
            None,
            &db.backup_script(&backup),
            None,
        )
        .await
        .map_err(|e| self.schema_problem(e))?;
        Ok(Some(Reversing {
            db,
            left: (left, commit),
            recorded,
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
