//! Every error Gantry reports, as data: the host, step, command, exit
//! status and output, typed causes kept as `source`. `render` words them all
//! in one place, each with its hints on what to do; `warning` words what
//! went wrong without stopping the command.

mod host_lists;
mod problem;
mod put_back;
mod render;
#[cfg(test)]
mod tests;
mod warning;

use std::path::PathBuf;

use crate::cli::exit::ExitStatus;
use crate::config::ConfigError;
use crate::model::commit::Commit;

pub use problem::{
    CopyNotUsed, Failure, HeldLock, HostProblem, KeyProblem, RealChanged, WrongDatabase,
    NOT_LOCKED, NOT_REACHED, NO_RELEASE,
};
pub use put_back::PutBack;
pub use warning::{Done, Warning};

/// Why a git command failed.
#[derive(Debug)]
pub enum GitCause {
    /// git could not be started.
    Spawn(std::io::Error),
    /// git ran and failed, saying this on stderr.
    Failed { stderr: String },
}

#[derive(Debug)]
pub enum Error {
    Config(ConfigError),
    NoConfig {
        start: PathBuf,
    },
    /// The work tree has changes that are not committed (`git status`).
    DirtyTree {
        changes: Vec<String>,
    },
    NotARevision {
        rev: String,
    },
    NotARepository {
        dir: PathBuf,
    },
    UnknownCommit {
        rev: String,
        dir: PathBuf,
    },
    /// A tag pattern that `strftime` cannot expand.
    TagPattern {
        pattern: String,
        reason: String,
    },
    NotABackup {
        env: String,
        backup: String,
    },
    /// `restore` without `--yes` where nobody can answer.
    RestoreNotConfirmed {
        env: String,
        backup: String,
    },
    /// The person at the terminal answered no.
    RestoreDeclined,
    NoDatabase {
        env: String,
    },
    NothingToRehearse,
    /// A hook before anything changed failed: nothing was changed.
    HookFailed {
        hook: String,
        detail: String,
    },
    /// `--role` names a role no host of the environment has.
    NoHostWithRole {
        env: String,
        role: String,
    },
    /// `demo --stop` on a folder that no demo made.
    NotADemo {
        dir: PathBuf,
    },
    /// `demo --dir` on a folder that exists and is not a demo's.
    DemoFolderTaken {
        dir: PathBuf,
    },
    /// `init` would overwrite a file.
    AlreadyExists {
        path: PathBuf,
    },
    MissingSecrets {
        missing: Vec<String>,
    },
    /// `release` cannot tell where the chain of environments ends.
    ReleaseEndUnclear {
        ends: Vec<String>,
    },
    Git {
        command: String,
        cause: GitCause,
    },
    NotOnRemote {
        commit: Commit,
        remote: String,
        /// Suggest `gantry release --push`.
        in_release: bool,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
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
    /// The rehearsed migrations break the release still serving, and both
    /// would serve at once (`how`: a handover, a rolling deploy).
    BreaksTheServingRelease {
        env: String,
        how: &'static str,
        breaks: Vec<String>,
    },
    /// `[database] checks = "strict"` and the checks of the pending
    /// migrations' SQL found something in these (warned of one by one).
    MigrationChecks {
        env: String,
        migrations: Vec<String>,
    },
    /// A rollback refused: the migrations applied since the release rolled
    /// back to went live cannot be taken back (`why`); nothing changed.
    RollbackNeedsTheSchema(Box<RollbackRefused>),
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
            Error::Config(_)
            | Error::NoConfig { .. }
            | Error::DirtyTree { .. }
            | Error::NotARevision { .. }
            | Error::NotARepository { .. }
            | Error::UnknownCommit { .. }
            | Error::TagPattern { .. }
            | Error::NotABackup { .. }
            | Error::RestoreNotConfirmed { .. }
            | Error::RestoreDeclined
            | Error::NoDatabase { .. }
            | Error::NothingToRehearse
            | Error::NoHostWithRole { .. }
            | Error::NotADemo { .. }
            | Error::DemoFolderTaken { .. }
            | Error::AlreadyExists { .. }
            | Error::MissingSecrets { .. }
            | Error::ReleaseEndUnclear { .. }
            | Error::NotOnRemote { .. }
            | Error::WrongDatabase(_) => ExitStatus::Usage,
            Error::Git { .. } | Error::Io { .. } => ExitStatus::Error,
            // Every connection failed on this machine (nothing could be
            // started): a local error, not an unreachable host.
            Error::Unreachable { problems, .. } if problems.iter().all(|p| !p.unreachable) => {
                ExitStatus::Error
            }
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
            Error::RehearsalFailed(_)
            | Error::CopyNotUsed(_)
            | Error::BreaksTheServingRelease { .. }
            | Error::RollbackNeedsTheSchema(_)
            | Error::MigrationChecks { .. } => ExitStatus::RehearsalFailed,
            Error::RealDatabaseChanged(_) | Error::HookFailed { .. } => ExitStatus::Failed,
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

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Git {
                cause: GitCause::Spawn(source),
                ..
            } => Some(source),
            Error::ReleaseStopped { cause, .. } => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

/// A rollback refused because the schema cannot go back with the code.
#[derive(Debug)]
pub struct RollbackRefused {
    pub env: String,
    pub release: String,
    pub migrations: Vec<String>,
    pub why: String,
    /// The backup taken before the release being left migrated, and how
    /// long ago.
    pub backup: Option<(String, String)>,
}
