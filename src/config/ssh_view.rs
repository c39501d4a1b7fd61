//! How OpenSSH sees a host, asked of `ssh -G` so `{user}`, `{host}` and
//! `{port}` are what the connection will use; and who runs Gantry.

use std::collections::HashMap;
use std::path::Path;

use super::ssh_scan::{host_patterns, matches_any};

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
pub fn ssh_view(host: &str, config: Option<&Path>) -> Option<SshView> {
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-G");
    if let Some(config) = config {
        cmd.arg("-F").arg(config);
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

/// Answers for hosts that no `Host` pattern but `*` matches, from one
/// `ssh -G`: the user and port are the same for all, the host name is
/// each one's own (as ssh writes it: lower case) when ssh leaves the
/// asked one's as it is. Returns the hosts this could not answer for.
fn views_alike(plain: Vec<String>, config: Option<&Path>, views: &mut SshViews) -> Vec<String> {
    let Some(first) = plain.first() else {
        return plain;
    };
    let Some(view) = ssh_view(first, config) else {
        return plain;
    };
    if view.hostname != first.to_ascii_lowercase() {
        return plain;
    }
    for host in plain {
        let hostname = host.to_ascii_lowercase();
        views.insert(
            host,
            Some(SshView {
                hostname,
                ..view.clone()
            }),
        );
    }
    Vec::new()
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

/// What `ssh -G` says for each host name. Asked without the address's
/// port: `-p` only replaces the port in the answer (ssh_config's `Host`
/// and `Match` select on names, not ports), so hosts that share a name on
/// several ports cost one `ssh -G`, and the port comes from the address.
pub type SshViews = HashMap<String, Option<SshView>>;

/// Asks `ssh -G` about every distinct host name at once (16 at a time),
/// so a config with many hosts loads in the time of a few.
pub fn ssh_views(hosts: Vec<String>, config: Option<&Path>) -> SshViews {
    let mut hosts = hosts;
    hosts.sort();
    hosts.dedup();
    let mut views = SshViews::new();
    let hosts = match host_patterns(config) {
        Some(patterns) => {
            let (special, plain): (Vec<String>, Vec<String>) =
                hosts.into_iter().partition(|h| matches_any(h, &patterns));
            let unanswered = views_alike(plain, config, &mut views);
            special.into_iter().chain(unanswered).collect()
        }
        None => hosts,
    };
    for chunk in hosts.chunks(16) {
        std::thread::scope(|scope| {
            let asked: Vec<_> = chunk
                .iter()
                .map(|host| scope.spawn(move || ssh_view(host, config)))
                .collect();
            for (host, answer) in chunk.iter().zip(asked) {
                views.insert(host.clone(), answer.join().ok().flatten());
            }
        });
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn ssh_config_user_and_hostname_come_from_ssh_g() {
        let dir = std::env::temp_dir().join(format!("gantry-sshg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("ssh_config");
        std::fs::write(
            &config,
            "Host web1\n  HostName 192.0.2.10\n  User deployer\n  Port 2222\n",
        )
        .unwrap();
        let view = ssh_view("web1", Some(&config)).expect("ssh -G answers");
        assert_eq!(
            view,
            SshView {
                user: "deployer".into(),
                hostname: "192.0.2.10".into(),
                port: "2222".into()
            }
        );
        // One name on two ports: the address's port wins, the rest is the
        // ssh_config's for both.
        let src = "[ssh]\nconfig = \"ssh_config\"\n[deploy]\npath = \"/srv/{port}\"\n\
                   [environments.live]\nhosts = [\"web1\", \"web1:2200\"]\n";
        let c = parse(&dir.join("gantry.toml"), src).unwrap();
        let seen: Vec<(&str, &str, &str)> = c.environments[0]
            .hosts
            .iter()
            .map(|h| {
                (
                    h.vars["host"].as_str(),
                    h.vars["user"].as_str(),
                    h.vars["port"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("192.0.2.10", "deployer", "2222"),
                ("192.0.2.10", "deployer", "2200")
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
