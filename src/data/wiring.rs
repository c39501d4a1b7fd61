//! Which database the app really uses, asked of the app itself. With the
//! Django preset, `manage.py shell` in a release, with the variables a
//! deploy gives it, prints its `DATABASES["default"]`; Gantry compares it
//! with `[database]` (or with a rehearsal's copy) before anything migrates,
//! so an app whose settings ignore the variable, or name another file, is
//! stopped with the two locations side by side instead of migrating a
//! database nobody backed up.

use crate::base::shell::quote;
use crate::data::database::{database_name, url_host_port, Db, Kind};

/// Prints `GANTRY-DB {json}` with the default database's settings; the
/// SQLite file is resolved through symlinks (a shared link) from the app's
/// folder, as Django itself opens it.
pub const DJANGO_ASK: &str = r#"import json, os
from django.db import connections
s = connections["default"].settings_dict
name = str(s.get("NAME") or "")
engine = str(s.get("ENGINE") or "")
out = {"engine": engine, "name": name, "host": str(s.get("HOST") or ""), "port": str(s.get("PORT") or ""), "user": str(s.get("USER") or "")}
if "sqlite" in engine and name and name != ":memory:":
    out["file"] = os.path.realpath(name)
print("GANTRY-DB " + json.dumps(out))
"#;

/// The command that asks a Django release (run in its app folder, through
/// the deploy's variables) which database it uses, and where `expected`
/// resolves to on the host.
pub fn django_command(python: &str, db: &Db, expected: &str) -> String {
    let resolve = match db.engine {
        Kind::Sqlite => format!(
            "\nprintf 'GANTRY-EXPECTED %s\\n' \"$(realpath -m {})\"",
            quote(expected)
        ),
        Kind::Postgres => String::new(),
    };
    format!("{python} manage.py shell -c {}{resolve}", quote(DJANGO_ASK))
}

/// The database the app answered with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AppDatabase {
    pub engine: String,
    pub name: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: String,
    #[serde(default)]
    pub user: String,
    /// SQLite: the file, resolved through symlinks.
    #[serde(default)]
    pub file: Option<String>,
}

impl AppDatabase {
    /// In words: `sqlite /srv/app/shared/db.sqlite3`, `postgresql shop on 127.0.0.1:5432`.
    pub fn describe(&self) -> String {
        if self.engine.contains("sqlite") {
            let file = self.file.as_deref().unwrap_or(&self.name);
            if file == self.name {
                format!("sqlite {file}")
            } else {
                format!("sqlite {file} (NAME = {})", self.name)
            }
        } else if self.engine.contains("postg") {
            let host = if self.host.is_empty() {
                "the local socket"
            } else {
                &self.host
            };
            let port = if self.port.is_empty() {
                "5432"
            } else {
                &self.port
            };
            format!("postgresql `{}` on {host}:{port}", self.name)
        } else {
            format!("{} `{}`", self.engine, self.name)
        }
    }
}

/// What asking the app found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The app uses the expected database.
    Same,
    /// The app uses another one.
    Differs(AppDatabase),
    /// The app did not say (no answer line in its output).
    Silent,
}

/// Compares what `django_command` printed with the database expected at
/// `expected` (a file or a URL of `db`'s engine).
pub fn compare(db: &Db, expected: &str, out: &str) -> Answer {
    let Some(app) = out
        .lines()
        .find_map(|l| l.strip_prefix("GANTRY-DB "))
        .and_then(|j| serde_json::from_str::<AppDatabase>(j).ok())
    else {
        return Answer::Silent;
    };
    let same = match db.engine {
        Kind::Sqlite => {
            let resolved = out
                .lines()
                .find_map(|l| l.strip_prefix("GANTRY-EXPECTED "))
                .unwrap_or(expected);
            app.engine.contains("sqlite") && app.file.as_deref() == Some(resolved)
        }
        Kind::Postgres => {
            let (host, port) = url_host_port(expected);
            app.engine.contains("postg")
                && app.name == database_name(expected)
                && same_host(&app.host, &host)
                && or_default(&app.port) == or_default(&port)
        }
    };
    if same {
        Answer::Same
    } else {
        Answer::Differs(app)
    }
}

fn or_default(port: &str) -> &str {
    if port.is_empty() {
        "5432"
    } else {
        port
    }
}

/// Hosts compare equal when they name the same machine the same way, or
/// both mean this machine (the socket, `localhost`, loopback addresses).
fn same_host(a: &str, b: &str) -> bool {
    let local = |h: &str| {
        matches!(h, "" | "localhost" | "127.0.0.1" | "::1" | "[::1]") || h.starts_with('/')
    };
    a == b || (local(a) && local(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_sqlite_files_after_resolving_links() {
        let db = Db::sqlite("/srv/s/shared/db.sqlite3");
        let out = "GANTRY-DB {\"engine\": \"django.db.backends.sqlite3\", \"name\": \"/srv/s/releases/r/src/db.sqlite3\", \"file\": \"/srv/s/shared/src/db.sqlite3\"}\nGANTRY-EXPECTED /srv/s/shared/db.sqlite3\n";
        let Answer::Differs(app) = compare(&db, "/srv/s/shared/db.sqlite3", out) else {
            panic!("a different file must differ");
        };
        assert_eq!(
            app.describe(),
            "sqlite /srv/s/shared/src/db.sqlite3 (NAME = /srv/s/releases/r/src/db.sqlite3)"
        );
        let out = out.replace(
            "GANTRY-EXPECTED /srv/s/shared/db.sqlite3",
            "GANTRY-EXPECTED /srv/s/shared/src/db.sqlite3",
        );
        assert_eq!(compare(&db, "/srv/s/shared/db.sqlite3", &out), Answer::Same);
        assert_eq!(compare(&db, "x", "Traceback"), Answer::Silent);
    }

    #[test]
    fn compares_postgres_name_host_and_port() {
        let mut db = Db::sqlite("");
        db.engine = Kind::Postgres;
        let url = "postgresql://app@127.0.0.1:5433/live";
        let answer = |name: &str, host: &str, port: &str| {
            compare(
                &db,
                url,
                &format!("GANTRY-DB {{\"engine\": \"django.db.backends.postgresql\", \"name\": \"{name}\", \"host\": \"{host}\", \"port\": \"{port}\"}}"),
            )
        };
        assert_eq!(answer("live", "localhost", "5433"), Answer::Same);
        assert!(matches!(answer("live", "", "5432"), Answer::Differs(_)));
        assert!(matches!(
            answer("staging", "127.0.0.1", "5433"),
            Answer::Differs(_)
        ));
    }
}
