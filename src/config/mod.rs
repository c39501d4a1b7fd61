//! The project config, `gantry.toml`: finding it, loading it in two stages
//! (raw TOML with spans in `raw`, then checked in `loader` into the types
//! below), and the errors that point at the file, line, column and key.

mod database;
mod diagnostic;
mod loader;
mod raw;
mod roles;
mod service;
mod ssh_scan;
mod ssh_view;
mod target;
mod template;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use database::{Checks, Database, Engine, Maintenance};
pub use diagnostic::ConfigError;
pub use roles::{Hook, Point, Role, WEB};
pub use service::{context_for_check, render};
pub use ssh_view::{local_user, ssh_view, ssh_views, SshView, SshViews};
pub use target::parse_target;
pub use template::{check_values, expanded, Template, VarError, Vars};

use loader::{did_you_mean, Loader};
use raw::RawConfig;

/// The file name Gantry looks for.
pub const FILE_NAME: &str = "gantry.toml";

/// Placeholders known when the config is loaded.
const LOAD_NAMES: &[&str] = &["app", "env", "host", "user", "port"];
/// Placeholders that only exist once a deploy runs.
const RUN_NAMES: &[&str] = &["path", "release", "shared", "current", "commit"];

/// A validated config: nothing past this point knows it was TOML.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    /// The folder holding the config file: the project's git work tree.
    pub dir: PathBuf,
    pub app: App,
    pub ssh: Ssh,
    pub deploy: Deploy,
    pub verify: Option<Verify>,
    pub setup: Setup,
    /// `[roles.NAME]`, by name: hosts of a role other than `web` run its
    /// restart and check (`web` is `[deploy]`'s restart, health and
    /// handover).
    pub roles: Vec<Role>,
    /// `[hooks]`, at the points they name.
    pub hooks: Vec<Hook>,
    /// In the order the file lists them.
    pub environments: Vec<Environment>,
}

/// The project's own functional tests, run from this machine against an
/// environment described to them through variables.
#[derive(Debug, Clone)]
pub struct Verify {
    pub command: Template,
    pub env: Vec<(String, Template)>,
}

/// What `gantry setup` installs, and the shared `.env` every command and
/// the service read.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Install files and run reloads with `sudo -n`.
    pub sudo: bool,
    /// The env file's name inside `shared/`.
    pub env_file: String,
    /// Plain values of the env file (`[env]`).
    pub env: Vec<(String, Template)>,
    pub secrets: Vec<Secret>,
    pub services: Vec<Service>,
    /// An environment has a database: the env file carries its variable
    /// (`DB_PATH`, `DATABASE_URL`), so the app serves from the database
    /// Gantry backs up.
    pub database_env: bool,
}

impl Setup {
    /// Whether there is an env file for commands to read.
    pub fn has_env_file(&self) -> bool {
        !self.env.is_empty() || !self.secrets.is_empty() || self.database_env
    }
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub source: SecretSource,
    /// The value, when this machine has it (environment or file).
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Made once on the host and kept there; Gantry never sees it.
    Generate,
    /// This machine's environment variable.
    Env(String),
    /// A file on this machine (relative to `gantry.toml`), not committed.
    File(PathBuf),
}

/// A systemd unit or an nginx site installed from a template.
#[derive(Debug, Clone)]
pub struct Service {
    pub kind: ServiceKind,
    /// The unit's or site's name (`gunicorn-{domain}`).
    pub name: Template,
    pub template: String,
    /// Where the template came from: a path, or `built-in`.
    pub origin: String,
    /// The folder it is installed in.
    pub dir: Template,
    /// Run after the file changed (`systemctl daemon-reload && …`).
    pub reload: Option<Template>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Systemd,
    /// The systemd socket unit the Django preset's gunicorn is started
    /// with (socket activation), beside its service.
    Socket,
    /// The Django preset's template unit for handovers: one instance per
    /// port (`NAME@PORT`).
    PerPort,
    Nginx,
}

impl ServiceKind {
    pub fn label(self) -> &'static str {
        match self {
            ServiceKind::Systemd => "systemd unit",
            ServiceKind::Socket => "systemd socket",
            ServiceKind::PerPort => "systemd template unit",
            ServiceKind::Nginx => "nginx site",
        }
    }

    /// The installed file's name for a service called `name`.
    pub fn file_name(self, name: &str) -> String {
        match self {
            ServiceKind::Systemd => format!("{name}.service"),
            ServiceKind::Socket => format!("{name}.socket"),
            ServiceKind::PerPort => format!("{}@.service", name.trim_end_matches('@')),
            ServiceKind::Nginx => name.to_string(),
        }
    }
}

/// How deploys to an environment are tagged in git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    None,
    /// A moving tag (`LIVE`, force-pushed) and an immutable history tag
    /// named by a strftime pattern (`DEPLOYED-%F/%H%M`).
    Dated {
        moving: Option<String>,
        history: Option<String>,
    },
    /// `v1`, `v2`, …: counts up from the highest existing tag; never moves
    /// or force-pushes a tag.
    Version {
        prefix: String,
    },
}

#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// Sub-folder of the repo the app lives in; commands run there.
    pub root: Option<String>,
    /// The git remote a commit must be on before it is deployed.
    pub remote: String,
    /// With the Django preset: the Python that runs `manage.py`, through
    /// which the app is asked which database it uses.
    pub django: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct Ssh {
    pub config: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// How often a quiet connection is probed; after three unanswered
    /// probes the host counts as cut off.
    pub keepalive: Duration,
    /// How many connections may be in their handshake at once (sshd's
    /// `MaxStartups` refuses a larger burst).
    pub max_concurrent_starts: usize,
}

#[derive(Debug, Clone)]
pub struct Deploy {
    pub keep_releases: usize,
    pub shared: Vec<SharedPath>,
    pub build: Vec<BuildStep>,
    pub migrate: Option<Template>,
    pub restart: Option<Template>,
    /// Prints the app's recent log on a host (`tail -n 20 …`, `journalctl
    /// -u …`): shown when a health check fails.
    pub logs: Option<Template>,
    /// Stops the app on a host (`systemctl stop …`): run when a first
    /// deploy failed after starting it, so nothing runs from a release
    /// that is gone.
    pub stop: Option<Template>,
    /// Runs the app in the foreground on `$GANTRY_PORT`: a rollback starts
    /// the release it goes back to this way against the rehearsal's copy
    /// of the data, and checks it, before the real database is touched.
    pub serve: Option<Template>,
    pub env: Vec<(String, Template)>,
    pub health: Option<Health>,
    /// Start the new release beside the old one and move traffic, instead
    /// of restarting (`[deploy.handover]`).
    pub handover: Option<Handover>,
    /// Commands that take a host out of a load balancer Gantry does not
    /// run, and put it back (`[deploy.balancer]`).
    pub balancer: Option<Balancer>,
}

/// `[deploy.balancer]`: run on this machine, with the host's variables,
/// around every activation of a host (deploy, rollback, switch-back).
#[derive(Debug, Clone)]
pub struct Balancer {
    /// Takes the host out of the pool, before its app restarts.
    pub leave: Template,
    /// Puts it back, once its health check has passed.
    pub join: Template,
    /// How long the host may finish the requests it took after `leave`.
    pub drain: Duration,
}

/// `[deploy.handover]`: two ports (or unix sockets) a release's app runs
/// on in turn, how to start and stop a release's app on one (`$GANTRY_PORT`),
/// the upstream file the proxy includes, how to make it reload.
#[derive(Debug, Clone)]
pub struct Handover {
    pub ports: [Template; 2],
    pub start: Template,
    pub stop: Template,
    pub reload: Template,
    pub upstream: Template,
    /// How long the old app may finish its requests before it is stopped.
    pub drain: Duration,
    /// The path checked on the new app's port before traffic moves.
    pub check: String,
}

/// A build step, and what it depends on and produces when it says so.
#[derive(Debug, Clone)]
pub struct BuildStep {
    pub run: Template,
    pub cache: Option<BuildCache>,
}

/// A build step that is skipped, its outputs copied from the release that
/// serves, when its inputs (and key) are what they were there.
#[derive(Debug, Clone)]
pub struct BuildCache {
    /// Files, relative to the release's root, whose bytes the step depends on.
    pub inputs: Vec<String>,
    /// Files or folders, relative to the release's root, that it makes.
    pub outputs: Vec<String>,
    /// A command whose output is part of the key (`python3 --version`).
    pub key: Option<Template>,
}

/// A file or folder kept in `shared/` and linked into every release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPath {
    /// Relative to the release's root, without a trailing slash.
    pub path: String,
    pub dir: bool,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub url: Template,
    pub status: u16,
    /// Text the answer must contain; may use placeholders such as `{commit}`.
    pub body: Option<Template>,
    pub timeout: Duration,
    pub retries: u32,
    pub interval: Duration,
    /// Make the request on the host itself rather than from this machine.
    pub on_host: bool,
    /// A PEM file of certificate authorities to trust (a private CA) for
    /// checks made from this machine, instead of the bundled web roots.
    pub ca: Option<PathBuf>,
    /// The `[env]` variable that Django's `ALLOWED_HOSTS` reads (a name
    /// holding `ALLOWED_HOST`), named when a check answers 400.
    pub hosts_var: Option<String>,
}

impl Health {
    /// The check a handover makes on the new app's port when there is no
    /// `deploy.health`: status 200, 40 tries 250 ms apart.
    pub fn plain() -> Health {
        Health {
            url: Template::literal("http://127.0.0.1/"),
            status: 200,
            body: None,
            timeout: Duration::from_secs(2),
            retries: 40,
            interval: Duration::from_millis(250),
            on_host: true,
            ca: None,
            hosts_var: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub hosts: Vec<HostSpec>,
    /// How many hosts are worked on at once.
    pub parallel: usize,
    /// Hosts activated together; 0 means all at once.
    pub batch: usize,
    /// Index into `hosts` of the host that runs migrations.
    pub migrate_host: usize,
    /// Only commits deployed to and verified on this environment may be
    /// deployed here.
    pub requires: Option<String>,
    pub tags: Tags,
    pub database: Database,
}

/// One host of one environment, with its variables resolved.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// The address as written in the config, used in every message.
    pub name: String,
    pub target: Target,
    /// The site's folder on the host.
    pub path: String,
    /// Load-time variables: built-ins plus the user's, host's last.
    pub vars: Vars,
    /// What it runs: `web` and `[roles.NAME]` names.
    pub roles: Vec<String>,
}

impl HostSpec {
    /// Whether the host has role `name`.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r == name)
    }

    /// Whether it runs the web app (`[deploy]`'s restart and health).
    pub fn web(&self) -> bool {
        self.has_role(WEB)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local,
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

impl Config {
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                let known: Vec<_> = self.environments.iter().map(|e| e.name.as_str()).collect();
                ConfigError::at(
                    self.file.clone(),
                    "",
                    None,
                    format!("environments.{name}"),
                    format!("there is no environment `{name}`"),
                )
                .with_hint(if known.is_empty() {
                    "add an `[environments.NAME]` table with `hosts = [...]`".to_string()
                } else {
                    format!("environments in this file: {}", known.join(", "))
                })
            })
    }
}

/// Git's rules for a ref name, for the parts a tag pattern can break.
pub fn valid_tag_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.ends_with(".lock")
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '+'))
}

/// Finds `gantry.toml` in `start` or the nearest folder above it.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|p| p.is_file())
}

/// Reads and validates a config file.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(file).map_err(|e| {
        ConfigError::at(
            file.to_path_buf(),
            "",
            None,
            "",
            format!("cannot read the config file: {e}"),
        )
    })?;
    let source = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            // Point at the first byte that is not UTF-8.
            let at = e.utf8_error().valid_up_to();
            let shown = String::from_utf8_lossy(e.as_bytes()).into_owned();
            return Err(ConfigError::at(
                file.to_path_buf(),
                &shown,
                Some(at..at + char::REPLACEMENT_CHARACTER.len_utf8()),
                "",
                "the config file is not UTF-8 text",
            )
            .with_hint("save it as UTF-8"));
        }
    };
    parse(file, &source)
}

/// Validates config text; `file` is only used in messages and to resolve
/// relative paths.
pub fn parse(file: &Path, source: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(source).map_err(|e| {
        let span = e.span();
        let key = span
            .clone()
            .map(|s| diagnostic::key_at(source, s.start))
            .unwrap_or_default();
        let message = e.message().trim_end().replace('\n', " ");
        let hint = did_you_mean(&message);
        let error = ConfigError::at(file.to_path_buf(), source, span, key, message);
        match hint {
            Some(h) => error.with_hint(h),
            None => error,
        }
    })?;
    Loader { file, source }.load(raw)
}

#[cfg(test)]
mod tests;
