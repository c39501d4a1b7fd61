//! Putting the database back after this deploy's migrations, on the
//! migrate host, without losing what live wrote meanwhile: the schema and
//! the migration records are compared with what they were before, and
//! the least that puts them back is done (`data::undo`): nothing, keep,
//! reverse; restoring the backup only as the last resort, after saving
//! the database as it is.

use crate::base::time::Utc;
use crate::data::database::Kind;
use crate::data::fingerprint::Fingerprint;
use crate::data::rehearse;
use crate::data::schema::Diff;
use crate::data::undo::{self, Undo};
use crate::error::{HostProblem, PutBack};

use super::migrate::Migrated;
use super::Run;

/// How many times a reversal that SQLite found locked is tried.
const LOCKED_TRIES: u64 = 8;

impl Run<'_> {
    /// Puts the database back as it was before this deploy's migration,
    /// for the release that serves again; `release` is the new one, whose
    /// files reverse its migrations. Returns the problems met; those need a person.
    pub(super) async fn put_database_back(&self, m: &Migrated, release: &str) -> Vec<HostProblem> {
        let site = &self.sites[self.env.migrate_host];
        let host = site.name().to_string();
        if m.created && m.db.engine == Kind::Sqlite {
            // There was no database before: leave none.
            let script = m.db.remove_script();
            return match site
                .step_always(self.printer, "remove the new database", None, &script, None)
                .await
            {
                Ok(_) => Vec::new(),
                Err(e) => vec![e],
            };
        }
        let Some(before) = &m.before else {
            return self.restore(m, None, "its state before was not read").await;
        };
        let now = match self.fingerprint(m).await {
            Ok(now) => now,
            Err(e) => return vec![self.with_backup(e, m)],
        };
        let reversible = undo::reversible(self.config, self.env.database.reverse.as_ref());
        match undo::decide(before, &now, reversible) {
            Undo::Nothing => {
                self.data_note(PutBack::Unchanged { host });
                Vec::new()
            }
            Undo::Keep { applied } => {
                self.data_note(PutBack::Kept {
                    host,
                    migrations: applied,
                });
                Vec::new()
            }
            Undo::Reverse { applied, .. } => {
                let removes =
                    undo::removed_by_reversal(&Diff::between(&before.objects, &now.objects));
                match self.reverse(m, release, before, &applied).await {
                    Ok(command) => {
                        self.data_note(PutBack::Reversed {
                            host,
                            migrations: applied,
                            command,
                            removes,
                        });
                        Vec::new()
                    }
                    Err(why) => self.restore(m, Some(&now), &why).await,
                }
            }
            Undo::Restore { why } => self.restore(m, Some(&now), &why).await,
        }
    }

    async fn fingerprint(&self, m: &Migrated) -> Result<Fingerprint, HostProblem> {
        let site = &self.sites[self.env.migrate_host];
        rehearse::read_fingerprint(site, &m.db, &m.db.location, true, self.printer).await
    }

    /// Reverses `applied` from the new release's files, then checks that
    /// the release that serves again runs on what is left. Returns the
    /// command as shown, or why the backup must be restored instead.
    async fn reverse(
        &self,
        m: &Migrated,
        release: &str,
        before: &Fingerprint,
        applied: &[String],
    ) -> Result<String, String> {
        let site = &self.sites[self.env.migrate_host];
        let reverse = self.env.database.reverse.as_ref();
        let steps = self.steps(site, release, "");
        let Some(reversal) = undo::reverse_command(
            self.config,
            reverse,
            &steps.vars(),
            &before.applied,
            applied,
        ) else {
            return Err("the migrations' names cannot be given to a reversal".into());
        };
        let step = undo::step(&steps, &reversal);
        let shown = reversal.shown;
        // Each migration reverses in its own transaction, so a reversal
        // that SQLite refused because the app was writing (`database is
        // locked`) changed nothing and is tried again.
        let mut attempt = 0;
        while let Err(e) = site.run_always(self.printer, &step, None).await {
            attempt += 1;
            if attempt >= LOCKED_TRIES || !e.output.contains("database is locked") {
                let output = e.output.lines().last().unwrap_or("").trim().to_string();
                return Err(format!("reversing the migrations failed: {output}"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
        }
        let after = self.fingerprint(m).await.map_err(|e| e.to_string())?;
        match undo::decide(before, &after, false) {
            Undo::Nothing | Undo::Keep { .. } => Ok(shown),
            _ => Err(
                "the reversal ran, but the schema is not one the serving release runs on".into(),
            ),
        }
    }

    /// The last resort: while the app's writes wait, the database as it is
    /// is saved beside the backups and the backup put back in its place
    /// (`data::restore`); writes that waited go into the restored
    /// database. Without a copy of what it would replace, nothing is
    /// restored.
    async fn restore(
        &self,
        m: &Migrated,
        now: Option<&Fingerprint>,
        why: &str,
    ) -> Vec<HostProblem> {
        let p = self.printer;
        let site = &self.sites[self.env.migrate_host];
        let Some(backup) = m.backup.as_deref() else {
            return vec![site.problem(
                "put the database back",
                None,
                None,
                &format!(
                    "{why}, and there is no backup to restore: the database was left as it is"
                ),
            )];
        };
        let until = Utc::now();
        let saved = crate::data::backups::saved_path(&site.layout, &m.db);
        let tables = match (now, &m.before) {
            (Some(now), Some(before)) => now.tables_changed(before),
            _ => Vec::new(),
        };
        let script = crate::data::restore::script(&m.db, backup, &saved);
        match site
            .step_always(
                p,
                "save the database, restore the backup",
                None,
                &script,
                None,
            )
            .await
        {
            Ok(_) => {
                self.data_note(PutBack::Restored {
                    host: site.name().to_string(),
                    backup: backup.to_string(),
                    why: why.to_string(),
                    since: m.since.clone(),
                    until: until.iso(),
                    tables,
                    saved,
                });
                Vec::new()
            }
            Err(mut e) => {
                e.detail
                    .push_str(&format!("\n{why}; the database was left as it is"));
                vec![self.with_backup(e, m)]
            }
        }
    }

    /// A problem with where the backup is and how to restore it.
    fn with_backup(&self, mut e: HostProblem, m: &Migrated) -> HostProblem {
        if let Some(path) = &m.backup {
            let site = &self.sites[self.env.migrate_host];
            e.detail.push_str(&format!(
                "\nthe backup is at {path} on {}; restore it with `gantry restore {} {}`",
                site.name(),
                self.env.name,
                path.rsplit('/').next().unwrap_or(path)
            ));
        }
        e
    }

    pub(super) fn data_note(&self, note: PutBack) {
        self.printer.host(
            self.sites[self.env.migrate_host].name(),
            &format!("database: {}", short(&note)),
        );
        self.note(note.to_string());
    }
}

/// A few words for the progress line.
fn short(note: &PutBack) -> &'static str {
    match note {
        PutBack::Unchanged { .. } => "as it was; nothing restored",
        PutBack::Kept { .. } => "new schema kept (it only added)",
        PutBack::Reversed { .. } => "migrations reversed",
        PutBack::Restored { .. } => "backup restored (last resort)",
        PutBack::KeptForStuckHosts { .. } => "kept migrated",
    }
}
