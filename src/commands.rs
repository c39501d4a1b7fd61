//! The commands that are not a deploy: init, check, plan, status, log,
//! lock, unlock, exec; and the closing summary of a deploy or rollback.

use std::path::Path;

use serde_json::json;

use crate::config::{self, Config};
use crate::deploy::{self, Summary};
use crate::error::{Error, HostProblem};
use crate::git::Repo;
use crate::history::{self, Record};
use crate::lock::LockInfo;
use crate::output::Printer;
use crate::release::{self, Layout};
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

pub fn report(summary: &Summary, verb: &str, printer: &Printer) {
    printer.finish_hosts();
    printer.headline(&format!(
        "{verb} {} to {}: release {} on {} host{} in {}",
        &summary.commit[..summary.commit.len().min(8)],
        summary.env,
        summary.release,
        summary.hosts,
        if summary.hosts == 1 { "" } else { "s" },
        crate::time::human(std::time::Duration::from_secs_f64(summary.seconds)),
    ));
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
            line
        })
        .collect();
    printer.summary("What is live now:", &lines);
}

pub async fn check(config: &Config, only: Option<&str>, printer: &Printer) -> Result<(), Error> {
    let envs = match only {
        Some(name) => vec![config.environment(name)?],
        None => config.environments.iter().collect(),
    };
    printer.headline(&format!("`{}` is valid", config.file.display()));
    let mut problems: Vec<HostProblem> = Vec::new();
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
                Ok(_) => printer.result(&format!(
                    "{} {}: ok ({})",
                    env.name,
                    site.name(),
                    site.layout.path
                )),
                Err(p) => problems.push(p),
            }
        }
        site::close(sites).await;
    }
    printer.finish_hosts();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Hosts {
            what: "check".into(),
            problems,
        })
    }
}

pub fn plan(config: &Config, env_name: &str, rev: &str, printer: &Printer) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let repo = Repo::at(&config.dir);
    let commit = repo.resolve(rev)?;
    let on_remote = repo.ensure_on_remote(&commit, &config.app.remote);
    let release = release::release_name(&commit);
    let info = LockInfo::new(&format!("gantry deploy {env_name} {rev}"), None, false);
    let info_json = serde_json::to_string(&info).expect("lock info serializes");
    let mut hosts = Vec::new();
    for (i, spec) in env.hosts.iter().enumerate() {
        let layout = Layout::new(&spec.path);
        let mut steps = vec![release::Planned {
            name: "lock".into(),
            shown: None,
            script: release::lock_script(&layout, &info_json),
            upload: false,
        }];
        let planned = deploy::Steps::new(config, env, spec, &layout, &release, &commit.sha);
        steps.extend(planned.prepare());
        if i == env.migrate_host {
            if let Some(m) = &config.deploy.migrate {
                steps.extend(planned.migrate_plan(&env.database, m).steps());
            }
        }
        steps.push(release::Planned {
            name: "switch current".into(),
            shown: None,
            script: release::switch_script(&layout, &release),
            upload: false,
        });
        if let Some(r) = &config.deploy.restart {
            steps.push(planned.command("restart", r, true));
        }
        let vars = release::run_vars(spec, &layout, Some(&release), Some(&commit.sha));
        let health = config.deploy.health.as_ref().map(|h| h.url.render(&vars));
        hosts.push((spec, layout, steps, health));
    }
    if printer.json_mode() {
        let value = json!({
            "env": env.name,
            "commit": commit.sha,
            "subject": commit.subject,
            "release": release,
            "on_remote": on_remote.is_ok(),
            "batch": env.batch,
            "migrate_host": env.hosts[env.migrate_host].name,
            "hosts": hosts.iter().map(|(spec, layout, steps, health)| json!({
                "host": spec.name,
                "path": layout.path,
                "steps": steps.iter().map(|s| json!({"name": s.name, "script": s.script, "stdin": s.upload.then_some("git archive")})).collect::<Vec<_>>(),
                "health_check": health,
            })).collect::<Vec<_>>(),
        });
        printer.json(&value);
    } else {
        let mut text = format!(
            "Plan: deploy {} ({}) to {} as release {}\n",
            commit.short(),
            commit.subject,
            env.name,
            release
        );
        if let Err(e) = &on_remote {
            text.push_str(&format!(
                "warning: {}\n",
                e.to_string().lines().next().unwrap_or("")
            ));
        }
        text.push_str(&format!(
            "Hosts are activated {}; migrations run on {}.\n",
            if env.batch == 0 {
                "all at once".to_string()
            } else {
                format!("in batches of {}", env.batch)
            },
            env.hosts[env.migrate_host].name
        ));
        for (spec, layout, steps, health) in &hosts {
            text.push_str(&format!("\n== {} ({})\n", spec.name, layout.path));
            for step in steps {
                let note = if step.upload {
                    " (stdin: git archive of the commit)"
                } else {
                    ""
                };
                text.push_str(&format!("# {}{note}\n{}\n", step.name, step.script));
            }
            if let Some(url) = health {
                text.push_str(&format!("# health check (from this machine)\nGET {url}\n"));
            }
            text.push_str("# then: record history, prune old releases, unlock\n");
        }
        text.push_str("\nNothing was run.");
        printer.result(&text);
    }
    Ok(())
}

/// One environment as `status` shows it.
struct EnvStatus<'a> {
    env: &'a crate::config::Environment,
    hosts: Vec<(String, Result<release::SiteStatus, String>)>,
    /// The commit every reachable host runs, when they agree.
    commit: Option<String>,
    events: Vec<crate::ledger::Event>,
}

impl EnvStatus<'_> {
    fn verification(&self) -> Option<&crate::ledger::Event> {
        self.events
            .iter()
            .rev()
            .find(|e| e.event == "verify" && e.env == self.env.name)
    }

    fn deployed(&self) -> Option<&crate::ledger::Event> {
        self.events
            .iter()
            .rev()
            .find(|e| e.event == "deploy" && e.env == self.env.name)
    }
}

pub async fn status(config: &Config, only: Option<&str>, printer: &Printer) -> Result<(), Error> {
    let envs = match only {
        Some(name) => vec![config.environment(name)?],
        None => config.environments.iter().collect(),
    };
    let repo = Repo::at(&config.dir);
    if let Err(e) = crate::ledger::sync(&repo, &config.app.remote) {
        printer.warn(&format!(
            "could not fetch the ledger from `{}`: {e}",
            config.app.remote
        ));
    }
    let mut problems = Vec::new();
    let mut report = Vec::new();
    for env in envs {
        let mut hosts = Vec::new();
        match site::connect(config, env, printer).await {
            Ok(sites) => {
                let results = each(&sites, 32, |site| async move {
                    site.step(
                        printer,
                        "status",
                        None,
                        &release::status_script(&site.layout),
                        None,
                    )
                    .await
                })
                .await;
                for (site, result) in sites.iter().zip(results) {
                    match result {
                        Ok(out) => hosts.push((
                            site.name().to_string(),
                            Ok(release::parse_status(&out.stdout)),
                        )),
                        Err(p) => {
                            hosts.push((site.name().to_string(), Err(p.detail.clone())));
                            problems.push(p);
                        }
                    }
                }
                site::close(sites).await;
            }
            Err(Error::Unreachable { problems: p, .. }) => {
                for problem in p {
                    hosts.push((problem.host.clone(), Err(problem.detail.clone())));
                    problems.push(problem);
                }
            }
            Err(e) => return Err(e),
        }
        let commits: Vec<Option<&String>> = hosts
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .map(|s| s.commit.as_ref())
            .collect();
        let commit = match commits.first() {
            Some(Some(first)) if commits.iter().all(|c| *c == Some(*first)) => {
                Some((*first).clone())
            }
            _ => None,
        };
        let events = commit
            .as_deref()
            .map(|c| crate::ledger::events(&repo, c))
            .unwrap_or_default();
        report.push(EnvStatus {
            env,
            hosts,
            commit,
            events,
        });
    }
    printer.finish_hosts();
    // How far each environment is behind the one it requires.
    let behind = |s: &EnvStatus| -> Option<(String, usize)> {
        let required = s.env.requires.as_deref()?;
        let upstream = report.iter().find(|r| r.env.name == required)?;
        let n = repo.count_between(s.commit.as_deref()?, upstream.commit.as_deref()?)?;
        Some((required.to_string(), n))
    };
    let subject = |sha: &str| repo.resolve(sha).map(|c| c.subject).unwrap_or_default();
    if printer.json_mode() {
        let value = json!({
            "environments": report.iter().map(|r| json!({
                "name": r.env.name,
                "commit": r.commit,
                "subject": r.commit.as_deref().map(subject),
                "verified": r.verification().is_some_and(|v| v.outcome == "passed"),
                "verification": r.verification(),
                "deployed": r.deployed(),
                "behind": behind(r).map(|(env, commits)| json!({"env": env, "commits": commits})),
                "hosts": r.hosts.iter().map(|(name, state)| match state {
                    Ok(s) => json!({
                        "host": name,
                        "reachable": true,
                        "release": s.release,
                        "commit": s.commit,
                        "locked": s.lock.as_ref().map(|l| json!({"by": format!("{}@{}", l.user, l.machine), "since": l.since, "command": l.command, "stale": l.is_stale()})),
                        "last": s.last,
                    }),
                    Err(e) => json!({"host": name, "reachable": false, "error": e}),
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        printer.json(&value);
    } else {
        let mut text = String::new();
        for r in &report {
            let mut line = r.env.name.clone();
            match &r.commit {
                Some(c) => line.push_str(&format!("  {} ({})", &c[..c.len().min(8)], subject(c))),
                None if r
                    .hosts
                    .iter()
                    .all(|(_, s)| matches!(s, Ok(s) if s.commit.is_none())) =>
                {
                    line.push_str("  nothing deployed")
                }
                None => line.push_str("  hosts differ"),
            }
            if let Some(d) = r.deployed() {
                if !d.tags.is_empty() {
                    line.push_str(&format!("  {}", d.tags.join(" ")));
                }
                line.push_str(&format!("  deployed {} by {}", d.time, d.by));
                if d.forced {
                    line.push_str(" (forced past the gate)");
                }
            }
            if r.commit.is_some() {
                line.push_str(match r.verification() {
                    Some(v) if v.outcome == "passed" => "  verified",
                    Some(_) => "  verification failed",
                    None => "  not verified",
                });
            }
            if let Some((upstream, n)) = behind(r) {
                line.push_str(&match n {
                    0 => format!("  up to date with {upstream}"),
                    1 => format!("  1 commit behind {upstream}"),
                    n => format!("  {n} commits behind {upstream}"),
                });
            }
            text.push_str(&format!("{line}\n"));
            for (name, state) in &r.hosts {
                let host_line = match state {
                    Err(e) => format!("unreachable: {}", e.lines().next().unwrap_or("")),
                    Ok(s) if s.missing || s.release.is_none() => "nothing deployed".to_string(),
                    Ok(s) => {
                        let mut l = s.release.clone().unwrap_or_default();
                        if let Some(last) = &s.last {
                            l.push_str(&format!(
                                "  last: {} {} {}",
                                last.action, last.outcome, last.time
                            ));
                        }
                        l
                    }
                };
                text.push_str(&format!("  {name}  {host_line}\n"));
                if let Ok(release::SiteStatus {
                    lock: Some(lock), ..
                }) = state
                {
                    text.push_str(&format!("    locked: {}\n", lock.describe()));
                }
            }
        }
        printer.result(text.trim_end());
    }
    if problems.iter().any(|p| p.unreachable) {
        Err(Error::Hosts {
            what: "status".into(),
            problems,
        })
    } else {
        Ok(())
    }
}

pub async fn log(
    config: &Config,
    env_name: &str,
    limit: usize,
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let sites = site::connect(config, env, printer).await?;
    let results = each(&sites, 32, |site| async move {
        let script = format!(
            "cat {} 2>/dev/null; true",
            shell::quote(&site.layout.history())
        );
        site.step(printer, "read history", None, &script, None)
            .await
    })
    .await;
    site::close(sites).await;
    printer.finish_hosts();
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(out) => records.extend(history::parse(&out.stdout)),
            Err(p) => problems.push(p),
        }
    }
    records.sort_by(|a, b| a.time.cmp(&b.time).then(a.host.cmp(&b.host)));
    let start = records.len().saturating_sub(limit);
    let records = &records[start..];
    if printer.json_mode() {
        printer.json(&serde_json::to_value(records).expect("records serialize"));
    } else if records.is_empty() {
        printer.result(&format!("no history for `{env_name}` yet"));
    } else {
        let mut text = String::new();
        for r in records {
            text.push_str(&format!(
                "{}  {}  {} {}  {}  {}  by {}",
                r.time,
                r.host,
                r.action,
                r.outcome,
                r.commit.as_deref().map_or("-", |c| &c[..c.len().min(8)]),
                r.release.as_deref().unwrap_or("-"),
                r.by
            ));
            if let Some(m) = &r.message {
                text.push_str(&format!("  ({m})"));
            }
            text.push('\n');
        }
        printer.result(text.trim_end());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Hosts {
            what: "reading history".into(),
            problems,
        })
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
        async move { s.step(printer, "exec", Some(line), &script, None).await }
    })
    .await;
    printer.finish_hosts();
    let mut problems = Vec::new();
    for (s, result) in sites.iter().zip(results) {
        match result {
            Ok(out) => {
                let mut text = String::new();
                for l in out.stdout.lines().chain(out.stderr.lines()) {
                    text.push_str(&format!("[{}] {l}\n", s.name()));
                }
                if !text.is_empty() {
                    printer.result(text.trim_end());
                }
            }
            Err(p) => problems.push(p),
        }
    }
    site::close(sites).await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Hosts {
            what: format!("`{line}`"),
            problems,
        })
    }
}
