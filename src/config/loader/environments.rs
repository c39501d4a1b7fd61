//! `[environments.NAME]`: each environment's hosts (with what OpenSSH
//! will use for them), batches, migrate host, tags and database, and the
//! `requires` chain between environments.

use std::collections::BTreeMap;
use std::ops::Range;

use super::super::raw::{self, RawHost, S};
use super::super::VarError;
use super::super::*;
use super::{Context, Loader};

/// The environments as written.
type RawEnvironments = Option<S<BTreeMap<String, S<raw::RawEnvironment>>>>;

impl Loader<'_> {
    pub(super) fn environments(
        &self,
        raw: RawEnvironments,
        cx: &Context<'_>,
    ) -> Result<Vec<Environment>, ConfigError> {
        let Some(envs_raw) = raw else {
            return Err(self.no_environments());
        };
        let mut env_list: Vec<(String, S<raw::RawEnvironment>)> =
            envs_raw.into_inner().into_iter().collect();
        env_list.sort_by_key(|(_, e)| e.span().start);
        let mut environments = Vec::new();
        let mut requires_spans = Vec::new();
        for (env_name, env_raw) in env_list {
            let (env, requires) = self.environment(env_name, env_raw, cx)?;
            environments.push(env);
            requires_spans.push(requires);
        }
        if environments.is_empty() {
            return Err(self.no_environments());
        }
        self.check_requires(&environments, &requires_spans)?;
        Ok(environments)
    }

    /// One environment, and where its `requires` is written.
    pub(super) fn environment(
        &self,
        env_name: String,
        env_raw: S<raw::RawEnvironment>,
        cx: &Context<'_>,
    ) -> Result<(Environment, Option<Range<usize>>), ConfigError> {
        let prefix = format!("environments.{env_name}");
        self.plain_name(&env_name, "environment", env_raw.span(), &prefix)?;
        let env_span = env_raw.span();
        let e = env_raw.into_inner();
        let env_vars = self.vars(&e.vars, &format!("{prefix}.vars"))?;
        let Some(hosts_raw) = e.hosts else {
            return Err(self
                .error(env_span, &format!("{prefix}.hosts"), "missing key `hosts`")
                .with_hint(
                    "list the hosts, e.g. `hosts = [\"deploy@web1.example.com\"]` or `[\"local\"]`",
                ));
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
            let levels = (&env_vars, &e.vars);
            let host = self.host(host_raw, &hosts, &env_name, &hosts_key, levels, cx)?;
            hosts.push(host);
        }
        let parallel = match e.parallel {
            Some(p) => self.positive(&p, &format!("{prefix}.parallel"), 1)? as usize,
            None => cx.parallel,
        };
        let batch = match e.batch {
            Some(b) => self.positive(&b, &format!("{prefix}.batch"), 0)? as usize,
            None => cx.batch,
        };
        // By default the first host of `migrate_role` (`web`), or the first.
        let migrate_role = match &e.migrate_role {
            Some(r) if !cx.roles.contains(r.get_ref()) => {
                return Err(self.error(
                    r.span(),
                    &format!("{prefix}.migrate_role"),
                    format!("`{}` is not a role", r.get_ref()),
                ))
            }
            Some(r) => r.get_ref().clone(),
            None => WEB.to_string(),
        };
        let migrate_host = match e.migrate_host {
            None => hosts
                .iter()
                .position(|h| h.has_role(&migrate_role))
                .unwrap_or(0),
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
        let database =
            self.database(cx.preset, cx.database, e.database.as_ref(), &prefix, &hosts)?;
        let env = Environment {
            name: env_name,
            hosts,
            parallel,
            batch,
            migrate_host,
            requires: requires.as_ref().map(|(r, _)| r.clone()),
            tags,
            database,
        };
        Ok((env, requires.map(|(_, span)| span)))
    }

    /// One host of an environment, with its variables.
    pub(super) fn host(
        &self,
        host_raw: &S<RawHost>,
        hosts: &[HostSpec],
        env_name: &str,
        hosts_key: &str,
        (env_vars, env_raw): (&Vars, &raw::RawVars),
        cx: &Context<'_>,
    ) -> Result<HostSpec, ConfigError> {
        let span = host_raw.span();
        let (address, host_vars, roles) = match host_raw.get_ref() {
            RawHost::Address(a) => (a, BTreeMap::new(), None),
            RawHost::Table(t) => (
                &t.address,
                t.vars
                    .iter()
                    .map(|(k, v)| (k.clone(), S::new(span.clone(), v.clone())))
                    .collect(),
                t.roles.clone(),
            ),
        };
        let roles = self.host_roles(roles, span.clone(), hosts_key, cx)?;
        let address = S::new(span.clone(), address.clone());
        let address = &address;
        let target = parse_target(address.get_ref()).map_err(|why| {
                    self.error(address.span(), hosts_key, format!("bad host `{}`: {why}", address.get_ref()))
                        .with_hint("write `local`, `host`, `user@host` or `user@host:port` (names from ~/.ssh/config work too)")
                })?;
        if hosts
            .iter()
            .any(|h: &HostSpec| h.name == *address.get_ref())
        {
            return Err(self.error(
                address.span(),
                hosts_key,
                format!("host `{}` is listed twice", address.get_ref()),
            ));
        }
        let host_raw_vars = host_vars;
        let host_vars = self.vars(&host_raw_vars, &format!("{hosts_key}.vars"))?;
        let mut vars = Vars::new();
        vars.insert("app".into(), cx.app_name.to_string());
        vars.insert("env".into(), env_name.to_string());
        let (host, user, port) = match &target {
            Target::Local => ("localhost".to_string(), local_user(), String::new()),
            Target::Ssh { user, host, port } => {
                // What OpenSSH itself will use: the ssh_config's
                // `User` and `HostName` for this host.
                let view = match cx.views.get(host) {
                    Some(view) => view.clone(),
                    None => ssh_view(host, cx.ssh_config),
                };
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
        vars.extend(cx.global_vars.clone());
        vars.extend(env_vars.clone());
        vars.extend(host_vars);
        let env_key = format!("environments.{env_name}.vars");
        let levels = [
            (&host_raw_vars, format!("{hosts_key}.vars")),
            (env_raw, env_key),
            (cx.global_raw, "vars".to_string()),
        ];
        self.check_var_values(&vars, &levels)?;
        let known = |n: &str| vars.contains_key(n);
        if let Some((name, range)) = cx.path_template.unknown_name(known) {
            return Err(self.unknown_placeholder(
                cx.path_raw,
                "deploy.path",
                name,
                range,
                &vars,
                false,
            ));
        }
        for (key, value, t) in cx.templates {
            let known = |n: &str| vars.contains_key(n) || RUN_NAMES.contains(&n);
            if let Some((name, range)) = t.unknown_name(known) {
                return Err(self.unknown_placeholder(value, key, name, range, &vars, true));
            }
        }
        let path = cx.path_template.render(&vars);
        if !path.starts_with('/') {
            return Err(self.error(
                cx.path_raw.span(),
                "deploy.path",
                format!(
                    "the site's path must be absolute, but for host `{}` it is `{path}`",
                    address.get_ref()
                ),
            ));
        }
        Ok(HostSpec {
            name: address.get_ref().clone(),
            target,
            path: path.trim_end_matches('/').to_string(),
            vars,
            roles,
        })
    }

    /// A host's `roles` (`web` when it names none): each one known.
    fn host_roles(
        &self,
        roles: Option<Vec<String>>,
        span: Range<usize>,
        hosts_key: &str,
        cx: &Context<'_>,
    ) -> Result<Vec<String>, ConfigError> {
        let roles = roles.unwrap_or_else(|| vec![WEB.to_string()]);
        let roles_key = format!("{hosts_key}.roles");
        if roles.is_empty() {
            return Err(self
                .error(span.clone(), &roles_key, "a host needs at least one role")
                .with_hint("leave `roles` out for the web app alone (`[\"web\"]`)"));
        }
        if let Some(unknown) = roles.iter().find(|r| !cx.roles.contains(r)) {
            return Err(self
                .error(
                    span.clone(),
                    &roles_key,
                    format!("`{unknown}` is not a role"),
                )
                .with_hint(format!(
                    "the roles are {}: add `[roles.{unknown}]` with its `restart` and `check`",
                    cx.roles
                        .iter()
                        .map(|r| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
        }
        Ok(roles)
    }

    /// Every `[vars]` value can be filled in for this host: the names it
    /// uses exist and none comes back to itself; else the error points at
    /// the value where it is written (host, environment or global).
    fn check_var_values(
        &self,
        vars: &Vars,
        levels: &[(&raw::RawVars, String)],
    ) -> Result<(), ConfigError> {
        let Err((name, why)) = check_values(vars) else {
            return Ok(());
        };
        let (value, key) = levels
            .iter()
            .find_map(|(raw, key)| raw.get(&name).map(|v| (v, format!("{key}.{name}"))))
            .expect("a user variable is written at one of the levels");
        Err(match why {
            VarError::Unknown {
                name: unknown,
                range,
            } => self.unknown_placeholder(value, &key, &unknown, range, vars, true),
            VarError::Cycle { chain } => self.error(
                value.span(),
                &key,
                format!("`{name}` refers to itself: {}", chain.join(" → ")),
            ),
        })
    }

    /// Every `requires` names an environment of the file, and the chain
    /// ends instead of coming back round.
    pub(super) fn check_requires(
        &self,
        environments: &[Environment],
        requires_spans: &[Option<Range<usize>>],
    ) -> Result<(), ConfigError> {
        for (env, requires) in environments.iter().zip(requires_spans) {
            let (Some(name), Some(span)) = (&env.requires, requires) else {
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
        Ok(())
    }
}
