//! What went wrong where: the data an error carries about hosts, locks and
//! databases.

use crate::model::lock::LockInfo;

/// Why OpenSSH refused a host's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    /// known_hosts has no key for the host.
    Unknown,
    /// known_hosts has another key for the host.
    Changed,
}

impl KeyProblem {
    /// Reads OpenSSH's message.
    pub fn from_message(message: &str) -> Option<KeyProblem> {
        if message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || message.contains("Host key for") && message.contains("has changed")
        {
            Some(KeyProblem::Changed)
        } else if message.contains("Host key verification failed")
            || (message.contains("host key is known") && message.contains("strict checking"))
        {
            Some(KeyProblem::Unknown)
        } else {
            None
        }
    }

    /// How the problem reads in a host's line.
    pub fn describe(self) -> &'static str {
        match self {
            KeyProblem::Unknown => "the host's key is not in known_hosts",
            KeyProblem::Changed => {
                "the host's key has CHANGED since it was recorded in known_hosts"
            }
        }
    }
}

/// What failed on one host.
#[derive(Debug, Clone, Default)]
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
    /// OpenSSH refused the host's key.
    pub key: Option<KeyProblem>,
}

/// A lock found on a host.
#[derive(Debug, Clone)]
pub struct HeldLock {
    pub host: String,
    pub info: Option<LockInfo>,
}

/// What `Failure::serving` says of a host: no release was live there.
pub const NO_RELEASE: &str = "nothing (no release was live)";
/// ... a host a stopped start connected to but had not locked.
pub const NOT_LOCKED: &str = "unchanged (not locked)";
/// ... a host a stopped start had not reached.
pub const NOT_REACHED: &str = "unchanged (not reached)";

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
