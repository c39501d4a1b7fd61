//! `[env]`, `[secrets]` and `[setup]`: what `gantry setup` writes on each
//! host (the `.env` file, the systemd unit, the nginx site).

use std::collections::BTreeMap;
use std::path::Path;

use super::super::raw::{self, S};
use super::super::*;
use super::Loader;

impl Loader<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn setup(
        &self,
        env_raw: &raw::RawVars,
        secrets_raw: &BTreeMap<String, S<raw::RawSecret>>,
        raw: Option<&raw::RawSetup>,
        django: bool,
        handover: bool,
        environments: &[Environment],
        dir: &Path,
    ) -> Result<Setup, ConfigError> {
        let hosts: Vec<&HostSpec> = environments.iter().flat_map(|e| &e.hosts).collect();
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
            env.push((name, self.host_template(&hosts, &value, &key)?));
        }
        let secrets = self.secrets(secrets_raw, dir)?;
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
            let built_in = django && value.get_ref().template.is_none();
            // The preset's gunicorn, restarted in place, is started with a
            // socket systemd holds across restarts.
            if kind == ServiceKind::Systemd && built_in && !handover {
                let socket = ServiceKind::Socket;
                services.push(self.service(socket, value, field, django, &hosts, dir)?);
            }
            let kind = match kind {
                ServiceKind::Systemd if built_in && handover => ServiceKind::PerPort,
                kind => kind,
            };
            services.push(self.service(kind, value, field, django, &hosts, dir)?);
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

    /// `[secrets]`: where each comes from, and its value when this
    /// machine has it (registered, so it is masked in all output).
    pub(super) fn secrets(
        &self,
        secrets_raw: &BTreeMap<String, S<raw::RawSecret>>,
        dir: &Path,
    ) -> Result<Vec<Secret>, ConfigError> {
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
        Ok(secrets)
    }

    /// One of `[setup.systemd]` and `[setup.nginx]` (or the socket the
    /// preset's systemd unit comes with; with a handover, the preset's
    /// unit is a template, one instance per port).
    pub(super) fn service(
        &self,
        kind: ServiceKind,
        value: &S<raw::RawService>,
        field: &str,
        django: bool,
        hosts: &[&HostSpec],
        dir: &Path,
    ) -> Result<Service, ConfigError> {
        let r = value.get_ref();
        let key = |k: &str| format!("setup.{field}.{k}");
        let (template, origin) =
            match &r.template {
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
                        ServiceKind::PerPort => {
                            include_str!("../../templates/django-gunicorn@.service").to_string()
                        }
                        ServiceKind::Systemd => {
                            include_str!("../../templates/django-gunicorn.service").to_string()
                        }
                        ServiceKind::Socket => {
                            include_str!("../../templates/django-gunicorn.socket").to_string()
                        }
                        ServiceKind::Nginx => {
                            include_str!("../../templates/django-nginx.conf").to_string()
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
            Some(n) => self.host_template(hosts, n, &key("name"))?,
            None => self.host_template(
                hosts,
                &default(match kind {
                    ServiceKind::Systemd | ServiceKind::Socket | ServiceKind::PerPort => {
                        "gunicorn-{app}-{env}"
                    }
                    ServiceKind::Nginx => "{app}-{env}",
                }),
                &key("name"),
            )?,
        };
        let dir_t = match &r.dir {
            Some(d) => self.host_template(hosts, d, &key("dir"))?,
            None => Template::literal(match kind {
                ServiceKind::Systemd | ServiceKind::Socket | ServiceKind::PerPort => {
                    "/etc/systemd/system"
                }
                ServiceKind::Nginx => "/etc/nginx/sites-enabled",
            }),
        };
        let reload = match &r.reload {
            Some(c) if c.get_ref().is_empty() => None,
            Some(c) => Some(self.host_template(hosts, c, &key("reload"))?),
            None => Some(Template::literal(match kind {
                // A template unit's instances are started by the handover.
                ServiceKind::PerPort => "systemctl daemon-reload",
                ServiceKind::Systemd | ServiceKind::Socket => {
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
        Ok(Service {
            kind,
            name,
            template,
            origin,
            dir: dir_t,
            reload,
        })
    }

    /// A template of `[setup]`: it may use the host's variables and the
    /// deploy's.
    pub(super) fn host_template(
        &self,
        hosts: &[&HostSpec],
        value: &S<String>,
        key: &str,
    ) -> Result<Template, ConfigError> {
        let t = self.template(value, key)?;
        for host in hosts {
            let known = |n: &str| host.vars.contains_key(n) || RUN_NAMES.contains(&n);
            if let Some((name, range)) = t.unknown_name(known) {
                return Err(self.unknown_placeholder(value, key, name, range, &host.vars, true));
            }
        }
        Ok(t)
    }
}
