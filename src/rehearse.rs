//! `gantry rehearse ENV [REV]`: runs REV's migrations on a copy of ENV's
//! database before anything live is touched. The release is prepared in a
//! scratch area on the migrate host (`.gantry/rehearsals/`), the database
//! is copied next to it (SQLite backup API; a scratch PostgreSQL database
//! restored from `pg_dump`), the migrate command runs with the app's
//! database variable pointing at the copy, and the copy and the scratch
//! release are deleted whatever happens. A constraint the data violates is
//! named, with the rows that violate it.

use std::time::Instant;

use crate::config::{Config, Environment};
use crate::database::{plain_identifier, Db, Kind, Violation};
use crate::error::{Error, HostProblem};
use crate::git::{Commit, Repo};
use crate::lock::LockInfo;
use crate::output::Printer;
use crate::release::{self, Layout};
use crate::site::{self, Site};
use crate::steps::Steps;

/// What a rehearsal found.
#[derive(Debug, Clone)]
pub struct Report {
    pub env: String,
    pub commit: Commit,
    pub host: String,
    /// Whether there were migrations to run.
    pub pending: bool,
    pub seconds: f64,
    /// The migration that failed, when one did.
    pub migration: Option<String>,
    /// The end of the migration's output.
    pub output: String,
    pub violation: Option<Violation>,
    /// The rows that violate it, one line per group or row.
    pub rows: Vec<String>,
}

/// Rehearses `commit`'s migrations against `env_name`'s data.
pub async fn rehearse(
    config: &Config,
    env_name: &str,
    commit: &Commit,
    printer: &Printer,
) -> Result<Report, Error> {
    let env = config.environment(env_name)?;
    let Some(migrate) = &config.deploy.migrate else {
        return Err(Error::Usage(
            "there is nothing to rehearse: `deploy.migrate` is not set".into(),
        ));
    };
    if matches!(env.database.engine, crate::config::Engine::None) {
        return Err(Error::Usage(format!(
            "`{env_name}` has no database to rehearse on\n  = help: set `[database]` (or `[environments.{env_name}.database]`) with `engine = \"sqlite\"` or `\"postgres\"`"
        )));
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
    let site = &sites[0];
    let name = release::release_name(commit);
    let layout = Layout::rehearsal(&site.layout.path);
    let vars = release::run_vars(&site.spec, &layout, Some(&name), Some(&commit.sha));
    let db = Db::new(
        &env.database,
        &vars,
        &release::env_file_prelude(config, &vars),
    )
    .expect("engine checked above");
    let copy = db.copy_location(&layout.rehearsals(), &name);

    let result = run(
        config, env, site, &layout, &db, &copy, &name, commit, migrate, &archive, printer,
    )
    .await;

    // Always: no copy and no scratch release is left behind.
    let cleanup = format!(
        "{}\nrm -rf {}",
        db.drop_copy_script(&copy),
        crate::shell::quote(&layout.rehearsals())
    );
    let cleaned = site
        .step_always(printer, "delete the copy", None, &cleanup, None)
        .await;
    site::unlock(&sites, &info, printer).await;
    site::close(sites).await;
    printer.finish_hosts();
    if let Err(p) = cleaned {
        printer.warn(&format!("could not delete the rehearsal's copy: {p}"));
    }
    let report = result?;
    if report.migration.is_some() {
        return Err(Error::RehearsalFailed(Box::new(report)));
    }
    if report.pending {
        printer.headline(&format!(
            "Rehearsal passed: the migrations of {} ran on a copy of {}'s data in {}",
            commit.short(),
            env.name,
            crate::time::human(std::time::Duration::from_secs_f64(report.seconds))
        ));
    } else {
        printer.headline(&format!(
            "Rehearsal: {} has no pending migrations for {}",
            commit.short(),
            env.name
        ));
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
    migrate: &crate::config::Template,
    archive: &[u8],
    printer: &Printer,
) -> Result<Report, Error> {
    let fail = |p: HostProblem| Error::Hosts {
        what: format!("the rehearsal on a copy of `{}`'s database", env.name),
        problems: vec![p],
    };
    // Leftovers of an interrupted rehearsal go first.
    let scratch = crate::shell::quote(&layout.rehearsals());
    let leftovers = format!("rm -rf {scratch} && mkdir -p {scratch}");
    site.step(printer, "clear old rehearsals", None, &leftovers, None)
        .await
        .map_err(fail)?;
    let mut steps = Steps::new(config, env, &site.spec, layout, name, &commit.sha);
    // The app's commands see the copy, never the real database.
    steps.db_env = db.app_env(copy);
    for step in steps.prepare() {
        let stdin = step.upload.then_some(archive);
        site.run(printer, &step, stdin).await.map_err(fail)?;
    }
    site.step(
        printer,
        "copy the database",
        None,
        &db.copy_script(copy),
        None,
    )
    .await
    .map_err(fail)?;
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
    if let Some(check) = &env.database.check {
        let step = steps.command("check pending migrations", check, false);
        match site.run(printer, &step, None).await {
            Ok(_) => {
                report.pending = false;
                return Ok(report);
            }
            Err(p) if p.unreachable => return Err(fail(p)),
            Err(_) => {}
        }
    }
    let step = steps.command("migrate the copy", migrate, false);
    let started = Instant::now();
    let result = site.run(printer, &step, None).await;
    report.seconds = started.elapsed().as_secs_f64();
    let problem = match result {
        Ok(_) => return Ok(report),
        Err(p) if p.unreachable || crate::site::interrupted() => return Err(fail(p)),
        Err(p) => p,
    };
    report.migration = crate::steps::failed_migration(&problem.output).or(Some("(unknown)".into()));
    report.output = problem.detail.clone();
    report.violation = Violation::parse(&problem.output);
    if let Some(v) = &report.violation {
        report.rows = violating_rows(site, db, copy, v, printer).await;
    }
    Ok(report)
}

/// Reads the rows that violate `v` from the copy, one line each.
async fn violating_rows(
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
