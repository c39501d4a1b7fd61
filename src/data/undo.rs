//! How a deploy's migrations are put back without losing what live wrote
//! meanwhile. Gantry compares the database's schema and migration records
//! (never its rows) with what they were before the migration, and picks
//! the least it can do:
//!
//! 1. nothing, when they are as they were (a failed migration that rolled
//!    back by itself: each Django migration is a transaction);
//! 2. keep, when the release going back runs on the new schema (the
//!    migrations only added what it never writes);
//! 3. reverse exactly the migrations this deploy applied, from the new
//!    release's files (Django: `manage.py migrate APP PREVIOUS`; else
//!    `[database] reverse`), which keeps every row;
//! 4. restore the backup: the last resort, when nothing else can (no way
//!    to reverse, or the reversal failed), after saving the database as it
//!    is beside the backup.

use crate::base::shell::quote;
use crate::config::{Config, Template, Vars};
use crate::data::database::plain_identifier;
use crate::data::fingerprint::Fingerprint;
use crate::data::schema::{applied_since, shown, Diff};
use crate::data::steps::Steps;
use crate::remote::release::{self, Planned};

/// What putting the database back takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// The schema and the migration records are as they were.
    Nothing,
    /// The release going back runs on the new schema: it stays, with the
    /// records of these migrations.
    Keep { applied: Vec<String> },
    /// These migrations (in the order applied) are reversed; `breaks` says
    /// why the old release would not run on the new schema.
    Reverse {
        applied: Vec<String>,
        breaks: Vec<String>,
    },
    /// Only the backup can put it back, for this reason.
    Restore { why: String },
}

/// Decides what puts the database from `now` back to `before` for the
/// release that served before; `reversible` says whether the config can
/// reverse migrations (the Django preset, or `[database] reverse`).
pub fn decide(before: &Fingerprint, now: &Fingerprint, reversible: bool) -> Undo {
    let diff = Diff::between(&before.objects, &now.objects);
    let Some(applied) = applied_since(&before.applied, &now.applied) else {
        return Undo::Restore {
            why: "the migration table no longer lists every migration it listed before".into(),
        };
    };
    if diff.is_empty() && applied.is_empty() {
        return Undo::Nothing;
    }
    let breaks = diff.breaks_the_old_release();
    if breaks.is_empty() {
        return Undo::Keep { applied };
    }
    if applied.is_empty() {
        return Undo::Restore {
            why: "the schema changed, but the migration table lists no migration that this deploy applied".into(),
        };
    }
    if !reversible {
        return Undo::Restore {
            why: "the schema changed in a way the old release does not run on, and `[database] reverse` is not set".into(),
        };
    }
    Undo::Reverse { applied, breaks }
}

/// Whether `config` can reverse migrations.
pub fn reversible(config: &Config, reverse: Option<&Template>) -> bool {
    config.app.django.is_some() || reverse.is_some()
}

/// The reversal of Django migrations, run by `manage.py shell -c`: each
/// app goes back with `migrate APP TARGET`; on SQLite each migration's
/// transaction takes the write lock first (`BEGIN IMMEDIATE`), so that it
/// waits for the app's writes instead of failing with `database is
/// locked` half way through a table's rebuild.
const DJANGO_REVERSE: &str = r#"from django.db.backends.sqlite3.base import DatabaseWrapper
DatabaseWrapper._start_transaction_under_autocommit = lambda self: self.cursor().execute("BEGIN IMMEDIATE")
from django.core.management import call_command
for app, target in TARGETS:
    call_command("migrate", app, target, interactive=False)
"#;

/// A reversal: the command for the script (rendered, quoted), the command
/// as people read it, and the variables it gets.
pub struct Reversal {
    pub command: String,
    pub shown: String,
    pub env: Vec<(String, String)>,
}

/// The reversal of `applied` (in the order applied), the migrations applied
/// before being `before`. `None` when it cannot be written (a name that is
/// not a plain identifier).
pub fn reverse_command(
    config: &Config,
    reverse: Option<&Template>,
    vars: &Vars,
    before: &[String],
    applied: &[String],
) -> Option<Reversal> {
    let newest_first: Vec<&str> = applied.iter().rev().map(String::as_str).collect();
    let env = vec![("GANTRY_MIGRATIONS".to_string(), newest_first.join(" "))];
    if let Some(reverse) = reverse {
        return Some(Reversal {
            command: reverse.render_shell(vars),
            shown: reverse.render(vars),
            env,
        });
    }
    let python = config.app.django.as_ref()?;
    // Django: each app whose migrations this deploy applied goes back to
    // the last one it had before (or `zero`), the app applied last first.
    let mut apps: Vec<&str> = Vec::new();
    for migration in &newest_first {
        let (app, _) = migration.split_once('.')?;
        if !apps.contains(&app) {
            apps.push(app);
        }
    }
    let mut targets = Vec::new();
    for app in apps {
        let target = before
            .iter()
            .rev()
            .filter_map(|m| m.split_once('.'))
            .find(|(a, _)| *a == app)
            .map_or("zero", |(_, name)| name);
        if !plain_identifier(app) || !plain_identifier(target) {
            return None;
        }
        targets.push((app, target));
    }
    let code = DJANGO_REVERSE.replace(
        "TARGETS",
        &format!(
            "[{}]",
            targets
                .iter()
                .map(|(a, t)| format!("(\"{a}\", \"{t}\")"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let shown = targets
        .iter()
        .map(|(a, t)| format!("{} manage.py migrate {a} {t}", python.render(vars)))
        .collect::<Vec<_>>()
        .join(" && ");
    Some(Reversal {
        command: format!(
            "{} manage.py shell -c {}",
            python.render_shell(vars),
            quote(&code)
        ),
        shown,
        env,
    })
}

/// The step that runs `reversal` in the release of `steps` (its files
/// hold the migrations), with the database the steps see.
pub fn step(steps: &Steps, reversal: &Reversal) -> Planned {
    let mut extra = steps.db_env.clone();
    extra.extend(reversal.env.iter().cloned());
    Planned {
        name: "reverse migrations".into(),
        script: release::command_script(
            steps.config,
            &steps.vars(),
            &steps.layout.release(steps.release),
            &reversal.command,
            &extra,
        ),
        shown: Some(reversal.shown.clone()),
        upload: false,
        inline: false,
    }
}

/// What reversing the migrations removes, in words: what they added to the
/// tables that were there before, with its values.
pub fn removed_by_reversal(diff: &Diff) -> Vec<String> {
    let new_tables: Vec<&str> = diff
        .added
        .iter()
        .filter_map(|l| l.strip_prefix("table "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    diff.added
        .iter()
        .filter_map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            if words[0] != "table" && words.get(1).is_some_and(|t| new_tables.contains(t)) {
                return None;
            }
            match words.as_slice() {
                ["table", table, ..] => Some(format!("table {}, with its rows", shown(table))),
                ["column", table, column, ..] => Some(format!(
                    "column {}.{}, with its values",
                    shown(table),
                    shown(column)
                )),
                ["index", table, name, ..] => {
                    Some(format!("index {} on {}", shown(name), shown(table)))
                }
                ["constraint", table, name, ..] => {
                    Some(format!("constraint {} on {}", shown(name), shown(table)))
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(objects: &[&str], applied: &[&str]) -> Fingerprint {
        Fingerprint {
            objects: objects.iter().map(|o| o.to_string()).collect(),
            applied: applied.iter().map(|a| a.to_string()).collect(),
            ..Fingerprint::default()
        }
    }

    #[test]
    fn the_least_that_puts_the_database_back() {
        let table = "table lists_item";
        let before = fingerprint(&[table], &["lists.0001_initial"]);
        assert_eq!(decide(&before, &before, true), Undo::Nothing);

        let nullable = fingerprint(
            &[table, "column lists_item note text null nodefault"],
            &["lists.0001_initial", "lists.0002_note"],
        );
        assert_eq!(
            decide(&before, &nullable, false),
            Undo::Keep {
                applied: vec!["lists.0002_note".into()]
            }
        );

        let unique = fingerprint(
            &[table, "index lists_item u unique 0123456789ab"],
            &["lists.0001_initial", "lists.0002_unique"],
        );
        assert_eq!(
            decide(&before, &unique, true),
            Undo::Reverse {
                applied: vec!["lists.0002_unique".into()],
                breaks: vec!["added: index lists_item u unique".into()]
            }
        );
        assert!(matches!(
            decide(&before, &unique, false),
            Undo::Restore { .. }
        ));
        // A schema changed by no recorded migration: only the backup knows.
        let unrecorded = fingerprint(
            &[table, "index lists_item u unique 0123456789ab"],
            &["lists.0001_initial"],
        );
        assert!(matches!(
            decide(&before, &unrecorded, true),
            Undo::Restore { .. }
        ));
    }
}
