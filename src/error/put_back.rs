//! What Gantry did to the database when it put a deploy back, as data,
//! worded here once; a failed deploy's report lists it among its notes.
//! `tests/data.rs` pins every wording.

use std::fmt::{self, Formatter};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutBack {
    /// The schema and the migration records were as before (a failed
    /// migration that rolled back by itself): nothing was touched.
    Unchanged { host: String },
    /// The old release runs on the new schema (the migrations only added):
    /// the schema and these migrations' records were kept.
    Kept {
        host: String,
        migrations: Vec<String>,
    },
    /// These migrations were reversed by `command`, which removed `removes`
    /// (what they had added, with its values).
    Reversed {
        host: String,
        migrations: Vec<String>,
        command: String,
        removes: Vec<String>,
    },
    /// The last resort: the backup was put back over a database the app
    /// wrote to, after saving that database as it was.
    Restored {
        host: String,
        backup: String,
        /// Why nothing less would do.
        why: String,
        /// From the moment before the migration to the restore (UTC).
        since: String,
        until: String,
        /// The tables whose rows changed in that window.
        tables: Vec<String>,
        /// Where the database as it was just before the restore is.
        saved: String,
    },
    /// The migrated database was kept for hosts that still run the new
    /// release.
    KeptForStuckHosts {
        hosts: Vec<String>,
        backup: Option<String>,
    },
}

impl fmt::Display for PutBack {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PutBack::Unchanged { host } => write!(
                f,
                "the database on {host} has its schema and migration records as they were (the failed migration rolled back by itself): nothing was restored, and every write made meanwhile is kept"
            ),
            PutBack::Kept { host, migrations } => write!(
                f,
                "the database on {host} keeps {}: the release that serves again runs on its schema (they only added), so nothing was reversed or restored, and every write is kept",
                list(migrations)
            ),
            PutBack::Reversed {
                host,
                migrations,
                command,
                removes,
            } => {
                write!(
                    f,
                    "{} reversed on {host} (`{command}`): every row is kept",
                    list(migrations)
                )?;
                if removes.is_empty() {
                    Ok(())
                } else {
                    write!(
                        f,
                        "; the reversal removed what they had added: {}",
                        removes.join(", ")
                    )
                }
            }
            PutBack::Restored {
                host,
                backup,
                why,
                since,
                until,
                tables,
                saved,
            } => {
                write!(
                    f,
                    "the database on {host} was restored from {backup} ({why}); what was written to it from {since} to {until} is not in it"
                )?;
                if !tables.is_empty() {
                    write!(f, " (rows changed in: {})", tables.join(", "))?;
                }
                write!(
                    f,
                    ", but in the database as it was just before the restore, saved in {saved}"
                )
            }
            PutBack::KeptForStuckHosts { hosts, backup } => {
                write!(
                    f,
                    "the database was kept migrated, because {} still run{} the new release on it",
                    hosts.join(", "),
                    if hosts.len() == 1 { "s" } else { "" }
                )?;
                match backup {
                    Some(b) => write!(f, "; the backup taken before the migration is {b}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// `migration a`, `migrations a and b`, `migrations a, b and c`.
fn list(migrations: &[String]) -> String {
    match migrations {
        [] => "no migration".into(),
        [one] => format!("migration {one}"),
        [rest @ .., last] => format!("migrations {} and {last}", rest.join(", ")),
    }
}
