//! `gantry check`: can every host be reached, does it have what a deploy
//! needs, and (with the Django preset) does the app open the database in
//! `[database]`.

use serde::Serialize;

use crate::cli::output::Printer;
use crate::config::Config;
use crate::error::{Error, HostProblem, Warning};
use crate::remote::inspect;
use crate::remote::release;
use crate::remote::site::{self, each};

pub async fn check(config: &Config, only: Option<&str>, printer: &Printer) -> Result<(), Error> {
    let envs = match only {
        Some(name) => vec![config.environment(name)?],
        None => config.environments.iter().collect(),
    };
    printer.headline(&format!("`{}` is valid", config.file.display()));
    let mut problems: Vec<HostProblem> = Vec::new();
    let mut hosts_json = Vec::new();
    for env in envs {
        let sites = match site::connect(config, env, printer).await {
            Ok(s) => s,
            Err(Error::Unreachable { problems: p, .. }) => {
                problems.extend(p);
                continue;
            }
            Err(e) => return Err(e),
        };
        // The migrate host also needs what backs up and copies the database.
        let migrate_host = &env.hosts[env.migrate_host].name;
        let db_tools: &[&str] = match env.database.engine {
            crate::config::Engine::None => &[],
            crate::config::Engine::Sqlite { .. } => &["python3"],
            crate::config::Engine::Postgres { .. } => &["pg_dump", "pg_restore", "psql"],
        };
        // `gantry setup` installs the unit and the site with sudo when asked.
        let sudo: &[&str] = if config.setup.sudo { &["sudo"] } else { &[] };
        let results = each(&sites, 32, |site| async move {
            let extra: Vec<&str> = if site.name() == migrate_host {
                db_tools.iter().chain(sudo).copied().collect()
            } else {
                sudo.to_vec()
            };
            site.step(
                printer,
                "check",
                None,
                &inspect::check_script(&site.layout, &extra),
                None,
            )
            .await
        })
        .await;
        for (site, result) in sites.iter().zip(results) {
            match result {
                Ok(_) => {
                    let checked = Checked {
                        env: env.name.clone(),
                        host: site.name().to_string(),
                        path: site.layout.path.clone(),
                        ok: true,
                        problem: None,
                    };
                    printer.result(&checked.line());
                    hosts_json.push(checked);
                }
                Err(mut p) => {
                    if config.setup.sudo
                        && p.output.contains("missing tools:")
                        && p.output.contains(" sudo")
                    {
                        p.detail.push_str("\n`setup.sudo = true` asks for `sudo`: install it, or set `sudo = false` with a user that may write the unit's and the site's folders");
                    }
                    hosts_json.push(Checked {
                        env: env.name.clone(),
                        host: site.name().to_string(),
                        path: site.layout.path.clone(),
                        ok: false,
                        problem: Some(p.to_string()),
                    });
                    problems.push(p)
                }
            }
        }
        written_in_release(config, &sites, printer).await;
        let wiring = check_database(config, env, &sites[env.migrate_host], printer).await;
        site::close(sites).await;
        match wiring {
            Ok(()) => {}
            Err(Error::Hosts { problems: p, .. }) => problems.extend(p),
            Err(e) => {
                printer.finish_hosts();
                return Err(e);
            }
        }
    }
    printer.finish_hosts();
    if problems.is_empty() {
        if printer.json_mode() {
            printer.json(&CheckReport {
                action: "check",
                config: config.file.display().to_string(),
                valid: true,
                hosts: hosts_json,
            });
        }
        Ok(())
    } else {
        Err(Error::Hosts {
            what: "check".into(),
            problems,
        })
    }
}

/// Warns of what the running app wrote inside the release each host
/// serves (files newer than the release that git did not ship): it goes
/// when the release is pruned unless it is kept in `deploy.shared`.
async fn written_in_release(config: &Config, sites: &[site::Site], printer: &Printer) {
    let results = each(sites, 32, |site| async move {
        let script = inspect::written_script(&site.layout);
        site.step(
            printer,
            "look for files the app wrote in the release",
            None,
            &script,
            None,
        )
        .await
    })
    .await;
    let repo = crate::ledger::git::Repo::at(&config.dir);
    for (site, result) in sites.iter().zip(results) {
        let Ok(out) = result else { continue };
        let mut lines = out.stdout.lines();
        let Some(commit) = lines.next().and_then(|l| l.strip_prefix("commit ")) else {
            continue;
        };
        let written: Vec<String> = lines.map(str::to_string).collect();
        if written.is_empty() {
            continue;
        }
        // Unknown here (another clone's commit): every path is named by
        // its top folder.
        let shipped: Vec<String> = repo
            .git(&["ls-tree", "-r", "--name-only", commit])
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default();
        printer.warn(Warning::WrittenInRelease {
            host: site.name().to_string(),
            kept: crate::model::written::to_keep(&written, &shipped),
        });
    }
}

/// With the Django preset: asks the release `current` points at on the
/// migrate host which database it opens, and compares it with
/// `[database]`. Without a release yet there is nothing to ask.
async fn check_database(
    config: &Config,
    env: &crate::config::Environment,
    site: &site::Site,
    printer: &Printer,
) -> Result<(), Error> {
    let vars = release::run_vars(&site.spec, &site.layout, None, None);
    let Some(db) = crate::data::database::Db::new(&env.database, &vars, "") else {
        return Ok(());
    };
    let dir = site.layout.current();
    let db_env = db.app_env(&db.location);
    let Some(step) =
        crate::data::steps::ask_database(config, &vars, &dir, &db, &db_env, &db.location)
    else {
        return Ok(());
    };
    let out = site
        .run(printer, &step, None)
        .await
        .map_err(|p| Error::Hosts {
            what: "check".into(),
            problems: vec![p],
        })?;
    if out.stdout.contains("GANTRY-NO-RELEASE") {
        printer.result(&format!(
            "{} {}: no release yet; the app is asked which database it uses at the first deploy",
            env.name,
            site.name()
        ));
        return Ok(());
    }
    match crate::data::wiring::compare(&db, &db.location, &out.stdout) {
        crate::data::wiring::Answer::Differs(app) => Err(Error::WrongDatabase(Box::new(
            crate::error::WrongDatabase {
                env: env.name.clone(),
                host: site.name().to_string(),
                expected: db.shown(),
                env_var: db.env_var.clone(),
                app: app.describe(),
                rehearsal: false,
            },
        ))),
        _ => {
            printer.result(&format!(
                "{} {}: the app uses {}",
                env.name,
                site.name(),
                db.shown()
            ));
            Ok(())
        }
    }
}

/// `check --json`.
#[derive(Serialize)]
struct CheckReport {
    action: &'static str,
    config: String,
    valid: bool,
    hosts: Vec<Checked>,
}

/// One host checked.
#[derive(Serialize)]
struct Checked {
    env: String,
    host: String,
    path: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl Checked {
    fn line(&self) -> String {
        format!("{} {}: ok ({})", self.env, self.host, self.path)
    }
}
