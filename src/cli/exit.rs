//! Gantry's exit codes, chosen in one place. Scripts may rely on them.

use std::process::ExitCode;

/// How a run of Gantry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for was done.
    Success = 0,
    /// A deploy, rollback or command failed on a host; every host was left
    /// serving what it served before.
    Failed = 1,
    /// The config or the command line is wrong; nothing was touched.
    Usage = 2,
    /// A host could not be reached.
    Unreachable = 3,
    /// Another deploy holds the lock of the environment.
    Locked = 4,
    /// Something else went wrong on this machine (git, files).
    Error = 5,
    /// Verification failed, or a gate refused a commit that was not
    /// verified where it must be.
    NotVerified = 6,
    /// A migration rehearsal on a copy of the data failed; nothing live
    /// was touched.
    RehearsalFailed = 7,
    /// Interrupted (Ctrl-C or SIGTERM); what the run changed was put back.
    Interrupted = 8,
    /// Failed, and some hosts that run the new release could not be put
    /// back: the message names them (and keeps the database they need).
    NotPutBack = 9,
}

impl ExitStatus {
    /// The text shown under `--help`.
    pub const HELP: &'static str = "\
Exit codes:
  0  success
  1  failed on a host; every host was left serving what it served before
  2  bad config or usage; nothing was touched
  3  a host could not be reached
  4  the environment is locked by another deploy (see `gantry unlock`)
  5  another error on this machine (git, files)
  6  verification failed, or a gate refused an unverified commit
  7  a migration failed on a copy of the data; nothing live was touched
  8  interrupted (Ctrl-C or SIGTERM); what the run changed was put back
  9  failed, and some hosts could not be put back (named in the message)";
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}
