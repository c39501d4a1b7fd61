//! `gantry backups ENV` and `gantry restore ENV BACKUP`: the database
//! backups Gantry takes before migrations, kept on the migrate host under
//! `.gantry/backups/` (mode 0600, the newest `keep_backups`).

use std::io::IsTerminal;

use serde::Serialize;

use crate::base::shell::quote;
use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::data::database::Db;
use crate::data::steps::Steps;
use crate::error::{Error, Warning};
use crate::model::history::{Action, Outcome, Record};
use crate::model::lock::LockInfo;
use crate::remote::site::{self, Site};
use crate::remote::{locking, release};

/// Connects to the migrate host only.
async fn migrate_host(
    config: &Config,
    env: &Environment,
    printer: &Printer,
) -> Result<Vec<Site>, Error> {
    let scope = Environment {
        hosts: vec![env.hosts[env.migrate_host].clone()],
        migrate_host: 0,
        ..env.clone()
    };
    site::connect(config, &scope, printer).await
}

pub async fn list(config: &Config, env_name: &str, printer: &Printer) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let sites = migrate_host(config, env, printer).await?;
    let site = &sites[0];
    let script = format!(
        "cd {} 2>/dev/null || exit 0\nfor f in *; do [ -f \"$f\" ] && printf '%s\\t%s\\t%s\\n' \"$f\" \"$(stat -c %s \"$f\")\" \"$(date -u -r \"$f\" +%Y-%m-%dT%H:%M:%SZ)\"; done; true",
        quote(&site.layout.backups())
    );
    let result = site
        .step(printer, "list backups", None, &script, None)
        .await;
    let host = site.name().to_string();
    site::close(sites).await;
    printer.finish_hosts();
    let out = result.map_err(|p| Error::Hosts {
        what: "listing backups".into(),
        problems: vec![p],
    })?;
    let backups: Vec<Backup> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Backup {
                name: f.next()?.to_string(),
                bytes: f.next()?.parse().ok(),
                time: f.next()?.to_string(),
            })
        })
        .collect();
    let list = BackupList {
        env: &env.name,
        host: &host,
        backups,
    };
    if printer.json_mode() {
        printer.json(&list);
    } else {
        printer.result(&list.text());
    }
    Ok(())
}

/// Checks that `backup` names a backup, and asks before it replaces
/// `env_name`'s database (unless `yes`; refused without a terminal).
pub fn confirm_restore(
    env_name: &str,
    backup: &str,
    yes: bool,
    printer: &Printer,
) -> Result<(), Error> {
    if backup.contains('/') || backup.starts_with('.') || backup.is_empty() {
        return Err(Error::NotABackup {
            env: env_name.to_string(),
            backup: backup.to_string(),
        });
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::RestoreNotConfirmed {
                env: env_name.to_string(),
                backup: backup.to_string(),
            });
        }
        let answer = printer.ask(&format!(
            "Replace `{env_name}`'s database with the backup `{backup}`? Everything written since is lost. [y/N] "
        ));
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Error::RestoreDeclined);
        }
    }
    Ok(())
}

pub async fn restore(
    config: &Config,
    env_name: &str,
    backup: &str,
    yes: bool,
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    confirm_restore(env_name, backup, yes, printer)?;
    let sites = migrate_host(config, env, printer).await?;
    let info = LockInfo::new(&format!("gantry restore {env_name} {backup}"), None, false);
    let sites = locking::lock(sites, &env.name, &info, printer).await?;
    let site = &sites[0];
    let host = site.name().to_string();
    let serving = site.serving.clone().unwrap_or_default();
    let vars = release::run_vars(&site.spec, &site.layout, Some(&serving), None);
    let result = match Db::new(
        &env.database,
        &vars,
        &release::env_file_prelude(config, &vars),
    ) {
        None => Err(Error::NoDatabase {
            env: env_name.to_string(),
        }),
        Some(db) => {
            let path = format!("{}/{backup}", site.layout.backups());
            let saved = saved_path(&site.layout, &db);
            match site
                .step(
                    printer,
                    "restore the database",
                    None,
                    &crate::data::restore::script(&db, &path, &saved),
                    None,
                )
                .await
            {
                Err(p) => Err(Error::Hosts {
                    what: "restore".into(),
                    problems: vec![p],
                }),
                Ok(_) => {
                    // A SQLite app holds the replaced file open: restart it.
                    if let (crate::data::database::Kind::Sqlite, Some(restart), false) =
                        (db.engine, &config.deploy.restart, serving.is_empty())
                    {
                        let steps = Steps::new(config, env, &site.spec, &site.layout, &serving, "");
                        let step = steps.command("restart", restart, true);
                        if let Err(p) = site
                            .step(
                                printer,
                                "restart",
                                step.shown.as_deref(),
                                &step.script,
                                None,
                            )
                            .await
                        {
                            printer.warn(Warning::RestoredNotRestarted {
                                cause: p.to_string(),
                            });
                        } else if let Some(check) = &config.deploy.health {
                            // Back only when the app answers again.
                            let vars = steps.vars();
                            let url = check.url.render(&vars);
                            printer.host(site.name(), &format!("health check {url}"));
                            if let Err(f) =
                                crate::remote::health::check_from(check, &url, None, site, false)
                                    .await
                            {
                                printer.warn(Warning::RestoredNotAnswering {
                                    url: f.url,
                                    attempts: f.attempts,
                                    last: f.last,
                                });
                            }
                        }
                    }
                    let mut record =
                        Record::new(Action::Restore, &env.name, site.name(), Outcome::Ok);
                    record.message = Some(format!(
                        "restored the database from {backup}; the database as it was is saved in {saved}"
                    ));
                    site.record(printer, &record).await;
                    Ok(saved)
                }
            }
        }
    };
    locking::unlock(&sites, &info, printer).await;
    site::close(sites).await;
    printer.finish_hosts();
    let saved = result?;
    printer.headline(&format!(
        "Restored `{env_name}`'s database from {backup}; the database as it was is saved in {saved} on {host}"
    ));
    Ok(())
}

/// Where a restore saves the database it replaces: beside the backups,
/// not among them (those are pruned by count).
pub fn saved_path(layout: &release::Layout, db: &Db) -> String {
    let ext = match db.engine {
        crate::data::database::Kind::Sqlite => "sqlite3",
        crate::data::database::Kind::Postgres => "dump",
    };
    format!(
        "{}/saved/{}.{ext}",
        layout.gantry(),
        crate::base::time::Utc::now().compact()
    )
}

/// `backups`: what `--json` prints and the text is drawn from.
#[derive(Serialize)]
struct BackupList<'a> {
    env: &'a str,
    host: &'a str,
    backups: Vec<Backup>,
}

/// One backup on the migrate host.
#[derive(Serialize)]
struct Backup {
    name: String,
    bytes: Option<u64>,
    time: String,
}

impl BackupList<'_> {
    fn text(&self) -> String {
        let (env, host) = (self.env, self.host);
        if self.backups.is_empty() {
            return format!("no backups of `{env}`'s database on {host}");
        }
        let mut text = format!("backups of `{env}`'s database on {host}, oldest first:\n");
        for b in &self.backups {
            let size = b.bytes.map_or("?".to_string(), |n| n.to_string());
            text.push_str(&format!("  {}  {size} bytes  {}\n", b.name, b.time));
        }
        text.trim_end().to_string()
    }
}
