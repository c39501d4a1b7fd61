//! Stage two of loading: turns the raw TOML structs into the validated
//! config, checking every value, placeholder and cross-reference, and
//! pointing at the file, line, column and key when something is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{self, RawConfig, RawHost, RawVars, S};
use super::*;
use crate::base::time::parse_duration;

pub(super) struct Loader<'a> {
    pub(super) file: &'a Path,
    pub(super) source: &'a str,
}

impl Loader<'_> {
    fn error(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(
            self.file.to_path_buf(),
            self.source,
            Some(span),
            key,
            message,
        )
    }

    pub(super) fn load(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let dir = self
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let app_raw = raw.app;
        let name = match app_raw.as_ref().and_then(|a| a.name.as_ref()) {
            Some(n) => {
                self.check_word(n, "app.name")?;
                n.get_ref().clone()
            }
            None => std::fs::canonicalize(&dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "app".to_string()),
        };
        let root = match app_raw.as_ref().and_then(|a| a.root.as_ref()) {
            Some(r) => Some(self.relative_path(r, "app.root")?),
            None => None,
        };
        let remote = match app_raw.as_ref().and_then(|a| a.remote.as_ref()) {
            Some(r) => {
                self.check_word(r, "app.remote")?;
                r.get_ref().clone()
            }
            None => "origin".to_string(),
        };
        let mut app = App {
            name,
            root,
            remote,
            django: None,
        };

        let ssh = match raw.ssh {
            None => Ssh {
                config: None,
                known_hosts: None,
                connect_timeout: Duration::from_secs(10),
                keepalive: Duration::from_secs(5),
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
            },
        };

        let Some(deploy_raw) = raw.deploy else {
            return Err(ConfigError::at(
                self.file.to_path_buf(),
                self.source,
                Some(self.end()),
                "deploy",
                "missing table `[deploy]`",
            )
            .with_hint("add `[deploy]` with at least `path = \"/srv/{app}\"`"));
        };
        let deploy_span = deploy_raw.span();
        let mut d = deploy_raw.into_inner();
        let preset = self.preset(
            app_raw.as_ref().and_then(|a| a.preset.as_ref()),
            &raw.vars,
            app.root.as_deref(),
        )?;
        if let Some(p) = &preset {
            app.django = Some(Template::parse(&p.python).expect("the preset's python parses"));
            if d.migrate.is_none() {
                d.migrate = Some(p.migrate.clone());
            }
            if d.build.is_empty() {
                d.build = p.build.clone();
            }
        }
        let Some(path_raw) = d.path else {
            return Err(self
                .error(deploy_span, "deploy.path", "missing key `path`")
                .with_hint("the site's folder on each host, e.g. `path = \"/srv/{app}\"`"));
        };
        let path_template = self.template(&path_raw, "deploy.path")?;

        let global_vars = self.vars(&raw.vars, "vars")?;
        let user_var_names: BTreeSet<String> = global_vars.keys().cloned().collect();

        let keep_releases = match d.keep_releases {
            Some(k) => self.positive(&k, "deploy.keep_releases", 2)? as usize,
            None => 5,
        };
        let default_parallel = match d.parallel {
            Some(p) => self.positive(&p, "deploy.parallel", 1)? as usize,
            None => 10,
        };
        let default_batch = match d.batch {
            Some(b) => self.positive(&b, "deploy.batch", 0)? as usize,
            None => 0,
        };
        let mut shared = Vec::new();
        for s in &d.shared {
            let dir = s.get_ref().ends_with('/');
            let path = self.relative_path(s, "deploy.shared")?;
            shared.push(SharedPath { path, dir });
        }
        // Every template, with the key it came from, for the placeholder check.
        let mut templates: Vec<(String, S<String>, Template)> = Vec::new();
        let mut build = Vec::new();
        for step in &d.build {
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
        let mut env = Vec::new();
        for (name, key, value, t) in self.env_table(&d.env, "deploy.env")? {
            templates.push((key, value, t.clone()));
            env.push((name, t));
        }
        let health = match &d.health {
            None => None,
            Some(h) => {
                let h = h.get_ref();
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
                Some(Health {
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
                })
            }
        };
        let deploy = Deploy {
            keep_releases,
            shared,
            build,
            migrate,
            restart,
            env,
            health,
        };

        let verify = match raw.verify {
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
        };

        let Some(envs_raw) = raw.environments else {
            return Err(self.no_environments());
        };
        let mut env_list: Vec<(String, S<raw::RawEnvironment>)> =
            envs_raw.into_inner().into_iter().collect();
        env_list.sort_by_key(|(_, e)| e.span().start);
        let mut environments = Vec::new();
        let mut requires_spans = Vec::new();
        for (env_name, env_raw) in env_list {
            let prefix = format!("environments.{env_name}");
            if !env_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(self.error(
                    env_raw.span(),
                    &prefix,
                    format!(
                        "`{env_name}` is not a valid environment name (letters, digits, `-`, `_`)"
                    ),
                ));
            }
            let env_span = env_raw.span();
            let e = env_raw.into_inner();
            let env_vars = self.vars(&e.vars, &format!("{prefix}.vars"))?;
            let Some(hosts_raw) = e.hosts else {
                return Err(self
                    .error(env_span, &format!("{prefix}.hosts"), "missing key `hosts`")
                    .with_hint("list the hosts, e.g. `hosts = [\"deploy@web1.example.com\"]` or `[\"local\"]`"));
            };
            if hosts_raw.get_ref().is_empty() {
                return Err(self.error(
                    hosts_raw.span(),
                    &format!("{prefix}.hosts"),
                    "an environment needs at least one host",
                ));
            }
            let hosts_key = format!("{prefix}.hosts");
            let mut hosts = Vec::new();
            for host_raw in hosts_raw.get_ref() {
                let span = host_raw.span();
                let (address, host_vars) = match host_raw.get_ref() {
                    RawHost::Address(a) => (a, BTreeMap::new()),
                    RawHost::Table(t) => (
                        &t.address,
                        t.vars
                            .iter()
                            .map(|(k, v)| (k.clone(), S::new(span.clone(), v.clone())))
                            .collect(),
                    ),
                };
                let address = S::new(span.clone(), address.clone());
                let address = &address;
                let target = parse_target(address.get_ref()).map_err(|why| {
                    self.error(address.span(), &hosts_key, format!("bad host `{}`: {why}", address.get_ref()))
                        .with_hint("write `local`, `host`, `user@host` or `user@host:port` (names from ~/.ssh/config work too)")
                })?;
                if hosts
                    .iter()
                    .any(|h: &HostSpec| h.name == *address.get_ref())
                {
                    return Err(self.error(
                        address.span(),
                        &hosts_key,
                        format!("host `{}` is listed twice", address.get_ref()),
                    ));
                }
                let host_vars = self.vars(&host_vars, &format!("{hosts_key}.vars"))?;
                let mut vars = Vars::new();
                vars.insert("app".into(), app.name.clone());
                vars.insert("env".into(), env_name.clone());
                let (host, user, port) = match &target {
                    Target::Local => ("localhost".to_string(), local_user(), String::new()),
                    Target::Ssh { user, host, port } => {
                        // What OpenSSH itself will use: the ssh_config's
                        // `User` and `HostName` for this host.
                        let view = ssh_view(host, *port, ssh.config.as_deref());
                        (
                            view.as_ref()
                                .map_or_else(|| host.clone(), |v| v.hostname.clone()),
                            user.clone()
                                .or_else(|| view.as_ref().map(|v| v.user.clone()))
                                .unwrap_or_else(local_user),
                            port.map(|p| p.to_string())
                                .or_else(|| view.as_ref().map(|v| v.port.clone()))
                                .unwrap_or_default(),
                        )
                    }
                };
                vars.insert("host".into(), host);
                vars.insert("user".into(), user);
                vars.insert("port".into(), port);
                vars.extend(global_vars.clone());
                vars.extend(env_vars.clone());
                vars.extend(host_vars);
                let known = |n: &str| vars.contains_key(n);
                if let Some((name, range)) = path_template.unknown_name(known) {
                    return Err(self.unknown_placeholder(
                        &path_raw,
                        "deploy.path",
                        name,
                        range,
                        &vars,
                        false,
                    ));
                }
                for (key, value, t) in &templates {
                    let known = |n: &str| vars.contains_key(n) || RUN_NAMES.contains(&n);
                    if let Some((name, range)) = t.unknown_name(known) {
                        return Err(self.unknown_placeholder(value, key, name, range, &vars, true));
                    }
                }
                let path = path_template.render(&vars);
                if !path.starts_with('/') {
                    return Err(self.error(
                        path_raw.span(),
                        "deploy.path",
                        format!(
                            "the site's path must be absolute, but for host `{}` it is `{path}`",
                            address.get_ref()
                        ),
                    ));
                }
                hosts.push(HostSpec {
                    name: address.get_ref().clone(),
                    target,
                    path: path.trim_end_matches('/').to_string(),
                    vars,
                });
            }
            let parallel = match e.parallel {
                Some(p) => self.positive(&p, &format!("{prefix}.parallel"), 1)? as usize,
                None => default_parallel,
            };
            let batch = match e.batch {
                Some(b) => self.positive(&b, &format!("{prefix}.batch"), 0)? as usize,
                None => default_batch,
            };
            let migrate_host = match e.migrate_host {
                None => 0,
                Some(m) => hosts
                    .iter()
                    .position(|h| h.name == *m.get_ref())
                    .ok_or_else(|| {
                        self.error(
                            m.span(),
                            &format!("{prefix}.migrate_host"),
                            format!("`{}` is not one of this environment's hosts", m.get_ref()),
                        )
                    })?,
            };
            let requires = e.requires.as_ref().map(|r| (r.get_ref().clone(), r.span()));
            let tags = self.tags(&env_name, e.tags.as_ref(), &prefix)?;
            let database = self.database(
                preset.as_ref(),
                raw.database.as_ref(),
                e.database.as_ref(),
                &prefix,
                &hosts,
            )?;
            requires_spans.push(requires.clone());
            environments.push(Environment {
                name: env_name,
                hosts,
                parallel,
                batch,
                migrate_host,
                requires: requires.map(|(r, _)| r),
                tags,
                database,
            });
        }
        if environments.is_empty() {
            return Err(self.no_environments());
        }
        let _ = user_var_names;
        for (env, requires) in environments.iter().zip(&requires_spans) {
            let Some((name, span)) = requires else {
                continue;
            };
            let key = format!("environments.{}.requires", env.name);
            if !environments.iter().any(|e| &e.name == name) {
                return Err(self.error(
                    span.clone(),
                    &key,
                    format!("`{name}` is not an environment in this file"),
                ));
            }
            // Follow the chain: it must end, not come back to `env`.
            let mut seen = vec![env.name.as_str()];
            let mut next = Some(name.as_str());
            while let Some(n) = next {
                if seen.contains(&n) {
                    return Err(self.error(
                        span.clone(),
                        &key,
                        format!(
                            "`requires` goes round in a circle: {} -> {n}",
                            seen.join(" -> ")
                        ),
                    ));
                }
                seen.push(n);
                next = environments
                    .iter()
                    .find(|e| e.name == n)
                    .and_then(|e| e.requires.as_deref());
            }
        }
        let setup = self.setup(
            &raw.env,
            &raw.secrets,
            raw.setup.as_ref(),
            preset.is_some(),
            &environments,
            &dir,
        )?;
        Ok(Config {
            file: self.file.to_path_buf(),
            dir,
            app,
            ssh,
            deploy,
            verify,
            setup,
            environments,
        })
    }

    fn setup(
        &self,
        env_raw: &raw::RawVars,
        secrets_raw: &BTreeMap<String, S<raw::RawSecret>>,
        raw: Option<&raw::RawSetup>,
        django: bool,
        environments: &[Environment],
        dir: &Path,
    ) -> Result<Setup, ConfigError> {
        let hosts: Vec<&HostSpec> = environments.iter().flat_map(|e| &e.hosts).collect();
        // Templates here see the host's variables and the deploy's.
        let check = |value: &S<String>, key: &str| -> Result<Template, ConfigError> {
            let t = self.template(value, key)?;
            for host in &hosts {
                let known = |n: &str| host.vars.contains_key(n) || RUN_NAMES.contains(&n);
                if let Some((name, range)) = t.unknown_name(known) {
                    return Err(self.unknown_placeholder(value, key, name, range, &host.vars, true));
                }
            }
            Ok(t)
        };
        let mut env = Vec::new();
        for (name, key, value, _) in self.env_table(env_raw, "env")? {
            if value.get_ref().contains(['\n', '\r']) {
                return Err(self
                    .error(
                        value.span(),
                        &key,
                        "a value of the `.env` file must be a single line",
                    )
                    .with_hint(
                        "systemd's EnvironmentFile and `gantry setup` read one variable per line",
                    ));
            }
            env.push((name, check(&value, &key)?));
        }
        let mut secrets = Vec::new();
        for (name, value) in secrets_raw {
            let key = format!("secrets.{name}");
            if !crate::base::shell::is_var_name(name) {
                return Err(self.error(
                    value.span(),
                    &key,
                    format!("`{name}` is not a valid environment variable name"),
                ));
            }
            let r = value.get_ref();
            let source = match (r.generate, &r.env, &r.file) {
                (Some(true), None, None) => SecretSource::Generate,
                (None, Some(var), None) => SecretSource::Env(var.clone()),
                (None, None, Some(file)) => SecretSource::File(dir.join(file)),
                _ => {
                    return Err(self
                        .error(value.span(), &key, "a secret needs exactly one of `generate = true`, `env = \"VAR\"` or `file = \"path\"`")
                        .with_hint("secrets are never written in gantry.toml itself"))
                }
            };
            let value_now = match &source {
                SecretSource::Generate => None,
                SecretSource::Env(var) => std::env::var(var).ok(),
                SecretSource::File(path) => std::fs::read_to_string(path)
                    .ok()
                    .map(|s| s.trim_end_matches('\n').to_string()),
            };
            if let Some(v) = &value_now {
                if v.len() < 4 || v.contains('\n') {
                    return Err(self.error(
                        value.span(),
                        &key,
                        "a secret must be at least 4 characters long and a single line",
                    ));
                }
                crate::base::secrets::register(v);
            }
            secrets.push(Secret {
                name: name.clone(),
                source,
                value: value_now,
            });
        }
        let database_env = environments
            .iter()
            .any(|e| !matches!(e.database.engine, Engine::None) && e.database.env_var.is_some());
        let Some(raw) = raw else {
            return Ok(Setup {
                sudo: false,
                env_file: ".env".into(),
                env,
                secrets,
                services: Vec::new(),
                database_env,
            });
        };
        let env_file = match &raw.env_file {
            Some(f) => self.relative_path(f, "setup.env_file")?,
            None => ".env".to_string(),
        };
        let mut services = Vec::new();
        for (kind, value, field) in [
            (ServiceKind::Systemd, &raw.systemd, "systemd"),
            (ServiceKind::Nginx, &raw.nginx, "nginx"),
        ] {
            let Some(value) = value else { continue };
            let r = value.get_ref();
            let key = |k: &str| format!("setup.{field}.{k}");
            let (template, origin) = match &r.template {
                Some(path) => {
                    let full = dir.join(path.get_ref());
                    let text = std::fs::read_to_string(&full).map_err(|e| {
                        self.error(
                            path.span(),
                            &key("template"),
                            format!("cannot read the template `{}`: {e}", full.display()),
                        )
                    })?;
                    (text, path.get_ref().clone())
                }
                None if django => (
                    match kind {
                        ServiceKind::Systemd => {
                            include_str!("../templates/django-gunicorn.service").to_string()
                        }
                        ServiceKind::Nginx => {
                            include_str!("../templates/django-nginx.conf").to_string()
                        }
                    },
                    "built-in".to_string(),
                ),
                None => return Err(self
                    .error(
                        value.span(),
                        &key("template"),
                        "there is no built-in template without a preset",
                    )
                    .with_hint(
                        "set `template = \"path/to/file\"`, or `preset = \"django\"` under `[app]`",
                    )),
            };
            let span = value.span();
            let default = |text: &str| S::new(span.clone(), text.to_string());
            let name = match &r.name {
                Some(n) => check(n, &key("name"))?,
                None => check(
                    &default(match kind {
                        ServiceKind::Systemd => "gunicorn-{app}-{env}",
                        ServiceKind::Nginx => "{app}-{env}",
                    }),
                    &key("name"),
                )?,
            };
            let dir_t = match &r.dir {
                Some(d) => check(d, &key("dir"))?,
                None => Template::literal(match kind {
                    ServiceKind::Systemd => "/etc/systemd/system",
                    ServiceKind::Nginx => "/etc/nginx/sites-enabled",
                }),
            };
            let reload = match &r.reload {
                Some(c) if c.get_ref().is_empty() => None,
                Some(c) => Some(check(c, &key("reload"))?),
                None => Some(Template::literal(match kind {
                    ServiceKind::Systemd => {
                        "systemctl daemon-reload && systemctl enable --now \"$GANTRY_UNIT\""
                    }
                    ServiceKind::Nginx => "nginx -t && systemctl reload nginx",
                })),
            };
            // The template must render with what a host will have.
            if let Some(host) = hosts.first() {
                let mut context = super::context_for_check(host);
                context.insert("unit".into(), "unit".into());
                if let Err(e) = super::render(&template, &context) {
                    let span = r.template.as_ref().map_or(value.span(), |t| t.span());
                    return Err(self.error(
                        span,
                        &key("template"),
                        format!(
                            "the {} template `{origin}` does not render: {e}",
                            kind.label()
                        ),
                    ));
                }
            }
            services.push(Service {
                kind,
                name,
                template,
                origin,
                dir: dir_t,
                reload,
            });
        }
        Ok(Setup {
            sudo: raw.sudo.as_ref().is_some_and(|s| *s.get_ref()),
            env_file,
            env,
            secrets,
            services,
            database_env,
        })
    }

    /// `preset = "django"`: the usual build, migrate and pending-migrations
    /// check, with `{python}` when the config defines it (a shared
    /// virtualenv), else the release's own `.venv`.
    fn preset(
        &self,
        name: Option<&S<String>>,
        vars: &raw::RawVars,
        root: Option<&str>,
    ) -> Result<Option<Preset>, ConfigError> {
        let Some(name) = name else { return Ok(None) };
        if name.get_ref() != "django" {
            return Err(self
                .error(
                    name.span(),
                    "app.preset",
                    format!("unknown preset `{}`", name.get_ref()),
                )
                .with_hint("the presets are: django"));
        }
        let span = name.span();
        let s = |text: &str| S::new(span.clone(), text.to_string());
        let python = if vars.contains_key("python") {
            "{python}"
        } else {
            ".venv/bin/python"
        };
        let command = |text: &str| S::new(span.clone(), raw::RawBuild::Command(text.to_string()));
        let mut build = Vec::new();
        if !vars.contains_key("python") {
            // requirements.txt beside manage.py, or at the repository's
            // root; the virtualenv is reused while they and Python are the
            // same.
            let in_root = |p: &str| match root {
                Some(r) => format!("{r}/{p}"),
                None => p.to_string(),
            };
            let mut inputs = vec![in_root("requirements.txt")];
            if root.is_some() {
                inputs.push("requirements.txt".into());
            }
            build.push(S::new(
                span.clone(),
                raw::RawBuild::Cached(raw::RawCachedBuild {
                    run: "python3 -m venv .venv && if [ -f requirements.txt ]; then r=requirements.txt; else r=\"$GANTRY_RELEASE/requirements.txt\"; fi; .venv/bin/pip install -q -r \"$r\"".into(),
                    inputs,
                    outputs: vec![in_root(".venv")],
                    key: Some("python3 --version".into()),
                }),
            ));
        }
        build.push(command(&format!(
            "{python} manage.py collectstatic --noinput"
        )));
        Ok(Some(Preset {
            python: python.to_string(),
            build,
            migrate: s(&format!("{python} manage.py migrate --noinput")),
            check: s(&format!("{python} manage.py migrate --check")),
        }))
    }

    /// The environment's database: its own keys over the global ones.
    fn database(
        &self,
        preset: Option<&Preset>,
        global: Option<&S<raw::RawDatabase>>,
        own: Option<&S<raw::RawDatabase>>,
        prefix: &str,
        hosts: &[HostSpec],
    ) -> Result<Database, ConfigError> {
        let g = global.map(|g| g.get_ref().clone()).unwrap_or_default();
        let o = own.map(|o| o.get_ref().clone()).unwrap_or_default();
        let key_of = |field: &str, from_own: bool| {
            if from_own {
                format!("{prefix}.database.{field}")
            } else {
                format!("database.{field}")
            }
        };
        let pick = |a: Option<S<String>>, b: Option<S<String>>| (a.is_some(), a.or(b));
        let (own_engine, engine) = pick(o.engine, g.engine);
        let (own_path, path) = pick(o.path, g.path);
        let (own_url, url) = pick(o.url, g.url);
        let (own_var, env_var) = pick(o.env_var, g.env_var);
        let (own_check, check) = pick(o.check, g.check);
        let check = check.or_else(|| preset.map(|p| p.check.clone()));
        let keep = o.keep_backups.is_some();
        let keep_backups = match o.keep_backups.or(g.keep_backups) {
            Some(k) => self.positive(&k, &key_of("keep_backups", keep), 1)? as usize,
            None => 5,
        };
        // Database templates see the host's variables and the deploy's.
        let check_template = |value: &S<String>, key: &str| -> Result<Template, ConfigError> {
            let t = self.template(value, key)?;
            for host in hosts {
                let known = |n: &str| host.vars.contains_key(n) || RUN_NAMES.contains(&n);
                if let Some((name, range)) = t.unknown_name(known) {
                    return Err(self.unknown_placeholder(value, key, name, range, &host.vars, true));
                }
            }
            Ok(t)
        };
        let engine_name = engine.as_ref().map_or("none", |e| e.get_ref().as_str());
        let engine_span = || engine.as_ref().map(|e| e.span()).unwrap_or(0..0);
        let engine = match engine_name {
            "none" => Engine::None,
            "sqlite" => {
                let Some(p) = &path else {
                    return Err(self
                        .error(
                            engine_span(),
                            &key_of("engine", own_engine),
                            "a sqlite database needs `path`",
                        )
                        .with_hint(
                            "the database file on the host, e.g. `path = \"{shared}/db.sqlite3\"`",
                        ));
                };
                Engine::Sqlite {
                    path: check_template(p, &key_of("path", own_path))?,
                }
            }
            "postgres" => {
                let Some(u) = &url else {
                    return Err(self
                        .error(
                            engine_span(),
                            &key_of("engine", own_engine),
                            "a postgres database needs `url`",
                        )
                        .with_hint("e.g. `url = \"postgresql://app@127.0.0.1:5432/app\"`"));
                };
                if !(u.get_ref().starts_with("postgresql://")
                    || u.get_ref().starts_with("postgres://"))
                {
                    return Err(self.error(
                        u.span(),
                        &key_of("url", own_url),
                        "a postgres URL starts with `postgresql://`",
                    ));
                }
                Engine::Postgres {
                    url: check_template(u, &key_of("url", own_url))?,
                }
            }
            other => {
                return Err(self
                    .error(
                        engine_span(),
                        &key_of("engine", own_engine),
                        format!("unknown database engine `{other}`"),
                    )
                    .with_hint("use `sqlite`, `postgres` or `none`"));
            }
        };
        let env_var = match env_var {
            Some(v) if !crate::base::shell::is_var_name(v.get_ref()) => {
                return Err(self.error(
                    v.span(),
                    &key_of("env_var", own_var),
                    format!("`{}` is not a valid environment variable name", v.get_ref()),
                ));
            }
            Some(v) => Some(v.get_ref().clone()),
            None => match &engine {
                Engine::None => None,
                Engine::Sqlite { .. } => Some("DB_PATH".to_string()),
                Engine::Postgres { .. } => Some("DATABASE_URL".to_string()),
            },
        };
        let check = match &check {
            Some(c) => Some(check_template(c, &key_of("check", own_check))?),
            None => None,
        };
        Ok(Database {
            engine,
            env_var,
            keep_backups,
            check,
        })
    }

    fn tags(
        &self,
        env: &str,
        raw: Option<&S<raw::RawTags>>,
        prefix: &str,
    ) -> Result<Tags, ConfigError> {
        let Some(raw) = raw else {
            // The environment called `live` is tagged the way the manual
            // procedure does it; others only when asked.
            return Ok(if env == "live" {
                Tags::Dated {
                    moving: Some("LIVE".into()),
                    history: Some("DEPLOYED-%F/%H%M".into()),
                }
            } else {
                Tags::None
            });
        };
        let t = raw.get_ref();
        let key = format!("{prefix}.tags");
        let scheme = t.scheme.as_ref().map_or("date", |s| s.get_ref().as_str());
        let name = |v: &Option<S<String>>, field: &str| -> Result<Option<String>, ConfigError> {
            match v {
                None => Ok(None),
                Some(v) if v.get_ref().is_empty() => Ok(None),
                Some(v) => {
                    let text = v.get_ref();
                    let expanded =
                        crate::base::time::strftime(text, &crate::base::time::Utc::from_unix(0))
                            .map_err(|e| self.error(v.span(), &format!("{key}.{field}"), e))?;
                    if !super::valid_tag_name(&expanded) {
                        return Err(self.error(
                            v.span(),
                            &format!("{key}.{field}"),
                            format!("`{text}` does not make a valid git tag name"),
                        ));
                    }
                    Ok(Some(text.clone()))
                }
            }
        };
        match scheme {
            "date" => {
                if let Some(p) = &t.prefix {
                    return Err(self.error(
                        p.span(),
                        &format!("{key}.prefix"),
                        "`prefix` belongs to `scheme = \"version\"`",
                    ));
                }
                Ok(Tags::Dated {
                    moving: name(&t.moving, "moving")?,
                    history: match &t.history {
                        None => Some("DEPLOYED-%F/%H%M".into()),
                        some => name(some, "history")?,
                    },
                })
            }
            "version" => {
                for (field, value) in [("moving", &t.moving), ("history", &t.history)] {
                    if let Some(v) = value {
                        return Err(self
                            .error(v.span(), &format!("{key}.{field}"), format!("`{field}` belongs to `scheme = \"date\"`"))
                            .with_hint("the version scheme never moves a tag: it only creates `v1`, `v2`, …"));
                    }
                }
                let prefix = name(&t.prefix, "prefix")?.unwrap_or_else(|| "v".into());
                Ok(Tags::Version { prefix })
            }
            other => Err(self
                .error(
                    t.scheme.as_ref().expect("set").span(),
                    &format!("{key}.scheme"),
                    format!("unknown tag scheme `{other}`"),
                )
                .with_hint(
                    "use `date` (a moving tag and `DEPLOYED-%F/%H%M`) or `version` (`v1`, `v2`, …)",
                )),
        }
    }

    /// Where something missing would go: the end of the file.
    fn end(&self) -> Range<usize> {
        let end = self.source.trim_end().len();
        end..end
    }

    fn no_environments(&self) -> ConfigError {
        ConfigError::at(
            self.file.to_path_buf(),
            self.source,
            Some(self.end()),
            "environments",
            "no environments are defined",
        )
        .with_hint("add `[environments.staging]` with `hosts = [\"user@host\"]` (or `[\"local\"]`)")
    }

    fn unknown_placeholder(
        &self,
        value: &S<String>,
        key: &str,
        name: &str,
        range: Range<usize>,
        vars: &Vars,
        runtime: bool,
    ) -> ConfigError {
        let span = self.inner_span(value, range);
        let mut known: Vec<&str> = vars.keys().map(String::as_str).collect();
        if runtime {
            known.extend(RUN_NAMES);
        }
        known.sort_unstable();
        let mut error = self.error(span, key, format!("unknown placeholder `{{{name}}}`"));
        error = error.with_hint(format!(
            "known placeholders here: {}; define others under `[vars]` (write `{{{{` for a literal brace)",
            known.iter().map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(" ")
        ));
        if !runtime && RUN_NAMES.contains(&name) {
            error = error.with_hint(format!(
                "`{{{name}}}` is only known while a deploy runs, so `deploy.path` cannot use it"
            ));
        }
        error
    }

    /// Maps a range inside a string value to a span in the file: exact when
    /// the value is written as a simple string on one line, the whole value
    /// otherwise.
    fn inner_span(&self, value: &S<String>, range: Range<usize>) -> Range<usize> {
        let span = value.span();
        let text = &self.source[span.clone()];
        let quoted =
            text.len() == value.get_ref().len() + 2 && text[1..text.len() - 1] == *value.get_ref();
        if quoted {
            span.start + 1 + range.start..span.start + 1 + range.end
        } else {
            span
        }
    }

    /// A table of environment variables whose values are templates:
    /// (name, key, raw value, template).
    #[allow(clippy::type_complexity)]
    fn env_table(
        &self,
        raw: &RawVars,
        prefix: &str,
    ) -> Result<Vec<(String, String, S<String>, Template)>, ConfigError> {
        raw.iter()
            .map(|(name, value)| {
                let key = format!("{prefix}.{name}");
                if !crate::base::shell::is_var_name(name) {
                    return Err(self.error(
                        value.span(),
                        &key,
                        format!("`{name}` is not a valid environment variable name"),
                    ));
                }
                let t = self.template(value, &key)?;
                Ok((name.clone(), key, value.clone(), t))
            })
            .collect()
    }

    /// A NUL cannot reach a shell or a file name: refused where it stands.
    fn no_nul(&self, value: &S<String>, key: &str) -> Result<(), ConfigError> {
        if value.get_ref().contains('\0') {
            return Err(self
                .error(
                    value.span(),
                    key,
                    "a NUL character (`\\u0000`) cannot be part of a value",
                )
                .with_hint("remove it; no command, path or file can carry it"));
        }
        Ok(())
    }

    fn template(&self, value: &S<String>, key: &str) -> Result<Template, ConfigError> {
        self.no_nul(value, key)?;
        Template::parse(value.get_ref()).map_err(|e| {
            let span = self.inner_span(value, e.range);
            self.error(span, key, e.message)
        })
    }

    fn vars(&self, raw: &RawVars, key: &str) -> Result<Vars, ConfigError> {
        let mut vars = Vars::new();
        for (name, value) in raw {
            if LOAD_NAMES.contains(&name.as_str()) || RUN_NAMES.contains(&name.as_str()) {
                return Err(self.error(
                    value.span(),
                    &format!("{key}.{name}"),
                    format!("`{name}` is a built-in placeholder and cannot be redefined"),
                ));
            }
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                || name.is_empty()
            {
                return Err(self.error(
                    value.span(),
                    &format!("{key}.{name}"),
                    format!("`{name}` is not a valid variable name (letters, digits, `_`, `-`)"),
                ));
            }
            self.no_nul(value, &format!("{key}.{name}"))?;
            vars.insert(name.clone(), value.get_ref().clone());
        }
        Ok(vars)
    }

    fn positive(&self, value: &S<i64>, key: &str, min: i64) -> Result<i64, ConfigError> {
        self.bounded(value, key, min, 100_000)
    }

    fn bounded(&self, value: &S<i64>, key: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
        let v = *value.get_ref();
        if v < min || v > max {
            return Err(self.error(
                value.span(),
                key,
                format!("must be a whole number from {min} to {max}, not {v}"),
            ));
        }
        Ok(v)
    }

    /// A duration within `range` (inclusive): no config can make a deploy
    /// wait for ever or overflow a clock.
    fn duration(
        &self,
        value: &S<String>,
        key: &str,
        range: (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        let d = parse_duration(value.get_ref()).ok_or_else(|| {
            self.error(
                value.span(),
                key,
                format!("`{}` is not a duration", value.get_ref()),
            )
            .with_hint("write a number and a unit: `500ms`, `30s`, `2m`")
        })?;
        let (min, max) = range;
        if d < min || d > max {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "`{}` is out of range: {key} is from {} to {}",
                    value.get_ref(),
                    crate::base::time::human(min),
                    crate::base::time::human(max)
                ),
            ));
        }
        Ok(d)
    }

    fn check_word(&self, value: &S<String>, key: &str) -> Result<(), ConfigError> {
        let v = value.get_ref();
        if v.is_empty()
            || v.starts_with('-')
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "`{v}` may only use letters, digits, `-`, `_` and `.`, and not start with `-`"
                ),
            ));
        }
        Ok(())
    }

    fn relative_path(&self, value: &S<String>, key: &str) -> Result<String, ConfigError> {
        let v = value.get_ref().trim_end_matches('/');
        let bad = v.is_empty()
            || v.starts_with('/')
            || v.split('/')
                .any(|part| part.is_empty() || part == ".." || part == ".")
            || v.contains('\n');
        if bad {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "`{}` must be a relative path inside the release, without `..`",
                    value.get_ref()
                ),
            ));
        }
        Ok(v.to_string())
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest
/// known key, when one is close.
pub(super) fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let candidates = expected.split('`').skip(1).step_by(2);
    let (best, distance) = candidates
        .map(|c| (c, strsim::levenshtein(unknown, c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= 2.max(unknown.len() / 3)).then(|| format!("did you mean `{best}`?"))
}

/// `ssh.connect_timeout` and `ssh.keepalive`: 1s to 10m.
const SSH_TIMES: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));
/// `deploy.health.timeout`: 100ms to 10m per attempt.
const HEALTH_TIMEOUT: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(600));
/// `deploy.health.interval`: 0 to 10m between attempts.
const HEALTH_INTERVAL: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(600));

/// What a preset fills in where the config is silent.
struct Preset {
    /// What runs `manage.py`.
    python: String,
    build: Vec<S<raw::RawBuild>>,
    migrate: S<String>,
    check: S<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys() {
        assert_eq!(
            did_you_mean("unknown field `bulid`, expected one of `path`, `build`"),
            Some("did you mean `build`?".to_string())
        );
        assert_eq!(
            did_you_mean("unknown field `zzzzzz`, expected one of `path`, `build`"),
            None
        );
    }
}
