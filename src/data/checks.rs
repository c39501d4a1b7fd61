//! Checks of what pending migrations will do, from the SQL they run,
//! before they run anywhere: statements that lock or rewrite a table,
//! that break the release still serving, and operations that cannot be
//! reversed. The SQL comes from the app (Django: the statements
//! `sqlmigrate` prints, collected against the rehearsal's copy; other
//! frameworks: `[database] sql`), one migration after a line
//! `-- gantry-migration: NAME`, an operation that cannot be reversed named
//! on a line `-- gantry-irreversible: WHAT`.

use std::collections::BTreeSet;

use crate::base::shell::quote;
use crate::cli::output::Printer;
use crate::config::{Checks, Environment};
use crate::data::database::Kind;
use crate::data::steps::Steps;
use crate::error::{HostProblem, Warning};
pub use crate::model::commit::Finding;
use crate::remote::release::{self, Planned};
use crate::remote::site::Site;

/// The Django script that prints the pending migrations' SQL and their
/// irreversible operations in the format above (run by `manage.py shell`).
pub const DJANGO_SQL: &str = r#"from django.db import connection
from django.db.migrations.executor import MigrationExecutor
executor = MigrationExecutor(connection)
plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
for migration, backwards in plan:
    print(f"-- gantry-migration: {migration.app_label}.{migration.name}")
    for operation in migration.operations:
        if not operation.reversible:
            print(f"-- gantry-irreversible: {operation.describe()}")
    for statement in executor.loader.collect_sql([(migration, backwards)]):
        print(statement)
"#;

/// Asks the app for the pending migrations' SQL (with `steps`, which see
/// the rehearsal's copy) and checks it; each finding not `reviewed` is
/// warned of and returned. Nothing when checks are off or there is no way
/// to ask.
pub async fn collect(
    env: &Environment,
    site: &Site,
    steps: &Steps<'_>,
    engine: Kind,
    printer: &Printer,
) -> Result<Vec<Finding>, HostProblem> {
    let database = &env.database;
    if database.checks == Checks::Off {
        return Ok(Vec::new());
    }
    let vars = steps.vars();
    let command = match (&database.sql, &steps.config.app.django) {
        (Some(sql), _) => sql.render_shell(&vars),
        (None, Some(python)) => format!(
            "{} manage.py shell -c {}",
            python.render_shell(&vars),
            quote(DJANGO_SQL)
        ),
        (None, None) => return Ok(Vec::new()),
    };
    let step = Planned {
        name: "check the migrations' SQL".into(),
        script: release::command_script(
            steps.config,
            &vars,
            &steps.layout.release(steps.release),
            &command,
            &steps.db_env,
        ),
        shown: None,
        upload: false,
        inline: false,
    };
    let out = match site.run(printer, &step, None).await {
        Ok(out) => out,
        // Checks that cannot run only refuse when they are strict.
        Err(p) if database.checks == Checks::Warn && !p.unreachable => {
            let cause = p.output.lines().last().unwrap_or("").trim().to_string();
            printer.warn(Warning::ChecksNotRun { cause });
            return Ok(Vec::new());
        }
        Err(p) => return Err(p),
    };
    let mut findings = check(&out.stdout, engine);
    findings.retain(|f| !database.reviewed.contains(&f.migration));
    for f in &findings {
        printer.warn(Warning::MigrationFinding(Box::new(f.clone())));
    }
    Ok(findings)
}

/// The findings for the migrations in `sql`, on `engine`.
pub fn check(sql: &str, engine: Kind) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut migration = String::new();
    let mut statements = String::new();
    let flush = |migration: &str, statements: &mut String, findings: &mut Vec<Finding>| {
        findings.extend(check_migration(migration, statements, engine));
        statements.clear();
    };
    for line in sql.lines() {
        if let Some(name) = line.strip_prefix("-- gantry-migration: ") {
            flush(&migration, &mut statements, &mut findings);
            migration = name.trim().to_string();
        } else if let Some(what) = line.strip_prefix("-- gantry-irreversible: ") {
            findings.push(Finding {
                migration: migration.clone(),
                statement: what.trim().to_string(),
                rule: "irreversible".into(),
                what: "cannot be reversed: putting the deploy back or rolling it back then takes the backup, and every write since".into(),
                instead: "give it a reverse (RunPython's reverse_code, RunSQL's reverse_sql, a `-- down` part)".into(),
            });
        } else if !line.trim_start().starts_with("--") {
            statements.push_str(line);
            statements.push('\n');
        }
    }
    flush(&migration, &mut statements, &mut findings);
    findings
}

/// One migration's statements, split at `;`, whitespace collapsed.
fn statements(sql: &str) -> Vec<String> {
    sql.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// A name as written (`"lists_item"`, `lists_item`), unquoted.
fn name(word: &str) -> String {
    word.trim_matches(|c| c == '"' || c == '`' || c == '(' || c == ',')
        .to_string()
}

/// The word after the words `after` (matched without case) in `words`.
fn after<'w>(words: &[&'w str], after: &[&str]) -> Option<&'w str> {
    let n = after.len();
    (0..words.len().saturating_sub(n)).find_map(|i| {
        words[i..i + n]
            .iter()
            .zip(after)
            .all(|(w, a)| w.eq_ignore_ascii_case(a))
            .then(|| words[i + n])
    })
}

fn check_migration(migration: &str, sql: &str, engine: Kind) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Tables this migration creates: nothing reads them yet, so nothing
    // done to them locks or breaks anything.
    let mut created: BTreeSet<String> = BTreeSet::new();
    // Tables SQLite rebuilds (`new__X`, then X dropped and the copy
    // renamed): the drop is part of the rebuild.
    let mut rebuilt: BTreeSet<String> = BTreeSet::new();
    for statement in statements(sql) {
        let upper = statement.to_ascii_uppercase();
        let words: Vec<&str> = statement.split(' ').collect();
        let table = after(&words, &["ALTER", "TABLE"])
            .or_else(|| after(&words, &["ON"]))
            .map(name)
            .unwrap_or_default();
        let mut found = |rule: &str, what: String, instead: &str| {
            let mut shown = statement.clone();
            if shown.len() > 160 {
                let cut = (0..=157)
                    .rev()
                    .find(|&i| shown.is_char_boundary(i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            findings.push(Finding {
                migration: migration.to_string(),
                statement: shown,
                rule: rule.into(),
                what,
                instead: instead.into(),
            });
        };
        if let Some(t) = after(&words, &["CREATE", "TABLE"]) {
            let t = name(t);
            if engine == Kind::Sqlite {
                if let Some(old) = t.strip_prefix("new__") {
                    rebuilt.insert(old.to_string());
                    if !created.contains(old) {
                        found("rewrites", format!("rebuilds table {old}: every row is copied while writes wait (SQLite changes a column by copying the table)"), "fine for a small table; for a large one, add a new column instead of changing this one");
                    }
                }
            }
            created.insert(t);
            continue;
        }
        if created.contains(&table) || table.starts_with("new__") {
            continue;
        }
        if upper.starts_with("CREATE INDEX") || upper.starts_with("CREATE UNIQUE INDEX") {
            if engine == Kind::Postgres && !upper.contains(" CONCURRENTLY ") {
                found("locks", format!("builds an index on {table} while writes to it wait"), "CREATE INDEX CONCURRENTLY, in a migration of its own (Django: AddIndexConcurrently in a migration with atomic = False)");
            }
            continue;
        }
        if !upper.starts_with("ALTER TABLE") {
            if upper.starts_with("DROP TABLE") {
                let t = after(&words, &["TABLE"]).map(name).unwrap_or_default();
                let t = if t.eq_ignore_ascii_case("IF") {
                    words.get(4).map(|w| name(w)).unwrap_or_default()
                } else {
                    t
                };
                if !created.contains(&t) && !rebuilt.contains(&t) {
                    found("breaks", format!("drops table {t}, which the release still serving may read"), "first a release whose code no longer uses it, then drop it in a later release");
                }
            }
            continue;
        }
        if upper.contains(" DROP COLUMN ") {
            let c = after(&words, &["DROP", "COLUMN"])
                .map(name)
                .unwrap_or_default();
            found(
                "breaks",
                format!("drops column {table}.{c}, which the release still serving reads"),
                "first a release whose code no longer uses it, then drop it in a later release",
            );
        } else if upper.contains(" RENAME COLUMN ") || upper.contains(" RENAME TO ") {
            found("breaks", format!("renames {table} or one of its columns, which the release still serving reads by its old name"), "add the new name beside the old one, copy, move the code over, then drop the old one in a later release");
        }
        if upper.contains(" ADD COLUMN ")
            && upper.contains(" NOT NULL")
            && !upper.contains(" DEFAULT ")
        {
            found("breaks", format!("adds a NOT NULL column to {table} without a default: the release still serving inserts rows without it, which fail"), "add it nullable or with a database default (Django 5: db_default), and make it NOT NULL in a later release");
        }
        if upper.contains(" DROP DEFAULT") {
            let c = after(&words, &["ALTER", "COLUMN"])
                .map(name)
                .unwrap_or_default();
            found("breaks", format!("drops the database default of {table}.{c}: the release still serving inserts rows without it, which fail if it is NOT NULL"), "keep a database default (Django 5: db_default) until no release inserts without the column");
        }
        if engine == Kind::Postgres {
            if upper.contains(" TYPE ") && upper.contains(" ALTER COLUMN ") {
                found("rewrites", format!("changes a column's type: {table} is rewritten while reads and writes wait"), "add a new column of the new type, copy in batches, move the code over, then drop the old one");
            }
            if upper.contains(" SET NOT NULL") {
                found("locks", format!("sets NOT NULL: every row of {table} is read while writes wait"), "ADD CONSTRAINT … CHECK (column IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL");
            }
            if upper.contains(" ADD CONSTRAINT ") && !upper.contains(" NOT VALID") {
                let instead = if upper.contains(" UNIQUE") {
                    "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … UNIQUE USING INDEX"
                } else {
                    "ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in a later migration"
                };
                found(
                    "locks",
                    format!(
                        "adds a constraint checked against every row of {table} while writes wait"
                    ),
                    instead,
                );
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests;
