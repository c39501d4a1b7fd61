//! A deploy of what every host already serves, found without the lock.
//!
//! When the ledger says the environment went live with the commit (a CI
//! job deploying again, say), every host is first asked, in one read-only
//! command, what it serves and whether a deploy holds its lock: if every
//! host serves the commit, none is locked and no env file changed since
//! its app started, the deploy did nothing and no lock was taken or given
//! back (one command per host instead of two). Otherwise the deploy starts
//! as usual, on the same connections (kept for the run), locking every
//! host; a concurrent deploy is then met at the lock as ever.

use std::future::Future;
use std::time::Instant;

use futures_util::future::join_all;

use crate::base::shell::quote;
use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::error::{Error, Warning};
use crate::ledger::git::Commit;
use crate::model::lock::LockInfo;
use crate::remote::release::read_line;
use crate::remote::site::{self, Site};

use super::start::Go;
use super::{Options, Prepared, Rehearsal, Run, Summary};

/// What asking the hosts found.
pub(super) enum Asked {
    /// Every host serves the commit: the deploy's summary.
    Served(Summary),
    /// Something is to be done: the deploy goes on with git's word.
    GoOn(Go),
}

/// The deploy from the lock to the unlock; when the hosts are asked first
/// and all serve the commit, no lock at all.
pub(super) async fn deploy_unless_served(
    config: &Config,
    env: &Environment,
    run: (&Commit, &str),
    options: &Options,
    go: impl Future<Output = Result<Go, Error>>,
    started: Instant,
    printer: &Printer,
) -> Result<Summary, Error> {
    if !options.ask_first || options.redeploy {
        return super::lock_and_deploy(config, env, run, options, go, started, printer).await;
    }
    let info = LockInfo::new(&options.command, None, false);
    let asking = Run::new(config, env, printer, &[], options, &info);
    match asking.ask_first(go, run.0, started).await? {
        Asked::Served(summary) => {
            say_noop(env, run.0, printer);
            Ok(summary)
        }
        Asked::GoOn(go) => {
            let go = std::future::ready(Ok(go));
            super::lock_and_deploy(config, env, run, options, go, started, printer).await
        }
    }
}

/// The headline of a deploy that found nothing to do.
pub(super) fn say_noop(env: &Environment, commit: &Commit, printer: &Printer) {
    printer.headline(&format!(
        "`{}` already serves {} on every host; nothing to do (`--redeploy` deploys it again)",
        env.name,
        commit.short()
    ));
}

impl Run<'_> {
    /// Connects to every host while git checks the commit, then asks each
    /// what it serves, without its lock.
    pub(super) async fn ask_first(
        &self,
        go: impl Future<Output = Result<Go, Error>>,
        commit: &Commit,
        started: Instant,
    ) -> Result<Asked, Error> {
        let connect = site::connect(self.config, self.env, self.printer);
        let (go, sites) = tokio::join!(go, connect);
        let (go, mut sites) = match (go, sites) {
            (Ok(go), Ok(sites)) => (go, sites),
            (Err(e), Ok(sites)) => {
                site::close(sites).await;
                return Err(e);
            }
            (_, Err(e)) => return Err(e),
        };
        let asked = join_all(sites.iter_mut().map(|s| self.served_here(s, commit))).await;
        self.printer.finish_hosts();
        if !asked.iter().all(|(served, _)| *served) {
            // The deploy compares the env files again, and warns then.
            site::close(sites).await;
            return Ok(Asked::GoOn(go));
        }
        for differs in asked.into_iter().filter_map(|(_, warning)| warning) {
            self.printer.warn(differs);
        }
        let summary = self.noop_summary(&sites, commit, started, go.forced);
        site::close(sites).await;
        Ok(Asked::Served(summary))
    }

    /// Whether `site` serves `commit`, with no lock held and no env file
    /// changed since its app started, and the warning to give if its env
    /// file differs from the config; notes what it serves on the site.
    async fn served_here(&self, site: &mut Site, commit: &Commit) -> (bool, Option<Warning>) {
        let current = site.layout.current();
        let script = format!(
            "t=$(readlink {c} 2>/dev/null) && echo \"current ${{t##*/}}\"\n{rev}\n[ -n \"$v\" ] && echo \"revision $v\"\n[ -d {lock} ] && echo locked\ntrue",
            c = quote(&current),
            rev = read_line("v", &format!("{current}/REVISION")),
            lock = quote(&site.layout.lock()),
        );
        let Ok(out) = site
            .step(self.printer, "what it serves", None, &script, None)
            .await
        else {
            return (false, None);
        };
        let line = |prefix: &str| out.stdout.lines().find_map(|l| l.strip_prefix(prefix));
        site.serving = line("current ").map(str::to_string);
        site.serving_commit = line("revision ").map(str::to_string);
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
