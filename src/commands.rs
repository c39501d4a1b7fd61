//! The small commands: check, lock, unlock, exec, completions; finding
//! the config; and the closing summary of a deploy or rollback.

use std::path::Path;

use crate::config::{self, Config};
use crate::deploy::Summary;
use crate::error::{Error, HostProblem};
use crate::history::Record;
use crate::lock::LockInfo;
use crate::output::Printer;
use crate::release;
use crate::shell;
use crate::site::{self, each};

pub fn load_config(explicit: Option<&Path>) -> Result<Config, Error> {
    let file = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let here = std::env::current_dir().map_err(|e| Error::io(".", e))?;
            config::find(&here).ok_or(Error::NoConfig { start: here })?
        }
    };
    Ok(config::load(&file)?)
}

/// Prints a completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell, printer: &Printer) {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::Cli::command(), "gantry", &mut out);
    printer.result(String::from_utf8_lossy(&out).trim_end());
}

/// The man page, drawn from the same definitions as `--help`.
pub fn man(printer: &Printer) -> Result<(), Error> {
    use clap::CommandFactory;
    let command = crate::cli::Cli::command()
        .after_help(crate::exit::ExitStatus::HELP)
        .name("gantry");
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .map_err(|e| Error::io("stdout", e))?;
    printer.result(String::from_utf8_lossy(&out).trim_end());
    Ok(())
}

/// From this many hosts on, the closing summary groups hosts by outcome
/// instead of a line each.
const GROUP_FROM: usize = 10;

/// The closing summary for many hosts: one line per group of hosts that
/// went from the same release, then the spread of times and bytes.
fn grouped(summary: &Summary) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<Option<&str>, Vec<&str>> = Default::default();
    for (host, before, _) in &summary.per_host {
        groups.entry(before.as_deref()).or_default().push(host);
    }
    let mut lines = Vec::new();
    for (before, hosts) in groups {
        let from = before.map_or("their first release".to_string(), |b| format!("was {b}"));
        let shown: Vec<&str> = hosts.iter().take(3).copied().collect();
        let more = if hosts.len() > shown.len() {
            format!(", and {} more", hosts.len() - shown.len())
        } else {
            String::new()
        };
        lines.push(format!(
            "{} hosts: serving {} ({from}): {}{more}",
            hosts.len(),
            summary.release,
            shown.join(", ")
        ));
    }
    let mut times: Vec<f64> = summary.per_host.iter().filter_map(|(_, _, p)| *p).collect();
    times.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let human = |s: f64| crate::time::human(std::time::Duration::from_secs_f64(s));
        lines.push(format!(
            "prepared in {} to {} (median {})",
            human(*first),
            human(*last),
            human(times[times.len() / 2])
        ));
    }
    let sent: u64 = summary.uploaded.values().sum();
    if sent > 0 {
        lines.push(format!("{} sent in all", crate::time::bytes(sent)));
    }
    lines
}

pub fn report(summary: &Summary, verb: &str, printer: &Printer) {
    printer.finish_hosts();
    if summary.noop {
        return;
    }
    printer.headline(&format!(
        "{verb} {} to {}: release {} on {} host{} in {}",
        &summary.commit[..summary.commit.len().min(8)],
        summary.env,
        summary.release,
        summary.hosts,
        if summary.hosts == 1 { "" } else { "s" },
        crate::time::human(std::time::Duration::from_secs_f64(summary.seconds)),
    ));
    if summary.per_host.len() > GROUP_FROM {
        printer.summary("What is live now:", &grouped(summary));
        return;
    }
    let lines: Vec<String> = summary
        .per_host
        .iter()
        .map(|(host, before, prepared)| {
            let mut line = format!("{host}: serving {}", summary.release);
            match before {
                Some(b) => line.push_str(&format!(" (was {b})")),
                None => line.push_str(" (its first release)"),
            }
            if let Some(secs) = prepared {
                line.push_str(&format!(
                    ", prepared in {}",
                    crate::time::human(std::time::Duration::from_secs_f64(*secs))
                ));
            }
            if let Some(bytes) = summary.uploaded.get(host) {
                line.push_str(&format!(", {} sent", crate::time::bytes(*bytes)));
            }
            line
        })
        .collect();
    printer.summary("What is live now:", &lines);
}

/// A deploy, promote or rollback as one JSON document (`--json`).
pub fn report_json(summary: &Summary, action: &str, tags: &[String], printer: &Printer) {
    if !printer.json_mode() {
        return;
    }
    printer.json(&summary_json(summary, action, tags));
}

/// What `report_json` prints, for the release's document too.
pub fn summary_json(summary: &Summary, action: &str, tags: &[String]) -> serde_json::Value {
    serde_json::json!({
        "action": action,
        "env": summary.env,
        "commit": summary.commit,
        "release": summary.release,
        "seconds": summary.seconds,
        "rehearsal": summary.rehearsal.record(),
        "noop": summary.noop,
        "tags": tags,
        "hosts": summary.per_host.iter().map(|(host, before, prepared)| serde_json::json!({
            "host": host,
            "serving": summary.release,
            "previous": before,
            "prepared_seconds": prepared,
            "uploaded_bytes": summary.uploaded.get(host),
        })).collect::<Vec<_>>(),
    })
}

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
        let results = each(&sites, 32, |site| async move {
            let extra = if site.name() == migrate_host {
                db_tools
            } else {
                &[]
            };
            site.step(
                printer,
                "check",
                None,
                &release::check_script(&site.layout, extra),
                None,
            )
            .await
        })
        .await;
        for (site, result) in sites.iter().zip(results) {
            match result {
                Ok(_) => {
                    hosts_json.push(serde_json::json!({"env": env.name, "host": site.name(), "path": site.layout.path, "ok": true}));
                    printer.result(&format!(
                        "{} {}: ok ({})",
                        env.name,
                        site.name(),
                        site.layout.path
                    ))
                }
                Err(p) => {
                    hosts_json.push(serde_json::json!({"env": env.name, "host": site.name(), "path": site.layout.path, "ok": false, "problem": p.to_string()}));
                    problems.push(p)
                }
            }
        }
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
            printer.json(&serde_json::json!({
                "action": "check",
                "config": config.file.display().to_string(),
                "valid": true,
                "hosts": hosts_json,
            }));
        }
        Ok(())
    } else {
        Err(Error::Hosts {
            what: "check".into(),
            problems,
        })
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
    let Some(db) = crate::database::Db::new(&env.database, &vars, "") else {
        return Ok(());
    };
    let dir = site.layout.current();
    let db_env = db.app_env(&db.location);
    let Some(step) = crate::steps::ask_database(config, &vars, &dir, &db, &db_env, &db.location)
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
    match crate::wiring::compare(&db, &db.location, &out.stdout) {
        crate::wiring::Answer::Differs(app) => Err(Error::WrongDatabase(Box::new(
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

pub async fn lock(
    config: &Config,
    env_name: &str,
    reason: Option<String>,
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let info = LockInfo::new(&format!("gantry lock {env_name}"), reason.clone(), true);
    let sites = site::connect_locked(config, env, &info, printer).await?;
    for s in &sites {
        let mut record = Record::new("lock", env_name, s.name(), "ok");
        record.message = reason.clone();
        s.record(printer, &record).await;
    }
    site::close(sites).await;
    printer.finish_hosts();
    printer.headline(&format!(
        "`{env_name}` is locked; `gantry unlock {env_name}` lets deploys run again"
    ));
    Ok(())
}

pub async fn unlock(config: &Config, env_name: &str, printer: &Printer) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let sites = site::connect(config, env, printer).await?;
    let results = each(&sites, 32, |s| async move {
        let out = s
            .step(
                printer,
                "unlock",
                None,
                &release::force_unlock_script(&s.layout),
                None,
            )
            .await?;
        let holder: Option<LockInfo> = serde_json::from_str(out.stdout.trim()).ok();
        let was_locked = !out.stdout.trim().is_empty();
        if was_locked {
            let mut record = Record::new("unlock", env_name, s.name(), "ok");
            record.message = Some(match &holder {
                Some(h) => format!("cleared lock {}", h.describe()),
                None => "cleared a lock with no record of its holder".to_string(),
            });
            s.record(printer, &record).await;
        }
        Ok::<_, HostProblem>((was_locked, holder))
    })
    .await;
    printer.finish_hosts();
    let mut problems = Vec::new();
    for (s, result) in sites.iter().zip(results) {
        match result {
            Ok((false, _)) => printer.result(&format!("{}: was not locked", s.name())),
            Ok((true, Some(h))) => {
                printer.result(&format!("{}: cleared lock {}", s.name(), h.describe()))
            }
            Ok((true, None)) => printer.result(&format!(
                "{}: cleared a lock with no record of its holder",
                s.name()
            )),
            Err(p) => problems.push(p),
        }
    }
    site::close(sites).await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Hosts {
            what: "unlock".into(),
            problems,
        })
    }
}

pub async fn exec(
    config: &Config,
    env_name: &str,
    command: &[String],
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let sites = site::connect(config, env, printer).await?;
    let line = shell::join(command);
    let results = each(&sites, env.parallel, |s| {
        let vars = release::run_vars(&s.spec, &s.layout, None, None);
        let db_env = crate::database::Db::new(&env.database, &vars, "")
            .map(|db| db.app_env(&db.location))
            .unwrap_or_default();
        let script = release::command_script(config, &vars, &s.layout.current(), &line, &db_env);
        let line = &line;
        async move {
            // Each line is shown as it comes, stdout and stderr apart;
            // with --json they are kept for the document.
            let show = |stream: crate::host::Stream, text: &str| {
                printer.host_output(s.name(), stream, text)
            };
            let lines: Option<crate::host::Lines<'_>> = (!printer.json_mode()).then_some(&show);
            s.step_with(printer, "exec", Some(line), &script, None, lines)
                .await
        }
    })
    .await;
    printer.finish_hosts();
    let mut problems = Vec::new();
    let mut hosts_json = Vec::new();
    for (s, result) in sites.iter().zip(results) {
        match result {
            Ok(out) => hosts_json.push(serde_json::json!({
                "host": s.name(),
                "code": out.code,
                "stdout": out.stdout,
                "stderr": out.stderr,
            })),
            Err(p) => problems.push(p),
        }
    }
    site::close(sites).await;
    if problems.is_empty() {
        if printer.json_mode() {
            printer.json(&serde_json::json!({
                "action": "exec",
                "env": env.name,
                "command": line,
                "hosts": hosts_json,
            }));
        }
        Ok(())
    } else {
        Err(Error::Hosts {
            what: format!("`{line}`"),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_hosts_are_summed_up_by_group() {
        let per_host = (0..100)
            .map(|i| {
                let before = if i < 97 { Some("r1".to_string()) } else { None };
                (
                    format!("web{i:03}"),
                    before,
                    Some(1.0 + f64::from(i) / 100.0),
                )
            })
            .collect();
        let summary = Summary {
            env: "live".into(),
            release: "r2".into(),
            commit: "abc".into(),
            hosts: 100,
            seconds: 9.0,
            rehearsal: crate::deploy::Rehearsal::NotNeeded,
            noop: false,
            uploaded: (0..100).map(|i| (format!("web{i:03}"), 1000)).collect(),
            per_host,
        };
        assert_eq!(
            grouped(&summary),
            [
                "3 hosts: serving r2 (their first release): web097, web098, web099",
                "97 hosts: serving r2 (was r1): web000, web001, web002, and 94 more",
                "prepared in 1.0s to 2.0s (median 1.5s)",
                "100.0 KB sent in all",
            ]
        );
    }
}
