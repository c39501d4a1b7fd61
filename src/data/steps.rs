//! What runs on one host for one release, as scripts: the prepare phase,
//! the migrate phase (pending check, backup, migration) and the user's
//! commands with their variables. `plan` prints these; `deploy`,
//! `rehearse`, `rollback` and `restore` run them.

use crate::config::{Config, Database, Environment, HostSpec, Template};
use crate::data::database::{Db, Kind};
use crate::remote::release::{self, Layout, Planned};

/// What the pending check prints when the SQLite database did not exist
/// before it ran.
pub const NO_DATABASE_MARK: &str = "gantry: no database yet";

/// What a cached build step prints when its inputs did not change and it
/// reused the serving release's outputs.
pub const REUSED_MARK: &str = "gantry: inputs unchanged, outputs reused";

/// The steps of one release on one host, with its variables: what `plan`
/// prints and `deploy` runs.
pub struct Steps<'a> {
    pub config: &'a Config,
    pub spec: &'a HostSpec,
    pub layout: &'a Layout,
    pub release: &'a str,
    pub commit: &'a str,
    /// Where the app's commands find the database (`DB_PATH=…`).
    pub db_env: Vec<(String, String)>,
    /// The upload keeps a pristine copy of the source, the base of the next
    /// deploy's delta (not in a rehearsal's scratch area).
    pub keep_source: bool,
}

impl<'a> Steps<'a> {
    pub fn new(
        config: &'a Config,
        env: &Environment,
        spec: &'a HostSpec,
        layout: &'a Layout,
        release: &'a str,
        commit: &'a str,
    ) -> Steps<'a> {
        let vars = release::run_vars(spec, layout, Some(release), Some(commit));
        let db_env = Db::new(&env.database, &vars, "")
            .map(|db| db.app_env(&db.location))
            .unwrap_or_default();
        Steps {
            config,
            spec,
            layout,
            release,
            commit,
            db_env,
            keep_source: true,
        }
    }

    pub fn vars(&self) -> crate::config::Vars {
        release::run_vars(
            self.spec,
            self.layout,
            Some(self.release),
            Some(self.commit),
        )
    }

    /// The prepare phase: upload, link shared, build, mark complete.
    pub fn prepare(&self) -> Vec<Planned> {
        let (config, layout, release) = (self.config, self.layout, self.release);
        let mut script = release::upload_script(layout, release);
        if self.keep_source {
            script.push('\n');
            script.push_str(&crate::remote::source::keep_source_script(
                layout,
                release,
                self.commit,
            ));
        }
        let mut steps = vec![Planned {
            name: "upload".into(),
            shown: None,
            script,
            upload: true,
            inline: true,
        }];
        if !config.deploy.shared.is_empty() {
            steps.push(Planned {
                name: "link shared".into(),
                shown: None,
                script: release::link_shared_script(layout, release, &config.deploy.shared),
                upload: false,
                inline: true,
            });
        }
        let total = config.deploy.build.len();
        for (i, build) in config.deploy.build.iter().enumerate() {
            let name = format!("build {}/{total}", i + 1);
            let step = self.command(&name, &build.run, false);
            steps.push(match &build.cache {
                None => step,
                Some(cache) => self.cached(step, i, cache),
            });
        }
        steps.push(Planned {
            name: "finish release".into(),
            shown: None,
            script: release::finish_script(layout, release, self.commit),
            upload: false,
            inline: true,
        });
        steps
    }

    /// A build step that is skipped when its inputs (and key) are what they
    /// were in the release `current` serves: its outputs are copied from
    /// there (a real copy, never shared with the serving release), with
    /// that release's path replaced by the new one in the scripts of their
    /// `bin/` folders (a virtualenv's entry points name it). Prints
    /// `REUSED_MARK` when it skipped the step; when copying or renaming
    /// fails, the copies are removed and the step runs.
    fn cached(&self, step: Planned, index: usize, cache: &crate::config::BuildCache) -> Planned {
        use crate::base::shell::quote;
        let vars = self.vars();
        let new = self.layout.release(self.release);
        let key_command = cache.key.as_ref().map_or(String::new(), |k| {
            format!(
                "(\n{}\n) 2>&1\n",
                release::command_script(
                    self.config,
                    &vars,
                    &new,
                    &k.render_shell(&vars),
                    &self.db_env
                )
            )
        });
        let mut inputs = String::new();
        for input in &cache.inputs {
            inputs.push_str(&format!(
                "printf '%s\\n' {f}; if [ -f \"$new\"/{f} ]; then cat \"$new\"/{f}; else echo missing; fi\n",
                f = quote(input)
            ));
        }
        let all_there = cache
            .outputs
            .iter()
            .map(|o| format!("[ -e \"$prev\"/{} ]", quote(o)))
            .collect::<Vec<_>>()
            .join(" && ");
        // Copying an output and renaming the release in its scripts either
        // works whole or the step runs as if nothing were cached (a
        // half-renamed virtualenv would name a release that gets pruned).
        let (mut copy, mut remove) = (String::new(), String::new());
        for output in &cache.outputs {
            let o = quote(output);
            copy.push_str(&format!(
                "    rm -rf \"$new\"/{o} && mkdir -p \"$(dirname \"$new\"/{o})\" && cp -a \"$prev\"/{o} \"$new\"/{o} || exit 1\n\
                 \x20   for b in \"$new\"/{o}/bin \"$new\"/{o}/pyvenv.cfg; do [ -e \"$b\" ] && grep -rlI -F -- \"$prev/\" \"$b\" 2>/dev/null; done | while IFS= read -r f; do sed -i \"s|$prev/|$new/|g\" \"$f\" || exit 1; done || exit 1\n"
            ));
            remove.push_str(&format!("  rm -rf \"$new\"/{o}\n"));
        }
        let script = format!(
            "new={new}\nprev=$(readlink -f {current} 2>/dev/null || true)\nmark=\"$new\"/.gantry-build/{index}.key\n\
             key=$({{ printf '%s\\n' {run}\n{key_command}{inputs}}} | sha256sum | cut -d' ' -f1)\n\
             mkdir -p \"$new\"/.gantry-build\n\
             if [ -n \"$prev\" ] && [ \"$prev\" != \"$new\" ] && [ \"$(cat \"$prev\"/.gantry-build/{index}.key 2>/dev/null)\" = \"$key\" ] && {all_there}; then\n\
             \x20 if (\n{copy}  ); then\n    printf '%s\\n' \"$key\" > \"$mark\"\n    echo {mark}\n    exit 0\n  fi\n\
             \x20 echo {fallback} >&2\n{remove}fi\n\
             (\n{step}\n) || exit $?\nprintf '%s\\n' \"$key\" > \"$mark\"",
            new = quote(&new),
            current = quote(&self.layout.current()),
            run = quote(step.shown.as_deref().unwrap_or("")),
            step = step.script,
            mark = quote(REUSED_MARK),
            fallback = quote("gantry: the serving release's outputs could not be reused here; running the step"),
        );
        Planned { script, ..step }
    }

    /// The migrate phase on the migrate host: the pending check, the
    /// backup, the migration.
    pub fn migrate_plan(&self, database: &Database, migrate: &Template) -> MigratePlan {
        let vars = self.vars();
        let db = Db::new(
            database,
            &vars,
            &release::env_file_prelude(self.config, &vars),
        );
        let check = database.check.as_ref().map(|c| {
            let mut step = self.command("check pending migrations", c, false);
            // Whether a SQLite database existed before the check ran (it
            // may create an empty one).
            if let Some(Db {
                engine: Kind::Sqlite,
                location,
                ..
            }) = &db
            {
                step.script = format!(
                    "[ -e {} ] || echo {}\n{}",
                    crate::base::shell::quote(location),
                    crate::base::shell::quote(NO_DATABASE_MARK),
                    step.script
                );
            }
            step
        });
        let backup = db.as_ref().map(|db| {
            let ext = match db.engine {
                Kind::Sqlite => "sqlite3",
                Kind::Postgres => "dump",
            };
            let path = format!("{}/{}.{ext}", self.layout.backups(), self.release);
            let step = Planned {
                name: "back up the database".into(),
                shown: None,
                script: db.backup_script(&path),
                upload: false,
                inline: false,
            };
            (step, path)
        });
        let fingerprint = db.as_ref().map(|db| Planned {
            name: "fingerprint the database".into(),
            shown: None,
            script: crate::data::fingerprint::script(db, &db.location),
            upload: false,
            inline: false,
        });
        let ask = db
            .as_ref()
            .and_then(|db| self.ask_database(db, &db.location));
        let rehearse = db.as_ref().map(|db| {
            let scratch = release::Layout::rehearsal(&self.layout.path);
            let copy = db.copy_location(
                &self.layout.shared(),
                &scratch.shared(),
                &scratch.rehearsals(),
                self.release,
            );
            Planned {
                name: "rehearse on a copy".into(),
                shown: None,
                script: format!(
                    "# when migrations are pending (not with --no-rehearse): the release is\n\
                     # hard-linked into {}, its shared files are copies in {},\n\
                     # the database is copied to {}, and the migrate command runs there first",
                    scratch.release(self.release),
                    scratch.shared(),
                    crate::data::database::hide_password(&copy)
                ),
                upload: false,
                inline: false,
            }
        });
        let put_back = db.as_ref().map(|_| {
            let reverse = match (&database.reverse, &self.config.app.django) {
                (Some(r), _) => format!(
                    "`{}` (GANTRY_MIGRATIONS: the migrations, newest first)",
                    r.render(&vars)
                ),
                (None, Some(python)) => format!(
                    "`{} manage.py migrate APP PREVIOUS` for each app",
                    python.render(&vars)
                ),
                (None, None) => "nothing: `[database] reverse` is not set".into(),
            };
            Planned {
                name: "if the deploy is put back after this".into(),
                shown: None,
                script: format!(
                    "# the schema and the migration records are compared with what they were\n\
                     # (never the rows): the same -> nothing is done; the migrations only added\n\
                     # what the serving release never writes -> kept; else they are reversed by\n\
                     # {reverse};\n\
                     # the backup is restored only when that cannot be done (docs/data.md)"
                ),
                upload: false,
                inline: false,
            }
        });
        MigratePlan {
            fingerprint,
            ask,
            check,
            rehearse,
            backup,
            migrate: self.command("migrate", migrate, false),
            put_back,
            db,
        }
    }

    /// A user command (build, migrate, restart); it runs in the release
    /// folder, or in `current` for `in_current`.
    pub fn command(&self, name: &str, template: &Template, in_current: bool) -> Planned {
        let vars = self.vars();
        let command = template.render_shell(&vars);
        let dir = if in_current {
            self.layout.current()
        } else {
            self.layout.release(self.release)
        };
        Planned {
            name: name.to_string(),
            script: release::command_script(self.config, &vars, &dir, &command, &self.db_env),
            shown: Some(command),
            upload: false,
            inline: false,
        }
    }
}

impl Steps<'_> {
    /// A user command run in the release folder with more variables
    /// (`GANTRY_PORT` for a handover's start and stop).
    pub fn command_with(&self, template: &Template, extra: &[(String, String)]) -> String {
        let vars = self.vars();
        let mut env = self.db_env.clone();
        env.extend(extra.iter().cloned());
        release::command_script(
            self.config,
            &vars,
            &self.layout.release(self.release),
            &template.render_shell(&vars),
            &env,
        )
    }

    /// With the Django preset: the step that asks this release which
    /// database it opens, with this run's variables (`wiring::compare`
    /// reads the answer).
    pub fn ask_database(&self, db: &Db, expected: &str) -> Option<Planned> {
        ask_database(
            self.config,
            &self.vars(),
            &self.layout.release(self.release),
            db,
            &self.db_env,
            expected,
        )
    }
}

/// With the Django preset: a step that asks the release in `dir` which
/// database it opens, with the variables a deploy gives it, and resolves
/// `expected` on the host for comparison. Prints `GANTRY-NO-RELEASE` when
/// `dir` does not exist.
pub fn ask_database(
    config: &Config,
    vars: &crate::config::Vars,
    dir: &str,
    db: &Db,
    db_env: &[(String, String)],
    expected: &str,
) -> Option<Planned> {
    let python = config.app.django.as_ref()?;
    let command = crate::data::wiring::django_command(&python.render_shell(vars), db, expected);
    let script = release::command_script(config, vars, dir, &command, db_env);
    Some(Planned {
        name: "ask the app for its database".into(),
        script: format!(
            "if [ -d {} ]; then (\n{script}\n); else echo GANTRY-NO-RELEASE; fi",
            crate::base::shell::quote(dir)
        ),
        shown: Some(format!(
            "{} manage.py shell -c '<print DATABASES[\"default\"]>'",
            python.render(vars)
        )),
        upload: false,
        inline: false,
    })
}

/// What the migrate phase runs, in order.
pub struct MigratePlan {
    /// Reads the database's identity, to compare after the migration.
    pub fingerprint: Option<Planned>,
    /// With the Django preset: asks the release which database it opens.
    pub ask: Option<Planned>,
    pub check: Option<Planned>,
    /// What the rehearsal does (shown by `plan`; run by `rehearse`).
    pub rehearse: Option<Planned>,
    /// The backup step and the file it writes.
    pub backup: Option<(Planned, String)>,
    pub migrate: Planned,
    /// What putting the database back would do (shown by `plan`).
    pub put_back: Option<Planned>,
    pub db: Option<Db>,
}

impl MigratePlan {
    pub fn steps(&self) -> Vec<Planned> {
        let mut steps: Vec<Planned> = [&self.ask, &self.check, &self.fingerprint, &self.rehearse]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        steps.extend(self.backup.iter().map(|(s, _)| s.clone()));
        steps.push(self.migrate.clone());
        steps.extend(self.put_back.iter().cloned());
        steps
    }
}

/// The name of the migration a failed run was applying, from its output
/// (Django's `Applying app.0002_x...`, or `migration 0002_x failed`).
pub fn failed_migration(output: &str) -> Option<String> {
    output.lines().rev().find_map(|line| {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Applying ") {
            return rest.split("...").next().map(|s| s.trim().to_string());
        }
        line.strip_prefix("migration ")
            .and_then(|rest| rest.split_once(" failed"))
            .map(|(name, _)| name.to_string())
    })
}
