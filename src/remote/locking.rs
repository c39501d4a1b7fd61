//! The deploy lock on a command's hosts: taken in one fixed order (the
//! host whose name sorts first, then the others), given back by the frame
//! every locking command runs in (`with_locked`) or by a phase's own script
//! (`Site::then_unlock`), and `--lock-wait`.

use std::sync::atomic::Ordering;

use futures_util::future::join_all;

use crate::cli::output::Printer;
use crate::config::{Config, Environment};
use crate::error::{Error, HeldLock, HostProblem, Warning};
use crate::model::lock::LockInfo;
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
    let deadline = wait_deadline();
    let mut announced = false;
    loop {
        match take_locks(&mut sites, env, info, printer).await {
            Ok(()) => return Ok(sites),
            Err(Error::Locked { .. })
                if deadline.is_some_and(|d| std::time::Instant::now() < d) && !interrupted() =>
            {
                if !announced {
                    announce_wait(env, printer);
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
    Ok(while_held(sites, info, printer, body).await)
}

/// The rest of the frame, on sites whose locks this run took: runs `body`
/// with them, then releases the locks and closes the connections.
pub async fn while_held<T>(
    sites: Vec<Site>,
    info: &LockInfo,
    printer: &Printer,
    body: impl AsyncFnOnce(&[Site]) -> T,
) -> T {
    let result = body(&sites).await;
    unlock(&sites, info, printer).await;
    close(sites).await;
    printer.finish_hosts();
    result
}

/// The host whose name sorts first: its lock is taken on its own, before
/// every other host's. Two deploys that want the same hosts meet there, so
/// exactly one of them gets on.
pub fn first<'n>(names: impl Iterator<Item = &'n str>) -> usize {
    names
        .enumerate()
        .min_by(|a, b| a.1.cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// What a lock record says about this run, as the lock script writes it.
pub fn record(info: &LockInfo) -> String {
    serde_json::to_string(info).expect("lock info serializes")
}

/// When `--lock-wait` stops waiting for a lock that is held, if it was given.
pub fn wait_deadline() -> Option<std::time::Instant> {
    LOCK_WAIT.get().map(|w| std::time::Instant::now() + *w)
}

/// The warning that `--lock-wait` is waiting.
pub fn announce_wait(env: &str, printer: &Printer) {
    printer.warn(Warning::WaitingForLock {
        env: env.to_string(),
    });
}

/// Takes the lock on one host and reads, in the same channel, what it
/// serves and the source it keeps (with the shell's `read`: no program
/// started). `Ok(None)`: taken; `Ok(Some(held))`: another run holds it.
pub async fn take(
    site: &mut Site,
    record: &str,
    printer: &Printer,
) -> Result<Option<HeldLock>, HostProblem> {
    let script = format!(
        "{}\n{}\n{src}\n[ -n \"$s\" ] && echo \"source $s\"\ntrue",
        release::lock_script(&site.layout, record),
        serving_script(&site.layout),
        src = release::read_line(
            "s",
            &format!("{}/COMMIT", crate::remote::source::source_dir(&site.layout))
        ),
    );
    let out = site.step(printer, "lock", None, &script, None).await?;
    note_serving(site, &out.stdout);
    site.source_commit = line(&out.stdout, "source ");
    let mut lines = out.stdout.lines();
    Ok(match lines.next() {
        Some("acquired") => None,
        _ => Some(HeldLock {
            host: site.name().to_string(),
            info: lines.next().and_then(|l| serde_json::from_str(l).ok()),
        }),
    })
}

/// Shell lines that print what the host serves: `current RELEASE` and
/// `revision COMMIT` (what `note_serving` reads).
pub fn serving_script(layout: &release::Layout) -> String {
    let current = layout.current();
    format!(
        "t=$(readlink {c} 2>/dev/null) && echo \"current ${{t##*/}}\"\n{rev}\n[ -n \"$v\" ] && echo \"revision $v\"",
        c = crate::base::shell::quote(&current),
        rev = release::read_line("v", &format!("{current}/REVISION")),
    )
}

/// Notes on the site what `serving_script` printed.
pub fn note_serving(site: &mut Site, stdout: &str) {
    site.serving = line(stdout, "current ");
    site.serving_commit = line(stdout, "revision ");
}

/// The rest of the first line of `stdout` that starts with `prefix`.
fn line(stdout: &str, prefix: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::to_string)
}

/// Takes every site's lock in one fixed order: the `first` host on its
/// own, then the others at once.
async fn take_locks(
    sites: &mut [Site],
    env: &str,
    info: &LockInfo,
    printer: &Printer,
) -> Result<(), Error> {
    let json = record(info);
    let first = first(sites.iter().map(Site::name));
    let first_result = take(&mut sites[first], &json, printer).await;
    let first_taken = matches!(first_result, Ok(None));
    let others = join_all(
        sites
            .iter_mut()
            .enumerate()
            .filter(|&(i, _)| first_taken && i != first)
            .map(|(i, site)| {
                let json = &json;
                async move { (i, take(site, json, printer).await) }
            }),
    )
    .await;
    let mut held = Vec::new();
    let mut problems = Vec::new();
    let mut acquired = Vec::new();
    for (i, result) in std::iter::once((first, first_result)).chain(others) {
        match result {
            Ok(None) => acquired.push(i),
            Ok(Some(h)) => held.push(h),
            Err(p) => problems.push(p),
        }
    }
    if held.is_empty() && problems.is_empty() {
        return Ok(());
    }
    let taken: Vec<&Site> = acquired.iter().map(|&i| &sites[i]).collect();
    give_back(&taken, info, printer).await;
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
    give_back(&holding, info, printer).await;
}

/// Gives back this run's lock on these sites; a failure only warns.
pub async fn give_back(sites: &[&Site], info: &LockInfo, printer: &Printer) {
    each_host(sites, |site| async move {
        let script = release::unlock_script(&site.layout, &info.token);
        if let Err(p) = site
            .step_always(printer, "unlock", None, &script, None)
            .await
        {
            printer.warn(Warning::NotUnlocked {
                cause: p.to_string(),
            });
        }
    })
    .await;
}
