//! Stage one of loading: the TOML document as serde structs with spans.
//! Only this file knows the config is TOML; `config::load` turns these into
//! the validated types the rest of Gantry uses.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;
pub type RawVars = BTreeMap<String, S<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub app: Option<RawApp>,
    pub ssh: Option<RawSsh>,
    pub deploy: Option<S<RawDeploy>>,
    #[serde(default)]
    pub vars: RawVars,
    pub verify: Option<RawVerify>,
    pub database: Option<S<RawDatabase>>,
    /// Values for the shared `.env` file.
    #[serde(default)]
    pub env: RawVars,
    #[serde(default)]
    pub secrets: BTreeMap<String, S<RawSecret>>,
    pub setup: Option<RawSetup>,
    #[serde(default)]
    pub roles: BTreeMap<String, S<RawRole>>,
    pub hooks: Option<S<RawHooks>>,
    pub environments: Option<S<BTreeMap<String, S<RawEnvironment>>>>,
}

/// `[roles.NAME]`: what the hosts of a role other than `web` restart and
/// check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub restart: Option<S<String>>,
    pub check: Option<S<String>>,
    pub stop: Option<S<String>>,
}

/// Where a secret comes from: generated once on the host, this machine's
/// environment, or a file that is not committed.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub generate: Option<bool>,
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSetup {
    pub sudo: Option<S<bool>>,
    pub env_file: Option<S<String>>,
    pub systemd: Option<S<RawService>>,
    pub nginx: Option<S<RawService>>,
}

/// A file installed from a template: a systemd unit or an nginx site.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Option<S<String>>,
    pub template: Option<S<String>>,
    pub dir: Option<S<String>>,
    pub reload: Option<S<String>>,
}

/// `[database]`, and `[environments.NAME.database]` overriding it key by key.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub engine: Option<S<String>>,
    pub path: Option<S<String>>,
    pub url: Option<S<String>>,
    pub env_var: Option<S<String>>,
    pub keep_backups: Option<S<i64>>,
    pub check: Option<S<String>>,
    pub reverse: Option<S<String>>,
    pub maintenance: Option<S<RawMaintenance>>,
    pub sql: Option<S<String>>,
    pub checks: Option<S<String>>,
    pub reviewed: Option<Vec<String>>,
}

/// `maintenance = true`, `false`, or `"irreversible"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawMaintenance {
    On(bool),
    When(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub command: Option<S<String>>,
    #[serde(default)]
    pub env: RawVars,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTags {
    pub scheme: Option<S<String>>,
    pub moving: Option<S<String>>,
    pub history: Option<S<String>>,
    pub prefix: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: Option<S<String>>,
    pub root: Option<S<String>>,
    pub preset: Option<S<String>>,
    pub remote: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub config: Option<S<String>>,
    pub known_hosts: Option<S<String>>,
    pub connect_timeout: Option<S<String>>,
    pub keepalive: Option<S<String>>,
    pub max_concurrent_starts: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeploy {
    pub path: Option<S<String>>,
    pub keep_releases: Option<S<i64>>,
    pub parallel: Option<S<i64>>,
    pub batch: Option<S<i64>>,
    #[serde(default)]
    pub shared: Vec<S<String>>,
    #[serde(default)]
    pub build: Vec<S<RawBuild>>,
    pub migrate: Option<S<String>>,
    pub restart: Option<S<String>>,
    pub logs: Option<S<String>>,
    pub stop: Option<S<String>>,
    pub serve: Option<S<String>>,
    #[serde(default)]
    pub env: RawVars,
    pub health: Option<S<RawHealth>>,
    pub handover: Option<S<RawHandover>>,
    pub balancer: Option<S<RawBalancer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBalancer {
    pub leave: S<String>,
    pub join: S<String>,
    pub drain: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHandover {
    pub ports: S<Vec<S<String>>>,
    pub start: S<String>,
    pub stop: S<String>,
    pub reload: Option<S<String>>,
    pub upstream: Option<S<String>>,
    pub drain: Option<S<String>>,
    pub check: Option<S<String>>,
}

/// A build step: a command, or a table that says what the command depends
/// on and produces, so it can be skipped when its inputs did not change.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawBuild {
    Command(String),
    Cached(RawCachedBuild),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCachedBuild {
    pub run: String,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
    /// A command whose output is part of the key (`python3 --version`).
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub url: S<String>,
    pub status: Option<S<i64>>,
    pub body: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub retries: Option<S<i64>>,
    pub interval: Option<S<String>>,
    pub on: Option<S<String>>,
    pub ca: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    pub hosts: Option<S<Vec<S<RawHost>>>>,
    #[serde(default)]
    pub vars: RawVars,
    pub parallel: Option<S<i64>>,
    pub batch: Option<S<i64>>,
    pub migrate_host: Option<S<String>>,
    pub migrate_role: Option<S<String>>,
    pub requires: Option<S<String>>,
    pub tags: Option<S<RawTags>>,
    pub database: Option<S<RawDatabase>>,
}

/// A host: `"user@host:port"`, or `{ address = "...", vars = { ... } }`.
/// Deserialized by hand because serde's untagged enums lose spans.
#[derive(Debug)]
pub enum RawHost {
    Address(String),
    Table(RawHostTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHostTable {
    pub address: String,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// What the host runs: `web` (the default) and `[roles.NAME]` names.
    pub roles: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawHost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table(
            d,
            "a host address string or a table `{ address = \"...\", vars = { ... } }`",
            RawHost::Address,
            RawHost::Table,
        )
    }
}

/// A value written as a string or as a table (by hand: serde's untagged
/// enums lose spans and say nothing useful when neither fits).
fn string_or_table<'de, D, T, R>(
    d: D,
    expecting: &'static str,
    from_str: fn(String) -> R,
    from_table: fn(T) -> R,
) -> Result<R, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Visitor<T, R> {
        expecting: &'static str,
        from_str: fn(String) -> R,
        from_table: fn(T) -> R,
    }
    impl<'de, T: Deserialize<'de>, R> serde::de::Visitor<'de> for Visitor<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.from_str)(v.to_string()))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(self.from_table)
        }
    }
    d.deserialize_any(Visitor {
        expecting,
        from_str,
        from_table,
    })
}

/// `[hooks]`: a command at each named point of a deploy or a rollback.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    pub before_deploy: Option<S<RawHook>>,
    pub after_prepare: Option<S<RawHook>>,
    pub before_switch: Option<S<RawHook>>,
    pub after_switch: Option<S<RawHook>>,
    pub after_deploy: Option<S<RawHook>>,
    pub on_failure: Option<S<RawHook>>,
    pub after_rollback: Option<S<RawHook>>,
}

/// A hook: `"command"` (run on this machine), or `{ run = "...", on =
/// "ROLE", advisory = true }`. Deserialized by hand, as `RawHost`.
#[derive(Debug)]
pub enum RawHook {
    Command(String),
    Table(RawHookTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHookTable {
    pub run: String,
    pub on: Option<String>,
    #[serde(default)]
    pub advisory: bool,
}

impl<'de> Deserialize<'de> for RawHook {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table(
            d,
            "a command string or a table `{ run = \"...\", on = \"ROLE\", advisory = true }`",
            RawHook::Command,
            RawHook::Table,
        )
    }
}
