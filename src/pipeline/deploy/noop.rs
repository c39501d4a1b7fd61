//! A deploy of what every host already serves, found without the lock.
//!
//! When the ledger (once git has brought it up to date) says the
//! environment went live with the commit (a CI job deploying again, say),
//! every host is first asked, in one read-only command, what it serves and
//! whether a deploy holds its lock, and no host is locked before every host
//! has answered (`start`). If every host serves the commit, none is locked
//! and no env file changed since its app started, the deploy did nothing
//! and no lock was taken or given back (one command per host instead of
//! two). Otherwise the start goes on as usual, locking every host; a
//! concurrent deploy is then met at the lock as ever.

use std::time::Instant;

use crate::base::shell::quote;
use crate::cli::output::Printer;
use crate::config::Environment;
use crate::error::Warning;
use crate::ledger::git::Commit;
use crate::remote::locking;
use crate::remote::site::Site;

use super::start::{Go, HostStart, Lock, Started};
use super::{Prepared, Rehearsal, Run, Summary};

/// The headline of a deploy that found nothing to do.
pub(super) fn say_noop(env: &Environment, commit: &Commit, printer: &Printer) {
    printer.headline(&format!(
        "`{}` already serves {} on every host; nothing to do (`--redeploy` deploys it again)",
        env.name,
        commit.short()
    ));
}

impl Run<'_> {
    /// The start's end when every host said it serves the commit: the
    /// hosts, none of them locked, and each env file's difference from
    /// the config said.
    pub(super) fn served(&self, go: Go, starts: Vec<HostStart>) -> Started {
        let mut sites = Vec::new();
        for start in starts {
            if let Lock::Served(Some(differs)) = start.lock {
                self.printer.warn(differs);
            }
            sites.extend(start.site.ok());
        }
        self.printer.finish_hosts();
        Started::Served { go, sites }
    }

    /// Whether `site` serves `commit`, with no lock held and no env file
    /// changed since its app started, and the warning to give if its env
    /// file differs from the config; notes what it serves on the site.
    pub(super) async fn served_here(
        &self,
        site: &mut Site,
        commit: &Commit,
    ) -> (bool, Option<Warning>) {
        let script = format!(
            "{}\n[ -d {} ] && echo locked\ntrue",
            locking::serving_script(&site.layout),
            quote(&site.layout.lock()),
        );
        let Ok(out) = site
            .step(self.printer, "what it serves", None, &script, None)
            .await
        else {
            return (false, None);
        };
        locking::note_serving(site, &out.stdout);
        let locked = out.stdout.lines().any(|l| l == "locked");
        if locked || site.serving_commit.as_deref() != Some(commit.sha.as_str()) {
            return (false, None);
        }
        let differs = self.compare_env_file(site).await;
        (!site.env_changed, differs)
    }

    /// The summary of a deploy that found every host serving the commit.
    pub(super) fn noop_summary(
        &self,
        sites: &[Site],
        commit: &Commit,
        started: Instant,
        forced: bool,
    ) -> Summary {
        Summary {
            env: self.env.name.clone(),
            release: sites[0].serving.clone().unwrap_or_default(),
            commit: commit.sha.clone(),
            hosts: sites.len(),
            seconds: started.elapsed().as_secs_f64(),
            rehearsal: Rehearsal::NotNeeded,
            noop: true,
            forced,
            per_host: super::per_host(sites, &Prepared::default()),
            uploaded: Default::default(),
            findings: Vec::new(),
            migrations: Vec::new(),
            hooks: Vec::new(),
        }
    }
}
