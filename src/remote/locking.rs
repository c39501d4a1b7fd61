//! The deploy lock on a command's hosts: taken in one fixed order (the
//! host whose name sorts first, then the others), given back by the frame
//! every locking command runs in (`with_locked`) or by a phase's own script
//! (`Site::then_unlock`), and `--lock-wait`.

use std::sync::atomic::Ordering;

use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::error::{Error, HeldLock, HostProblem};
use crate::model::lock::LockInfo;
use crate::remote::host::Output;
use crate::remote::release;
use crate::remote::site::{close, connect, each_host, interrupted, Site};

/// `--lock-wait`: how long to wait for a lock another deploy holds.
static LOCK_WAIT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();

pub fn set_lock_wait(wait: std::time::Duration) {
    let _ = LOCK_WAIT.set(wait);
}

impl Site {
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
        // What the host serves and the source it keeps, read with the
        // shell's `read` (no program started).
        let script = format!(
            "{}\nt=$(readlink {c} 2>/dev/null) && echo \"current ${{t##*/}}\"\n{rev}\n[ -n \"$v\" ] && echo \"revision $v\"\n{src}\n[ -n \"$s\" ] && echo \"source $s\"\ntrue",
            release::lock_script(&site.layout, json),
            c = crate::base::shell::quote(&site.layout.current()),
            rev = release::read_line("v", &format!("{}/REVISION", site.layout.current())),
            src = release::read_line("s", &format!("{}/COMMIT", crate::remote::source::source_dir(&site.layout))),
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
    let others = each_host(&rest, |&i| take(&sites[i], &json, printer)).await;
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
    each_host(&holding, |site| async move {
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
