//! Stage two of loading: turns the raw TOML structs into the validated
//! config, checking every value, placeholder and cross-reference, and
//! pointing at the file, line, column and key when something is wrong.
//! One file per part of `gantry.toml`; `values` has the checks they share.

mod app;
mod database;
mod deploy;
mod environments;
mod roles;
mod setup;
mod values;

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::raw::{RawConfig, RawDatabase, S};
use super::*;
use database::Preset;

pub(crate) use values::did_you_mean;

pub(super) struct Loader<'a> {
    pub(super) file: &'a Path,
    pub(super) source: &'a str,
}

/// Every template of the config outside `deploy.path`, with the key it
/// came from: each is checked against every host's variables.
type Templates = Vec<(String, S<String>, Template)>;

/// `deploy.parallel` and `deploy.batch`, for environments that do not set
/// their own.
struct Defaults {
    parallel: usize,
    batch: usize,
}

/// What every environment is checked and built with.
struct Context<'a> {
    app_name: &'a str,
    ssh_config: Option<&'a Path>,
    global_vars: &'a Vars,
    /// `[vars]` as written, for pointing at a value.
    global_raw: &'a raw::RawVars,
    path_raw: &'a S<String>,
    path_template: &'a Template,
    templates: &'a Templates,
    parallel: usize,
    batch: usize,
    preset: Option<&'a Preset>,
    database: Option<&'a S<RawDatabase>>,
    /// What `ssh -G` says of each SSH host, asked of all at once.
    views: SshViews,
    /// The roles a host may name: `web` and `[roles.NAME]`'s.
    roles: Vec<String>,
}

/// Every SSH host name the environments name (addresses that do not
/// parse are reported later, where they are checked).
fn ssh_targets(
    raw: Option<&S<std::collections::BTreeMap<String, S<super::raw::RawEnvironment>>>>,
) -> Vec<String> {
    let mut targets = Vec::new();
    for env in raw.iter().flat_map(|r| r.get_ref().values()) {
        for host in env.get_ref().hosts.iter().flat_map(|h| h.get_ref()) {
            let address = match host.get_ref() {
                super::raw::RawHost::Address(a) => a,
                super::raw::RawHost::Table(t) => &t.address,
            };
            if let Ok(Target::Ssh { host, .. }) = parse_target(address) {
                targets.push(host);
            }
        }
    }
    targets
}

impl Loader<'_> {
    /// A name written as a table key (an environment's, a role's): letters,
    /// digits, `-` and `_` only.
    fn plain_name(
        &self,
        name: &str,
        what: &str,
        span: Range<usize>,
        key: &str,
    ) -> Result<(), ConfigError> {
        if name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(());
        }
        Err(self.error(
            span,
            key,
            format!("`{name}` is not a valid {what} name (letters, digits, `-`, `_`)"),
        ))
    }

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
        let mut app = self.app(app_raw.as_ref(), &dir)?;
        let ssh = self.ssh(raw.ssh, &dir)?;
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
        let Some(path_raw) = d.path.take() else {
            return Err(self
                .error(deploy_span, "deploy.path", "missing key `path`")
                .with_hint("the site's folder on each host, e.g. `path = \"/srv/{app}\"`"));
        };
        let path_template = self.template(&path_raw, "deploy.path")?;
        let global_vars = self.vars(&raw.vars, "vars")?;
        let mut templates = Templates::new();
        let (deploy, defaults) = self.deploy(&d, &dir, &mut templates)?;
        let verify = self.verify(raw.verify, &mut templates)?;
        let roles = self.roles(&raw.roles, &mut templates)?;
        let hooks = self.hooks(raw.hooks.as_ref(), &roles, &mut templates)?;
        let cx = Context {
            app_name: &app.name,
            ssh_config: ssh.config.as_deref(),
            global_vars: &global_vars,
            global_raw: &raw.vars,
            path_raw: &path_raw,
            path_template: &path_template,
            templates: &templates,
            parallel: defaults.parallel,
            batch: defaults.batch,
            preset: preset.as_ref(),
            database: raw.database.as_ref(),
            views: ssh_views(
                ssh_targets(raw.environments.as_ref()),
                ssh.config.as_deref(),
            ),
            roles: std::iter::once(WEB.to_string())
                .chain(roles.iter().map(|r| r.name.clone()))
                .collect(),
        };
        let environments = self.environments(raw.environments, &cx)?;
        let setup = self.setup(
            &raw.env,
            &raw.secrets,
            raw.setup.as_ref(),
            preset.is_some(),
            deploy.handover.is_some(),
            &environments,
            &dir,
        )?;
        let mut deploy = deploy;
        if let Some(health) = deploy.health.as_mut() {
            health.hosts_var = setup
                .env
                .iter()
                .map(|(name, _)| name)
                .find(|name| name.contains("ALLOWED_HOST"))
                .cloned();
        }
        Ok(Config {
            file: self.file.to_path_buf(),
            dir,
            app,
            ssh,
            deploy,
            verify,
            setup,
            roles,
            hooks,
            environments,
        })
    }
}
