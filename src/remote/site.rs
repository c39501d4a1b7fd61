//! One site on one host while a command runs: its connection, layout and
//! variables, and the helpers every command uses to run steps on many hosts
//! at once (bounded), connect and close, and write history (the lock is
//! `locking`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use tokio::sync::{watch, Semaphore};

use crate::cli::output::Printer;
use crate::config::{Config, Environment, HostSpec};
use crate::error::{Error, HostProblem, Warning};
use crate::model::history::Record;
use crate::remote::host::{Connection, HostError, Output};
use crate::remote::pool;
use crate::remote::release::{self, Layout, Planned};

/// Set by Ctrl-C or SIGTERM: no new step starts, and what ran is undone.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What a step that an interrupt kept from starting says.
pub const NOT_STARTED: &str = "interrupted (Ctrl-C or SIGTERM) before this step started";
/// What a connection that an interrupt stopped says.
pub const NOT_CONNECTED: &str = "interrupted (Ctrl-C or SIGTERM) before the connection was made";

/// Wakes whoever waits for an interrupt (`until_interrupted`).
static INTERRUPTS: tokio::sync::Notify = tokio::sync::Notify::const_new();

pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    INTERRUPTS.notify_waiters();
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Returns once Ctrl-C or SIGTERM came (at once if it already did).
pub async fn until_interrupted() {
    loop {
        let notified = INTERRUPTS.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if interrupted() {
            return;
        }
        notified.await;
    }
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
    /// The env file changed after the app last started: a deploy of the
    /// commit it serves deploys again.
    pub env_changed: bool,
    /// This run's lock here was already given back by a phase's own script
    /// (the finish phase's), so the frame's unlock skips the host.
    pub(super) released: AtomicBool,
}

impl Site {
    /// A site on a host just connected to, before its lock is taken.
    pub fn new(spec: &HostSpec, conn: Connection) -> Site {
        Site {
            spec: spec.clone(),
            layout: Layout::new(&spec.path),
            conn,
            serving: None,
            serving_commit: None,
            source_commit: None,
            env_changed: false,
            released: Default::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
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
        interrupted().then(|| self.problem(step, shown, None, NOT_STARTED))
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
        let ran = self.conn.run_with(&script, stdin.as_deref(), lines).await;
        let ok = ran.as_ref().is_ok_and(Output::success);
        printer.host_ended(self.name(), step, ok);
        match ran {
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
            printer.warn(Warning::HistoryNotWritten {
                cause: p.to_string(),
            });
        }
    }
}

/// Runs `f` on every host at once, each on its own connection: for the
/// short bookkeeping commands (lock, record, unlock, listing, putting a
/// host back), which need no limit beyond one channel per host.
pub async fn each_host<'a, T, F, Fut, R>(items: &'a [T], f: F) -> Vec<R>
where
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = R>,
{
    each(items, items.len(), f).await
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
    let connecting = Connecting::new(config, env, printer);
    let results = join_all(env.hosts.iter().map(|spec| connecting.site(spec))).await;
    let mut sites = Vec::new();
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(site) => sites.push(site),
            Err(problem) => problems.push(problem),
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

/// Connecting to the hosts of one environment, each host as soon as it can
/// (a deploy goes on with a host as soon as it is connected).
pub struct Connecting<'a> {
    config: &'a Config,
    printer: &'a Printer,
    /// At most this many first tries at once.
    gate: Semaphore,
    /// First tries not over yet.
    first_left: watch::Sender<usize>,
    /// Connections made again, one at a time.
    again: Semaphore,
}

impl<'a> Connecting<'a> {
    pub fn new(config: &'a Config, env: &Environment, printer: &'a Printer) -> Connecting<'a> {
        printer.hosts(env.hosts.len());
        Connecting {
            config,
            printer,
            gate: Semaphore::new(env.parallel.max(env.hosts.len().min(32)).max(1)),
            first_left: watch::Sender::new(env.hosts.len()),
            again: Semaphore::new(1),
        }
    }

    /// The site on one host, connected (or with the connection this run
    /// already made there). A server that had too many connections at once
    /// (sshd's `MaxStartups`: hosts behind one jump host all connect to it)
    /// drops the newest before they authenticate: those are made again once
    /// every first try is over, one at a time, so a busy jump host slows a
    /// run down instead of failing it.
    pub async fn site(&self, spec: &HostSpec) -> Result<Site, HostProblem> {
        let first = {
            let _permit = self.gate.acquire().await.expect("semaphore open");
            self.first_try(spec).await
        };
        self.first_left.send_modify(|left| *left -= 1);
        let mut result = first;
        for attempt in 0..3 {
            match &result {
                Err(e) if e.dropped() && !interrupted() => {}
                _ => break,
            }
            let mut left = self.first_left.subscribe();
            let _ = left.wait_for(|&left| left == 0).await;
            let _permit = self.again.acquire().await.expect("semaphore open");
            tokio::time::sleep(backoff(attempt)).await;
            self.printer.host(&spec.name, "connect again");
            result = self.open(spec).await;
        }
        result
            .map(|conn| Site::new(spec, conn))
            .map_err(|e| e.problem(&spec.name))
    }

    async fn first_try(&self, spec: &HostSpec) -> Result<Connection, HostError> {
        if let Some(conn) = pool::take(&spec.name).await {
            return Ok(conn);
        }
        self.printer.host(&spec.name, "connect");
        self.open(spec).await
    }

    /// A connection being made is given up at an interrupt: its `ssh` is
    /// stopped (`master`), not waited for until it times out.
    async fn open(&self, spec: &HostSpec) -> Result<Connection, HostError> {
        tokio::select! {
            conn = Connection::open(spec, &self.config.ssh) => conn,
            () = until_interrupted() => Err(HostError::Connect {
                message: NOT_CONNECTED.into(),
                host_key: None,
            }),
        }
    }
}

/// Done with these hosts: their connections are kept for the rest of the
/// run (`pool`), and closed when it ends.
pub async fn close(sites: Vec<Site>) {
    for site in sites {
        pool::keep(&site.spec.name, site.conn);
    }
}

/// How long to wait before making a dropped connection again: 100 ms,
/// doubling with each attempt, plus up to as much again at random, so that
/// hosts dropped together do not come back together.
fn backoff(attempt: u32) -> std::time::Duration {
    let base = std::time::Duration::from_millis(100 << attempt.min(6));
    base + crate::base::time::jitter(base)
}
