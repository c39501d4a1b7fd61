//! Every error Gantry reports, with the data it needs (host, step, command,
//! exit status, output), worded in one place with a hint on what to do.

use std::fmt;
use std::path::PathBuf;

use crate::model::commit::Commit;
use crate::config::ConfigError;
use crate::cli::exit::ExitStatus;
use crate::model::lock::LockInfo;

/// What failed on one host.
#[derive(Debug, Clone)]
pub struct HostProblem {
    pub host: String,
    /// The step that failed, such as `build` or `health check`.
    pub step: String,
    /// The command that ran, as it ran, when there was one.
    pub command: Option<String>,
    pub code: Option<i32>,
    /// The last lines of the command's output, or what went wrong.
    pub detail: String,
    /// The host could not be reached, or the connection broke.
    pub unreachable: bool,
    /// All the command printed (stdout, then stderr), for reading what
    /// failed: the migration's name, the violated constraint.
    pub output: String,
}

/// A lock found on a host.
#[derive(Debug, Clone)]
pub struct HeldLock {
    pub host: String,
    pub info: Option<LockInfo>,
}

/// A deploy or rollback that failed, with what every host now serves.
#[derive(Debug, Clone)]
pub struct Failure {
    pub action: String,
    pub env: String,
    pub problems: Vec<HostProblem>,
    /// What each host serves now: (host, release or "nothing").
    pub serving: Vec<(String, String)>,
    /// Problems met while putting hosts back: these need a person.
    pub recovery: Vec<HostProblem>,
    /// What happened to the database on the way.
    pub notes: Vec<String>,
    /// A constraint the data violates (in words), and the rows that violate it.
    pub constraint: Option<(String, Vec<String>)>,
    /// Ctrl-C or SIGTERM stopped the run; what it changed was put back.
    pub interrupted: bool,
    /// Hosts that run the new release and could not be put back, with the
    /// release they run.
    pub stuck: Vec<(String, String)>,
}

/// The app opens another database than the one Gantry protects, or than
/// the copy a rehearsal made.
#[derive(Debug, Clone)]
pub struct WrongDatabase {
    pub env: String,
    pub host: String,
    /// What Gantry expected the app to open (without a password).
    pub expected: String,
    pub env_var: Option<String>,
    /// What the app answered, in words.
    pub app: String,
    /// Asked in a rehearsal (the copy), not of the real release.
    pub rehearsal: bool,
}

/// The migrations ran in a rehearsal, but the copy did not change.
#[derive(Debug, Clone)]
pub struct CopyNotUsed {
    pub env: String,
    pub host: String,
    pub copy: String,
    pub env_var: Option<String>,
    /// The check that said migrations were pending.
    pub check: String,
}

/// The real database changed while a rehearsal ran.
#[derive(Debug, Clone)]
pub struct RealChanged {
    pub env: String,
    pub host: String,
    pub database: String,
    pub changes: Vec<String>,
}

#[derive(Debug)]
pub enum Error {
    Config(ConfigError),
    NoConfig {
        start: PathBuf,
    },
    Usage(String),
    Git {
        command: String,
        message: String,
    },
    NotOnRemote {
        commit: Commit,
        remote: String,
    },
    Io {
        path: PathBuf,
        message: String,
    },
    /// Hosts that could not be reached before anything was changed.
    Unreachable {
        env: String,
        problems: Vec<HostProblem>,
    },
    Locked {
        env: String,
        held: Vec<HeldLock>,
    },
    Failed(Box<Failure>),
    /// A command run by `exec` or `check` failed on some hosts.
    Hosts {
        what: String,
        problems: Vec<HostProblem>,
    },
    /// Health checks or functional tests failed against an environment.
    VerifyFailed {
        env: String,
        commit: String,
        reasons: Vec<String>,
    },
    /// A gate: `env` requires `required`, where `commit` is not verified.
    NotVerified {
        env: String,
        required: String,
        commit: Box<Commit>,
        last_verified: Option<Box<(Commit, String)>>,
    },
    /// A migration failed on a copy of an environment's data.
    RehearsalFailed(Box<crate::model::commit::Report>),
    /// The app does not open the database Gantry protects (or copied).
    WrongDatabase(Box<WrongDatabase>),
    /// The migrations ran in a rehearsal, but not on the copy.
    CopyNotUsed(Box<CopyNotUsed>),
    /// The real database changed while a rehearsal ran.
    RealDatabaseChanged(Box<RealChanged>),
    /// `gantry release` stopped: what ran, then the error that stopped it.
    ReleaseStopped {
        tree: Vec<String>,
        cause: Box<Error>,
    },
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Config(_) | Error::NoConfig { .. } | Error::Usage(_) => ExitStatus::Usage,
            Error::NotOnRemote { .. } => ExitStatus::Usage,
            Error::Git { .. } | Error::Io { .. } => ExitStatus::Error,
            Error::Unreachable { .. } => ExitStatus::Unreachable,
            Error::Locked { .. } => ExitStatus::Locked,
            Error::Failed(f) => {
                if !f.stuck.is_empty() {
                    ExitStatus::NotPutBack
                } else if f.interrupted {
                    ExitStatus::Interrupted
                } else if f.problems.iter().any(|p| p.unreachable) {
                    ExitStatus::Unreachable
                } else {
                    ExitStatus::Failed
                }
            }
            Error::VerifyFailed { .. } | Error::NotVerified { .. } => ExitStatus::NotVerified,
            Error::RehearsalFailed(_) | Error::CopyNotUsed(_) => ExitStatus::RehearsalFailed,
            Error::WrongDatabase(_) => ExitStatus::Usage,
            Error::RealDatabaseChanged(_) => ExitStatus::Failed,
            Error::ReleaseStopped { cause, .. } => cause.exit_status(),
            Error::Hosts { problems, .. } => {
                if problems.iter().all(|p| p.unreachable) {
                    ExitStatus::Unreachable
                } else {
                    ExitStatus::Failed
                }
            }
        }
    }

    pub fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

/// What to do about a host key OpenSSH refused: a changed key is not
/// something to paper over with `ssh-keyscan`.
fn key_help(problems: &[HostProblem]) -> Option<&'static str> {
    if problems
        .iter()
        .any(|p| p.detail.starts_with(crate::remote::host::CHANGED_KEY))
    {
        Some("a changed key is what a machine in the middle looks like (or a server that was reinstalled): ask the server's owner for its new fingerprint (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console); only if it matches, remove the old key with `ssh-keygen -R HOST` (`-R '[HOST]:PORT'` for another port) and connect once with `ssh` to record the new one")
    } else if problems
        .iter()
        .any(|p| p.detail.starts_with(crate::remote::host::UNKNOWN_KEY))
    {
        Some("Gantry never accepts an unknown key, whatever your ssh_config says: get the server's fingerprint from its owner (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console), connect once with `ssh HOST` and compare before answering yes (or add a checked line to `ssh.known_hosts`)")
    } else {
        None
    }
}

/// The rows that violate a constraint, under it.
fn write_rows(f: &mut fmt::Formatter<'_>, rows: &[String]) -> fmt::Result {
    if rows.is_empty() {
        return write!(f, "\n  (the violating rows could not be read)");
    }
    write!(f, "\n  rows that violate it:")?;
    for row in rows {
        write!(f, "\n    {row}")?;
    }
    Ok(())
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} failed", self.host, self.step)?;
        if let Some(code) = self.code {
            write!(f, " (exit status {code})")?;
        }
        if let Some(command) = &self.command {
            write!(
                f,
                "\n    command: {}",
                command.trim().replace('\n', "\n             ")
            )?;
        }
        if !self.detail.trim().is_empty() {
            let label = if self.command.is_some() && !self.unreachable {
                "output"
            } else {
                "reason"
            };
            write!(f, "\n    {label}:")?;
            for line in self.detail.trim_end().lines() {
                write!(f, "\n      {line}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::NoConfig { start } => write!(
                f,
                "no `gantry.toml` in `{}` or any folder above it\n  = help: run `gantry init` to write one, or pass `--config PATH`",
                start.display()
            ),
            Error::Usage(m) => write!(f, "{m}"),
            Error::Git { command, message } => write!(f, "`{command}` failed: {message}"),
            Error::NotOnRemote { commit, remote } => write!(
                f,
                "commit {} ({}) is not on the remote `{remote}`\n  = help: push it first (`git push {remote} HEAD`); Gantry only deploys commits the whole team can see",
                commit.short(),
                commit.subject
            ),
            Error::Io { path, message } => write!(f, "`{}`: {message}", path.display()),
            Error::Unreachable { env, problems } => {
                write!(f, "cannot reach {} of the hosts of `{env}`; nothing was changed", problems.len())?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                match key_help(problems) {
                    Some(help) => write!(f, "\n  = help: {help}"),
                    None => write!(f, "\n  = help: check that `ssh HOST` works from this machine"),
                }
            }
            Error::Locked { env, held } => {
                write!(f, "`{env}` is locked; nothing was changed")?;
                for h in held {
                    match &h.info {
                        Some(info) => write!(f, "\n  {}: {}", h.host, info.describe())?,
                        None => write!(f, "\n  {}: held, with no record of who holds it", h.host)?,
                    }
                }
                let stale = held.iter().any(|h| h.info.as_ref().is_none_or(|i| i.is_stale()));
                if stale {
                    write!(f, "\n  = help: the process that took the lock is gone; if no deploy is running, clear it with `gantry unlock {env}`")
                } else {
                    write!(f, "\n  = help: wait for that deploy to finish, or if you are sure none is running, `gantry unlock {env}`")
                }
            }
            Error::Failed(failure) => {
                let Failure { action, env, problems, serving, recovery, notes, constraint, interrupted, stuck } = failure.as_ref();
                if *interrupted {
                    write!(f, "{action} to `{env}` was interrupted (Ctrl-C or SIGTERM)")?;
                } else {
                    write!(f, "{action} to `{env}` failed on {} host{}", problems.len(), if problems.len() == 1 { "" } else { "s" })?;
                }
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                if let Some((what, rows)) = constraint {
                    write!(f, "\n  constraint: {what}")?;
                    write_rows(f, rows)?;
                }
                for note in notes {
                    write!(f, "\n  {note}")?;
                }
                if !stuck.is_empty() {
                    write!(f, "\n  these hosts could not be put back and run the new release:")?;
                    for (host, release) in stuck {
                        write!(f, "\n    {host}: {release}")?;
                    }
                }
                if recovery.is_empty() && stuck.is_empty() {
                    write!(f, "\n  every host was left serving what it served before:")?;
                } else {
                    if !recovery.is_empty() {
                        write!(f, "\n  putting hosts back also failed; these hosts need a person:")?;
                        for p in recovery {
                            write!(f, "\n  {p}")?;
                        }
                    }
                    write!(f, "\n  what each host serves now:")?;
                }
                for (host, release) in serving {
                    let release = match stuck.iter().find(|(h, _)| h == host) {
                        Some((_, new)) => format!("{new} (the new release: it could not be put back)"),
                        None => release.clone(),
                    };
                    write!(f, "\n    {host}: {release}")?;
                }
                if !stuck.is_empty() {
                    write!(f, "\n  = help: when the hosts above can be reached, check them with `gantry status {env}`, clear the lock with `gantry unlock {env}`, and deploy again (the commit you want everywhere)")
                } else if recovery.iter().any(|p| p.unreachable) {
                    write!(f, "\n  = help: a host that could not be reached still holds the lock; when it is back, check it with `gantry status {env}`, clear the lock with `gantry unlock {env}` and run the {action} again (leftover releases are removed by the next deploy)")
                } else if *interrupted {
                    write!(f, "\n  = help: run the {action} again when you want it")
                } else {
                    write!(f, "\n  = help: fix the cause above and run the {action} again")
                }
            }
            Error::VerifyFailed { env, commit, reasons } => {
                write!(f, "verification of `{env}` (commit {}) failed", &commit[..commit.len().min(8)])?;
                for r in reasons {
                    write!(f, "\n  {}", r.replace('\n', "\n    "))?;
                }
                write!(f, "\n  = help: the failure is recorded against the commit; fix it, deploy again and re-run `gantry verify {env}`")
            }
            Error::NotVerified { env, required, commit, last_verified } => {
                write!(f, "commit {} ({}) has not been verified on `{required}`, which `{env}` requires; nothing was changed", commit.short(), commit.subject)?;
                match last_verified.as_deref() {
                    Some((c, when)) => write!(f, "\n  the last commit verified on `{required}` is {} ({}), {when}", c.short(), c.subject)?,
                    None => write!(f, "\n  no commit has been verified on `{required}` yet")?,
                }
                write!(f, "\n  = help: deploy it to `{required}` and run `gantry verify {required}` (or `gantry release`); or pass `--force`, and the record will say the gate was forced")
            }
            Error::RehearsalFailed(r) => {
                write!(
                    f,
                    "the migrations of {} ({}) fail on a copy of `{}`'s data; `{}` was not touched",
                    r.commit.short(),
                    r.commit.subject,
                    r.env,
                    r.env
                )?;
                if let Some(m) = &r.migration {
                    write!(f, "\n  migration: {m} (failed after {} on the copy, on {})", crate::base::time::human(std::time::Duration::from_secs_f64(r.seconds)), r.host)?;
                }
                match &r.violation {
                    Some(v) => {
                        write!(f, "\n  constraint: {}", v.describe())?;
                        write_rows(f, &r.rows)?;
                        write!(f, "\n  = help: write a data migration that merges or fixes these rows before the constraint is added, then release again")
                    }
                    None => {
                        write!(f, "\n  output:")?;
                        for line in r.output.lines() {
                            write!(f, "\n    {line}")?;
                        }
                        write!(f, "\n  = help: fix the migration and rehearse again with `gantry rehearse {}`", r.env)
                    }
                }
            }
            Error::WrongDatabase(w) => {
                let given = match &w.env_var {
                    Some(v) => format!(", given to the app as {v}"),
                    None => String::new(),
                };
                if w.rehearsal {
                    write!(f, "the app did not use the database Gantry copied for the rehearsal of `{}`; nothing was migrated, `{}` was not touched", w.env, w.env)?;
                    write!(f, "\n  the copy:     {}{given}", w.expected)?;
                } else {
                    write!(f, "the app on `{}` does not use the database in gantry.toml; nothing was migrated", w.env)?;
                    write!(f, "\n  gantry.toml:  {} (`[database]`{given})", w.expected)?;
                }
                write!(f, "\n  the app uses: {} (Django's DATABASES[\"default\"], asked on {})", w.app, w.host)?;
                let var = w.env_var.as_deref().unwrap_or("DB_PATH");
                write!(f, "\n  = help: make the settings read the database from {var} (`\"NAME\": os.environ[\"{var}\"]`, or DATABASE_URL for PostgreSQL), or point `[database]` at what the app uses; a SQLite file must be kept in `deploy.shared`")
            }
            Error::CopyNotUsed(c) => {
                write!(f, "the app did not use the database Gantry copied: the migrations of `{}`'s rehearsal ran, but the copy did not change; `{}` was not touched", c.env, c.env)?;
                write!(f, "\n  looked for: a change in the copy {}{} after the migrate command, which `{}` said had migrations pending", c.copy, c.env_var.as_ref().map(|v| format!(" (given to the app as {v})")).unwrap_or_default(), c.check)?;
                write!(f, "\n  on: {}", c.host)?;
                let var = c.env_var.as_deref().unwrap_or("DB_PATH");
                write!(f, "\n  = help: the app must open its database from {var}, or keep its SQLite file in `deploy.shared` and point `database.path` at it under {{shared}}; then rehearse again")
            }
            Error::RealDatabaseChanged(r) => {
                write!(f, "the real database of `{}` changed while its rehearsal ran ({} on {})", r.env, r.database, r.host)?;
                for c in &r.changes {
                    write!(f, "\n  {c}")?;
                }
                write!(f, "\n  = help: the rehearsal reached the real database: check the app's settings for a database it opens by a fixed path outside `deploy.shared`; `gantry backups {}` lists the backups taken before earlier migrations", r.env)
            }
            Error::ReleaseStopped { tree, cause } => {
                write!(f, "{cause}\n\nthe release stopped:")?;
                for line in tree {
                    write!(f, "\n  {line}")?;
                }
                Ok(())
            }
            Error::Hosts { what, problems } => {
                write!(f, "{what} failed on {} host{}", problems.len(), if problems.len() == 1 { "" } else { "s" })?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                if let Some(help) = key_help(problems) {
                    write!(f, "\n  = help: {help}")?;
                }
                Ok(())
            }
        }
    }
}
