//! The SSH master connection to one host: an `ssh -M -f -N` that Gantry
//! starts itself, so that a connection given up while it is still being
//! made (Ctrl-C, SIGTERM) ends at once: its `ssh` is killed, and a master
//! that got as far as listening is told to exit. Each master has a folder
//! of its own in this process's control folder; a small watcher process
//! closes whatever masters are left there if Gantry is killed outright.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Ssh;
use crate::error::KeyProblem;

use super::host::{DescriptorWait, HostError, EMFILE};

/// Where to connect: what `ssh` is given besides Gantry's own options.
pub struct Destination<'a> {
    pub host: &'a str,
    pub user: Option<&'a str>,
    pub port: Option<u16>,
}

/// An open master connection, closed when dropped.
pub struct Master {
    session: Option<openssh::Session>,
    folder: PathBuf,
}

impl Master {
    /// Starts `ssh` as the master for `to` and waits until it is
    /// connected (it forks once authenticated). An unknown or changed host
    /// key is refused whatever the user's ssh_config says. Dropping the
    /// future before that kills the `ssh` and closes a master it left.
    pub async fn open(to: &Destination<'_>, ssh: &Ssh) -> Result<Master, HostError> {
        let failed = |message: String| HostError::Connect {
            message,
            host_key: None,
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let folder = control_dir()
            .map_err(failed)?
            .join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
        let uid = rustix::process::getuid().as_raw();
        private_dir(&folder, uid).map_err(failed)?;
        let log = folder.join("log");
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .arg("-E")
            .arg(&log)
            .arg("-S")
            .arg(folder.join("master"))
            .args(["-M", "-f", "-N"])
            .args(["-o", "ControlPersist=yes", "-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("ConnectTimeout={}", ssh.connect_timeout.as_secs()))
            .arg("-o")
            .arg(format!("ServerAliveInterval={}", ssh.keepalive.as_secs()));
        if let Some(port) = to.port {
            cmd.arg("-p").arg(port.to_string());
        }
        if let Some(user) = to.user {
            cmd.arg("-l").arg(user);
        }
        if let Some(config) = &ssh.config {
            cmd.arg("-F").arg(config);
        }
        if let Some(known) = &ssh.known_hosts {
            let mut option = std::ffi::OsString::from("UserKnownHostsFile=");
            option.push(known);
            cmd.arg("-o").arg(option);
        }
        // `--` keeps a host name that starts with `-` from being an option.
        cmd.arg("--").arg(to.host);
        // The handshake: at most `ssh.max_concurrent_starts` at once.
        let _starting = starts(ssh.max_concurrent_starts).acquire().await;
        let mut waiting = DescriptorWait::new();
        let child = loop {
            match cmd.spawn() {
                Ok(child) => break child,
                Err(e) if e.raw_os_error() == Some(EMFILE) && waiting.again().await => {}
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&folder);
                    return Err(HostError::Spawn {
                        what: "ssh",
                        why: e.to_string(),
                    });
                }
            }
        };
        let mut launching = Launching {
            child: Some(child),
            folder: Some(folder),
        };
        let status = launching.child.as_mut().expect("just set").wait().await;
        let folder = launching.folder.take().expect("just set");
        match status {
            Ok(status) if status.success() => {
                let ctl = folder.join("master").into_boxed_path();
                let log = log.into_boxed_path();
                Ok(Master {
                    session: Some(openssh::Session::resume_mux(ctl, Some(log))),
                    folder,
                })
            }
            Ok(_) => {
                let message = refusal(&std::fs::read_to_string(&log).unwrap_or_default());
                let _ = std::fs::remove_dir_all(&folder);
                let host_key = KeyProblem::from_message(&message);
                Err(HostError::Connect { message, host_key })
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&folder);
                Err(failed(format!("cannot wait for ssh: {e}")))
            }
        }
    }

    pub fn session(&self) -> &openssh::Session {
        self.session.as_ref().expect("open until closed")
    }

    /// Tells the master to exit once its channels are done.
    pub async fn close(mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if self.session.take().is_some() {
            close_now(&self.folder);
        }
    }
}

/// A master being connected: dropped before it is connected, its `ssh`
/// is killed and a master that already listens is closed. The socket is
/// made before `ssh` forks into the background, so once the `ssh` Gantry
/// started is dead, either no master was forked or its socket is there.
struct Launching {
    child: Option<tokio::process::Child>,
    folder: Option<PathBuf>,
}

impl Drop for Launching {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
        if let Some(folder) = self.folder.take() {
            close_now(&folder);
        }
    }
}

/// Closes the master in `folder`, if one listens there, and removes the
/// folder; left for the watcher when the master does not answer.
/// The connections in their handshake, for the whole process (one config
/// per run: the first caller's bound is kept).
fn starts(bound: usize) -> &'static tokio::sync::Semaphore {
    static STARTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    STARTS.get_or_init(|| tokio::sync::Semaphore::new(bound.max(1)))
}

fn close_now(folder: &Path) {
    let socket = folder.join("master");
    if socket.exists() && openssh_mux_client::shutdown_mux_master(&socket).is_err() {
        return;
    }
    let _ = std::fs::remove_dir_all(folder);
}

/// What ssh's log says about a connection it could not make, as one
/// message (the "Permanently added" warning and the `ssh: ` prefix left
/// out).
/// What a refusal says when `ssh` gave no reason (its `LogLevel` hides it).
pub const SAID_NOTHING: &str = "ssh exited with status 255 and said nothing (a `LogLevel` of QUIET or ERROR in your ssh_config hides why)";

fn refusal(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added "))
        .collect();
    let text = lines.join("\n");
    let text = text.strip_prefix("ssh: ").unwrap_or(&text);
    if text.is_empty() {
        return format!("failed to connect to the remote host: {SAID_NOTHING}");
    }
    format!("failed to connect to the remote host: {text}")
}

/// This process's folder for control sockets, made once: a private
/// `gantry-ssh-<uid>` (mode 0700, ours) under `$XDG_RUNTIME_DIR` or `/tmp`
/// (short: unix socket paths are limited to 108 bytes), then a folder for
/// this process in it (a folder per master in that), watched by a small
/// process that closes the SSH masters left in it if Gantry is killed.
fn control_dir() -> Result<std::path::PathBuf, String> {
    static DIR: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .filter(|d| d.is_dir() && d.as_os_str().len() < 40)
            .unwrap_or_else(|| std::path::PathBuf::from("/tmp"));
        let uid = rustix::process::getuid().as_raw();
        let shared = base.join(format!("gantry-ssh-{uid}"));
        private_dir(&shared, uid)?;
        let mine = shared.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&mine);
        private_dir(&mine, uid)?;
        watch(&mine);
        Ok(mine)
    })
    .clone()
}

/// Makes `dir` with mode 0700, or checks that the one there is a folder of
/// `uid`'s with mode 0700: anything else could let another user sit
/// between Gantry and its SSH masters.
pub fn private_dir(dir: &std::path::Path, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(format!("cannot make {}: {e}", dir.display()));
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != uid || mode != 0o700 {
        return Err(format!(
            "the control folder {} is not a folder of yours with mode 0700 (owner uid {}, mode {mode:o}); remove it, or set XDG_RUNTIME_DIR to a private folder",
            dir.display(),
            meta.uid()
        ));
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    Ok(())
}

/// Starts a process that waits for this one to end, then closes every SSH
/// master left in `dir` (Gantry killed outright), stops any `ssh` still
/// connecting for it, and removes the folder.
fn watch(dir: &std::path::Path) {
    let script = r#"trap '' INT TERM HUP
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
for s in "$2"/*/master; do
  [ -S "$s" ] && ssh -O exit -S "$s" gantry >/dev/null 2>&1
done
for d in "$2"/*/; do [ -d "$d" ] && pkill -f "$2/" 2>/dev/null; break; done
rm -rf "$2""#;
    let _ = std::process::Command::new("sh")
        .args(["-c", script, "gantry-watch"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_ssh_logged_is_the_message() {
        assert_eq!(
            refusal("ssh: connect to host web1 port 22: Connection refused\n"),
            "failed to connect to the remote host: connect to host web1 port 22: Connection refused"
        );
        assert_eq!(
            refusal(
                "Warning: Permanently added 'web1' (ED25519) to the list of known hosts.\r\n\
                 root@web1: Permission denied (publickey).\r\n"
            ),
            "failed to connect to the remote host: root@web1: Permission denied (publickey)."
        );
    }

    #[test]
    fn a_control_folder_that_is_not_private_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let uid = rustix::process::getuid().as_raw();
        let dir = std::env::temp_dir().join(format!("gantry-ctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        private_dir(&dir, uid).unwrap();
        private_dir(&dir, uid).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let refused = private_dir(&dir, uid).unwrap_err();
        assert!(
            refused.contains("is not a folder of yours with mode 0700"),
            "{refused}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let refused = private_dir(&dir, uid + 1).unwrap_err();
        assert!(refused.contains(&format!("owner uid {uid}")), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
