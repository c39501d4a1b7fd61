//! How OpenSSH sees a host, asked of `ssh -G` so `{user}`, `{host}` and
//! `{port}` are what the connection will use; and who runs Gantry.

use std::collections::HashMap;
use std::path::Path;

/// How OpenSSH sees a host (`ssh -G`): the user, host name and port it
/// will connect with, after the ssh_config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshView {
    pub user: String,
    pub hostname: String,
    pub port: String,
}

/// Asks `ssh -G` (which reads the config and connects nowhere); `None`
/// when ssh is missing or says nothing.
pub fn ssh_view(host: &str, port: Option<u16>, config: Option<&Path>) -> Option<SshView> {
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-G");
    if let Some(config) = config {
        cmd.arg("-F").arg(config);
    }
    if let Some(port) = port {
        cmd.arg("-p").arg(port.to_string());
    }
    let out = cmd
        .arg("--")
        .arg(host)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_ssh_view(&String::from_utf8_lossy(&out.stdout))
}

fn parse_ssh_view(text: &str) -> Option<SshView> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .map(str::to_string)
    };
    Some(SshView {
        user: value("user")?,
        hostname: value("hostname")?,
        port: value("port").unwrap_or_else(|| "22".into()),
    })
}

/// The user running Gantry, as ssh would log in by default.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}

/// What `ssh -G` says for each host, keyed by host and port.
pub type SshViews = HashMap<(String, Option<u16>), Option<SshView>>;

/// Asks `ssh -G` about every distinct host at once (16 at a time), so a
/// config with many hosts loads in the time of a few.
pub fn ssh_views(targets: Vec<(String, Option<u16>)>, config: Option<&Path>) -> SshViews {
    let mut targets = targets;
    targets.sort();
    targets.dedup();
    let mut views = SshViews::new();
    for chunk in targets.chunks(16) {
        std::thread::scope(|scope| {
            let asked: Vec<_> = chunk
                .iter()
                .map(|(host, port)| scope.spawn(move || ssh_view(host, *port, config)))
                .collect();
            for (target, answer) in chunk.iter().zip(asked) {
                views.insert(target.clone(), answer.join().ok().flatten());
            }
        });
    }
    views
}
