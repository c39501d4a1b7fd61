//! Asking the Django app in this repository what `init` needs, with the
//! Python beside it (its `.venv`, else `python3`): `manage.py shell` with
//! the settings module for servers and the environment `init` is about to
//! write, printing its database, `STATIC_ROOT`/`STATIC_URL`,
//! `MEDIA_ROOT`/`MEDIA_URL`, its WSGI module, whether `DEBUG` is off and
//! the domain allowed with those values, and whether gunicorn or uwsgi is
//! installed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Django;
use crate::data::wiring::{AppDatabase, DJANGO_ASK};

/// The domain and secret `init` asks with, standing for the servers'.
pub const DOMAIN: &str = "gantry-init.example.com";
pub const SECRET: &str = "gantry-init-stand-in-secret-key-0123456789-abcdefghijklmnop";

/// Prints `GANTRY-APP {json}` (after `DJANGO_ASK`'s `GANTRY-DB`).
const APP_ASK: &str = r#"import importlib.util
from django.conf import settings as s
def t(v): return os.path.realpath(str(v)) if v else ""
w = str(getattr(s, "WSGI_APPLICATION", "") or "")
print("GANTRY-APP " + json.dumps({"static_root": t(getattr(s, "STATIC_ROOT", None)), "static_url": str(getattr(s, "STATIC_URL", "") or ""), "media_root": t(getattr(s, "MEDIA_ROOT", None)), "media_url": str(getattr(s, "MEDIA_URL", "") or ""), "wsgi": w.rsplit(".", 1)[0] if w else "", "debug": bool(s.DEBUG), "allowed": s.ALLOWED_HOSTS == ["*"] or any(h == DOMAIN or (h.startswith(".") and DOMAIN.endswith(h)) for h in s.ALLOWED_HOSTS), "gunicorn": importlib.util.find_spec("gunicorn") is not None, "uwsgi": importlib.util.find_spec("uwsgi") is not None}))
"#;

/// What the app said.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Answer {
    /// Absolute paths, resolved; empty when unset.
    pub static_root: String,
    pub static_url: String,
    pub media_root: String,
    pub media_url: String,
    /// `superlists.wsgi`
    pub wsgi: String,
    pub debug: bool,
    /// `ALLOWED_HOSTS` lets the domain through.
    pub allowed: bool,
    pub gunicorn: bool,
    pub uwsgi: bool,
    #[serde(skip)]
    pub database: Option<AppDatabase>,
    /// The settings module that answered.
    #[serde(skip)]
    pub module: String,
    /// It answered with the environment `init` writes (not only with
    /// manage.py's default settings and none).
    #[serde(skip)]
    pub with_env: bool,
}

/// Asks with `module` and `env`, then, when that fails (settings that need
/// a variable `init` did not find), with manage.py's default and no
/// environment; `None` when the app cannot be asked here.
pub fn ask(repo: &Path, d: &Django, module: &str, env: &[(String, String)]) -> Option<Answer> {
    let python = python(repo, d);
    if let Some(mut a) = run(&python, repo, d, module, env) {
        a.with_env = true;
        return Some(a);
    }
    run(&python, repo, d, &d.settings, &[])
}

fn python(repo: &Path, d: &Django) -> PathBuf {
    let dir = repo.join(&d.root);
    [dir.join(".venv/bin/python"), repo.join(".venv/bin/python")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn run(
    python: &Path,
    repo: &Path,
    d: &Django,
    module: &str,
    env: &[(String, String)],
) -> Option<Answer> {
    let code = format!("{DJANGO_ASK}DOMAIN = \"{DOMAIN}\"\n{APP_ASK}");
    let mut child = std::process::Command::new(python)
        .args(["manage.py", "shell", "-c", &code])
        .current_dir(repo.join(&d.root))
        .env_remove("DB_PATH")
        .env_remove("DATABASE_URL")
        .env("DJANGO_SETTINGS_MODULE", module)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    let field = |prefix: &str| out.lines().find_map(|l| l.strip_prefix(prefix));
    let mut answer: Answer = serde_json::from_str(field("GANTRY-APP ")?).ok()?;
    answer.database = field("GANTRY-DB ").and_then(|j| serde_json::from_str(j).ok());
    answer.module = module.to_string();
    Some(answer)
}

/// `path` relative to the repository, when it is inside it.
pub fn in_repo(repo: &Path, path: &str) -> Option<String> {
    let repo = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
    Path::new(path)
        .strip_prefix(&repo)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}
