//! One site on one host while a command runs: its connection, layout and
//! variables, and the helpers every command uses to run steps on many hosts
//! at once (bounded), take and release the lock, and write history.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::cli::output::Printer;
use crate::config::{Config, Environment, HostSpec};
use crate::error::{Error, HeldLock, HostProblem};
use crate::model::history::Record;
use crate::model::lock::LockInfo;
use crate::remote::host::{Connection, Output};
use crate::remote::pool;
use crate::remote::release::{self, Layout, Planned};

/// Set by Ctrl-C or SIGTERM: no new step starts, and what ran is undone.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `--lock-wait`: how long to wait for a lock another deploy holds.
static LOCK_WAIT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

pub fn set_lock_wait(wait: std::time::Duration) {
    let _ = LOCK_WAIT.set(wait);
}

pub struct Site {
    pub spec: HostSpec,
    pub layout: Layout,
    pub conn: Connection,
    /// What `current` pointed at when the lock was taken.
    pub serving: Option<String>,
    /// The commit of that release (its `REVISION`).
    pub serving_commit: Option<String>,
    /// The commit whose pristine source the host keeps (the base of a
    /// delta upload).
    pub source_commit: Option<String>,
    /// This run's lock here was already given back by a phase's own script
    /// (the finish phase's), so the frame's unlock skips the host.
    released: AtomicBool,
}

impl Site {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// `script` followed by this run's unlock, in one channel: the unlock
    /// runs whatever `script` did, and the result says whether `script`
    /// succeeded. Pass what it printed to `note_released`.
    pub fn then_unlock(&self, script: &str, token: &str) -> String {
        format!(
            "( {script}\n)\nrc=$?\n{} && echo {}\nexit $rc",
            release::unlock_script(&self.layout, token),
            crate::base::shell::quote(RELEASED)
        )
    }

    /// Marks the lock given back when what a `then_unlock` script printed
    /// says so.
    pub fn note_released(&self, printed: &str) {
        if printed.lines().any(|l| l == RELEASED) {
            self.released.store(true, Ordering::SeqCst);
        }
    }

    /// Runs one step. `shown` is what the error report calls the command.
    /// Refuses to start once the run was interrupted.
    pub async fn step(
        &self,
        printer: &Printer,
        step: &str,
        shown: Option<&str>,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, HostProblem> {
        if let Some(problem) = self.interruption(step, shown) {
            return Err(problem);
        }
        self.step_always(printer, step, shown, script, stdin).await
    }

    /// No new step starts after Ctrl-C or SIGTERM: the problem that says so.
    fn interruption(&self, step: &str, shown: Option<&str>) -> Option<HostProblem> {
        let why = "interrupted (Ctrl-C or SIGTERM) before this step started";
        interrupted().then(|| self.problem(step, shown, None, why))
    }

    /// Runs one step even after an interrupt: for putting things back.
    pub async fn step_always(
        &self,
        printer: &Printer,
        step: &str,
        shown: Option<&str>,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, HostProblem> {
        // With `-v`, every line the command prints is shown as it comes.
        let show = |_: crate::remote::host::Stream, line: &str| printer.detail(self.name(), line);
        let lines: Option<crate::remote::host::Lines<'_>> =
            (printer.verbosity() == crate::cli::output::Verbosity::Verbose).then_some(&show);
        self.step_with(printer, step, shown, script, stdin, lines)
            .await
    }

    /// Runs one step, handing each line it prints to `lines` as it comes
    /// (`exec` streams them).
    pub async fn step_with(
        &self,
        printer: &Printer,
        step: &str,
        shown: Option<&str>,
        script: &str,
        stdin: Option<&[u8]>,
        lines: Option<crate::remote::host::Lines<'_>>,
    ) -> Result<Output, HostProblem> {
        printer.host(self.name(), step);
        // Marked, so that `status` can name a step still running on the
        // host after Gantry was killed.
        let marker = format!(
            ": gantry-step {} {}\n",
            crate::base::shell::quote(&self.layout.path),
            crate::base::shell::quote(step)
        );
        // A script that holds a secret (a database password) never stands
        // on a command line, where every user of the host can read it: it
        // goes on stdin, to `sh -s`, its commands reading from /dev/null.
        let (script, stdin) = match stdin {
            None if crate::base::secrets::contains_any(script) => (
                format!("{marker}sh -s"),
                Some(format!("{{\n{script}\n}} </dev/null\n").into_bytes()),
            ),
            _ => (format!("{marker}{script}"), stdin.map(<[u8]>::to_vec)),
        };
        match self.conn.run_with(&script, stdin.as_deref(), lines).await {
            Ok(out) => {
                if out.success() {
                    Ok(out)
                } else {
                    Err(HostProblem {
                        host: self.name().to_string(),
                        step: step.to_string(),
                        command: shown.map(str::to_string),
                        code: out.code,
                        detail: out.tail(20),
                        unreachable: false,
                        output: format!("{}{}", out.stdout, out.stderr),
                        key: None,
                    })
                }
            }
            Err(e) => Err(HostProblem {
                host: self.name().to_string(),
                step: step.to_string(),
                command: shown.map(str::to_string),
                code: None,
                detail: e.to_string(),
                unreachable: true,
                output: String::new(),
                key: None,
            }),
        }
    }

    /// Runs a planned step, unless an interrupt came.
    pub async fn run(
        &self,
        printer: &Printer,
        step: &Planned,
        stdin: Option<&[u8]>,
    ) -> Result<Output, HostProblem> {
        if let Some(problem) = self.interruption(&step.name, step.shown.as_deref()) {
            return Err(problem);
        }
        self.run_always(printer, step, stdin).await
    }

    /// Runs a planned step even after an interrupt.
    pub async fn run_always(
        &self,
        printer: &Printer,
        step: &Planned,
        stdin: Option<&[u8]>,
    ) -> Result<Output, HostProblem> {
        self.step_always(
            printer,
            &step.name,
            step.shown.as_deref(),
            &step.script,
            stdin,
        )
        .await
    }

    pub fn problem(
        &self,
        step: &str,
        command: Option<&str>,
        code: Option<i32>,
        detail: &str,
    ) -> HostProblem {
        HostProblem {
            host: self.name().to_string(),
            step: step.to_string(),
            command: command.map(str::to_string),
            code,
            detail: detail.to_string(),
            unreachable: false,
            output: String::new(),
            key: None,
        }
    }

    /// Appends a record to the host's history; a failure is reported, not fatal.
    pub async fn record(&self, printer: &Printer, record: &Record) {
        let script = release::history_script(&self.layout, &record.to_line());
        if let Err(p) = self
            .step_always(printer, "record history", None, &script, None)
            .await
        {
            printer.warn(&format!("could not write history: {p}"));
        }
    }
}

/// Runs `f` on every item, at most `limit` at once, and returns every
/// outcome in the items' order.
pub async fn each<'a, T, F, Fut, R>(items: &'a [T], limit: usize, f: F) -> Vec<R>
where
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = R>,
{
    let gate = Semaphore::new(limit.max(1));
    join_all(items.iter().map(|item| {
        let gate = &gate;
        let fut = f(item);
        async move {
            let _permit = gate.acquire().await.expect("semaphore open");
            fut.await
        }
    }))
    .await
}

/// Connects to every host of `env`; if any cannot be reached, closes the
/// others and reports every host that failed.
pub async fn connect(
    config: &Config,
    env: &Environment,
    printer: &Printer,
) -> Result<Vec<Site>, Error> {
    let results = each(
        &env.hosts,
        env.parallel.max(env.hosts.len().min(32)),
        |spec| async move {
            if let Some(conn) = pool::take(&spec.name).await {
                return (spec, Ok(conn));
            }
            printer.host(&spec.name, "connect");
            (spec, Connection::open(spec, &config.ssh).await)
        },
    )
    .await;
    let mut sites = Vec::new();
    let mut problems = Vec::new();
    for (spec, result) in results {
        match result {
            Ok(conn) => sites.push(Site {
                spec: spec.clone(),
                layout: Layout::new(&spec.path),
                conn,
                serving: None,
                serving_commit: None,
                source_commit: None,
                released: Default::default(),
            }),
            Err(e) => problems.push(e.problem(&spec.name)),
        }
    }
    if problems.is_empty() {
        Ok(sites)
    } else {
        close(sites).await;
        printer.finish_hosts();
        Err(Error::Unreachable {
            env: env.name.clone(),
            problems,
        })
    }
}

/// Done with these hosts: their connections are kept for the rest of the
/// run (`pool`), and closed when it ends.
pub async fn close(sites: Vec<Site>) {
    for site in sites {
        pool::keep(&site.spec.name, site.conn);
    }
}

/// Takes the lock on every site. If any host's lock is held, gives back
/// the locks this call took and reports every holder; with `--lock-wait`,
/// tries again until the wait is over. On failure the connections are
/// closed.
pub async fn lock(
    mut sites: Vec<Site>,
    env: &str,
    info: &LockInfo,
    printer: &Printer,
) -> Result<Vec<Site>, Error> {
    let deadline = LOCK_WAIT.get().map(|w| std::time::Instant::now() + *w);
    let mut announced = false;
    loop {
        match take_locks(&mut sites, env, info, printer).await {
            Ok(()) => return Ok(sites),
            Err(Error::Locked { .. })
                if deadline.is_some_and(|d| std::time::Instant::now() < d) && !interrupted() =>
            {
                if !announced {
                    printer.warn(&format!(
                        "`{env}` is locked by another deploy; waiting for it (--lock-wait)"
                    ));
                    announced = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => {
                close(sites).await;
                return Err(e);
            }
        }
    }
}

/// Connects to every host of `env` and takes the lock.
pub async fn connect_locked(
    config: &Config,
    env: &Environment,
    info: &LockInfo,
    printer: &Printer,
) -> Result<Vec<Site>, Error> {
    let sites = connect(config, env, printer).await?;
    lock(sites, &env.name, info, printer).await
}

/// The frame every locking command runs in: connects to every host of
/// `env`, takes their locks, runs `body` with the hosts, then releases the
/// locks and closes the connections, on every path `body` returns by.
pub async fn with_locked<T>(
    config: &Config,
    env: &Environment,
    info: &LockInfo,
    printer: &Printer,
    body: impl AsyncFnOnce(&[Site]) -> T,
) -> Result<T, Error> {
    let sites = connect(config, env, printer).await?;
    with_locked_sites(sites, env, info, printer, body).await
}

/// `with_locked` on hosts already connected (a deploy connects while git
/// checks the commit).
pub async fn with_locked_sites<T>(
    sites: Vec<Site>,
    env: &Environment,
    info: &LockInfo,
    printer: &Printer,
    body: impl AsyncFnOnce(&[Site]) -> T,
) -> Result<T, Error> {
    let sites = lock(sites, &env.name, info, printer).await?;
    let result = body(&sites).await;
    unlock(&sites, info, printer).await;
    close(sites).await;
    printer.finish_hosts();
    Ok(result)
}

/// Takes every site's lock in one fixed order: the host whose name sorts
/// first on its own, then the others at once. Two deploys that want the
/// same hosts meet at that first host, so exactly one of them gets on.
async fn take_locks(
    sites: &mut [Site],
    env: &str,
    info: &LockInfo,
    printer: &Printer,
) -> Result<(), Error> {
    let json = serde_json::to_string(info).expect("lock info serializes");
    async fn take(site: &Site, json: &str, printer: &Printer) -> Result<Output, HostProblem> {
        let script = format!(
            "{}\nt=$(readlink {c} 2>/dev/null) && echo \"current ${{t##*/}}\"\n[ -f {c}/REVISION ] && echo \"revision $(cat {c}/REVISION)\"\n[ -f {s}/COMMIT ] && echo \"source $(cat {s}/COMMIT)\"\ntrue",
            release::lock_script(&site.layout, json),
            c = crate::base::shell::quote(&site.layout.current()),
            s = crate::base::shell::quote(&release::source_dir(&site.layout)),
        );
        site.step(printer, "lock", None, &script, None).await
    }
    let first = (0..sites.len())
        .min_by(|&a, &b| sites[a].name().cmp(sites[b].name()))
        .unwrap_or(0);
    let first_result = take(&sites[first], &json, printer).await;
    let first_taken = first_result
        .as_ref()
        .is_ok_and(|o| o.stdout.starts_with("acquired"));
    let rest: Vec<usize> = if first_taken {
        (0..sites.len()).filter(|&i| i != first).collect()
    } else {
        Vec::new()
    };
    let others = each(&rest, 32, |&i| take(&sites[i], &json, printer)).await;
    let results: Vec<(usize, Result<Output, HostProblem>)> = std::iter::once((first, first_result))
        .chain(rest.iter().copied().zip(others))
        .collect();
    let mut held = Vec::new();
    let mut problems = Vec::new();
    let mut acquired = Vec::new();
    for (i, result) in results {
        match result {
            Ok(out) => {
                let mut lines = out.stdout.lines();
                match lines.next() {
                    Some("acquired") => acquired.push(i),
                    _ => held.push(HeldLock {
                        host: sites[i].name().to_string(),
                        info: lines.next().and_then(|l| serde_json::from_str(l).ok()),
                    }),
                }
                sites[i].serving = out
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("current "))
                    .map(str::to_string);
                sites[i].serving_commit = out
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("revision "))
                    .map(str::to_string);
                sites[i].source_commit = out
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("source "))
                    .map(str::to_string);
            }
            Err(p) => problems.push(p),
        }
    }
    if held.is_empty() && problems.is_empty() {
        return Ok(());
    }
    for i in acquired {
        let _ = sites[i]
            .step_always(
                printer,
                "unlock",
                None,
                &release::unlock_script(&sites[i].layout, &info.token),
                None,
            )
            .await;
    }
    printer.finish_hosts();
    if !problems.is_empty() {
        return Err(Error::Hosts {
            what: "taking the deploy lock".into(),
            problems,
        });
    }
    Err(Error::Locked {
        env: env.to_string(),
        held,
    })
}

/// The line a `then_unlock` script prints once the lock is given back.
const RELEASED: &str = "lock released";

/// Releases this run's lock on every site that still holds it.
pub async fn unlock(sites: &[Site], info: &LockInfo, printer: &Printer) {
    let holding: Vec<&Site> = sites
        .iter()
        .filter(|s| !s.released.load(Ordering::SeqCst))
        .collect();
    each(&holding, 32, |site| async move {
        let script = release::unlock_script(&site.layout, &info.token);
        if let Err(p) = site
            .step_always(printer, "unlock", None, &script, None)
            .await
        {
            printer.warn(&format!("could not release the lock: {p}"));
        }
    })
    .await;
}
