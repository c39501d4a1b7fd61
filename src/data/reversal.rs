//! A rollback that takes the schema back. Each release's database, as it
//! went live, is recorded on the migrate host (`.gantry/schema/RELEASE`:
//! the fingerprint, with the migrations applied). A rollback compares it
//! with the database now: the migrations applied since are kept when the
//! release rolled back to runs on what they made (they only add), else
//! reversed — rehearsed on a copy first, from the release being left (the
//! older one does not have their files), after a backup — or, when they
//! cannot be, the rollback is refused with the ways out.

use crate::base::shell::quote;
use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::data::database::Db;
use crate::data::fingerprint::{self, Fingerprint};
use crate::data::rehearse::{delete_scratch, read_fingerprint, Scratch, Source};
use crate::data::trial;
use crate::data::undo::{self, Undo};
use crate::error::{Error, HostProblem};
use crate::model::commit::Commit;
use crate::remote::release::{self, Layout};
use crate::remote::site::Site;

/// What the migrate host prints when a release has no record.
pub const NO_RECORD: &str = "@@GANTRY_NO_SCHEMA_RECORD@@";

/// The record of `release`'s database as it went live.
pub fn record_file(layout: &Layout, release: &str) -> String {
    format!("{}/schema/{release}", layout.gantry())
}

/// What the record script prints before each migration the release went
/// live with.
pub const APPLIED: &str = "gantry-applied ";

/// Writes the record of `release` (part of the finish script on the
/// migrate host; never fails it): the schema's objects and the applied
/// migrations, no row read. Prints the migrations, each after `APPLIED`.
pub fn record_script(db: &Db, layout: &Layout, release: &str) -> String {
    let f = quote(&record_file(layout, release));
    format!(
        "mkdir -p \"$(dirname {f})\" && {{ ( {}\n) > {f}.tmp 2>/dev/null && mv -f {f}.tmp {f} || rm -f {f}.tmp; }}\n\
         sed -n 's/^applied /{APPLIED}/p' {f} 2>/dev/null || true",
        fingerprint::schema_script(db, &db.location)
    )
}

/// The migrations a record script printed.
pub fn applied(printed: &str) -> Vec<String> {
    printed
        .lines()
        .filter_map(|l| l.strip_prefix(APPLIED))
        .map(str::to_string)
        .collect()
}

/// What the migrate host prints when the backup it was asked about is there.
pub const BACKUP_THERE: &str = "@@GANTRY_BACKUP_THERE@@";

/// Prints the record of `release` (or `NO_RECORD`), then `BACKUP_THERE`
/// when the file `backup` exists.
pub fn read_record_script(layout: &Layout, release: &str, backup: &str) -> String {
    format!(
        "cat {} 2>/dev/null || echo {NO_RECORD}\n[ -f {} ] && echo {BACKUP_THERE}; true",
        quote(&record_file(layout, release)),
        quote(backup)
    )
}

/// What a rollback does to the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Back {
    /// Nothing was applied since the release rolled back to went live.
    Nothing,
    /// These were, but that release runs on what they made: kept.
    Keep { applied: Vec<String> },
    /// These are reversed (in the order applied).
    Reverse { applied: Vec<String> },
    /// They cannot be taken back, for this reason.
    Cannot { applied: Vec<String>, why: String },
}

/// Decides from the record of the release rolled back to and the
/// database now; `reversible`: the config can reverse migrations.
pub fn decide(target: &Fingerprint, now: &Fingerprint, reversible: bool) -> Back {
    let applied = crate::data::schema::applied_since(&target.applied, &now.applied);
    match undo::decide(target, now, reversible) {
        Undo::Nothing => Back::Nothing,
        Undo::Keep { applied } => Back::Keep { applied },
        Undo::Reverse { applied, .. } => Back::Reverse { applied },
        Undo::Restore { why } => Back::Cannot {
            applied: applied.unwrap_or_default(),
            why,
        },
    }
}

/// What a reversal back to `target` drops that may hold data: the tables
/// the migrations created (`(table, None)`), and the columns they added to
/// tables that were there (`(table, Some(column))`).
pub fn dropped(target: &Fingerprint, now: &Fingerprint) -> Vec<(String, Option<String>)> {
    let decode = |w: &str| w.replace("%20", " ").replace("%25", "%");
    let parts = |f: &Fingerprint| {
        let mut tables = std::collections::BTreeSet::new();
        let mut columns = std::collections::BTreeSet::new();
        for line in &f.objects {
            match line.split(' ').collect::<Vec<_>>().as_slice() {
                ["table", t, ..] => {
                    tables.insert(decode(t));
                }
                ["column", t, c, ..] => {
                    columns.insert((decode(t), decode(c)));
                }
                _ => {}
            }
        }
        (tables, columns)
    };
    let (had_tables, had_columns) = parts(target);
    let (tables, columns) = parts(now);
    let mut out: Vec<(String, Option<String>)> = tables
        .difference(&had_tables)
        .map(|t| (t.clone(), None))
        .collect();
    out.extend(
        columns
            .difference(&had_columns)
            .filter(|(t, _)| had_tables.contains(t))
            .map(|(t, c)| (t.clone(), Some(c.clone()))),
    );
    out
}

/// One query counting what `dropped` holds: a line `INDEX<TAB>COUNT` for
/// each (rows of a table, values of a column).
pub fn count_sql(dropped: &[(String, Option<String>)]) -> String {
    let ident = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    dropped
        .iter()
        .enumerate()
        .map(|(i, (table, column))| match column {
            None => format!("SELECT {i}, count(*) FROM {}", ident(table)),
            Some(c) => format!(
                "SELECT {i}, count(*) FROM {} WHERE {} IS NOT NULL",
                ident(table),
                ident(c)
            ),
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// What `count_sql` printed, in words, for what holds data.
pub fn holding(dropped: &[(String, Option<String>)], out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let (i, n) = l.split_once('\t')?;
            let (i, n): (usize, u64) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
            let (table, column) = dropped.get(i)?;
            (n > 0).then(|| match column {
                None => format!("table {table} ({n} rows)"),
                Some(c) => format!("column {table}.{c} ({n} rows have a value)"),
            })
        })
        .collect()
}

/// The database of `env` on `site`, with the variables of `release`.
pub fn database(config: &Config, env: &Environment, site: &Site, release: &str) -> Option<Db> {
    let vars = release::run_vars(&site.spec, &site.layout, Some(release), None);
    Db::new(
        &env.database,
        &vars,
        &release::env_file_prelude(config, &vars),
    )
}

/// Reverses `applied` on a copy of the database, from the release
/// `left` (which has their files): `Ok(Err(why))` when it cannot be done
/// (it would drop a table or column holding data, the reversal fails, or
/// it leaves a schema the release rolled back to, recorded as `target`,
/// does not run on; `now`: the database before it). Then the release
/// rolled back to, `back_to`, is started against the copy and checked
/// (`deploy.serve`; `Ok(Ok(false))` when it is not set). The copy and the
/// scratch releases are removed whatever happens.
#[allow(clippy::too_many_arguments)]
pub async fn rehearse(
    config: &Config,
    env: &Environment,
    site: &Site,
    db: &Db,
    (left, commit): (&str, &str),
    (back_to, target, now): (&str, &Fingerprint, &Fingerprint),
    applied: &[String],
    printer: &Printer,
) -> Result<Result<bool, String>, Error> {
    let real = &site.layout;
    let layout = Layout::rehearsal(&real.path);
    let copy = db.copy_location(&real.shared(), &layout.shared(), &layout.rehearsals(), left);
    let fail = |p: HostProblem| Error::Hosts {
        what: format!(
            "the rehearsal of the rollback on a copy of `{}`'s database",
            env.name
        ),
        problems: vec![p],
    };
    let scratch_dir = quote(&layout.rehearsals());
    site.step(
        printer,
        "clear old rehearsals",
        None,
        &format!("rm -rf {scratch_dir} && mkdir -p {scratch_dir}"),
        None,
    )
    .await
    .map_err(fail)?;
    let scratch = Scratch {
        config,
        env,
        site,
        layout: &layout,
        db,
        copy: &copy,
        printer,
    };
    let commit = Commit {
        sha: commit.to_string(),
        subject: String::new(),
    };
    let result = async {
        let steps = scratch.prepare(left, &commit, Source::Prepared(left)).await?;
        // What the reversal would drop must hold nothing written since.
        let dropped = dropped(target, now);
        if !dropped.is_empty() {
            let script = db.query_script(&copy, &count_sql(&dropped));
            let out = site
                .step(printer, "count what the reversal drops", None, &script, None)
                .await
                .map_err(fail)?;
            let held = holding(&dropped, &out.stdout);
            if !held.is_empty() {
                return Ok(Err(format!(
                    "reversing them would drop what was written since: {}",
                    held.join(", ")
                )));
            }
        }
        let reverse = env.database.reverse.as_ref();
        let Some(reversal) =
            undo::reverse_command(config, reverse, &steps.vars(), &target.applied, applied)
        else {
            return Ok(Err("the migrations' names cannot be given to a reversal".into()));
        };
        if let Err(e) = site.run(printer, &undo::step(&steps, &reversal), None).await {
            let last = e.output.lines().last().unwrap_or("").trim().to_string();
            return Ok(Err(format!("reversing them fails on the copy: {last}")));
        }
        let back = read_fingerprint(site, db, &copy, false, printer)
            .await
            .map_err(fail)?;
        if !matches!(undo::decide(target, &back, false), Undo::Nothing | Undo::Keep { .. }) {
            return Ok(Err("the reversal on the copy leaves a schema the release rolled back to does not run on".into()));
        }
        Ok(match trial::serve_and_check(&scratch, back_to, "").await? {
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(why)) => Err(why),
        })
    }
    .await;
    delete_scratch(site, db, &copy, &layout, printer).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(objects: &[&str]) -> Fingerprint {
        Fingerprint {
            objects: objects.iter().map(|o| o.to_string()).collect(),
            ..Fingerprint::default()
        }
    }

    #[test]
    fn a_reversal_drops_the_tables_and_columns_added_since() {
        let target = fingerprint(&["table items", "column items text text null nodefault"]);
        let now = fingerprint(&[
            "table items",
            "column items text text notnull nodefault",
            "column items my%20note text null nodefault",
            "table tags",
            "column tags name text null nodefault",
            "index items items_text unique",
        ]);
        let dropped = dropped(&target, &now);
        assert_eq!(
            dropped,
            [
                ("tags".to_string(), None),
                ("items".to_string(), Some("my note".to_string()))
            ]
        );
        assert_eq!(
            count_sql(&dropped),
            "SELECT 0, count(*) FROM \"tags\" UNION ALL SELECT 1, count(*) FROM \"items\" WHERE \"my note\" IS NOT NULL"
        );
        assert_eq!(
            holding(&dropped, "0\t0\n1\t3\n"),
            ["column items.my note (3 rows have a value)"]
        );
    }
}
