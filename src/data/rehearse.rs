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
use crate::data::database::{plain_identifier, Db, Kind, Violation};
use crate::data::fingerprint::{self, Fingerprint};
use crate::data::steps::Steps;
use crate::error::{Error, HostProblem};
use crate::ledger::git::{Commit, Repo};
use crate::model::lock::LockInfo;
use crate::remote::release::{self, Layout};
use crate::remote::site::{self, Site};

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
    let sites = site::connect_locked(config, &scope, &info, printer).await?;
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
    site::unlock(&sites, &info, printer).await;
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

    let result = run(
        config, env, site, &layout, &db, &copy, name, commit, source, printer,
    )
    .await;

    // Always: no copy and no scratch release is left behind, and the real
    // database is what it was.
    let cleanup = format!("{}\nrm -rf {scratch}", db.drop_copy_script(&copy));
    if let Err(p) = site
        .step_always(printer, "delete the copy", None, &cleanup, None)
        .await
    {
        printer.warn(&format!("could not delete the rehearsal's copy: {p}"));
    }
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
        printer.warn(&format!(
            "`{}`'s database took writes while the rehearsal ran ({}); its schema and applied migrations did not change, so these are the app's own writes",
            env.name,
            changes.content.join("; ")
        ));
    }
    let report = result?;
    if report.migration.is_some() {
        return Err(Error::RehearsalFailed(Box::new(report)));
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    config: &Config,
    env: &Environment,
    site: &Site,
    layout: &Layout,
    db: &Db,
    copy: &str,
    name: &str,
    commit: &Commit,
    source: Source<'_>,
    printer: &Printer,
) -> Result<Report, Error> {
    let fail = |p: HostProblem| Error::Hosts {
        what: format!("the rehearsal on a copy of `{}`'s database", env.name),
        problems: vec![p],
    };
    // The scratch shared folder first: copies only.
    let isolate = release::isolate_shared_script(
        &site.layout,
        layout,
        &config.deploy.shared,
        &config.setup.env_file,
        db.env_var.as_deref().map(|v| (v, copy)),
        (db.engine == Kind::Sqlite).then_some(db.location.as_str()),
    );
    site.step(printer, "isolate shared files", None, &isolate, None)
        .await
        .map_err(fail)?;
    site.step(
        printer,
        "copy the database",
        None,
        &db.copy_script(copy),
        None,
    )
    .await
    .map_err(fail)?;

    let mut steps = Steps::new(config, env, &site.spec, layout, name, &commit.sha);
    // The app's commands see the copy, never the real database.
    steps.db_env = db.app_env(copy);
    match source {
        Source::Prepared(release) => {
            let script = format!(
                "{}\n{}",
                release::clone_release_script(&site.layout.release(release), &layout.release(name)),
                release::link_shared_script(layout, name, &config.deploy.shared)
            );
            site.step(printer, "copy the prepared release", None, &script, None)
                .await
                .map_err(fail)?;
        }
        Source::Archive(archive) => {
            steps.keep_source = false;
            for step in steps.prepare() {
                let stdin = step.upload.then_some(archive);
                site.run(printer, &step, stdin).await.map_err(fail)?;
            }
        }
    }

    // The app is asked which database it opens: it must be the copy.
    if let Some(step) = steps.ask_database(db, copy) {
        let out = site.run(printer, &step, None).await.map_err(fail)?;
        if let crate::data::wiring::Answer::Differs(app) =
            crate::data::wiring::compare(db, copy, &out.stdout)
        {
            return Err(Error::WrongDatabase(Box::new(
                crate::error::WrongDatabase {
                    env: env.name.clone(),
                    host: site.name().to_string(),
                    expected: crate::data::database::hide_password(copy),
                    env_var: db.env_var.clone(),
                    app: app.describe(),
                    rehearsal: true,
                },
            )));
        }
    }

    let mut report = Report {
        env: env.name.clone(),
        commit: commit.clone(),
        host: site.name().to_string(),
        pending: true,
        seconds: 0.0,
        migration: None,
        output: String::new(),
        violation: None,
        rows: Vec::new(),
    };
    let copy_before = read_fingerprint(site, db, copy, false, printer)
        .await
        .map_err(fail)?;
    let mut checked = false;
    if let Some(check) = &env.database.check {
        let step = steps.command("check pending migrations", check, false);
        match site.run(printer, &step, None).await {
            Ok(_) => {
                report.pending = false;
                return Ok(report);
            }
            Err(p) if p.unreachable || crate::remote::site::interrupted() => return Err(fail(p)),
            Err(_) => checked = true,
        }
    }
    let Some(migrate) = &config.deploy.migrate else {
        return Ok(report);
    };
    let step = steps.command("migrate the copy", migrate, false);
    let started = Instant::now();
    let result = site.run(printer, &step, None).await;
    report.seconds = started.elapsed().as_secs_f64();
    let problem = match result {
        Ok(_) => {
            // Proof: the copy must show that the migrations ran on it.
            let copy_after = read_fingerprint(site, db, copy, false, printer)
                .await
                .map_err(fail)?;
            if checked && copy_after.changes(&copy_before).is_empty() {
                return Err(Error::CopyNotUsed(Box::new(crate::error::CopyNotUsed {
                    env: env.name.clone(),
                    host: site.name().to_string(),
                    copy: crate::data::database::hide_password(copy),
                    env_var: db.env_var.clone(),
                    check: env
                        .database
                        .check
                        .as_ref()
                        .map(|c| c.render(&steps.vars()))
                        .unwrap_or_default(),
                })));
            }
            if !checked && copy_after.changes(&copy_before).is_empty() {
                printer.warn(
                    "the copy did not change: either no migration was pending, or the app did not use the copy (set `database.check` so Gantry can tell)",
                );
            }
            return Ok(report);
        }
        Err(p) if p.unreachable || crate::remote::site::interrupted() => return Err(fail(p)),
        Err(p) => p,
    };
    report.migration =
        crate::data::steps::failed_migration(&problem.output).or(Some("(unknown)".into()));
    report.output = problem.detail.clone();
    report.violation = Violation::parse(&problem.output);
    if let Some(v) = &report.violation {
        report.rows = violating_rows(site, db, copy, v, printer).await;
    }
    Ok(report)
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

/// Reads the rows that violate `v` from the database at `copy` (a
/// rehearsal's copy, a backup or the restored database), one line each.
pub async fn violating_rows(
    site: &Site,
    db: &Db,
    copy: &str,
    v: &Violation,
    printer: &Printer,
) -> Vec<String> {
    let query = |sql: String| {
        let script = db.query_script(copy, &sql);
        async move {
            site.step_always(printer, "read the violating rows", None, &script, None)
                .await
                .map(|o| o.stdout.lines().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        }
    };
    let id = match db.engine {
        Kind::Sqlite => "rowid",
        Kind::Postgres => "id",
    };
    match v {
        Violation::Unique {
            table,
            index,
            columns,
        } => {
            if columns.is_empty() || !columns.iter().all(|c| plain_identifier(c)) {
                return Vec::new();
            }
            let table = match table {
                Some(t) => Some(t.clone()),
                None => {
                    // PostgreSQL names the index, not the table: find the
                    // table that has these columns and whose name the index
                    // starts with.
                    let list = columns
                        .iter()
                        .map(|c| format!("'{c}'"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let tables = query(format!(
                        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name IN ({list}) GROUP BY table_name HAVING count(DISTINCT column_name) = {}",
                        columns.len()
                    ))
                    .await;
                    let index = index.clone().unwrap_or_default();
                    tables
                        .iter()
                        .filter(|t| index.starts_with(t.as_str()))
                        .max_by_key(|t| t.len())
                        .or(tables.first())
                        .cloned()
                }
            };
            let Some(table) = table.filter(|t| plain_identifier(t)) else {
                return Vec::new();
            };
            let cols = columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let ids = match db.engine {
                Kind::Sqlite => format!("group_concat({id}, ', ')"),
                Kind::Postgres => format!("string_agg({id}::text, ', ' ORDER BY {id})"),
            };
            let rows = query(format!(
                "SELECT {cols}, {ids}, count(*) FROM \"{table}\" GROUP BY {cols} HAVING count(*) > 1 ORDER BY {cols} LIMIT 50"
            ))
            .await;
            rows.iter()
                .map(|row| {
                    let fields: Vec<&str> = row.split('\t').collect();
                    let n = columns.len();
                    let values = columns
                        .iter()
                        .zip(&fields)
                        .map(|(c, v)| format!("{c}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!(
                        "{table}: {values}: {} rows, ids {}",
                        fields.get(n + 1).unwrap_or(&"?"),
                        fields.get(n).unwrap_or(&"?")
                    )
                })
                .collect()
        }
        Violation::NotNull { table, column } => {
            if !plain_identifier(table) || !plain_identifier(column) {
                return Vec::new();
            }
            let ids = query(format!(
                "SELECT {id} FROM \"{table}\" WHERE \"{column}\" IS NULL ORDER BY {id} LIMIT 50"
            ))
            .await;
            if ids.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "{table}: {column} is NULL in the rows with ids {}",
                    ids.join(", ")
                )]
            }
        }
        Violation::ForeignKey { .. } => match db.engine {
            Kind::Sqlite => query("PRAGMA foreign_key_check".into())
                .await
                .iter()
                .map(|row| {
                    let f: Vec<&str> = row.split('\t').collect();
                    format!(
                        "{}: the row with id {} refers to a missing row of {}",
                        f.first().unwrap_or(&"?"),
                        f.get(1).unwrap_or(&"?"),
                        f.get(2).unwrap_or(&"?")
                    )
                })
                .collect(),
            Kind::Postgres => Vec::new(),
        },
    }
}
