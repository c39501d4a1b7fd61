//! A host back in the balancer's pool (`[deploy.balancer]`) once it
//! serves again what it served: after a put-back, only when the old
//! release answers its health check.

use crate::config::Vars;
use crate::error::{HostProblem, Warning};
use crate::remote::activation::HostState;
use crate::remote::balancer::{self, Move};
use crate::remote::health;
use crate::remote::release;
use crate::remote::site::Site;

use super::Run;

impl Run<'_> {
    /// The controller-side health check of `previous`, the release a host
    /// was put back to (nothing to do when the check is made on the host).
    pub(super) async fn check_back(
        &self,
        site: &Site,
        previous: Option<&str>,
    ) -> Result<(), String> {
        let (Some(check), Some(old)) = (self.web_health(site), previous) else {
            return Ok(());
        };
        self.check_from_here(site, check, old, "").await
    }

    /// The health check `check` of `release` (at `commit`, "" when not
    /// known: any body matches) on `site`, made from this machine.
    pub(super) async fn check_from_here(
        &self,
        site: &Site,
        check: &crate::config::Health,
        release: &str,
        commit: &str,
    ) -> Result<(), String> {
        let vars = release::run_vars(&site.spec, &site.layout, Some(release), Some(commit));
        let url = check.url.render(&vars);
        self.printer
            .host(site.name(), &format!("health check {url}"));
        let body = check.body.as_ref().map(|b| b.render(&vars));
        health::check_from(check, &url, body.as_deref(), site, false)
            .await
            .map_err(|f| f.to_string())
    }

    /// A host put back whose old release failed its health check: it is
    /// left out of the balancer's pool, and the user told.
    pub(super) fn out_unhealthy(&self, site: &Site, cause: String) {
        self.printer.warn(Warning::BackUnhealthy {
            host: site.name().to_string(),
            cause,
            balancer: self.balancer(site).is_some(),
        });
    }

    /// Puts `site`, which serves again what it served, back into the
    /// balancer's pool; a failure is a warning (the deploy has failed
    /// already).
    pub(super) async fn rejoin(&self, site: &Site, vars: &crate::config::Vars) {
        let Some(b) = self.balancer(site) else {
            return;
        };
        if let Err(e) = balancer::run(self.config, b, site, vars, Move::Join, self.printer).await {
            self.printer.warn(Warning::BalancerOut {
                host: site.name().to_string(),
                step: e.step.clone(),
                cause: e.detail.lines().next().unwrap_or("").to_string(),
            });
        }
    }

    /// After `site`'s activation of `release` failed and left it in
    /// `state`: back into the pool when it serves the old release again
    /// and answers. Returns whether the host may still be on `release`.
    pub(super) async fn after_failure(
        &self,
        site: &Site,
        vars: &Vars,
        release: &str,
        previous: Option<&str>,
        state: HostState,
        problem: &HostProblem,
    ) -> bool {
        match state {
            HostState::Old => {
                self.rejoin(site, vars).await;
                false
            }
            HostState::Back => {
                // It serves the old release again: into the pool once it
                // answers (checked from here when the check is made from
                // here).
                match self.check_back(site, previous).await {
                    Ok(()) => self.rejoin(site, vars).await,
                    Err(cause) => self.out_unhealthy(site, cause),
                }
                false
            }
            HostState::Unhealthy => {
                // The end of the log: the old release's check.
                let cause = problem.detail.lines().last().unwrap_or("").to_string();
                self.out_unhealthy(site, cause);
                false
            }
            HostState::New | HostState::Unknown => true,
            HostState::Stuck => {
                self.stuck(site.name(), release);
                false
            }
        }
    }
}
