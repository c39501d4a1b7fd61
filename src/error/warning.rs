//! What went wrong without stopping the command, as data, worded here
//! once; the printer shows it as `warning: …`. `tests/warnings.rs` pins
//! every wording.

use std::fmt::{self, Formatter};

/// A command that succeeded on the hosts, named in a warning about what
/// came after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Deploy,
    Rollback,
    Verification,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The history on a host, or pruning its old releases, failed after
    /// the deploy.
    NotRecordedOnHost {
        cause: String,
    },
    /// The ledger in the git remote could not be written.
    NotRecorded {
        done: Done,
        cause: String,
    },
    /// The deploy's tags could not be pushed.
    NotTagged {
        cause: String,
    },
    /// A rollback's tag could not be moved.
    TagNotMoved {
        cause: String,
    },
    /// A rollback to a commit this repository does not have.
    RollbackCommitMissing {
        commit: String,
        cause: String,
    },
    /// `--force` past a gate.
    Forced {
        commit: String,
        required: String,
        env: String,
    },
    /// `--no-rehearse` with migrations pending.
    NotRehearsed {
        env: String,
    },
    DeltaFailed {
        host: String,
        cause: String,
    },
    BackupsNotPruned {
        cause: String,
    },
    /// A host locked by this run, put back after the deploy stopped early.
    NotPutBack {
        cause: String,
    },
    /// A host whose putting back reported no success but is back.
    FoundBack {
        host: String,
        reported: String,
        healthy: bool,
    },
    RestoredNotRestarted {
        cause: String,
    },
    /// The maintenance file could not be removed: the site still refuses
    /// writes.
    WritesStillHeld {
        host: String,
        file: String,
        cause: String,
    },
    RestoredNotAnswering {
        url: String,
        attempts: u32,
        last: String,
    },
    CopyNotDeleted {
        cause: String,
    },
    /// The real database's rows changed while a rehearsal ran, but not its
    /// schema: the app's own writes.
    WritesDuringRehearsal {
        env: String,
        changes: Vec<String>,
    },
    /// A rehearsal whose copy did not change, without `database.check`.
    CopyUnchanged,
    /// `--lock-wait` is waiting for another deploy.
    WaitingForLock {
        env: String,
    },
    NotUnlocked {
        cause: String,
    },
    HistoryNotWritten {
        cause: String,
    },
    /// `status` could not bring the ledger or the tags from the git remote.
    LedgerNotFetched {
        remote: String,
        cause: String,
    },
    TagsNotRead {
        remote: String,
        cause: String,
    },
    /// Ctrl-C or SIGTERM, the first time.
    Interrupted,
    /// A failed first deploy put the host back to serving nothing, and
    /// there is no `deploy.stop` for the app it started.
    AppMayStillRun {
        host: String,
    },
    /// `deploy.stop` failed after a failed first deploy.
    AppNotStopped {
        host: String,
        cause: String,
    },
    /// A `[deploy.balancer]` command failed after the host serves again
    /// (put back, or left alone by a failed leave): it may be out of the
    /// balancer's pool.
    BalancerOut {
        host: String,
        step: String,
        cause: String,
    },
    /// A host put back to the release it served failed that release's
    /// health check: it is left out of the balancer's pool, if any.
    BackUnhealthy {
        host: String,
        cause: String,
        balancer: bool,
    },
    /// A hook failed where a failure does not stop anything (advisory, or
    /// after the deploy).
    HookFailed {
        hook: String,
        host: Option<String>,
        cause: String,
    },
    /// A rollback reverses migrations, but the release it goes back to
    /// could not be started against the rehearsal's copy first.
    NotTriedOnTheCopy {
        release: String,
    },
    /// A pending migration's statement that locks or rewrites a table,
    /// breaks the release still serving, or cannot be reversed.
    MigrationFinding(Box<crate::model::commit::Finding>),
    /// The pending migrations' SQL could not be had for the checks.
    ChecksNotRun {
        cause: String,
    },
    /// A rollback found no record of the schema the release it goes back
    /// to went live with: only the code goes back.
    NoSchemaRecord {
        release: String,
    },
    /// A host's env file lacks lines `[env]` gives (or the file), found
    /// before a deploy.
    EnvFileDiffers {
        host: String,
        env: String,
        file: String,
        /// Empty when there is no file.
        names: Vec<String>,
    },
    /// `check`: the running app wrote files inside the release: what to
    /// keep in `deploy.shared`, with how many files each holds.
    WrittenInRelease {
        host: String,
        kept: Vec<(String, usize)>,
    },
    /// `init`: the requirements have no gunicorn, which the unit runs.
    InitWithoutGunicorn {
        uwsgi: bool,
    },
    /// `init`: `ALLOWED_HOSTS` is written in the settings.
    InitFixedAllowedHosts {
        file: String,
    },
    /// `init`: the app, asked with the settings and values written, still
    /// runs with `DEBUG = True`.
    InitDebugOn {
        module: String,
    },
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Done::Deploy => "deploy",
            Done::Rollback => "rollback",
            Done::Verification => "verification",
        })
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NotRecordedOnHost { cause } => {
                write!(f, "could not record the deploy or prune old releases: {cause}")
            }
            Warning::NotRecorded {
                done: Done::Verification,
                cause,
            } => write!(
                f,
                "could not record the verification in the git remote: {cause}"
            ),
            Warning::NotRecorded { done, cause } => write!(
                f,
                "the {done} succeeded, but recording it in the git remote failed: {cause}"
            ),
            Warning::NotTagged { cause } => {
                write!(f, "the deploy succeeded, but tagging it failed: {cause}")
            }
            Warning::TagNotMoved { cause } => {
                write!(f, "the rollback succeeded, but moving the tag failed: {cause}")
            }
            Warning::RollbackCommitMissing { commit, cause } => write!(
                f,
                "the rollback succeeded, but its commit {commit} is not in this repository, so the tags were not moved: {cause}"
            ),
            Warning::Forced {
                commit,
                required,
                env,
            } => write!(
                f,
                "{commit} is not verified on `{required}`; deploying to `{env}` anyway because of --force (recorded as forced)"
            ),
            Warning::NotRehearsed { env } => write!(
                f,
                "migrations are pending on `{env}` and are not rehearsed (--no-rehearse; recorded)"
            ),
            Warning::DeltaFailed { host, cause } => write!(
                f,
                "{host}: the delta upload failed ({cause}); sending the whole archive"
            ),
            Warning::BackupsNotPruned { cause } => {
                write!(f, "could not prune old backups: {cause}")
            }
            Warning::NotPutBack { cause } => write!(f, "could not put the host back: {cause}"),
            Warning::FoundBack {
                host,
                reported,
                healthy,
            } => write!(
                f,
                "{host}: putting back reported no success ({reported}), but `current` points at the old release again{}",
                if *healthy {
                    " and it answers the health check"
                } else {
                    ""
                }
            ),
            Warning::RestoredNotRestarted { cause } => {
                write!(f, "restored, but the restart failed: {cause}")
            }
            Warning::WritesStillHeld { host, file, cause } => write!(
                f,
                "{host} still answers writes with 503: {file} could not be removed ({cause}); remove it, or run `gantry unlock`"
            ),
            Warning::RestoredNotAnswering {
                url,
                attempts,
                last,
            } => write!(
                f,
                "restored, but the app does not answer: GET {url} after {attempts} attempts: {last}"
            ),
            Warning::CopyNotDeleted { cause } => {
                write!(f, "could not delete the rehearsal's copy: {cause}")
            }
            Warning::WritesDuringRehearsal { env, changes } => write!(
                f,
                "`{env}`'s database took writes while the rehearsal ran ({}); its schema and applied migrations did not change, so these are the app's own writes",
                changes.join("; ")
            ),
            Warning::CopyUnchanged => f.write_str(
                "the copy did not change: either no migration was pending, or the app did not use the copy (set `database.check` so Gantry can tell)",
            ),
            Warning::WaitingForLock { env } => write!(
                f,
                "`{env}` is locked by another deploy; waiting for it (--lock-wait)"
            ),
            Warning::NotUnlocked { cause } => write!(f, "could not release the lock: {cause}"),
            Warning::HistoryNotWritten { cause } => write!(f, "could not write history: {cause}"),
            Warning::LedgerNotFetched { remote, cause } => {
                write!(f, "could not fetch the ledger from `{remote}`: {cause}")
            }
            Warning::TagsNotRead { remote, cause } => {
                write!(f, "could not read the tags of `{remote}`: {cause}")
            }
            Warning::Interrupted => f.write_str(
                "interrupted: no new step will start; what this run changed is being put back",
            ),
            Warning::AppMayStillRun { .. }
            | Warning::AppNotStopped { .. }
            | Warning::BalancerOut { .. }
            | Warning::BackUnhealthy { .. }
            | Warning::NotTriedOnTheCopy { .. }
            | Warning::HookFailed { .. }
            | Warning::NoSchemaRecord { .. }
            | Warning::MigrationFinding(_)
            | Warning::ChecksNotRun { .. }
            | Warning::EnvFileDiffers { .. }
            | Warning::WrittenInRelease { .. }
            | Warning::InitWithoutGunicorn { .. }
            | Warning::InitFixedAllowedHosts { .. }
            | Warning::InitDebugOn { .. } => self.fmt_app(f),
        }
    }
}

impl Warning {
    /// The warnings about the app's own wiring: its env file, its stop,
    /// what `init` found.
    fn fmt_app(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Warning::AppMayStillRun { host } => write!(
                f,
                "{host} serves no release again, but the app this deploy started may still run from the removed one: stop it by hand, and set `deploy.stop` (`sudo systemctl stop UNIT`) so a failed first deploy stops it"
            ),
            Warning::AppNotStopped { host, cause } => write!(
                f,
                "{host} serves no release again, but stopping the app this deploy started failed: {cause}; stop it by hand"
            ),
            Warning::MigrationFinding(m) => write!(
                f,
                "{} {}: `{}`; instead: {} (once looked at: `[database] reviewed = [\"{}\"]`)",
                m.migration, m.what, m.statement, m.instead, m.migration
            ),
            Warning::ChecksNotRun { cause } => write!(
                f,
                "the pending migrations' SQL could not be checked ({cause}): they are rehearsed all the same; `[database] sql` prints it for apps outside the Django preset"
            ),
            Warning::NoSchemaRecord { release } => write!(
                f,
                "there is no record of the schema {release} went live with (it was deployed before Gantry kept one): only the code goes back, the schema stays as it is"
            ),
            Warning::BalancerOut { host, step, cause } => write!(
                f,
                "{host} serves the release it served before, but `{step}` failed: {cause}; the balancer may send it no traffic: run `[deploy.balancer] join` for it by hand"
            ),
            Warning::HookFailed { hook, host, cause } => {
                write!(f, "the `{hook}` hook failed")?;
                if let Some(h) = host {
                    write!(f, " for {h}")?;
                }
                write!(f, ": {cause}; the deploy goes on (the hook is advisory, or runs when the outcome is known)")
            }
            Warning::NotTriedOnTheCopy { release } => write!(
                f,
                "{release} was not started against the reversed copy before the real database is touched (`deploy.serve` is not set): its health check comes after the switch only; set `deploy.serve` to the command that runs the app in the foreground on $GANTRY_PORT"
            ),
            Warning::BackUnhealthy {
                host,
                cause,
                balancer,
            } => {
                write!(
                    f,
                    "{host} was put back to the release it served before, which then failed its health check: {cause}; look at the app on that host (`deploy.logs` shows its log)"
                )?;
                if *balancer {
                    write!(f, "; it is left out of the balancer: run `[deploy.balancer] join` for it by hand once it answers")?;
                }
                Ok(())
            }
            Warning::EnvFileDiffers {
                host,
                env,
                file,
                names,
            } if names.is_empty() => write!(
                f,
                "{host} has no env file ({file}): the app runs without the config's `[env]`; `gantry setup {env}` writes it"
            ),
            Warning::EnvFileDiffers {
                host,
                env,
                file,
                names,
            } => write!(
                f,
                "{file} on {host} does not say what the config does for {}: the app does not see the config's values; `gantry setup {env}` writes them and restarts the app",
                names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
            Warning::WrittenInRelease { host, kept } => write!(
                f,
                "the app on {host} writes inside the release, and what it wrote goes when the release is pruned: {}; keep it across releases with `deploy.shared = [{}]` (relative to the release's root)",
                kept.iter()
                    .map(|(path, n)| format!("`{path}` ({n} file{})", if *n == 1 { "" } else { "s" }))
                    .collect::<Vec<_>>()
                    .join(", "),
                kept.iter().map(|(path, _)| format!("\"{path}\"")).collect::<Vec<_>>().join(", ")
            ),
            Warning::InitWithoutGunicorn { uwsgi: true } => f.write_str(
                "gunicorn is not in the requirements, uwsgi is: the systemd unit runs gunicorn; add gunicorn to requirements.txt, or give `setup.systemd` a template of your own that runs uwsgi",
            ),
            Warning::InitWithoutGunicorn { uwsgi: false } => f.write_str(
                "gunicorn is not in the requirements, and the systemd unit runs it: add gunicorn to requirements.txt",
            ),
            Warning::InitFixedAllowedHosts { file } => write!(
                f,
                "ALLOWED_HOSTS is written in `{file}`, not read from a variable: add each environment's domain there, or Django answers 400 to every request on the servers"
            ),
            Warning::InitDebugOn { module } => write!(
                f,
                "the app runs with DEBUG = True with `{module}` and the values in `[env]`: turn DEBUG off in it before a deploy"
            ),
            _ => Ok(()),
        }
    }
}
