//! The activate phase: on each host, one host-side program switches
//! `current`, restarts and checks, and puts the host back by itself on
//! failure; then the check from here. All at once or in batches; a failure
//! anywhere switches every switched host back.

use crate::base::shell::quote;
use crate::config::Point;
use crate::error::{HostProblem, Warning};
use crate::remote::activation::{self, Activation, Verdict};
use crate::remote::balancer::{self, Move};
use crate::remote::handover;
use crate::remote::health;
use crate::remote::release;
use crate::remote::site::{each, each_host, Site};

use super::{Run, Switched};

/// What the activate phase did.
pub(super) struct Activated {
    /// Every host that was switched (and may need switching back).
    pub switched: Vec<Switched>,
    /// The problems that stopped it, if it stopped.
    pub problems: Option<Vec<HostProblem>>,
}

impl Run<'_> {
    /// Switches hosts to `release` in batches, restarting and checking each.
    pub(super) async fn activate(&self, release: &str, commit: &str) -> Activated {
        let indexes: Vec<usize> = (0..self.sites.len()).collect();
        let size = if self.env.batch == 0 {
            indexes.len()
        } else {
            self.env.batch
        };
        let mut switched = Vec::new();
        for batch in indexes.chunks(size.max(1)) {
            let results = each(batch, self.env.parallel.max(batch.len()), |&i| {
                self.activate_one(i, release, commit)
            })
            .await;
            let mut problems = Vec::new();
            for (i, (previous, was_switched, result)) in batch.iter().zip(results) {
                if was_switched {
                    switched.push(Switched {
                        index: *i,
                        previous,
                    });
                }
                if let Err(p) = result {
                    problems.push(p);
                }
            }
            if !problems.is_empty() {
                return Activated {
                    switched,
                    problems: Some(problems),
                };
            }
        }
        Activated {
            switched,
            problems: None,
        }
    }

    /// Activates `release` on host `i` through the host-side activation
    /// (switch, restart, host-side health check, put back by the host on
    /// failure), then makes the health check from here when it is not made
    /// on the host. Returns where `current` pointed before, whether the
    /// host may still be on `release` (so that a failure elsewhere puts it
    /// back), and the outcome.
    pub(super) async fn activate_one(
        &self,
        i: usize,
        release: &str,
        commit: &str,
    ) -> (Option<String>, bool, Result<(), HostProblem>) {
        let site = &self.sites[i];
        let p = self.printer;
        let previous = site.serving.clone();
        let vars = release::run_vars(&site.spec, &site.layout, Some(release), Some(commit));
        let health = self.web_health(site);
        let (restart, check) = self.activation_steps(site, release, commit);
        let handover = self.handover(site).map(|h| {
            let scripts = self.handover_scripts(site, h, release, commit, previous.as_deref());
            (scripts, previous.as_deref())
        });
        if let Err(e) = self
            .hook_for(Point::BeforeSwitch, site, release, commit)
            .await
        {
            return (previous, false, Err(e));
        }
        // Out of the balancer's pool first, and drained.
        if let Some(b) = self.balancer(site) {
            if let Err(e) = balancer::run(self.config, b, site, &vars, Move::Leave, p).await {
                // The host was not touched: back into the pool, in case
                // the command did part of its work.
                self.rejoin(site, &vars).await;
                return (previous, false, Err(e));
            }
        }
        let step = match (&handover, &restart) {
            (Some(_), _) => "handover",
            (None, Some(_)) => "switch, restart",
            (None, None) => "switch",
        };
        // A put-back is done once the old release answers its check.
        let check_back = previous
            .as_deref()
            .and_then(|old| self.activation_steps(site, old, "").1);
        let activation = Activation {
            layout: &site.layout,
            release,
            put_back: Some(previous.as_deref()),
            restart: restart.as_ref().map(|r| r.script.clone()),
            check,
            check_back,
            handover,
        };
        let out = match site
            .step(p, step, None, &activation.run_script(), None)
            .await
        {
            Ok(out) => out,
            // Refused before it started (not switched), or the connection
            // broke: the host finishes by itself, where is unknown here.
            Err(e) => {
                if !e.unreachable {
                    self.rejoin(site, &vars).await;
                }
                return (previous, e.unreachable, Err(e));
            }
        };
        match activation::parse(&out.stdout) {
            Verdict::Ok => {}
            Verdict::Failed {
                step,
                code,
                state,
                detail,
            } => {
                let problem = HostProblem {
                    host: site.name().to_string(),
                    command: (step == "restart")
                        .then(|| restart.as_ref().and_then(|r| r.shown.clone()))
                        .flatten(),
                    step,
                    code,
                    output: detail.clone(),
                    detail,
                    unreachable: false,
                    key: None,
                };
                let problem = if problem.step.contains("health") {
                    self.with_app_log(site, release, commit, problem).await
                } else {
                    problem
                };
                let switched = self
                    .after_failure(site, &vars, release, previous.as_deref(), state, &problem)
                    .await;
                return (previous, switched, Err(problem));
            }
        }
        if let Some(check) = health {
            let url = check.url.render(&vars);
            p.host(site.name(), &format!("health check {url}"));
            let body = check.body.as_ref().map(|b| b.render(&vars));
            if let Err(f) = health::check_from(check, &url, body.as_deref(), site, true).await {
                let problem = site.problem("health check", None, None, &f.to_string());
                let problem = self.with_app_log(site, release, commit, problem).await;
                return (previous, true, Err(problem));
            }
        }
        // Healthy: back into the pool. If that fails, the host is switched
        // back like any failed host (and `join` tried again there).
        if let Some(b) = self.balancer(site) {
            if let Err(e) = balancer::run(self.config, b, site, &vars, Move::Join, p).await {
                return (previous, true, Err(e));
            }
        }
        let after = self
            .hook_for(Point::AfterSwitch, site, release, commit)
            .await;
        (previous, true, after)
    }

    /// What a handover of `release` runs on `site` (`old`: the release
    /// serving before).
    fn handover_scripts(
        &self,
        site: &Site,
        h: &crate::config::Handover,
        release: &str,
        commit: &str,
        old: Option<&str>,
    ) -> handover::Scripts {
        let host = (&site.spec, &site.layout);
        crate::data::handover::scripts(self.config, self.env, host, h, (release, commit), old)
    }

    /// Stops the app a failed first deploy started from `release`
    /// (`deploy.stop`; with a handover, its app on the slot it took), or
    /// says it may still run.
    async fn stop_app(&self, site: &Site, release: &str) {
        if site.spec.web() {
            self.stop_web(site, release).await;
        }
        let steps = self.steps(site, release, "");
        for role in self
            .config
            .roles
            .iter()
            .filter(|r| site.spec.has_role(&r.name))
        {
            let Some(stop) = &role.stop else { continue };
            let step = steps.command("stop", stop, false);
            if let Err(e) = site.run_always(self.printer, &step, None).await {
                self.printer.warn(Warning::AppNotStopped {
                    host: site.name().to_string(),
                    cause: e.detail.trim().to_string(),
                });
            }
        }
    }

    /// The web app's part of `stop_app`.
    async fn stop_web(&self, site: &Site, release: &str) {
        let host = site.name().to_string();
        if let Some(h) = &self.config.deploy.handover {
            let script = self
                .handover_scripts(site, h, release, "", None)
                .stop_script(&site.layout);
            if let Err(e) = site
                .step_always(self.printer, "stop", None, &script, None)
                .await
            {
                self.printer.warn(Warning::AppNotStopped {
                    host,
                    cause: e.detail.trim().to_string(),
                });
            }
            return;
        }
        let Some(stop) = &self.config.deploy.stop else {
            if self.config.deploy.restart.is_some() {
                self.printer.warn(Warning::AppMayStillRun { host });
            }
            return;
        };
        let step = self.steps(site, release, "").command("stop", stop, false);
        if let Err(e) = site.run_always(self.printer, &step, None).await {
            self.printer.warn(Warning::AppNotStopped {
                host,
                cause: e.detail.trim().to_string(),
            });
        }
    }

    /// `problem`, a failed health check of `release` on `site`, with the
    /// app's recent log (`deploy.logs`), which usually says why.
    async fn with_app_log(
        &self,
        site: &Site,
        release: &str,
        commit: &str,
        mut problem: HostProblem,
    ) -> HostProblem {
        let Some(logs) = &self.config.deploy.logs else {
            return problem;
        };
        let step = self
            .steps(site, release, commit)
            .command("app log", logs, false);
        let shown = step.shown.clone().unwrap_or_default();
        match site.run_always(self.printer, &step, None).await {
            Ok(out) => {
                let text = format!("{}{}", out.stdout, out.stderr);
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(20)..];
                problem
                    .detail
                    .push_str(&format!("\napp log (`{shown}`):\n{}", tail.join("\n")));
            }
            Err(e) => problem
                .detail
                .push_str(&format!("\napp log: `{shown}` failed: {}", e.detail.trim())),
        }
        problem
    }

    /// A host that runs `release` and could not be put back.
    pub(super) fn stuck(&self, host: &str, release: &str) {
        self.account()
            .stuck
            .push((host.to_string(), release.to_string()));
    }

    /// Puts every switched host back where it was, through the host-side
    /// activation (switch back, restart the old release), even after an
    /// interrupt. Returns the problems met; the hosts they name could not
    /// be put back, run the new release, and need a person.
    pub(super) async fn switch_back(
        &self,
        switched: &[Switched],
        release: &str,
    ) -> Vec<HostProblem> {
        let results = each_host(switched, |s| async move {
            let site = &self.sites[s.index];
            match self.switch_back_one(s, release).await {
                Err(problem) if !problem.unreachable && self.found_back(site, s).await => {
                    self.printer.warn(Warning::FoundBack {
                        host: site.name().to_string(),
                        reported: problem.detail.lines().next().unwrap_or("").to_string(),
                        healthy: self.config.deploy.health.is_some(),
                    });
                    Ok(())
                }
                result => result,
            }
        })
        .await;
        let mut problems = Vec::new();
        for result in results {
            if let Err(problem) = result {
                self.stuck(&problem.host, release);
                problems.push(problem);
            }
        }
        problems
    }

    /// Puts host `s` back: switch back, restart the old release, check it.
    async fn switch_back_one(&self, s: &Switched, release: &str) -> Result<(), HostProblem> {
        let site = &self.sites[s.index];
        let p = self.printer;
        let Some(previous) = &s.previous else {
            // No release was live here before: none is now, and the app
            // this deploy started stops.
            let script = release::switch_back_script(&site.layout, None);
            site.step_always(p, "switch back", None, &script, None)
                .await?;
            self.stop_app(site, release).await;
            return Ok(());
        };
        // The old release's commit is not known here: its check looks
        // at the status (a `{commit}` in the body matches anything).
        let vars = release::run_vars(&site.spec, &site.layout, Some(previous), Some(""));
        let health = self.web_health(site);
        let (restart, check) = self.activation_steps(site, previous, "");
        // Out of the pool while it restarts (leaving twice is harmless);
        // if that fails, putting the old release back matters more.
        if let Some(b) = self.balancer(site) {
            if let Err(e) = balancer::run(self.config, b, site, &vars, Move::Leave, p).await {
                p.warn(Warning::BalancerOut {
                    host: site.name().to_string(),
                    step: e.step.clone(),
                    cause: e.detail.lines().next().unwrap_or("").to_string(),
                });
            }
        }
        // A handover back: the old release's app started beside the new
        // one, checked, traffic moved to it, the new one drained and stopped.
        let handover = self.handover(site).map(|h| {
            let scripts = self.handover_scripts(site, h, previous, "", Some(release));
            (scripts, Some(release))
        });
        let activation = Activation {
            layout: &site.layout,
            release: previous,
            put_back: None,
            restart: restart.map(|r| r.script),
            check,
            check_back: None,
            handover,
        };
        let out = site
            .step_always(p, "switch back", None, &activation.run_script(), None)
            .await?;
        match activation::parse(&out.stdout) {
            Verdict::Ok => {
                if let Some(check) = health {
                    self.check_from_here(site, check, previous, "")
                        .await
                        .map_err(|f| site.problem("putting back: health check", None, None, &f))?;
                }
                self.rejoin(site, &vars).await;
                Ok(())
            }
            Verdict::Failed {
                step, code, detail, ..
            } => Err(HostProblem {
                host: site.name().to_string(),
                step: format!("putting back: {step}"),
                command: None,
                code,
                output: detail.clone(),
                detail,
                unreachable: false,
                key: None,
            }),
        }
    }

    /// Whether host `s`, whose putting back reported a failure, is back all
    /// the same (its report could not be written: a full disk): `current`
    /// points at the old release again, and the old commit answers the
    /// health check.
    async fn found_back(&self, site: &Site, s: &Switched) -> bool {
        let current = quote(&site.layout.current());
        let script = format!("t=$(readlink {current}) && echo \"${{t##*/}}\" || echo none");
        let Ok(out) = site
            .step_always(self.printer, "where current points", None, &script, None)
            .await
        else {
            return false;
        };
        let points = out.stdout.trim();
        if points != s.previous.as_deref().unwrap_or("none") {
            return false;
        }
        let web = self
            .config
            .deploy
            .health
            .as_ref()
            .filter(|_| site.spec.web());
        let (Some(previous), Some(check)) = (&s.previous, web) else {
            return true;
        };
        let commit = site.serving_commit.as_deref().unwrap_or("");
        self.check_from_here(site, check, previous, commit)
            .await
            .is_ok()
    }
}
