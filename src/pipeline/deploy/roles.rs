//! What each host's roles make it run: the web app's restart, health check,
//! handover and balancer (`[deploy]`) on hosts of the role `web` only, and
//! each `[roles.NAME]`'s restart and check on its hosts, after the switch.

use crate::config::{Balancer, Handover, Health};
use crate::remote::activation;
use crate::remote::release::{self, Planned};
use crate::remote::site::Site;

use super::Run;

impl Run<'_> {
    /// `[deploy.balancer]`, for a web host.
    pub(super) fn balancer(&self, site: &Site) -> Option<&Balancer> {
        self.config
            .deploy
            .balancer
            .as_ref()
            .filter(|_| site.spec.web())
    }

    /// `[deploy.handover]`, for a web host.
    pub(super) fn handover(&self, site: &Site) -> Option<&Handover> {
        self.config
            .deploy
            .handover
            .as_ref()
            .filter(|_| site.spec.web())
    }

    /// The web app's health check made from this machine, for a web host.
    pub(super) fn web_health(&self, site: &Site) -> Option<&Health> {
        self.config
            .deploy
            .health
            .as_ref()
            .filter(|h| !h.on_host && site.spec.web())
    }

    /// What an activation of `release` runs on `site` after the switch: the
    /// restarts (the web app's unless a handover starts it, then each
    /// role's, as one step for reports) and the host-side checks (the web
    /// app's when made on the host, then each role's command).
    pub(super) fn activation_steps(
        &self,
        site: &Site,
        release: &str,
        commit: &str,
    ) -> (Option<Planned>, Option<String>) {
        let vars = release::run_vars(&site.spec, &site.layout, Some(release), Some(commit));
        let steps = self.steps(site, release, commit);
        let web = site.spec.web() && self.config.deploy.handover.is_none();
        let roles: Vec<_> = self
            .config
            .roles
            .iter()
            .filter(|r| site.spec.has_role(&r.name))
            .collect();
        let mut restarts: Vec<Planned> = Vec::new();
        if let Some(r) = self.config.deploy.restart.as_ref().filter(|_| web) {
            restarts.push(steps.command("restart", r, true));
        }
        for role in &roles {
            if let Some(r) = &role.restart {
                restarts.push(steps.command("restart", r, true));
            }
        }
        let mut checks: Vec<String> = Vec::new();
        if let Some(h) = self
            .config
            .deploy
            .health
            .as_ref()
            .filter(|h| h.on_host && web)
        {
            let body = h.body.as_ref().map(|b| b.render(&vars));
            checks.push(activation::host_check_script(
                h,
                &h.url.render(&vars),
                body.as_deref(),
                None,
            ));
        }
        for role in &roles {
            if let Some(c) = &role.check {
                let step = steps.command("check", c, true);
                checks.push(format!(
                    "(\n{}\n) || {{ rc=$?; echo {}; exit $rc; }}",
                    step.script,
                    crate::base::shell::quote(&format!(
                        "the {} check `{}` failed",
                        role.name,
                        step.shown.unwrap_or_default()
                    ))
                ));
            }
        }
        (joined(restarts), all(checks))
    }
}

/// Steps run one after the other, stopping at the first that fails, as
/// one (its command in reports: each one's, `; `-separated).
fn joined(steps: Vec<Planned>) -> Option<Planned> {
    let mut steps = steps.into_iter();
    let first = steps.next()?;
    Some(steps.fold(first, |all, next| Planned {
        script: format!("(\n{}\n) && (\n{}\n)", all.script, next.script),
        shown: match (all.shown, next.shown) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        },
        ..all
    }))
}

/// Scripts run one after the other, stopping at the first that fails.
fn all(scripts: Vec<String>) -> Option<String> {
    (!scripts.is_empty()).then(|| {
        scripts
            .iter()
            .map(|s| format!("(\n{s}\n)"))
            .collect::<Vec<_>>()
            .join(" && ")
    })
}
