//! `gantry plan ENV [REV]`: every script a deploy would run, host by host,
//! built by the same functions the deploy uses; nothing is run.

use serde::Serialize;

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
            inline: false,
        }];
        let planned =
            crate::data::steps::Steps::new(config, env, spec, &layout, &release, &commit.sha);
        steps.extend(planned.prepare());
        if i == env.migrate_host {
            if let Some(m) = &config.deploy.migrate {
                steps.extend(planned.migrate_plan(&env.database, m).steps());
            }
        }
        let vars = release::run_vars(spec, &layout, Some(&release), Some(&commit.sha));
        let here = |name: &str, t: &crate::config::Template| release::Planned {
            name: format!("{name} (on this machine)"),
            shown: None,
            script: t.render_shell(&vars),
            upload: false,
            inline: false,
        };
        let balancer = config.deploy.balancer.as_ref().filter(|_| spec.web());
        if let Some(b) = balancer {
            steps.push(here("leave the balancer", &b.leave));
        }
        steps.extend(activation_steps(
            config,
            env,
            spec,
            &layout,
            (&release, &commit.sha),
        ));
        if let Some(b) = balancer {
            steps.push(here("join the balancer", &b.join));
        }
        let health = config
            .deploy
            .health
            .as_ref()
            .filter(|_| spec.web())
            .map(|h| h.url.render(&vars));
        hosts.push((spec, layout, steps, health));
    }
    let report = PlanReport {
        env: &env.name,
        commit: &commit.sha,
        subject: &commit.subject,
        release: &release,
        on_remote: on_remote.is_ok(),
        batch: env.batch,
        migrate_host: &env.hosts[env.migrate_host].name,
        checks: match (&config.deploy.migrate, &env.database) {
            (None, _) => None,
            (_, d) if matches!(d.engine, crate::config::Engine::None) => None,
            (_, d) => match d.checks {
                crate::config::Checks::Off => None,
                crate::config::Checks::Warn => Some("warn"),
                crate::config::Checks::Strict => Some("strict"),
            },
        },
        hooks: config
            .hooks
            .iter()
            .map(|h| HookPlan {
                point: h.point.key(),
                run: h.run.source(),
                on: h.on.as_deref(),
                advisory: h.advisory,
            })
            .collect(),
        hosts: hosts
            .iter()
            .map(|(spec, layout, steps, health)| HostPlan {
                host: &spec.name,
                roles: spec.roles.iter().map(String::as_str).collect(),
                path: &layout.path,
                steps: steps
                    .iter()
                    .map(|s| StepPlan {
                        name: &s.name,
                        script: &s.script,
                        stdin: s.upload.then_some("git archive"),
                    })
                    .collect(),
                health_check: health.as_deref(),
            })
            .collect(),
    };
    if printer.json_mode() {
        printer.json(&report);
    } else {
        let warning = on_remote.err().map(|e| e.to_string());
        printer.result(&report.text(warning.as_deref()));
    }
    Ok(())
}

/// What a host's activation runs: the switch and the restart, or a
/// handover (start beside on the free port, check there, switch, move the
/// proxy's traffic; the old app drains and stops).
fn activation_steps(
    config: &Config,
    env: &crate::config::Environment,
    spec: &crate::config::HostSpec,
    layout: &Layout,
    (release, commit): (&str, &str),
) -> Vec<release::Planned> {
    let step = |name: &str, script: String| release::Planned {
        name: name.into(),
        shown: None,
        script,
        upload: false,
        inline: false,
    };
    let switch = step("switch current", release::switch_script(layout, release));
    let planned = crate::data::steps::Steps::new(config, env, spec, layout, release, commit);
    // The host's other roles, restarted and checked after the web app.
    let roles = config.roles.iter().filter(|r| spec.has_role(&r.name));
    let roles: Vec<release::Planned> = roles
        .flat_map(|r| {
            let restart = r
                .restart
                .as_ref()
                .map(|t| planned.command(&format!("restart ({})", r.name), t, true));
            let check = r
                .check
                .as_ref()
                .map(|t| planned.command(&format!("check ({})", r.name), t, true));
            restart.into_iter().chain(check)
        })
        .collect();
    let Some(h) = config.deploy.handover.as_ref().filter(|_| spec.web()) else {
        let restart = config.deploy.restart.as_ref().filter(|_| spec.web());
        return std::iter::once(switch)
            .chain(restart.map(|r| planned.command("restart", r, true)))
            .chain(roles)
            .collect();
    };
    let s = crate::data::handover::scripts(config, env, (spec, layout), h, (release, commit), None);
    let [a, b] = &s.ports;
    let free = format!("# on port {a} when {b} serves, else on {b}\n");
    let mut steps = vec![
        step("handover: start beside", format!("{free}{}", s.start[0])),
        step(
            "handover: check on its port",
            format!("{free}{}", s.check[0]),
        ),
        switch,
        step(
            "handover: move traffic",
            format!("# {} names the new port\n{}", s.upstream, s.reload),
        ),
        step(
            "handover: drain, stop the old app",
            format!(
                "sleep {}\n# then, in the old release with its port: {}",
                s.drain,
                h.stop.source()
            ),
        ),
    ];
    steps.extend(roles);
    steps
}

/// What a deploy would run: what `--json` prints, and the text is drawn from.
#[derive(Serialize)]
struct PlanReport<'a> {
    env: &'a str,
    commit: &'a str,
    subject: &'a str,
    release: &'a str,
    on_remote: bool,
    batch: usize,
    migrate_host: &'a str,
    /// What the checks of pending migrations' SQL do (`warn`, `strict`),
    /// when migrations run at all; their findings need the new release on
    /// a host, so `rehearse` shows them.
    checks: Option<&'static str>,
    hooks: Vec<HookPlan<'a>>,
    hosts: Vec<HostPlan<'a>>,
}

/// A `[hooks]` entry: where it runs.
#[derive(Serialize)]
struct HookPlan<'a> {
    point: &'static str,
    run: &'a str,
    /// The role whose hosts run it; none: this machine.
    on: Option<&'a str>,
    advisory: bool,
}

#[derive(Serialize)]
struct HostPlan<'a> {
    host: &'a str,
    roles: Vec<&'a str>,
    path: &'a str,
    steps: Vec<StepPlan<'a>>,
    health_check: Option<&'a str>,
}

#[derive(Serialize)]
struct StepPlan<'a> {
    name: &'a str,
    script: &'a str,
    stdin: Option<&'a str>,
}

impl PlanReport<'_> {
    /// The plan as text; `warning` says why the commit may not deploy.
    fn text(&self, warning: Option<&str>) -> String {
        let mut text = format!(
            "Plan: deploy {} ({}) to {} as release {}\n",
            &self.commit[..self.commit.len().min(8)],
            self.subject,
            self.env,
            self.release
        );
        if let Some(w) = warning {
            text.push_str(&format!("warning: {}\n", w.lines().next().unwrap_or("")));
        }
        let batches = match self.batch {
            0 => "all at once".to_string(),
            n => format!("in batches of {n}"),
        };
        text.push_str(&format!(
            "Hosts are activated {batches}; migrations run on {}.\n",
            self.migrate_host
        ));
        if let Some(checks) = self.checks {
            text.push_str(&format!(
                "Pending migrations: rehearsed on a copy, their SQL checked first ({checks}); `gantry rehearse {}` shows what the checks find without deploying.\n",
                self.env
            ));
        }
        for h in &self.hooks {
            let place = match h.on {
                Some(role) => format!("on the {role} hosts"),
                None => "on this machine".to_string(),
            };
            let advisory = if h.advisory { ", advisory" } else { "" };
            text.push_str(&format!(
                "Hook {} ({place}{advisory}): {}\n",
                h.point, h.run
            ));
        }
        for host in &self.hosts {
            text.push_str(&format!(
                "\n== {} ({}; {})\n",
                host.host,
                host.path,
                host.roles.join(", ")
            ));
            for step in &host.steps {
                let note = match step.stdin {
                    Some(_) => " (stdin: git archive of the commit)",
                    None => "",
                };
                text.push_str(&format!("# {}{note}\n{}\n", step.name, step.script));
            }
            if let Some(url) = host.health_check {
                text.push_str(&format!("# health check (from this machine)\nGET {url}\n"));
            }
            text.push_str("# then: record history, prune old releases, unlock\n");
        }
        text.push_str("\nNothing was run.");
        text
    }
}
