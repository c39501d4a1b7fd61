//! `gantry demo`: the whole procedure on the bundled example app with no
//! server. Makes a scratch git repo of the app with a bare "origin",
//! configures `local` staging and live targets in the scratch folder, and
//! runs `gantry release` end to end, functional tests included.

use std::path::{Path, PathBuf};

use crate::cli::output::Printer;
use crate::error::Error;
use crate::ledger::git::Repo;
use crate::pipeline::promote::{self, ReleaseOptions};

/// The example app, compiled in so the demo needs nothing but the binary.
const APP: &[(&str, &str)] = &[
    ("app.py", include_str!("../../examples/app/app.py")),
    ("migrate.py", include_str!("../../examples/app/migrate.py")),
    (
        "migrations/0001_items.sql",
        include_str!("../../examples/app/migrations/0001_items.sql"),
    ),
    ("build.sh", include_str!("../../examples/app/build.sh")),
    ("restart.sh", include_str!("../../examples/app/restart.sh")),
    (
        "functional_tests.py",
        include_str!("../../examples/app/functional_tests.py"),
    ),
];

/// Marks a folder as the demo's, so it is never mistaken for anything else.
const MARKER: &str = ".gantry-demo";

pub struct DemoOptions {
    pub dir: Option<PathBuf>,
    /// Leave the apps running.
    pub keep: bool,
}

pub async fn demo(options: &DemoOptions, printer: &Printer) -> Result<(), Error> {
    let dir = options
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("gantry-demo"));
    prepare_dir(&dir)?;
    let repo_dir = dir.join("repo");
    let (staging_port, live_port) = (free_port(&dir)?, free_port(&dir)?);
    write(
        &repo_dir.join("gantry.toml"),
        &config_text(&dir, staging_port, live_port),
    )?;
    for (path, text) in APP {
        write(&repo_dir.join(path), text)?;
    }
    write(&repo_dir.join(".gitignore"), "__pycache__/\n")?;
    let origin = dir.join("origin.git");
    let origin_text = origin.to_string_lossy().into_owned();
    Repo::at(&dir).git(&["init", "-q", "--bare", &origin_text])?;
    let repo = Repo::at(&repo_dir);
    for args in [
        vec!["init", "-q", "-b", "main"],
        vec!["config", "user.name", "Gantry demo"],
        vec!["config", "user.email", "demo@gantry.invalid"],
        vec!["add", "-A"],
        vec!["commit", "-q", "-m", "The example to-do app"],
        vec!["remote", "add", "origin", &origin_text],
        vec!["push", "-q", "origin", "main"],
    ] {
        repo.git(&args)?;
    }
    printer.headline(&format!(
        "Demo: the example app in {}, with local staging (port {staging_port}) and live (port {live_port})",
        repo_dir.display()
    ));
    let config = crate::config::load(&repo_dir.join("gantry.toml"))?;
    let result = promote::release(
        &config,
        &ReleaseOptions {
            push: false,
            to: None,
        },
        printer,
    )
    .await;

    // The binary as it was run (`cargo run` leaves it off the PATH).
    let gantry = std::env::current_exe()
        .map(|p| crate::base::shell::quote(&p.to_string_lossy()))
        .unwrap_or_else(|_| "gantry".into());
    let mut lines = vec![
        format!("the app's repo: {}", repo_dir.display()),
        format!("its \"origin\": {} (tags and the ledger in refs/notes/gantry)", origin.display()),
        format!("the sites: {}/sites/staging and {}/sites/live", dir.display(), dir.display()),
        format!(
            "look around: cd {} && {gantry} status && {gantry} log live && git log --oneline --decorate",
            repo_dir.display()
        ),
    ];
    if options.keep {
        lines.push(format!("staging serves http://127.0.0.1:{staging_port}/ and live http://127.0.0.1:{live_port}/"));
        lines.push(format!(
            "stop them with: gantry demo --stop --dir {}",
            dir.display()
        ));
    } else {
        stop_apps(&dir);
        lines.push("the apps were stopped; `gantry demo --keep` leaves them running".to_string());
    }
    printer.summary("Where to look:", &lines);
    result
}

/// Stops the apps a kept demo left running.
pub fn stop(dir: Option<PathBuf>, printer: &Printer) -> Result<(), Error> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("gantry-demo"));
    if !dir.join(MARKER).exists() {
        return Err(Error::NotADemo { dir });
    }
    let stopped = stop_apps(&dir);
    printer.headline(&format!(
        "Stopped {stopped} demo app{}",
        if stopped == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// Empties `dir` for a new demo, refusing a folder that is not a demo's.
fn prepare_dir(dir: &Path) -> Result<(), Error> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            return Err(Error::DemoFolderTaken {
                dir: dir.to_path_buf(),
            });
        }
        stop_apps(dir);
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write(&dir.join(MARKER), "made by `gantry demo`; safe to delete\n")
}

/// Kills the processes named in the sites' pid files; returns how many.
fn stop_apps(dir: &Path) -> usize {
    let mut stopped = 0;
    for env in ["staging", "live"] {
        let pidfile = dir.join("sites").join(env).join("shared/data/app.pid");
        let Ok(pid) = std::fs::read_to_string(&pidfile) else {
            continue;
        };
        let pid = pid.trim();
        if pid.chars().all(|c| c.is_ascii_digit()) && !pid.is_empty() {
            let killed = std::process::Command::new("kill")
                .arg(pid)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            stopped += usize::from(killed);
        }
        let _ = std::fs::remove_file(&pidfile);
    }
    stopped
}

fn config_text(dir: &Path, staging_port: u16, live_port: u16) -> String {
    // A TOML basic string: escape backslashes and quotes.
    let sites = dir
        .join("sites")
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"# Written by `gantry demo`: two local "hosts" (folders on this machine).
# On real servers, replace "local" with "user@host".

[app]
name = "todo"

[vars]
sites = "{sites}"

[deploy]
path = "{{sites}}/{{env}}"
keep_releases = 3
shared = ["data/"]
build = ["sh build.sh"]
migrate = "python3 migrate.py"
restart = "sh restart.sh"
env = {{ APP_PORT = "{{app_port}}" }}
health = {{ url = "http://127.0.0.1:{{app_port}}/health", body = "{{commit}}", timeout = "2s", retries = 40, interval = "250ms" }}

# Backed up before migrations, restored if they fail, and copied to
# rehearse new migrations before each deploy. The app finds it in DB_PATH.
[database]
engine = "sqlite"
path = "{{shared}}/data/app.sqlite3"
check = "python3 migrate.py --check"

[verify]
command = "python3 functional_tests.py"
env = {{ STAGING_SERVER = "127.0.0.1:{{app_port}}" }}

[environments.staging]
hosts = ["local"]
vars = {{ app_port = "{staging_port}" }}

[environments.live]
hosts = ["local"]
vars = {{ app_port = "{live_port}" }}
requires = "staging"
tags = {{ moving = "LIVE", history = "DEPLOYED-%F/%H%M" }}
"#
    )
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn free_port(dir: &Path) -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io(dir, e))
}
