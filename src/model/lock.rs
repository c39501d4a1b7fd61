//! The deploy lock: `<path>/.gantry/lock/`, created with an atomic `mkdir`
//! and holding a JSON record of who took it, where, with which process and
//! since when, so a second deploy is refused with the holder's details and a
//! lock left by a killed process is recognisably stale.

use serde::{Deserialize, Serialize};

use crate::base::time::Utc;

/// Who holds a lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    pub user: String,
    pub machine: String,
    /// The process holding it; 0 for a lock taken by `gantry lock`, which
    /// is held on purpose until `gantry unlock`.
    pub pid: u32,
    pub since: String,
    pub command: String,
    /// Identifies this holder, so a process only ever removes its own lock.
    pub token: String,
    #[serde(default)]
    pub reason: Option<String>,
}

impl LockInfo {
    pub fn new(command: &str, reason: Option<String>, held_on_purpose: bool) -> LockInfo {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let pid = std::process::id();
        LockInfo {
            user: crate::config::local_user(),
            machine: machine_name(),
            pid: if held_on_purpose { 0 } else { pid },
            since: Utc::now().iso(),
            command: command.to_string(),
            token: format!("{pid}-{}-{}", now.as_secs(), now.subsec_nanos()),
            reason,
        }
    }

    /// True when the holder was a process on this machine that is gone.
    /// A lock taken on another machine cannot be judged from here.
    pub fn is_stale(&self) -> bool {
        if self.pid == 0 || self.machine != machine_name() {
            return false;
        }
        !process_alive(self.pid)
    }

    pub fn describe(&self) -> String {
        let mut text = format!("held by {}@{}", self.user, self.machine);
        if self.pid != 0 {
            text.push_str(&format!(" (pid {})", self.pid));
        }
        text.push_str(&format!(" since {}, for `{}`", self.since, self.command));
        if let Some(reason) = &self.reason {
            text.push_str(&format!(": {reason}"));
        }
        if self.is_stale() {
            text.push_str(" [stale: that process is no longer running]");
        }
        text
    }
}

/// Who is running Gantry, as records name them: `user@machine`.
pub fn who() -> String {
    format!("{}@{}", crate::config::local_user(), machine_name())
}

/// This machine's name, as other machines' locks record theirs.
/// (`uname`, the same call on Linux, macOS and the BSDs; no `/proc`.)
pub fn machine_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().trim().to_string();
    if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    }
}

/// Whether process `pid` of this machine exists (`kill(pid, 0)`: a process
/// of another user counts as alive).
pub fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_live_process_is_not_stale() {
        let info = LockInfo::new("gantry deploy staging", None, false);
        assert!(!info.is_stale());
        let gone = LockInfo {
            pid: u32::MAX - 1,
            ..info.clone()
        };
        assert!(gone.is_stale());
        assert!(gone.describe().contains("[stale"));
        let elsewhere = LockInfo {
            machine: "elsewhere".into(),
            ..gone
        };
        assert!(!elsewhere.is_stale());
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
        assert!(!machine_name().is_empty() && machine_name() != "unknown");
        let on_purpose = LockInfo::new("gantry lock", Some("db upgrade".into()), true);
        assert!(!on_purpose.is_stale());
        assert!(on_purpose.describe().ends_with(": db upgrade"));
    }
}
