//! `[app]` and `[ssh]`.

use std::path::Path;
use std::time::Duration;

use super::super::raw::{self};
use super::super::*;
use super::Loader;

/// `ssh.connect_timeout` and `ssh.keepalive`: 1s to 10m.
const SSH_TIMES: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));

/// `ssh.max_concurrent_starts` by default (Kamal's figure): a burst that
/// one sshd (a bastion, hosts behind one address) could not take with its
/// default `MaxStartups 10:30:100`, and no more key exchanges at once than
/// the controller's cores can make in a connect timeout.
const MAX_CONCURRENT_STARTS: usize = 30;

impl Loader<'_> {
    pub(super) fn app(
        &self,
        app_raw: Option<&raw::RawApp>,
        dir: &Path,
    ) -> Result<App, ConfigError> {
        let name = match app_raw.and_then(|a| a.name.as_ref()) {
            Some(n) => {
                self.check_word(n, "app.name")?;
                n.get_ref().clone()
            }
            None => std::fs::canonicalize(dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "app".to_string()),
        };
        let root = match app_raw.and_then(|a| a.root.as_ref()) {
            Some(r) => Some(self.relative_path(r, "app.root")?),
            None => None,
        };
        let remote = match app_raw.and_then(|a| a.remote.as_ref()) {
            Some(r) => {
                self.check_word(r, "app.remote")?;
                r.get_ref().clone()
            }
            None => "origin".to_string(),
        };
        Ok(App {
            name,
            root,
            remote,
            django: None,
        })
    }

    pub(super) fn ssh(&self, raw: Option<raw::RawSsh>, dir: &Path) -> Result<Ssh, ConfigError> {
        Ok(match raw {
            None => Ssh {
                config: None,
                known_hosts: None,
                connect_timeout: Duration::from_secs(10),
                keepalive: Duration::from_secs(5),
                max_concurrent_starts: MAX_CONCURRENT_STARTS,
            },
            Some(s) => Ssh {
                config: s.config.map(|p| dir.join(p.get_ref())),
                known_hosts: s.known_hosts.map(|p| dir.join(p.get_ref())),
                connect_timeout: match s.connect_timeout {
                    Some(t) => self.duration(&t, "ssh.connect_timeout", SSH_TIMES)?,
                    None => Duration::from_secs(10),
                },
                keepalive: match s.keepalive {
                    Some(t) => self.duration(&t, "ssh.keepalive", SSH_TIMES)?,
                    None => Duration::from_secs(5),
                },
                max_concurrent_starts: match s.max_concurrent_starts {
                    Some(n) => self.positive(&n, "ssh.max_concurrent_starts", 1)? as usize,
                    None => MAX_CONCURRENT_STARTS,
                },
            },
        })
    }
}
