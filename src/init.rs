//! `gantry init`: writes a `gantry.toml` for the app in this repository.
//! A Django app is recognised by its `manage.py` (its folder becomes
//! `app.root`, its settings module and WSGI module are read from it);
//! anything else gets the commented generic example.

use std::path::{Path, PathBuf};

use crate::config::FILE_NAME;
use crate::error::Error;
use crate::output::Printer;

/// The commented generic example.
pub const EXAMPLE: &str = include_str!("../examples/gantry.example.toml");

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
        return Err(Error::Usage(format!(
            "`{}` already exists; pass `--force` to overwrite it",
            target.display()
        )));
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
            (django_config(&repo, &d), what)
        }
        (None, Some("django")) => {
            let d = Django {
                root: String::new(),
                settings: format!("{}.settings", repo_name(&repo)),
                requirements: true,
            };
            (
                django_config(&repo, &d),
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

fn django_config(repo: &Path, d: &Django) -> String {
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
shared = ["media/"]
restart = "sudo systemctl restart gunicorn-{{domain}}"
health = {{ url = "http://{{domain}}/", status = 200, timeout = "5s", retries = 20, interval = "500ms" }}

# Backed up before migrations, restored if they fail, rehearsed on a copy
# before each release. Your settings must read the file from DB_PATH
# (for PostgreSQL: engine = "postgres", url = "...", read DATABASE_URL).
[database]
engine = "sqlite"
path = "{{shared}}/db.sqlite3"

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

# The functional tests, run from this machine against staging.
[verify]
command = "python {manage} test functional_tests"
env = {{ STAGING_SERVER = "{{domain}}" }}

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

    #[test]
    fn finds_a_django_app_in_a_subfolder() {
        let dir = std::env::temp_dir().join(format!("gantry-init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src/.venv")).unwrap();
        std::fs::write(
            dir.join("src/manage.py"),
            "os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"superlists.settings\")\n",
        )
        .unwrap();
        std::fs::write(dir.join("requirements.txt"), "django\n").unwrap();
        assert_eq!(
            detect(&dir),
            Some(Django {
                root: "src".into(),
                settings: "superlists.settings".into(),
                requirements: true
            })
        );
        let text = django_config(&dir, &detect(&dir).unwrap());
        let config = crate::config::parse(&dir.join("gantry.toml"), &text)
            .expect("the written config loads");
        assert_eq!(config.app.root.as_deref(), Some("src"));
        assert_eq!(config.environments[1].requires.as_deref(), Some("staging"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
