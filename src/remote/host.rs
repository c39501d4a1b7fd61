//! Where commands run: a host reached through the system's OpenSSH (one
//! multiplexed master connection per host, every command a new channel on
//! it, no process per command) or `local`, which runs the same scripts on
//! this machine. Everything above this module sees one `Connection` type.

use std::process::Stdio;
use tokio::io::AsyncWriteExt;

use crate::base::shell;
use crate::config::{HostSpec, Ssh, Target};
use crate::error::HostProblem;

use super::master::{Destination, Master};

/// What a script printed and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last `n` lines of stdout and stderr together, for error reports.
    pub fn tail(&self, n: usize) -> String {
        let mut all: Vec<&str> = self.stdout.lines().collect();
        all.extend(self.stderr.lines());
        let start = all.len().saturating_sub(n);
        all[start..].join("\n")
    }
}

/// Why a host could not run a script at all.
#[derive(Debug, Clone)]
pub enum HostError {
    /// The connection could not be made.
    Connect {
        message: String,
        host_key: Option<KeyProblem>,
    },
    /// The connection broke while a command ran.
    Lost(String),
    /// A process on this machine could not be started: what it was and
    /// why.
    Spawn { what: &'static str, why: String },
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::Connect { message, .. } => write!(f, "cannot connect: {message}"),
            HostError::Lost(m) => write!(f, "connection lost: {m}"),
            HostError::Spawn { what, why } => {
                write!(f, "cannot start {what} on this machine: {why}")?;
                if why.contains("(os error 24)") {
                    write!(f, " (its open-files limit, `ulimit -n`, is too low for this many hosts: raise its hard limit)")?;
                }
                Ok(())
            }
        }
    }
}

pub use crate::error::KeyProblem;

impl HostError {
    /// The server closed the connection before the key exchange, as sshd
    /// does with connections over its `MaxStartups` or `PerSourcePenalties`
    /// (OpenSSH 10 says `Connection closed by HOST port 22`), or `ssh` gave
    /// up without a word: worth making again.
    pub fn dropped(&self) -> bool {
        match self {
            HostError::Connect {
                message,
                host_key: None,
            } => [
                "kex_exchange_identification",
                "Connection reset by peer",
                "Connection closed by ",
                crate::remote::master::SAID_NOTHING,
            ]
            .iter()
            .any(|m| message.contains(m)),
            _ => false,
        }
    }

    /// What a failed connection to `host` makes of the host's report.
    pub fn problem(&self, host: &str) -> HostProblem {
        let last_line = |text: &str| text.trim().lines().last().unwrap_or("").trim().to_string();
        let detail = match self {
            HostError::Connect {
                host_key: Some(key @ KeyProblem::Unknown),
                message,
            } => format!(
                "{}, so the connection was refused: {}",
                key.describe(),
                last_line(message)
            ),
            HostError::Connect {
                host_key: Some(key @ KeyProblem::Changed),
                ..
            } => format!("{}; the connection was refused", key.describe()),
            other if other.dropped() => format!(
                "{other}\n(the server dropped the connection before the key exchange, again and again: sshd does so past its `MaxStartups` (default 10:30:100) or `PerSourcePenalties`; raise them on the server, or lower `ssh.max_concurrent_starts`)"
            ),
            other => other.to_string(),
        };
        HostProblem {
            host: host.to_string(),
            step: "connect".into(),
            detail,
            // A process this machine could not start (out of descriptors)
            // says nothing of the host: the failure is local.
            unreachable: !matches!(self, HostError::Spawn { .. }),
            key: match self {
                HostError::Connect { host_key, .. } => *host_key,
                _ => None,
            },
            ..HostProblem::default()
        }
    }
}

/// Where the lines of a running command go as they are printed.
pub type Lines<'a> = &'a (dyn Fn(Stream, &str) + Send + Sync);

pub use crate::cli::output::Stream;

/// Reads a pipe to its end, passing each line on as it arrives.
async fn drain<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    stream: Stream,
    lines: Option<Lines<'_>>,
) -> std::io::Result<String> {
    use tokio::io::AsyncBufReadExt;
    let Some(pipe) = pipe else {
        return Ok(String::new());
    };
    let mut reader = tokio::io::BufReader::new(pipe);
    let mut all = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        if let Some(sink) = lines {
            sink(
                stream,
                String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']),
            );
        }
        all.extend_from_slice(&line);
    }
    Ok(String::from_utf8_lossy(&all).into_owned())
}

/// An open way to run scripts on one host.
pub enum Connection {
    Local,
    Ssh(Box<Master>),
}

impl Connection {
    /// Opens the master connection (`master`).
    pub async fn open(host: &HostSpec, ssh: &Ssh) -> Result<Connection, HostError> {
        match &host.target {
            Target::Local => Ok(Connection::Local),
            Target::Ssh { user, host, port } => {
                let to = Destination {
                    host,
                    user: user.as_deref(),
                    port: *port,
                };
                Ok(Connection::Ssh(Box::new(Master::open(&to, ssh).await?)))
            }
        }
    }

    /// Whether the master connection still answers (a local one always).
    pub async fn alive(&self) -> bool {
        match self {
            Connection::Local => true,
            Connection::Ssh(master) => master.session().check().await.is_ok(),
        }
    }

    /// Runs a POSIX `sh` script, optionally feeding it `stdin`.
    pub async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output, HostError> {
        self.run_with(script, stdin, None).await
    }

    /// Runs a script, handing every line it prints to `lines` as it comes
    /// (for `-v`), and also returning all of it.
    pub async fn run_with(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        lines: Option<Lines<'_>>,
    ) -> Result<Output, HostError> {
        let _channel = channels().acquire().await.expect("never closed");
        match self {
            Connection::Local => run_local(script, stdin, lines).await,
            Connection::Ssh(master) => run_ssh(master.session(), script, stdin, lines).await,
        }
    }

    /// Closes the master connection.
    pub async fn close(self) {
        if let Connection::Ssh(master) = self {
            master.close().await;
        }
    }
}

async fn run_local(
    script: &str,
    stdin: Option<&[u8]>,
    lines: Option<Lines<'_>>,
) -> Result<Output, HostError> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = {
        let mut waiting = DescriptorWait::new();
        loop {
            match cmd.spawn() {
                Ok(child) => break child,
                Err(e) if e.raw_os_error() == Some(EMFILE) && waiting.again().await => {}
                Err(e) => {
                    return Err(HostError::Spawn {
                        what: "a shell",
                        why: e.to_string(),
                    })
                }
            }
        }
    };
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
            let _ = pipe.shutdown().await;
        });
    }
    let spawn_error = |e: std::io::Error| HostError::Spawn {
        what: "a shell",
        why: e.to_string(),
    };
    let (stdout, stderr) = tokio::try_join!(
        drain(child.stdout.take(), Stream::Out, lines),
        drain(child.stderr.take(), Stream::Err, lines)
    )
    .map_err(spawn_error)?;
    let status = child.wait().await.map_err(spawn_error)?;
    Ok(Output {
        code: status.code(),
        stdout,
        stderr,
    })
}

async fn run_ssh(
    session: &openssh::Session,
    script: &str,
    stdin: Option<&[u8]>,
    lines: Option<Lines<'_>>,
) -> Result<Output, HostError> {
    // The remote login shell only ever sees `sh -c '<quoted script>'`, so
    // the script means the same whatever the user's shell is.
    let mut cmd = session.raw_command(format!("sh -c {}", shell::quote(script)));
    cmd.stdin(if stdin.is_some() {
        openssh::Stdio::piped()
    } else {
        openssh::Stdio::null()
    })
    .stdout(openssh::Stdio::piped())
    .stderr(openssh::Stdio::piped());
    let mut child = {
        let mut waiting = DescriptorWait::new();
        loop {
            match cmd.spawn().await {
                Ok(child) => break child,
                Err(e) if out_of_descriptors(&e) && waiting.again().await => {}
                Err(e) => return Err(lost(&e)),
            }
        }
    };
    let writer = match (stdin, child.stdin().take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(tokio::spawn(async move {
                let result = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
                result
            }))
        }
        _ => None,
    };
    let (stdout, stderr) = tokio::try_join!(
        drain(child.stdout().take(), Stream::Out, lines),
        drain(child.stderr().take(), Stream::Err, lines)
    )
    .map_err(|e| HostError::Lost(e.to_string()))?;
    let code = match child.wait().await {
        Ok(status) => status.code(),
        // openssh reports the exit status 127 (a command not found, here
        // one inside the script) as an error of its own: it is the
        // script's status, with its output; the connection is fine.
        Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Some(127),
        Err(e) => return Err(lost(&e)),
    };
    if let Some(w) = writer {
        // A script that exits without reading all of stdin is reported
        // by its own exit status; a write error alone is not a failure.
        let _ = w.await;
    }
    Ok(Output {
        code,
        stdout,
        stderr,
    })
}

/// Commands running at once on all hosts together: each holds about five
/// descriptors here (its pipes, its socket to the SSH master), so the
/// open-files limit decides, less what the rest of the run holds. A step
/// that every host runs at once (a batch of 1,000) then runs as many as
/// fit, the others as those end, instead of failing hosts half-way.
fn channels() -> &'static tokio::sync::Semaphore {
    static CHANNELS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    CHANNELS.get_or_init(|| {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let budget = limit.saturating_sub(64) / 6;
        tokio::sync::Semaphore::new(budget.clamp(4, 2048) as usize)
    })
}

pub(super) use crate::base::limits::EMFILE;

/// Whether starting a command failed because this process is out of
/// descriptors (other hosts' channels hold them): nothing ran on the host.
fn out_of_descriptors(e: &openssh::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(EMFILE) {
                return true;
            }
        }
        source = s.source();
    }
    error_chain(e).contains("(os error 24)")
}

/// Waiting for descriptors to be given back, before starting a command
/// again: 20 ms, doubling up to a second, with up to as much again at
/// random, for a minute at most. A run that holds more channels than the
/// open-files limit allows slows down instead of failing half-way.
pub(super) struct DescriptorWait {
    wait: std::time::Duration,
    until: std::time::Instant,
}

impl DescriptorWait {
    pub(super) fn new() -> DescriptorWait {
        DescriptorWait {
            wait: std::time::Duration::from_millis(20),
            until: std::time::Instant::now() + std::time::Duration::from_secs(60),
        }
    }

    /// Waits before the next try; `false` once the minute is over.
    pub(super) async fn again(&mut self) -> bool {
        if std::time::Instant::now() >= self.until {
            return false;
        }
        tokio::time::sleep(self.wait + crate::base::time::jitter(self.wait)).await;
        self.wait = (self.wait * 2).min(std::time::Duration::from_secs(1));
        true
    }
}

fn lost(e: &openssh::Error) -> HostError {
    HostError::Lost(error_chain(e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.trim().is_empty() {
            message.push_str(": ");
            message.push_str(text.trim());
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_dropped_before_the_key_exchange_is_made_again() {
        let connect = |message: &str, host_key| HostError::Connect {
            message: message.into(),
            host_key,
        };
        let said_nothing = format!(
            "failed to connect to the remote host: {}",
            crate::remote::master::SAID_NOTHING
        );
        for dropped in [
            "kex_exchange_identification: Connection closed by remote host",
            "kex_exchange_identification: read: Connection reset by peer",
            "Connection closed by 10.0.0.1 port 22",
            &said_nothing,
        ] {
            assert!(connect(dropped, None).dropped(), "{dropped}");
        }
        for kept in [
            "root@10.0.0.1: Permission denied (publickey).",
            "ssh: connect to host 10.0.0.1 port 22: Connection refused",
            "ssh: Could not resolve hostname nowhere: Name or service not known",
            "ssh: connect to host 10.0.0.1 port 22: Connection timed out",
        ] {
            assert!(!connect(kept, None).dropped(), "{kept}");
        }
        let changed = connect(
            "kex_exchange_identification: Connection closed by remote host",
            Some(KeyProblem::Changed),
        );
        assert!(!changed.dropped());
        assert!(!HostError::Lost("Connection reset by peer".into()).dropped());
    }

    #[test]
    fn a_connection_dropped_again_and_again_names_the_likely_cause() {
        let dropped = HostError::Connect {
            message: "kex_exchange_identification: Connection closed by remote host".into(),
            host_key: None,
        };
        insta::assert_snapshot!(dropped.problem("web1").detail, @r"
        cannot connect: kex_exchange_identification: Connection closed by remote host
        (the server dropped the connection before the key exchange, again and again: sshd does so past its `MaxStartups` (default 10:30:100) or `PerSourcePenalties`; raise them on the server, or lower `ssh.max_concurrent_starts`)
        ");
    }

    #[test]
    fn a_connection_this_machine_could_not_start_is_not_an_unreachable_host() {
        let spawn = HostError::Spawn {
            what: "an SSH master",
            why: "Too many open files (os error 24)".into(),
        };
        assert!(!spawn.problem("web1").unreachable);
        let refused = HostError::Connect {
            message: "ssh: connect to host web1 port 22: Connection refused".into(),
            host_key: None,
        };
        assert!(refused.problem("web1").unreachable);
    }
}
