//! `gantry init`: writes a `gantry.toml` for the app in this repository.
//! A Django app is recognised by its `manage.py` (its folder becomes
//! `app.root`, its settings module and WSGI module are read from it);
//! anything else gets the commented generic example.

use std::path::{Path, PathBuf};

use crate::cli::output::Printer;
use crate::config::FILE_NAME;
use crate::error::Error;

mod database;

use database::{ask_local, url_from_env};
pub use database::{guess_from_app, read_settings, DatabaseGuess};

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
            let what = format!(
                "a Django app ({}settings `{}`)",
                if d.root.is_empty() {
                    String::new()
                } else {
                    format!("in `{}/`, ", d.root)
                },
                d.settings
            );
            let db = url_from_env(&repo, &d)
                .or_else(|| ask_local(&repo, &d))
                .unwrap_or_else(|| read_settings(&repo, &d));
            (django_config(&repo, &d, &db), what)
        }
        (None, Some("django")) => {
            let d = Django {
                root: String::new(),
                settings: format!("{}.settings", repo_name(&repo)),
                requirements: true,
            };
            let db = read_settings(&repo, &d);
            (
                django_config(&repo, &d, &db),
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

/// `[verify]`: the app's functional tests when it has a `functional_tests`
/// module beside `manage.py` (run with the repository's `.venv`, when
/// there is one); otherwise a smoke check of the home page, and how to add
/// the tests.
fn verify_section(repo: &Path, d: &Django, manage: &str) -> String {
    let dir = repo.join(&d.root);
    if dir.join("functional_tests").is_dir() || dir.join("functional_tests.py").is_file() {
        return format!(
            "# The functional tests, run from this machine against staging (with the\n\
             # repository's .venv when there is one).\n\
             [verify]\ncommand = \"python {manage} test functional_tests\"\n\
             env = {{ STAGING_SERVER = \"{{domain}}\" }}\n"
        );
    }
    format!(
        "# No `functional_tests` module next to manage.py: a smoke check that the home\n\
         # page answers HTML. With the book's functional tests, use instead:\n\
         #   command = \"python {manage} test functional_tests\"\n\
         #   env = {{ STAGING_SERVER = \"{{domain}}\" }}\n\
         [verify]\ncommand = '''{SMOKE} {{domain}}'''\n"
    )
}

/// The smoke check's command: the home page must answer HTML.
const SMOKE: &str = "python3 -c \"import sys, urllib.request; b = urllib.request.urlopen('http://' + sys.argv[1] + '/', timeout=10).read().decode(errors='replace').lower(); sys.exit(0 if '<html' in b or '<!doctype' in b else 'the home page is not HTML')\"";

fn django_config(repo: &Path, d: &Django, db: &DatabaseGuess) -> String {
    let project = d.settings.split('.').next().unwrap_or("app").to_string();
    let name = if project.is_empty() {
        repo_name(repo)
    } else {
        project.clone()
    };
    let root_line = if d.root.is_empty() {
        String::new()
    } else {
        format!(
            "root = \"{}\"            # the app's folder; commands run there\n",
            d.root
        )
    };
    let manage = if d.root.is_empty() {
        "manage.py".to_string()
    } else {
        format!("{}/manage.py", d.root)
    };
    let settings = &d.settings;
    let shared = db
        .shared
        .iter()
        .map(String::as_str)
        .chain(["media/"])
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let (db_source, db_table) = (&db.source, &db.table);
    let verify = verify_section(repo, d, &manage);
    let requirements = if d.requirements {
        ""
    } else {
        "# No requirements.txt was found: the preset's build installs from it.\n"
    };
    format!(
        r#"# gantry.toml for the Django app `{name}`, written by `gantry init`.
# Set the hosts and domains below, then: `gantry check`, `gantry setup staging`,
# `gantry release`. Reference: the README's "Configuration reference".
{requirements}
[app]
name = "{name}"
preset = "django"   # build: .venv + requirements.txt + collectstatic; migrate; pending check
{root_line}
[vars]
wsgi = "{project}.wsgi"   # gunicorn serves {{wsgi}}:application

[deploy]
path = "/home/{{user}}/sites/{{domain}}"
keep_releases = 5
# Kept across releases; paths are relative to the release's root, not
# `app.root`.
shared = [{shared}]
restart = "sudo systemctl restart gunicorn-{{domain}}"
logs = "sudo journalctl -u gunicorn-{{domain}} -n 20 --no-pager"   # shown when a health check fails
health = {{ url = "http://{{domain}}/", status = 200, timeout = "5s", retries = 20, interval = "500ms" }}

# Backed up before migrations, restored if they fail, rehearsed on a copy
# before each deploy. Every deploy asks the app which database it opens
# and stops if it is not this one.
{db_source}
[database]
{db_table}

# Written to the shared .env (mode 0600) by `gantry setup`; every command and
# the gunicorn service read it.
[env]
DJANGO_SETTINGS_MODULE = "{settings}"
DJANGO_ALLOWED_HOST = "{{domain}}"
DJANGO_DEBUG_FALSE = "y"

[secrets]
DJANGO_SECRET_KEY = {{ generate = true }}   # made once on each server, kept

[setup]
sudo = true
systemd = {{ name = "gunicorn-{{domain}}" }}   # gunicorn on a unix socket
nginx = {{ name = "{{domain}}" }}              # static files, and the rest proxied

{verify}
[environments.staging]
hosts = ["deploy@staging.example.com"]
vars = {{ domain = "staging.example.com" }}

[environments.live]
hosts = ["deploy@example.com"]
vars = {{ domain = "example.com" }}
requires = "staging"   # only commits verified on staging go live
"#
    )
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
        let text = django_config(&dir, &found, &db);
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
        let db = url_from_env(&dir, &found).expect("DATABASE_URL is read");
        let text = django_config(&dir, &found, &db);
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
            let text = django_config(dir, &found, &read_settings(dir, &found));
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
        let text = django_config(&dir, &found, &read_settings(&dir, &found));
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
