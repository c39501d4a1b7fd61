//! `gantry plan ENV [REV]`: every script a deploy would run, host by host,
//! built by the same functions the deploy uses; nothing is run.

use serde_json::json;

use crate::cli::output::Printer;
use crate::config::Config;
use crate::error::Error;
use crate::ledger::git::Repo;
use crate::model::lock::LockInfo;
use crate::remote::release::{self, Layout};

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
        let planned =
            crate::data::steps::Steps::new(config, env, spec, &layout, &release, &commit.sha);
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
