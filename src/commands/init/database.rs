//! `gantry init`'s `[database]`: from the app's answer where it could be
//! asked (`ask`), else read from its settings; `DATABASE_URL` read by the
//! settings means PostgreSQL whatever they fall back on here.

use std::path::Path;

use super::Django;

/// The `[database]` and `deploy.shared` that `init` writes, from what the
/// app says (or its settings show) about its default database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseGuess {
    /// The lines under `[database]`.
    pub table: String,
    /// Entries of `deploy.shared`, relative to the release's root.
    pub shared: Vec<String>,
    /// Where the guess came from, as a comment.
    pub source: String,
}

/// `[database]` from the app's answer: a SQLite file inside the repository
/// is kept in `deploy.shared` at the same place; PostgreSQL gets its URL
/// (without a password).
pub fn guess_from_app(
    repo: &Path,
    app: &crate::data::wiring::AppDatabase,
) -> Option<DatabaseGuess> {
    let source = "# Filled in from what the app says: `manage.py shell`, DATABASES[\"default\"]."
        .to_string();
    if app.engine.contains("sqlite") {
        let file = app.file.as_deref().unwrap_or(&app.name);
        let repo = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
        let rel = Path::new(file)
            .strip_prefix(&repo)
            .ok()?
            .to_string_lossy()
            .into_owned();
        return Some(DatabaseGuess {
            table: format!("engine = \"sqlite\"\npath = \"{{shared}}/{rel}\""),
            shared: vec![rel],
            source,
        });
    }
    if app.engine.contains("postg") {
        let user = if app.user.is_empty() {
            String::new()
        } else {
            format!("{}@", app.user)
        };
        let host = if app.host.is_empty() {
            "localhost"
        } else {
            &app.host
        };
        let port = if app.port.is_empty() {
            "5432"
        } else {
            &app.port
        };
        return Some(DatabaseGuess {
            table: format!(
                "engine = \"postgres\"\nurl = \"postgresql://{user}{host}:{port}/{}\"   # the password: PGPASSWORD under [secrets]",
                app.name
            ),
            shared: Vec::new(),
            source,
        });
    }
    None
}

/// PostgreSQL from `DATABASE_URL` when the settings read that variable
/// (`dj_database_url`, django-environ's `env.db()`, `os.environ`), whatever
/// they fall back on here (often SQLite): Gantry gives the app the URL in
/// it. Looks at every file of the settings' package (`base`, `production`…).
pub(super) fn url_from_env(repo: &Path, d: &Django) -> Option<DatabaseGuess> {
    let module = repo.join(&d.root).join(d.settings.replace('.', "/"));
    let dir = module.parent()?;
    let texts: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|f| f.path().extension().is_some_and(|e| e == "py"))
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .collect();
    let any = |needle: &str| texts.iter().any(|t| t.contains(needle));
    // Settings that also read `DB_PATH` were written for Gantry's SQLite
    // (`read_settings` and the app itself then say which).
    let reads =
        (any("DATABASE_URL") || any("dj_database_url") || any("env.db(")) && !any("DB_PATH");
    reads.then(|| DatabaseGuess {
        table: "engine = \"postgres\"\nurl = \"postgresql://{app}@localhost:5432/{app}\"   # yours: given to the app as DATABASE_URL, which its settings read\nenv_var = \"DATABASE_URL\"".into(),
        shared: Vec::new(),
        source: "# The settings read DATABASE_URL (dj-database-url or django-environ): set the URL of the servers' database here; the password as PGPASSWORD under [secrets].".into(),
    })
}

/// `[database]` from the settings file's text, when the app cannot be
/// asked here: `DB_PATH` means a SQLite file Gantry places, `DATABASE_URL`
/// PostgreSQL, anything else Django's default `BASE_DIR / "db.sqlite3"`
/// next to `manage.py`, kept in `deploy.shared`.
pub fn read_settings(repo: &Path, d: &Django) -> DatabaseGuess {
    let settings = repo
        .join(&d.root)
        .join(format!("{}.py", d.settings.replace('.', "/")));
    let text = std::fs::read_to_string(settings).unwrap_or_default();
    let source =
        "# Read from the settings file (the app could not be asked here): check it.".to_string();
    if text.contains("DB_PATH") {
        return DatabaseGuess {
            table: "engine = \"sqlite\"\npath = \"{shared}/db.sqlite3\"   # given to the app as DB_PATH".into(),
            shared: Vec::new(),
            source,
        };
    }
    if text.contains("DATABASE_URL") {
        return DatabaseGuess {
            table: "engine = \"postgres\"\nurl = \"postgresql://app@localhost:5432/{app}\"   # the settings must read DATABASE_URL".into(),
            shared: Vec::new(),
            source,
        };
    }
    let rel = if d.root.is_empty() {
        "db.sqlite3".to_string()
    } else {
        format!("{}/db.sqlite3", d.root)
    };
    DatabaseGuess {
        table: format!("engine = \"sqlite\"\npath = \"{{shared}}/{rel}\""),
        shared: vec![rel],
        source,
    }
}
