//! `gantry init`: writes a `gantry.toml` for the app in this repository.
//! A Django app is recognised by its `manage.py` (its folder becomes
//! `app.root`, its settings module and WSGI module are read from it);
//! anything else gets the commented generic example.

use std::path::{Path, PathBuf};

use crate::cli::output::Printer;
use crate::config::FILE_NAME;
use crate::error::Error;

mod ask;
mod database;
mod settings;
mod write;

use database::url_from_env;
pub use database::{guess_from_app, read_settings, DatabaseGuess};
use settings::Read;
use write::{django_config, Plan};

/// The JSON Schema of `gantry.toml` (`gantry schema`).
pub const SCHEMA: &str = include_str!("../../../docs/gantry.schema.json");

/// The commented generic example.
pub const EXAMPLE: &str = include_str!("../../../examples/gantry.example.toml");

/// What was found about a Django app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Django {
    /// The folder holding `manage.py`, relative to the repo; empty for the root.
    pub root: String,
    /// `superlists.settings`
    pub settings: String,
    pub requirements: bool,
}

pub fn init(force: bool, preset: Option<&str>, printer: &Printer) -> Result<(), Error> {
    let here = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let repo = repo_root(&here).unwrap_or(here);
    let target = repo.join(FILE_NAME);
    if target.exists() && !force {
        return Err(Error::AlreadyExists { path: target });
    }
    let found = detect(&repo);
    let (text, what) = match (found, preset) {
        (Some(d), _) => {
            let plan = plan(&repo, d);
            let what = format!(
                "a Django app ({}settings `{}`{})",
                if plan.d.root.is_empty() {
                    String::new()
                } else {
                    format!("in `{}/`, ", plan.d.root)
                },
                plan.module,
                match &plan.instead_of {
                    Some(default) => format!(" for servers, beside manage.py's `{default}`"),
                    None => String::new(),
                }
            );
            for warning in warnings(&plan) {
                printer.warn(warning);
            }
            (django_config(&repo, &plan), what)
        }
        (None, Some("django")) => {
            let d = Django {
                root: String::new(),
                settings: format!("{}.settings", repo_name(&repo)),
                requirements: true,
            };
            (
                django_config(&repo, &plan(&repo, d)),
                "a Django app (no manage.py found: check `app.root`)".to_string(),
            )
        }
        (None, _) => (EXAMPLE.to_string(), "the generic example".to_string()),
    };
    std::fs::write(&target, text).map_err(|e| Error::io(&target, e))?;
    printer.headline(&format!(
        "Wrote `{}` for {what}: set the hosts and domains, then run `gantry check`",
        target.display()
    ));
    printer.headline(
        "For completion and checks in your editor: `gantry schema > gantry.schema.json`, then `#:schema ./gantry.schema.json` as the file's first line",
    );
    Ok(())
}

/// What `init` finds out about the app: its settings' text first, then
/// the app itself, asked with the environment `init` is about to write.
fn plan(repo: &Path, d: Django) -> Plan {
    let (module, instead_of) = settings::server_module(repo, &d);
    let files = settings::files(repo, &d, &module);
    let (gunicorn, uwsgi) = (requires(repo, &d, "gunicorn"), requires(repo, &d, "uwsgi"));
    let mut plan = Plan {
        module,
        instead_of,
        db: read_settings(repo, &d),
        allowed: settings::reads(&files, "ALLOWED_HOSTS", "ALLOWED_HOST"),
        debug: settings::reads(&files, "DEBUG", "DEBUG"),
        secret: settings::reads(&files, "SECRET_KEY", "SECRET_KEY"),
        answer: None,
        gunicorn,
        uwsgi,
        d,
    };
    plan.answer = ask::ask(repo, &plan.d, &plan.module, &plan.stand_in_env());
    // The servers install the requirements: what is installed here counts
    // only without them.
    if let Some(a) = plan.answer.as_ref().filter(|_| !plan.d.requirements) {
        plan.gunicorn |= a.gunicorn;
        plan.uwsgi |= a.uwsgi;
    }
    let asked = plan.answer.as_ref().and_then(|a| a.database.as_ref());
    plan.db = url_from_env(repo, &plan.d)
        .or_else(|| asked.and_then(|db| guess_from_app(repo, db)))
        .unwrap_or_else(|| read_settings(repo, &plan.d));
    plan
}

/// Whether the requirements name `package` (`requirements*.txt`, a
/// `requirements/` folder, `pyproject.toml`; in the app's folder or the
/// repository's root).
fn requires(repo: &Path, d: &Django, package: &str) -> bool {
    let mut files = Vec::new();
    for dir in [repo.join(&d.root), repo.to_path_buf()] {
        files.push(dir.join("pyproject.toml"));
        for folder in [dir.clone(), dir.join("requirements")] {
            if let Ok(entries) = std::fs::read_dir(&folder) {
                files.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.ends_with(".txt") && (name.starts_with("requirements") || folder != dir)
                }));
            }
        }
    }
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines()
                .map(|l| l.trim_start().to_ascii_lowercase())
                .any(|l| l.starts_with(package) || l.contains(&format!("\"{package}")))
        })
    })
}

/// What the user should know before deploying with the file `init` wrote.
fn warnings(plan: &Plan) -> Vec<crate::error::Warning> {
    use crate::error::Warning;
    let mut out = Vec::new();
    if !plan.gunicorn {
        out.push(Warning::InitWithoutGunicorn { uwsgi: plan.uwsgi });
    }
    if let Read::Fixed { file } = &plan.allowed {
        out.push(Warning::InitFixedAllowedHosts { file: file.clone() });
    }
    if plan.answer.as_ref().is_some_and(|a| a.with_env && a.debug) {
        out.push(Warning::InitDebugOn {
            module: plan.module.clone(),
        });
    }
    out
}

fn repo_root(dir: &Path) -> Option<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn repo_name(repo: &Path) -> String {
    repo.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into())
}

/// Looks for `manage.py` up to three folders deep.
pub fn detect(repo: &Path) -> Option<Django> {
    let manage = find_manage(repo, 0)?;
    let dir = manage.parent()?;
    let root = dir.strip_prefix(repo).ok()?.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&manage).ok()?;
    let settings = text
        .split("DJANGO_SETTINGS_MODULE")
        .nth(1)
        .and_then(|rest| rest.split(['"', '\'']).nth(2))
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}.settings", repo_name(repo)));
    Some(Django {
        requirements: dir.join("requirements.txt").exists()
            || repo.join("requirements.txt").exists(),
        root,
        settings,
    })
}

fn find_manage(dir: &Path, depth: usize) -> Option<PathBuf> {
    let candidate = dir.join("manage.py");
    if candidate.is_file() {
        return Some(candidate);
    }
    if depth >= 3 {
        return None;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.starts_with('.')
                && !matches!(
                    name.as_str(),
                    "venv" | "node_modules" | "__pycache__" | "static" | "media"
                )
        })
        .collect();
    entries.sort();
    entries.into_iter().find_map(|d| find_manage(&d, depth + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder named after `case`, with a `manage.py` in `root`
    /// naming `settings`.
    fn app(case: &str, root: &str, settings: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gantry-init-{case}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(root)).unwrap();
        std::fs::write(
            dir.join(root).join("manage.py"),
            format!("os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"{settings}\")\n"),
        )
        .unwrap();
        dir
    }

    #[test]
    fn finds_a_django_app_in_a_subfolder() {
        let dir = app("subfolder", "src", "superlists.settings");
        std::fs::create_dir_all(dir.join("src/.venv")).unwrap();
        std::fs::write(dir.join("requirements.txt"), "django\n").unwrap();
        assert_eq!(
            detect(&dir),
            Some(Django {
                root: "src".into(),
                settings: "superlists.settings".into(),
                requirements: true
            })
        );
        let found = detect(&dir).unwrap();
        let db = read_settings(&dir, &found);
        assert_eq!(db.shared, ["src/db.sqlite3"]);
        let text = django_config(&dir, &plan(&dir, found));
        let config = crate::config::parse(&dir.join("gantry.toml"), &text)
            .expect("the written config loads");
        assert_eq!(config.app.root.as_deref(), Some("src"));
        assert_eq!(config.deploy.shared[0].path, "src/db.sqlite3");
        let crate::config::Engine::Sqlite { path } = &config.environments[1].database.engine else {
            panic!("a SQLite database");
        };
        assert_eq!(path.source(), "{shared}/src/db.sqlite3");
        assert_eq!(config.environments[1].requires.as_deref(), Some("staging"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn settings_that_read_database_url_get_postgres_from_it() {
        let dir = app("url", "", "site.settings.production");
        std::fs::create_dir_all(dir.join("site/settings")).unwrap();
        std::fs::write(
            dir.join("site/settings/production.py"),
            "from .base import *\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("site/settings/base.py"),
            "import dj_database_url\nDATABASES = {\"default\": dj_database_url.config(default=\"sqlite:///db.sqlite3\")}\n",
        )
        .unwrap();
        let found = detect(&dir).unwrap();
        assert!(url_from_env(&dir, &found).is_some(), "DATABASE_URL is read");
        let text = django_config(&dir, &plan(&dir, found.clone()));
        let config = crate::config::parse(&dir.join("gantry.toml"), &text).expect("it loads");
        let database = &config.environments[1].database;
        assert!(matches!(
            database.engine,
            crate::config::Engine::Postgres { .. }
        ));
        assert_eq!(database.env_var.as_deref(), Some("DATABASE_URL"));
        std::fs::remove_file(dir.join("site/settings/base.py")).unwrap();
        assert!(url_from_env(&dir, &found).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn verify_runs_the_functional_tests_only_where_there_are_some() {
        let dir = app("verify", "", "site.settings");
        let found = detect(&dir).unwrap();
        let verify = |dir: &Path| {
            let text = django_config(dir, &plan(dir, found.clone()));
            let config = crate::config::parse(&dir.join("gantry.toml"), &text).expect("it loads");
            config
                .verify
                .expect("a verify command")
                .command
                .source()
                .to_string()
        };
        assert!(verify(&dir).starts_with("python3 -c "), "a smoke check");
        std::fs::create_dir_all(dir.join("functional_tests")).unwrap();
        assert_eq!(verify(&dir), "python manage.py test functional_tests");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_preset_installs_requirements_from_the_app_folder_or_the_root() {
        let dir = std::env::temp_dir().join(format!("gantry-reqs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src/.venv/bin")).unwrap();
        std::fs::write(dir.join("src/manage.py"), "").unwrap();
        std::fs::write(dir.join("requirements.txt"), "django\n").unwrap();
        let pip = dir.join("src/.venv/bin/pip");
        std::fs::write(&pip, "#!/bin/sh\necho \"pip $*\"\n").unwrap();
        std::fs::set_permissions(&pip, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let found = detect(&dir).unwrap();
        let text = django_config(&dir, &plan(&dir, found));
        let config = crate::config::parse(&dir.join("gantry.toml"), &text).unwrap();
        let venv = &config.deploy.build[0];
        let cache = venv
            .cache
            .as_ref()
            .expect("the virtualenv is a cached step");
        assert_eq!(cache.outputs, ["src/.venv"]);
        assert_eq!(cache.inputs, ["src/requirements.txt", "requirements.txt"]);
        let install = venv
            .run
            .source()
            .strip_prefix("python3 -m venv .venv && ")
            .expect("the step makes the virtualenv, then installs")
            .to_string();
        let run = || {
            let out = std::process::Command::new("sh")
                .args(["-c", &install])
                .current_dir(dir.join("src"))
                .env("GANTRY_RELEASE", &dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{install}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(
            run(),
            format!("pip install -q -r {}/requirements.txt", dir.display())
        );
        std::fs::write(dir.join("src/requirements.txt"), "django\n").unwrap();
        assert_eq!(run(), "pip install -q -r requirements.txt");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
