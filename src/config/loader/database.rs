//! `app.preset`, `[database]` and `tags`.

use super::super::raw::{self, S};
use super::super::*;
use super::Loader;

/// What a preset fills in where the config is silent.
pub(super) struct Preset {
    /// What runs `manage.py`.
    pub python: String,
    pub build: Vec<S<raw::RawBuild>>,
    pub migrate: S<String>,
    pub check: S<String>,
}

impl Loader<'_> {
    /// `preset = "django"`: the usual build, migrate and pending-migrations
    /// check, with `{python}` when the config defines it (a shared
    /// virtualenv), else the release's own `.venv`.
    pub(super) fn preset(
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
    pub(super) fn database(
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
        let (checks, reviewed) = self.checks(&o, &g, &key_of("checks", o.checks.is_some()))?;
        let pick = |a: Option<S<String>>, b: Option<S<String>>| (a.is_some(), a.or(b));
        let (own_engine, engine) = pick(o.engine, g.engine);
        let (own_path, path) = pick(o.path, g.path);
        let (own_url, url) = pick(o.url, g.url);
        let (own_var, env_var) = pick(o.env_var, g.env_var);
        let (own_check, check) = pick(o.check, g.check);
        let (own_reverse, reverse) = pick(o.reverse, g.reverse);
        let check = check.or_else(|| preset.map(|p| p.check.clone()));
        let keep = o.keep_backups.is_some();
        let keep_backups = match o.keep_backups.or(g.keep_backups) {
            Some(k) => self.positive(&k, &key_of("keep_backups", keep), 1)? as usize,
            None => 5,
        };
        // Database templates see the host's variables and the deploy's.
        let hosts: Vec<&HostSpec> = hosts.iter().collect();
        let check_template = |value: &S<String>, key: &str| self.host_template(&hosts, value, key);
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
        let env_var = self.env_var(env_var, &engine, &key_of("env_var", own_var))?;
        let optional = |value: &Option<S<String>>, field: &str, own: bool| {
            value
                .as_ref()
                .map(|v| check_template(v, &key_of(field, own)))
                .transpose()
        };
        let check = optional(&check, "check", own_check)?;
        let reverse = optional(&reverse, "reverse", own_reverse)?;
        let (own_sql, sql) = pick(o.sql.clone(), g.sql.clone());
        let sql = optional(&sql, "sql", own_sql)?;
        let own = o.maintenance.is_some();
        let maintenance =
            self.maintenance(o.maintenance.or(g.maintenance), &key_of("maintenance", own))?;
        Ok(Database {
            engine,
            env_var,
            keep_backups,
            check,
            reverse,
            maintenance,
            sql,
            checks,
            reviewed,
        })
    }

    /// `checks = "warn" | "strict" | "off"` and `reviewed`, the
    /// environment's own over the global ones.
    fn checks(
        &self,
        own: &raw::RawDatabase,
        global: &raw::RawDatabase,
        key: &str,
    ) -> Result<(Checks, Vec<String>), ConfigError> {
        let reviewed = own
            .reviewed
            .clone()
            .or(global.reviewed.clone())
            .unwrap_or_default();
        let Some(v) = own.checks.clone().or(global.checks.clone()) else {
            return Ok((Checks::Warn, reviewed));
        };
        let checks = match v.get_ref().as_str() {
            "warn" => Checks::Warn,
            "strict" => Checks::Strict,
            "off" => Checks::Off,
            other => {
                return Err(self
                    .error(v.span(), key, format!("unknown checks setting `{other}`"))
                    .with_hint("use `warn` (the default), `strict` (refuse the deploy) or `off`"))
            }
        };
        Ok((checks, reviewed))
    }

    /// `maintenance = true | false | "irreversible"`.
    fn maintenance(
        &self,
        value: Option<S<raw::RawMaintenance>>,
        key: &str,
    ) -> Result<Maintenance, ConfigError> {
        let Some(m) = value else {
            return Ok(Maintenance::Never);
        };
        match m.get_ref() {
            raw::RawMaintenance::On(true) => Ok(Maintenance::Always),
            raw::RawMaintenance::On(false) => Ok(Maintenance::Never),
            raw::RawMaintenance::When(w) if w == "irreversible" => Ok(Maintenance::Irreversible),
            raw::RawMaintenance::When(w) => Err(self
                .error(m.span(), key, format!("unknown maintenance `{w}`"))
                .with_hint("use `true`, `false` or `\"irreversible\"` (hold writes only when the rehearsal finds that only the backup could put the deploy back)")),
        }
    }

    /// The variable that gives the app its database: as set, or the
    /// engine's usual one.
    fn env_var(
        &self,
        value: Option<S<String>>,
        engine: &Engine,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        match value {
            Some(v) if !crate::base::shell::is_var_name(v.get_ref()) => Err(self.error(
                v.span(),
                key,
                format!("`{}` is not a valid environment variable name", v.get_ref()),
            )),
            Some(v) => Ok(Some(v.get_ref().clone())),
            None => Ok(match engine {
                Engine::None => None,
                Engine::Sqlite { .. } => Some("DB_PATH".to_string()),
                Engine::Postgres { .. } => Some("DATABASE_URL".to_string()),
            }),
        }
    }

    pub(super) fn tags(
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
}
