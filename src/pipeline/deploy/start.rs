//! The start of a deploy, host by host as each is ready: connect, wait for
//! the gate, take the lock, and prepare the release there at once when the
//! host does not serve the commit yet. A host's upload and build do not
//! wait for the slowest host's key exchange.
//!
//! The lock order is every locking command's (`locking::first`): the host
//! whose name sorts first on its own, the others only once it is taken, so
//! of two deploys of the same hosts exactly one gets on. A host that serves
//! the commit already is prepared only once every host is locked (a deploy
//! of what every host serves does nothing). When the ledger says the
//! environment went live with the commit (`Go::ask_first`), each host is
//! asked what it serves first, and none is locked before all have
//! answered: if all serve it, none is locked at all (`noop`). What stops the start (a host
//! unreachable, a lock held, the gate) puts back what it did: the releases
//! it prepared are removed and the locks it took given back.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::{watch, Semaphore};

use crate::config::HostSpec;
use crate::data::env_file;
use crate::error::{
    Error, Failure, HeldLock, HostProblem, Warning, NOT_LOCKED, NOT_REACHED, NO_RELEASE,
};
use crate::ledger::git::Commit;
use crate::remote::site::{self, each_host, Connecting, Site};
use crate::remote::{locking, release};

use super::prepare::Early;
use super::Run;

/// What the deploy goes on with once git has checked the commit and the
/// gate let it through.
pub struct Go {
    pub archive: Vec<u8>,
    /// The deploy went past the gate (`--force`).
    pub forced: bool,
    /// The ledger says the environment went live with the commit: each
    /// host is asked what it serves before any is locked (`noop`).
    pub ask_first: bool,
}

/// How the start ended when the deploy goes on.
pub(super) enum Started {
    /// Every host is locked; `early` is each host's prepare, if it ran.
    Locked {
        go: Go,
        sites: Vec<Site>,
        early: Vec<Early>,
    },
    /// A host after the first was locked by another run and `--lock-wait`
    /// has time left: everything the start did was put back, and the
    /// locks are to be taken again, all hosts at a time (`locking::lock`).
    Wait { go: Go, sites: Vec<Site> },
    /// Asked first, every host serves the commit: none was locked.
    Served { go: Go, sites: Vec<Site> },
}

/// How far one host's lock got.
pub(super) enum Lock {
    NotTried,
    /// Asked first, the host serves the commit; it was not locked. How
    /// its env file differs from the config, if it does.
    Served(Option<Warning>),
    Taken,
    Held(HeldLock),
    Failed(HostProblem),
}

/// One host at the end of the start.
pub(super) struct HostStart {
    pub(super) site: Result<Site, HostProblem>,
    pub(super) lock: Lock,
    early: Early,
}

/// What every host's start shares.
struct Shared<'s> {
    connecting: Connecting<'s>,
    /// The lock record.
    record: String,
    /// The archive and the gate's word, once git is done.
    go: &'s OnceLock<Go>,
    /// `Some(true)` once the gate let the deploy through.
    gate: watch::Receiver<Option<bool>>,
    /// `Some(true)` once the first host's lock is taken.
    first: watch::Sender<Option<bool>>,
    /// At most `parallel` prepares at once.
    preparing: Semaphore,
    /// A host could not be reached or locked: the start will be put back,
    /// so no more locks are taken and no more prepares started.
    stopping: watch::Sender<bool>,
    /// Hosts that have answered whether they serve the commit (or could
    /// not), and whether all of them do: no host is locked before every
    /// host has answered, when the hosts are asked first.
    asked: watch::Sender<(usize, bool)>,
}

impl Run<'_> {
    /// Connects, locks and (where the host does not serve `commit`)
    /// prepares every host, each as soon as it can; `go` is git's checks
    /// and the gate, which decide before any lock is taken.
    pub(super) async fn start(
        &self,
        go: impl Future<Output = Result<Go, Error>>,
        commit: &Commit,
        release: &str,
        redeploy: bool,
    ) -> Result<Started, Error> {
        let hosts = &self.env.hosts;
        let first = locking::first(hosts.iter().map(|h| h.name.as_str()));
        let gone = OnceLock::new();
        let (gate, gate_open) = watch::channel(None);
        let shared = Shared {
            connecting: Connecting::new(self.config, self.env, self.printer),
            record: locking::record(self.info),
            go: &gone,
            gate: gate_open,
            first: watch::Sender::new(None),
            preparing: Semaphore::new(self.env.parallel.max(1)),
            stopping: watch::Sender::new(false),
            asked: watch::Sender::new((0, true)),
        };
        let decided = async {
            let result = go.await.map(|go| {
                let _ = gone.set(go);
            });
            gate.send_replace(Some(result.is_ok()));
            result
        };
        let starts = join_all(hosts.iter().enumerate().map(|(i, spec)| {
            self.start_host(spec, i == first, &shared, commit, release, redeploy)
        }));
        let (decided, starts) = tokio::join!(decided, starts);
        drop(shared);
        if starts.iter().all(|s| matches!(s.lock, Lock::Served(_))) {
            let go = gone
                .into_inner()
                .expect("hosts are asked once the gate opens");
            return Ok(self.served(go, starts));
        }
        let Sorted {
            sites,
            taken,
            early,
            stop,
            serving,
        } = sort(&self.env.name, starts, decided);
        let go = gone.into_inner();
        let Some(stop) = stop else {
            let go = go.expect("the archive is kept when the gate opens");
            return Ok(Started::Locked { go, sites, early });
        };
        let sites = self.withdraw(release, sites, &taken).await;
        if site::interrupted() {
            site::close(sites).await;
            self.printer.finish_hosts();
            return Err(self.interrupted(stop, early, serving));
        }
        // Only a host after the first can be held here: the first one's
        // lock was waited for already.
        let wait = locking::wait_deadline().is_some();
        match (stop, go) {
            (Error::Locked { .. }, Some(go)) if wait && taken.get(first) == Some(&true) => {
                Ok(Started::Wait { go, sites })
            }
            (stop, _) => {
                site::close(sites).await;
                self.printer.finish_hosts();
                Err(stop)
            }
        }
    }

    /// One host's start: connected, locked, and prepared when it does not
    /// serve the commit yet (or `--redeploy`).
    async fn start_host(
        &self,
        spec: &HostSpec,
        first: bool,
        shared: &Shared<'_>,
        commit: &Commit,
        release: &str,
        redeploy: bool,
    ) -> HostStart {
        let (site, lock) = self.connect_and_lock(spec, first, shared, commit).await;
        let taken = matches!(lock, Lock::Taken);
        if !taken && !matches!(lock, Lock::Served(_)) {
            shared.stopping.send_replace(true);
        }
        if first {
            shared.first.send_replace(Some(taken));
        }
        let mut site = match site {
            Ok(site) => site,
            Err(p) => {
                let (site, early) = (Err(p), None);
                return HostStart { site, lock, early };
            }
        };
        if taken {
            if let Some(differs) = self.compare_env_file(&mut site).await {
                self.printer.warn(differs);
            }
        }
        let serves =
            site.serving_commit.as_deref() == Some(commit.sha.as_str()) && !site.env_changed;
        let mut early = None;
        if let (true, Some(go)) = (taken && (redeploy || !serves), shared.go.get()) {
            let _permit = shared.preparing.acquire().await.expect("semaphore open");
            if !*shared.stopping.borrow() {
                // A host that stops the start stops this prepare before its
                // next step.
                let stop = shared.stopping.subscribe();
                let prepared = self.prepare_one(&site, commit, release, &go.archive, Some(&stop));
                early = Some(prepared.await);
            }
        }
        let site = Ok(site);
        HostStart { site, lock, early }
    }

    /// Compares the host's env file with the config's `[env]` (the warning
    /// to give when they differ), and notes whether it changed after the
    /// app last started.
    pub(super) async fn compare_env_file(&self, site: &mut Site) -> Option<Warning> {
        // Only what a user wrote in `[env]` or `[secrets]`: without them
        // the file is Gantry's own (the database's variable), if any.
        if self.config.setup.env.is_empty() && self.config.setup.secrets.is_empty() {
            return None;
        }
        let file = format!("{}/{}", site.layout.shared(), self.config.setup.env_file);
        let lines = env_file::lines(self.config, self.env, &site.spec, &site.layout);
        let started = crate::remote::activation::env_started_file(&site.layout);
        let script = env_file::compare_script(&file, &started, &lines);
        let Ok(out) = site
            .step(self.printer, "compare the env file", None, &script, None)
            .await
        else {
            // An unreachable host stops the start at its next step.
            return None;
        };
        let compared = env_file::parse(&out.stdout);
        site.env_changed = compared.changed;
        (compared.missing || !compared.differs.is_empty()).then(|| Warning::EnvFileDiffers {
            host: site.name().to_string(),
            env: self.env.name.clone(),
            file,
            names: compared.differs,
        })
    }

    /// Connects to one host and, once the gate is open (and, when the
    /// hosts are asked first, every host has said it does not all serve the
    /// commit) and (for any host but the first) the first host's lock is
    /// taken, takes its lock.
    async fn connect_and_lock(
        &self,
        spec: &HostSpec,
        first: bool,
        shared: &Shared<'_>,
        commit: &Commit,
    ) -> (Result<Site, HostProblem>, Lock) {
        // Every host answers once, whatever becomes of it, so that no
        // host waits for an answer that never comes.
        let answer = |served: bool| {
            shared
                .asked
                .send_modify(|(n, all)| (*n, *all) = (*n + 1, *all && served));
        };
        let mut site = match shared.connecting.site(spec).await {
            Ok(site) => site,
            Err(p) => {
                answer(false);
                return (Err(p), Lock::NotTried);
            }
        };
        let open = |rx: &watch::Receiver<Option<bool>>| {
            let mut rx = rx.clone();
            async move {
                matches!(
                    rx.wait_for(Option::is_some).await.map(|v| *v),
                    Ok(Some(true))
                )
            }
        };
        if !open(&shared.gate).await {
            answer(false);
            return (Ok(site), Lock::NotTried);
        }
        if shared.go.get().is_some_and(|go| go.ask_first) {
            let (served, warning) = self.served_here(&mut site, commit).await;
            answer(served);
            let hosts = self.env.hosts.len();
            let mut asked = shared.asked.subscribe();
            let all = asked.wait_for(|(n, _)| *n == hosts).await.map(|a| a.1);
            if all.unwrap_or(false) {
                return (Ok(site), Lock::Served(warning));
            }
            // The deploy compares the env file again once locked, and
            // warns then.
        } else {
            answer(false);
        }
        if (!first && !open(&shared.first.subscribe()).await) || *shared.stopping.borrow() {
            return (Ok(site), Lock::NotTried);
        }
        // `--lock-wait` waits at the first host: no other lock is taken
        // meanwhile.
        let deadline = first.then(locking::wait_deadline).flatten();
        let mut announced = false;
        let lock = loop {
            match locking::take(&mut site, &shared.record, self.printer).await {
                Ok(None) => break Lock::Taken,
                Ok(Some(_))
                    if deadline.is_some_and(|d| Instant::now() < d) && !site::interrupted() =>
                {
                    if !announced {
                        locking::announce_wait(&self.env.name, self.printer);
                        announced = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(Some(held)) => break Lock::Held(held),
                Err(p) => break Lock::Failed(p),
            }
        };
        (Ok(site), lock)
    }

    /// The error of a start that Ctrl-C or SIGTERM stopped, once what it
    /// did was put back: every problem met on the way, and each host as it
    /// was left.
    fn interrupted(&self, stop: Error, early: Vec<Early>, serving: Vec<(String, String)>) -> Error {
        let mut problems = match stop {
            Error::Unreachable { problems, .. } | Error::Hosts { problems, .. } => problems,
            _ => Vec::new(),
        };
        problems.extend(early.into_iter().flatten().filter_map(Result::err));
        Error::Failed(Box::new(Failure {
            action: "deploy".into(),
            env: self.env.name.clone(),
            problems,
            serving,
            recovery: Vec::new(),
            notes: Vec::new(),
            constraint: None,
            interrupted: true,
            stuck: Vec::new(),
        }))
    }

    /// Puts back what the start did: on every host, the release it
    /// prepared removed and the lock it took given back, in one channel.
    /// Returns the sites, still connected.
    async fn withdraw(&self, release: &str, sites: Vec<Site>, taken: &[bool]) -> Vec<Site> {
        let created = std::mem::take(&mut *self.created.lock().expect("created lock"));
        let created = &created;
        let work: Vec<(&Site, bool)> = sites.iter().zip(taken.iter().copied()).collect();
        each_host(&work, |&(site, taken)| async move {
            let discard = release::discard_script(&site.layout, release);
            let (step, script) = match (created.contains(site.name()), taken) {
                (true, true) => (
                    "discard release, unlock",
                    site.then_unlock(&discard, &self.info.token),
                ),
                (true, false) => ("discard release", discard),
                (false, true) => (
                    "unlock",
                    release::unlock_script(&site.layout, &self.info.token),
                ),
                (false, false) => return,
            };
            if let Err(p) = site
                .step_always(self.printer, step, None, &script, None)
                .await
            {
                self.printer.warn(Warning::NotPutBack {
                    cause: p.to_string(),
                });
            }
        })
        .await;
        sites
    }
}

/// The hosts' starts sorted: the sites reached, which of them this run
/// locked, their prepares, why the deploy stops, if it does, and what
/// every host serves (as far as the start read it).
struct Sorted {
    sites: Vec<Site>,
    taken: Vec<bool>,
    early: Vec<Early>,
    stop: Option<Error>,
    serving: Vec<(String, String)>,
}

fn sort(env: &str, starts: Vec<HostStart>, decided: Result<(), Error>) -> Sorted {
    let (mut sites, mut taken, mut early) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unreachable, mut problems, mut held) = (Vec::new(), Vec::new(), Vec::new());
    let mut serving = Vec::new();
    for start in starts {
        serving.push(match (&start.site, &start.lock) {
            (Ok(site), Lock::Taken) => (
                site.name().to_string(),
                site.serving
                    .clone()
                    .unwrap_or_else(|| NO_RELEASE.to_string()),
            ),
            (Ok(site), _) => (site.name().to_string(), NOT_LOCKED.to_string()),
            (Err(p), _) => (p.host.clone(), NOT_REACHED.to_string()),
        });
        match start.site {
            Ok(site) => {
                sites.push(site);
                taken.push(matches!(start.lock, Lock::Taken));
                early.push(start.early);
            }
            Err(p) => unreachable.push(p),
        }
        match start.lock {
            Lock::Held(h) => held.push(h),
            Lock::Failed(p) => problems.push(p),
            Lock::NotTried | Lock::Served(_) | Lock::Taken => {}
        }
    }
    let env = env.to_string();
    let stop = if !unreachable.is_empty() {
        Some(Error::Unreachable {
            env,
            problems: unreachable,
        })
    } else if let Err(e) = decided {
        Some(e)
    } else if !problems.is_empty() {
        Some(Error::Hosts {
            what: "taking the deploy lock".into(),
            problems,
        })
    } else if !held.is_empty() {
        Some(Error::Locked { env, held })
    } else {
        None
    };
    Sorted {
        sites,
        taken,
        early,
        stop,
        serving,
    }
}
