//! `[hooks]`: a command at each named point of a deploy or a rollback, on
//! this machine (in the repository) or on the hosts of a role (in the new
//! release). Each gets `GANTRY_HOOK`, `GANTRY_ENV`, `GANTRY_COMMIT`,
//! `GANTRY_RELEASE`, `GANTRY_HOSTS` (the environment's hosts, space-
//! separated) and, once the outcome is known, `GANTRY_OUTCOME` (`ok` or
//! `failed`); on a host or for one host, `GANTRY_HOST` too. A failure
//! before the switch stops the deploy with nothing switched; on a host
//! after its switch the host counts as failed and everything is put back;
//! an `advisory` hook, and the hooks after the deploy, only warn.

use crate::cli::output::Printer;
use crate::config::{Config, Environment, Hook, Point, Vars};
use crate::error::{Error, HostProblem, Warning};
use crate::remote::local;
use crate::remote::release;
use crate::remote::site::{each, Site};

use super::Run;

/// What a hook is told: the run it is part of.
pub struct Told<'a> {
    pub env: &'a Environment,
    pub commit: &'a str,
    pub release: &'a str,
    pub outcome: Option<&'a str>,
}

impl Told<'_> {
    /// The variables every hook gets.
    fn env_vars(&self, hook: &Hook) -> Vec<(String, String)> {
        let hosts: Vec<&str> = self.env.hosts.iter().map(|h| h.name.as_str()).collect();
        let mut vars = vec![
            ("GANTRY_HOOK".to_string(), hook.point.key().to_string()),
            ("GANTRY_ENV".to_string(), self.env.name.clone()),
            ("GANTRY_COMMIT".to_string(), self.commit.to_string()),
            ("GANTRY_RELEASE".to_string(), self.release.to_string()),
            ("GANTRY_HOSTS".to_string(), hosts.join(" ")),
        ];
        if let Some(o) = self.outcome {
            vars.push(("GANTRY_OUTCOME".to_string(), o.to_string()));
        }
        vars
    }
}

/// The step's name in progress lines and reports.
fn step(hook: &Hook) -> String {
    format!("hook {}", hook.point.key())
}

/// Runs `hook` on this machine, its placeholders filled with `vars` (a
/// host's when it runs for one host). `Err`: what failed.
async fn here(
    config: &Config,
    hook: &Hook,
    vars: &Vars,
    env: Vec<(String, String)>,
    printer: &Printer,
    host: Option<&str>,
) -> Result<(), local::Failed> {
    let command = hook.run.render_shell(vars);
    let line = format!("{}: {command} (on this machine)", step(hook));
    match host {
        Some(h) => printer.host(h, &line),
        None => printer.headline(&line),
    }
    local::run(&command, &config.dir, &env).await
}

/// How the ledger names a hook that ran: `POINT: ok` or `POINT: failed
/// (advisory)`.
pub fn ran(point: Point, ok: bool) -> String {
    let outcome = if ok { "ok" } else { "failed (advisory)" };
    format!("{}: {outcome}", point.key())
}

/// Runs the hook at `point` that runs on this machine once (before and
/// after the deploy, after a failure or a rollback): how it went (`ran`),
/// `None` when there is no hook there. `Err` only for a hook that stops
/// the deploy and is not advisory; other failures warn.
pub async fn run_here(
    config: &Config,
    point: Point,
    told: &Told<'_>,
    printer: &Printer,
) -> Result<Option<String>, Error> {
    let Some(hook) = config.hook(point) else {
        return Ok(None);
    };
    let vars = told.env.hosts[0].vars.clone();
    let Err(f) = here(config, hook, &vars, told.env_vars(hook), printer, None).await else {
        return Ok(Some(ran(point, true)));
    };
    if point.stops() && !hook.advisory {
        return Err(Error::HookFailed {
            hook: point.key().to_string(),
            detail: f.detail,
        });
    }
    printer.warn(Warning::HookFailed {
        hook: point.key().to_string(),
        host: None,
        cause: f.detail.lines().next().unwrap_or("").to_string(),
    });
    Ok(Some(ran(point, false)))
}

impl Run<'_> {
    /// Runs the hook at `point` for `site` (a host-side point): on the host
    /// when the hook's role is one of its roles, on this machine with the
    /// host's variables when the hook has no role. An advisory hook's
    /// failure warns.
    pub(super) async fn hook_for(
        &self,
        point: Point,
        site: &Site,
        release: &str,
        commit: &str,
    ) -> Result<(), HostProblem> {
        let Some(hook) = self.config.hook(point) else {
            return Ok(());
        };
        let told = Told {
            env: self.env,
            commit,
            release,
            outcome: None,
        };
        let mut env = told.env_vars(hook);
        let result = match &hook.on {
            Some(role) if !site.spec.has_role(role) => return Ok(()),
            Some(_) => {
                // On the host, the run's variables are those of every
                // command there (`GANTRY_RELEASE` the release's folder).
                env.retain(|(k, _)| matches!(k.as_str(), "GANTRY_HOOK" | "GANTRY_HOSTS"));
                let steps = self.steps(site, release, commit);
                let script = steps.command_with(&hook.run, &env);
                let shown = hook.run.render_shell(&steps.vars());
                site.step(self.printer, &step(hook), Some(&shown), &script, None)
                    .await
                    .map(|_| ())
            }
            None => {
                let vars = release::run_vars(&site.spec, &site.layout, Some(release), Some(commit));
                let host = vars.get("host").cloned().unwrap_or_default();
                env.push(("GANTRY_HOST".to_string(), host));
                here(
                    self.config,
                    hook,
                    &vars,
                    env,
                    self.printer,
                    Some(site.name()),
                )
                .await
                .map_err(|f| {
                    let mut p = site.problem(&step(hook), None, f.code, &f.detail);
                    p.output = f.detail;
                    p
                })
            }
        };
        match result {
            Err(p) if hook.advisory && !p.unreachable => {
                self.account().hooks_warned.push(point.key());
                self.printer.warn(Warning::HookFailed {
                    hook: point.key().to_string(),
                    host: Some(site.name().to_string()),
                    cause: p.detail.lines().next().unwrap_or("").to_string(),
                });
                Ok(())
            }
            result => result,
        }
    }

    /// `after_prepare`: every host built the release. On the hosts of its
    /// role, each; without a role, once on this machine.
    pub(super) async fn hook_after_prepare(
        &self,
        release: &str,
        commit: &str,
    ) -> Result<(), Vec<HostProblem>> {
        let Some(hook) = self.config.hook(Point::AfterPrepare) else {
            return Ok(());
        };
        let sites: &[Site] = match &hook.on {
            Some(_) => self.sites,
            None => &self.sites[..1],
        };
        let results = each(sites, self.env.parallel, |site| {
            self.hook_for(Point::AfterPrepare, site, release, commit)
        })
        .await;
        let problems: Vec<HostProblem> = results.into_iter().filter_map(Result::err).collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
