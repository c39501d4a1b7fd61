//! `[deploy]` and `[verify]`: the steps, the health check and the
//! functional tests, each template kept with its key for the placeholder
//! check.

use std::path::Path;
use std::time::Duration;

use super::super::raw::{self, S};
use super::super::*;
use super::{Defaults, Loader, Templates};

/// `deploy.health.timeout`: 100ms to 10m per attempt.
const HEALTH_TIMEOUT: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(600));
/// `deploy.health.interval`: 0 to 10m between attempts.
const HEALTH_INTERVAL: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(600));

impl Loader<'_> {
    pub(super) fn deploy(
        &self,
        d: &raw::RawDeploy,
        dir: &Path,
        templates: &mut Templates,
    ) -> Result<(Deploy, Defaults), ConfigError> {
        let keep_releases = match &d.keep_releases {
            Some(k) => self.positive(k, "deploy.keep_releases", 2)? as usize,
            None => 5,
        };
        let default_parallel = match &d.parallel {
            Some(p) => self.positive(p, "deploy.parallel", 1)? as usize,
            None => 10,
        };
        let default_batch = match &d.batch {
            Some(b) => self.positive(b, "deploy.batch", 0)? as usize,
            None => 0,
        };
        let mut shared = Vec::new();
        for s in &d.shared {
            let dir = s.get_ref().ends_with('/');
            let path = self.relative_path(s, "deploy.shared")?;
            shared.push(SharedPath { path, dir });
        }
        let build = self.build_steps(&d.build, templates)?;
        let mut optional =
            |value: &Option<S<String>>, key: &str| -> Result<Option<Template>, ConfigError> {
                match value {
                    Some(v) => {
                        let t = self.template(v, key)?;
                        templates.push((key.to_string(), v.clone(), t.clone()));
                        Ok(Some(t))
                    }
                    None => Ok(None),
                }
            };
        let migrate = optional(&d.migrate, "deploy.migrate")?;
        let restart = optional(&d.restart, "deploy.restart")?;
        // A restart through systemd says where the log is and how to stop
        // the app: its unit's journal, `systemctl stop`.
        let unit = restart.as_ref().and_then(|r| systemd_unit(r.source()));
        let from_unit = |command: &str| {
            unit.as_ref()
                .and_then(|(sudo, unit)| Template::parse(&format!("{sudo}{command} {unit}")).ok())
        };
        let logs = optional(&d.logs, "deploy.logs")?
            .or_else(|| from_unit("journalctl -n 20 --no-pager -u"));
        let stop = optional(&d.stop, "deploy.stop")?.or_else(|| from_unit("systemctl stop"));
        let serve = optional(&d.serve, "deploy.serve")?;
        let mut env = Vec::new();
        for (name, key, value, t) in self.env_table(&d.env, "deploy.env")? {
            templates.push((key, value, t.clone()));
            env.push((name, t));
        }
        let health = match &d.health {
            None => None,
            Some(h) => Some(self.health(h.get_ref(), dir, templates)?),
        };
        let handover = d
            .handover
            .as_ref()
            .map(|h| self.handover(h, health.as_ref(), templates))
            .transpose()?;
        let balancer = d
            .balancer
            .as_ref()
            .map(|b| self.balancer(b.get_ref(), templates))
            .transpose()?;
        let defaults = Defaults {
            parallel: default_parallel,
            batch: default_batch,
        };
        Ok((
            Deploy {
                keep_releases,
                shared,
                build,
                migrate,
                restart,
                logs,
                stop,
                serve,
                env,
                health,
                handover,
                balancer,
            },
            defaults,
        ))
    }

    pub(super) fn health(
        &self,
        h: &raw::RawHealth,
        dir: &Path,
        templates: &mut Templates,
    ) -> Result<Health, ConfigError> {
        let url = self.template(&h.url, "deploy.health.url")?;
        templates.push(("deploy.health.url".into(), h.url.clone(), url.clone()));
        let u = h.url.get_ref();
        if !u.starts_with("http://") && !u.starts_with("https://") {
            return Err(self
                .error(
                    h.url.span(),
                    "deploy.health.url",
                    "the health check URL must start with `http://` or `https://`",
                )
                .with_hint("e.g. `https://{domain}/health`"));
        }
        let status = match &h.status {
            Some(s) if (100..=599).contains(s.get_ref()) => *s.get_ref() as u16,
            Some(s) => {
                return Err(self.error(
                    s.span(),
                    "deploy.health.status",
                    "an HTTP status is a number from 100 to 599",
                ))
            }
            None => 200,
        };
        Ok(Health {
                    url,
                    status,
                    body: match &h.body {
                        Some(b) => {
                            let t = self.template(b, "deploy.health.body")?;
                            templates.push(("deploy.health.body".into(), b.clone(), t.clone()));
                            Some(t)
                        }
                        None => None,
                    },
                    timeout: match &h.timeout {
                        Some(t) => self.duration(t, "deploy.health.timeout", HEALTH_TIMEOUT)?,
                        None => Duration::from_secs(5),
                    },
                    retries: match &h.retries {
                        Some(r) => self.bounded(r, "deploy.health.retries", 0, 10_000)? as u32,
                        None => 10,
                    },
                    interval: match &h.interval {
                        Some(t) => self.duration(t, "deploy.health.interval", HEALTH_INTERVAL)?,
                        None => Duration::from_millis(500),
                    },
                    on_host: match &h.on {
                        None => false,
                        Some(o) if o.get_ref() == "local" => false,
                        Some(o) if o.get_ref() == "host" => true,
                        Some(o) => {
                            return Err(self
                                .error(o.span(), "deploy.health.on", format!("`{}` is not where a check can run", o.get_ref()))
                                .with_hint("`local` (from this machine, the default) or `host` (on the host, with curl or python3)"))
                        }
                    },
                    ca: match &h.ca {
                        None => None,
                        Some(ca) => {
                            let path = dir.join(ca.get_ref());
                            if !path.is_file() {
                                return Err(self
                                    .error(ca.span(), "deploy.health.ca", format!("`{}` is not a file", path.display()))
                                    .with_hint("a PEM file of the certificate authorities to trust, relative to gantry.toml"));
                            }
                            Some(path)
                        }
                    },
                    hosts_var: None,
                })
    }

    /// `[deploy.handover]`.
    fn handover(
        &self,
        value: &S<raw::RawHandover>,
        health: Option<&Health>,
        templates: &mut Templates,
    ) -> Result<Handover, ConfigError> {
        let h = value.get_ref();
        let mut template = |v: &S<String>, key: &str| -> Result<Template, ConfigError> {
            let t = self.template(v, key)?;
            templates.push((key.to_string(), v.clone(), t.clone()));
            Ok(t)
        };
        let ports = match h.ports.get_ref().as_slice() {
            [a, b] => [
                template(a, "deploy.handover.ports")?,
                template(b, "deploy.handover.ports")?,
            ],
            _ => {
                return Err(self
                    .error(h.ports.span(), "deploy.handover.ports", "two ports are needed")
                    .with_hint("the new release starts on the one the serving release does not use: `ports = [\"8001\", \"8002\"]`"))
            }
        };
        if let Some(p) = h.ports.get_ref().iter().find(|p| p.get_ref().contains('/')) {
            return Err(self
                .error(p.span(), "deploy.handover.ports", "a handover's ports are TCP ports on the host (unix sockets are not supported yet)")
                .with_hint("`ports = [\"8001\", \"8002\"]`"));
        }
        let start = template(&h.start, "deploy.handover.start")?;
        let stop = template(&h.stop, "deploy.handover.stop")?;
        let span = value.span();
        let default = |text: &str| S::new(span.clone(), text.to_string());
        let reload = template(
            h.reload
                .as_ref()
                .unwrap_or(&default("sudo -n systemctl reload nginx")),
            "deploy.handover.reload",
        )?;
        let upstream = template(
            h.upstream
                .as_ref()
                .unwrap_or(&default("{shared}/upstream.conf")),
            "deploy.handover.upstream",
        )?;
        let drain = match &h.drain {
            Some(d) => self.duration(
                d,
                "deploy.handover.drain",
                (Duration::ZERO, Duration::from_secs(3600)),
            )?,
            None => Duration::from_secs(10),
        };
        // The health check's path, on the new app's own port.
        let check = match &h.check {
            Some(c) => c.get_ref().clone(),
            None => health
                .map(|h| h.url.source())
                .and_then(|u| u.split_once("://"))
                .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
                .unwrap_or_else(|| "/".into()),
        };
        if !check.starts_with('/') {
            let span = h.check.as_ref().map_or(span.clone(), |c| c.span());
            return Err(self
                .error(
                    span,
                    "deploy.handover.check",
                    "the check is a path on the new app's port",
                )
                .with_hint("`check = \"/health\"`"));
        }
        Ok(Handover {
            ports,
            start,
            stop,
            reload,
            upstream,
            drain,
            check,
        })
    }

    /// `deploy.build`: commands, or tables saying what a step depends on
    /// and makes.
    fn build_steps(
        &self,
        steps: &[S<raw::RawBuild>],
        templates: &mut Templates,
    ) -> Result<Vec<BuildStep>, ConfigError> {
        let mut build = Vec::new();
        for step in steps {
            let span = step.span();
            let spanned = |text: &str| S::new(span.clone(), text.to_string());
            let (run, cache) = match step.get_ref() {
                raw::RawBuild::Command(run) => (spanned(run), None),
                raw::RawBuild::Cached(c) => {
                    let paths = |list: &[String], key: &str| -> Result<Vec<String>, ConfigError> {
                        list.iter()
                            .map(|p| self.relative_path(&spanned(p), key))
                            .collect()
                    };
                    let outputs = paths(&c.outputs, "deploy.build.outputs")?;
                    if outputs.is_empty() {
                        return Err(self
                            .error(span.clone(), "deploy.build", "a step with `inputs` needs `outputs`: what it makes, to copy when the inputs did not change")
                            .with_hint("e.g. `{ run = \"…pip install…\", inputs = [\"requirements.txt\"], outputs = [\".venv\"] }`"));
                    }
                    let key = match &c.key {
                        Some(k) => {
                            let t = self.template(&spanned(k), "deploy.build.key")?;
                            templates.push(("deploy.build.key".into(), spanned(k), t.clone()));
                            Some(t)
                        }
                        None => None,
                    };
                    let cache = BuildCache {
                        inputs: paths(&c.inputs, "deploy.build.inputs")?,
                        outputs,
                        key,
                    };
                    (spanned(&c.run), Some(cache))
                }
            };
            let t = self.template(&run, "deploy.build")?;
            templates.push(("deploy.build".into(), run.clone(), t.clone()));
            build.push(BuildStep { run: t, cache });
        }
        Ok(build)
    }

    /// `[deploy.balancer]`.
    fn balancer(
        &self,
        b: &raw::RawBalancer,
        templates: &mut Templates,
    ) -> Result<Balancer, ConfigError> {
        let mut template = |v: &S<String>, key: &str| -> Result<Template, ConfigError> {
            let t = self.template(v, key)?;
            templates.push((key.to_string(), v.clone(), t.clone()));
            Ok(t)
        };
        let leave = template(&b.leave, "deploy.balancer.leave")?;
        let join = template(&b.join, "deploy.balancer.join")?;
        let drain = match &b.drain {
            Some(d) => self.duration(
                d,
                "deploy.balancer.drain",
                (Duration::ZERO, Duration::from_secs(3600)),
            )?,
            None => Duration::from_secs(10),
        };
        Ok(Balancer { leave, join, drain })
    }

    pub(super) fn verify(
        &self,
        raw: Option<raw::RawVerify>,
        templates: &mut Templates,
    ) -> Result<Option<Verify>, ConfigError> {
        Ok(match raw {
            None => None,
            Some(v) => {
                let Some(command) = v.command else {
                    return Err(ConfigError::at(
                        self.file.to_path_buf(),
                        self.source,
                        None,
                        "verify.command",
                        "missing key `command` in `[verify]`",
                    )
                    .with_hint("the functional tests to run, e.g. `command = \"python manage.py test functional_tests\"`"));
                };
                let t = self.template(&command, "verify.command")?;
                templates.push(("verify.command".into(), command.clone(), t.clone()));
                let mut env = Vec::new();
                for (name, key, value, tv) in self.env_table(&v.env, "verify.env")? {
                    templates.push((key, value, tv.clone()));
                    env.push((name, tv));
                }
                Some(Verify { command: t, env })
            }
        })
    }
}

/// The unit a restart command restarts with systemd (`sudo systemctl
/// restart gunicorn-{domain}`), with the `sudo ` it runs under.
fn systemd_unit(restart: &str) -> Option<(&'static str, String)> {
    let words: Vec<&str> = restart.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "systemctl")?;
    let verb = words.get(at + 1)?;
    if !matches!(*verb, "restart" | "try-restart" | "reload-or-restart") {
        return None;
    }
    let unit = words.get(at + 2).filter(|u| {
        !u.starts_with('-')
            && u.chars()
                .all(|c| c.is_alphanumeric() || "-_.@{}".contains(c))
    })?;
    let sudo = if words[..at].contains(&"sudo") {
        "sudo "
    } else {
        ""
    };
    Some((sudo, unit.to_string()))
}

#[cfg(test)]
mod tests {
    use super::systemd_unit;

    #[test]
    fn a_systemd_restart_names_its_unit() {
        assert_eq!(
            systemd_unit("sudo systemctl restart gunicorn-{domain}"),
            Some(("sudo ", "gunicorn-{domain}".to_string()))
        );
        assert_eq!(
            systemd_unit("systemctl --user restart app.service"),
            None,
            "options before the verb are not guessed at"
        );
        assert_eq!(
            systemd_unit("systemctl try-restart web@1"),
            Some(("", "web@1".to_string()))
        );
        assert_eq!(systemd_unit("sh restart.sh"), None);
        assert_eq!(systemd_unit("sudo systemctl restart $(cat unit)"), None);
    }

    #[test]
    fn logs_and_stop_follow_a_systemd_restart_unless_set() {
        let text = |extra: &str| {
            format!("[app]\nname = \"x\"\n[deploy]\npath = \"/srv/x\"\nrestart = \"sudo systemctl restart gunicorn-{{env}}\"\n{extra}[environments.staging]\nhosts = [\"local\"]\n")
        };
        let path = std::path::Path::new("/tmp/gantry.toml");
        let config = crate::config::parse(path, &text("")).unwrap();
        let source =
            |t: &Option<crate::config::Template>| t.as_ref().map(|t| t.source().to_string());
        assert_eq!(
            source(&config.deploy.logs).as_deref(),
            Some("sudo journalctl -n 20 --no-pager -u gunicorn-{env}")
        );
        assert_eq!(
            source(&config.deploy.stop).as_deref(),
            Some("sudo systemctl stop gunicorn-{env}")
        );
        let config = crate::config::parse(path, &text("logs = \"tail app.log\"\n")).unwrap();
        assert_eq!(source(&config.deploy.logs).as_deref(), Some("tail app.log"));
    }
}
