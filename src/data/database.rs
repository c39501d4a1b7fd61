//! The environment's database as seen from its migrate host: consistent
//! backups before migrations (SQLite's online backup API, `pg_dump -Fc`),
//! restores, scratch copies for rehearsals, and reading the rows that
//! violate a constraint. Everything here is a shell script run on that
//! host, built from quoted values.

use crate::base::shell::quote;
use crate::config::{Database, Engine, Vars};
pub use crate::model::violation::Violation;

/// One environment's database, with its location rendered for a host.
#[derive(Debug, Clone)]
pub struct Db {
    pub engine: Kind,
    /// The file (SQLite) or URL (PostgreSQL).
    pub location: String,
    pub env_var: Option<String>,
    /// Reads the shared env file first, so `PGPASSWORD` and the like can
    /// come from `[secrets]` instead of the URL.
    prelude: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Takes a consistent copy of a SQLite file with the backup API, holding a
/// read lock so the header it copies back matches the pages: the backup
/// API stamps its own change counter and schema cookie into the copy's
/// header, and putting the source's header back makes the copy the same
/// file, byte for byte.
const SQLITE_COPY: &str = r#"import sqlite3, sys
src = sqlite3.connect(sys.argv[1], timeout=30)
src.execute("BEGIN")
src.execute("SELECT count(*) FROM sqlite_master").fetchall()
with open(sys.argv[1], "rb") as f:
    header = f.read(100)
dst = sqlite3.connect(sys.argv[2])
src.backup(dst)
dst.close()
src.rollback()
src.close()
if len(header) == 100 and header.startswith(b"SQLite format 3"):
    with open(sys.argv[2], "r+b") as f:
        f.write(header)
"#;

/// Runs a query on a SQLite file without writing to it, printing
/// tab-separated rows.
const SQLITE_QUERY: &str = r#"import os, sqlite3, sys, urllib.parse
conn = sqlite3.connect("file:" + urllib.parse.quote(os.path.abspath(sys.argv[1])) + "?mode=ro", uri=True)
for row in conn.execute(sys.argv[2]):
    print("\t".join("NULL" if v is None else str(v) for v in row))
"#;

impl Db {
    /// The database of an environment on a host, or `None` without one.
    /// `prelude` runs before every PostgreSQL command (sourcing the env file).
    pub fn new(database: &Database, vars: &Vars, prelude: &str) -> Option<Db> {
        let (engine, location) = match &database.engine {
            Engine::None => return None,
            Engine::Sqlite { path } => (Kind::Sqlite, path.render(vars)),
            Engine::Postgres { url } => (Kind::Postgres, url.render(vars)),
        };
        let mut prelude = prelude.to_string();
        if let Some(password) = url_password(&location) {
            crate::base::secrets::register(&password);
            // The database tools get the password from the environment,
            // never on their command lines (`Db::arg` leaves it out); the
            // script that sets it reaches the host on stdin.
            let decoded = percent_decode(&password);
            crate::base::secrets::register(&decoded);
            prelude.push_str(&format!("export PGPASSWORD={}\n", quote(&decoded)));
        }
        Some(Db {
            engine,
            location,
            env_var: database.env_var.clone(),
            prelude,
        })
    }

    /// A SQLite database at `path`, with the usual variable.
    pub fn sqlite(path: &str) -> Db {
        Db {
            engine: Kind::Sqlite,
            location: path.to_string(),
            env_var: Some("DB_PATH".into()),
            prelude: String::new(),
        }
    }

    /// A URL as a command-line argument: quoted, without its password.
    fn arg(&self, url: &str) -> String {
        quote(&without_password(url))
    }

    /// Shell lines run before every PostgreSQL command.
    pub fn prelude(&self) -> &str {
        &self.prelude
    }

    /// Where the copy of this database goes for a rehearsal whose scratch
    /// `shared/` is `scratch_shared`: a SQLite file kept in the real
    /// `shared/` is copied to the same place in the scratch one, so an app
    /// that reaches it through a shared link (whatever its settings say)
    /// opens the copy; any other file goes to `scratch_dir`. PostgreSQL: a
    /// scratch database next to the real one.
    pub fn copy_location(
        &self,
        real_shared: &str,
        scratch_shared: &str,
        scratch_dir: &str,
        release: &str,
    ) -> String {
        match self.engine {
            Kind::Sqlite => match self.location.strip_prefix(&format!("{real_shared}/")) {
                Some(rest) => format!("{scratch_shared}/{rest}"),
                None => format!("{scratch_dir}/{release}.sqlite3"),
            },
            Kind::Postgres => with_database(&self.location, &self.scratch_name()),
        }
    }

    /// The variable that tells the app where its database is.
    pub fn app_env(&self, location: &str) -> Vec<(String, String)> {
        self.env_var
            .iter()
            .map(|v| (v.clone(), location.to_string()))
            .collect()
    }

    /// What people see: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self.engine {
            Kind::Sqlite => self.location.clone(),
            Kind::Postgres => hide_password(&self.location),
        }
    }

    /// The extension of this engine's backups (`sqlite3`, `dump`).
    pub fn backup_extension(&self) -> &'static str {
        match self.engine {
            Kind::Sqlite => "sqlite3",
            Kind::Postgres => "dump",
        }
    }

    /// Backs the database up to `dest` (mode 0600). Prints `missing` when a
    /// SQLite file does not exist yet (nothing to back up), else `ok`.
    /// A backup that fails part way (a full disk) is removed: a part of
    /// one is never listed as a backup.
    pub fn backup_script(&self, dest: &str) -> String {
        let dir = dest.rsplit_once('/').map_or(".", |(d, _)| d);
        match self.engine {
            Kind::Sqlite => format!(
                "set -e\numask 077\nmkdir -p {dir}\nif [ ! -e {db} ]; then echo missing; exit 0; fi\n\
                 python3 -c {code} {db} {dest} || {{ rm -f {dest}; exit 1; }}\nchmod 600 {dest}\necho ok",
                dir = quote(dir),
                db = quote(&self.location),
                dest = quote(dest),
                code = quote(SQLITE_COPY),
            ),
            Kind::Postgres => format!(
                "{pre}set -e\numask 077\nmkdir -p {dir}\npg_dump -Fc -f {dest} {url} || {{ rm -f {dest}; exit 1; }}\nchmod 600 {dest}\necho ok",
                pre = self.prelude,
                dir = quote(dir),
                dest = quote(dest),
                url = self.arg(&self.location),
            ),
        }
    }

    /// Removes a SQLite database that a failed migration created where
    /// there was none.
    pub fn remove_script(&self) -> String {
        remove_sqlite(&self.location)
    }

    fn scratch_name(&self) -> String {
        let name = database_name(&self.location);
        let mut scratch = format!("{name}_gantry_rehearsal");
        scratch.truncate(63);
        scratch
    }

    /// Makes the rehearsal's copy (dropping a leftover one first).
    pub fn copy_script(&self, copy: &str) -> String {
        match self.engine {
            Kind::Sqlite => format!(
                "set -e\numask 077\n{drop}\nmkdir -p {dir}\n\
                 if [ -e {db} ]; then python3 -c {code} {db} {copy}; echo copied; else echo empty; fi",
                drop = self.drop_copy_script(copy),
                dir = quote(copy.rsplit_once('/').map_or(".", |(d, _)| d)),
                db = quote(&self.location),
                code = quote(SQLITE_COPY),
                copy = quote(copy),
            ),
            Kind::Postgres => {
                let name = self.scratch_name();
                format!(
                    "{pre}set -e\n{drop}\npsql -X -q -v ON_ERROR_STOP=1 {url} -c {create}\n\
                     pg_dump -Fc --no-owner --no-acl {url} | pg_restore --no-owner --no-acl -d {copy}\necho copied",
                    pre = self.prelude,
                    drop = self.drop_copy_script(copy),
                    url = self.arg(&self.location),
                    create = quote(&format!("CREATE DATABASE \"{name}\"")),
                    copy = self.arg(copy),
                )
            }
        }
    }

    /// Deletes the rehearsal's copy; safe to run when there is none.
    pub fn drop_copy_script(&self, copy: &str) -> String {
        match self.engine {
            Kind::Sqlite => remove_sqlite(copy),
            Kind::Postgres => format!(
                "{}psql -X -q {} -c {} 2>&1 | grep -v 'does not exist' >&2 || true",
                self.prelude,
                self.arg(&self.location),
                quote(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.scratch_name()
                ))
            ),
        }
    }

    /// A read-only query on the database at `copy` (a rehearsal's copy, a
    /// backup, or the real one), printing tab-separated rows.
    pub fn query_script(&self, copy: &str, sql: &str) -> String {
        match self.engine {
            Kind::Sqlite => format!(
                "python3 -c {} {} {}",
                quote(SQLITE_QUERY),
                quote(copy),
                quote(sql)
            ),
            Kind::Postgres => format!(
                "{}psql -X -A -t -F \"$(printf '\\t')\" -v ON_ERROR_STOP=1 {} -c {}",
                self.prelude,
                self.arg(copy),
                quote(sql)
            ),
        }
    }
}

/// Removes a SQLite file and the files SQLite keeps beside it.
fn remove_sqlite(path: &str) -> String {
    format!(
        "rm -f {} {} {} {}",
        quote(path),
        quote(&format!("{path}-wal")),
        quote(&format!("{path}-shm")),
        quote(&format!("{path}-journal"))
    )
}

/// The URL without its password.
pub fn without_password(url: &str) -> String {
    match url_password(url) {
        Some(p) => url.replacen(&format!(":{p}@"), "@", 1),
        None => url.to_string(),
    }
}

/// `%XX` escapes decoded (a URL's password as the database sees it).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password in a URL, if it has one.
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo
        .split_once(':')
        .map(|(_, p)| p.to_string())
        .filter(|p| !p.is_empty())
}

/// True for names that can go into SQL as quoted identifiers safely.
pub fn plain_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The database name at the end of a PostgreSQL URL.
pub fn database_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split_once('/')
        .map(|(_, path)| path.split('?').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The host and port of a PostgreSQL URL (empty when it names none).
pub fn url_host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, rest) = v6.split_once(']').unwrap_or((v6, ""));
        (h.to_string(), rest.trim_start_matches(':').to_string())
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (hostport.to_string(), String::new()),
        }
    };
    (host, port)
}

/// The URL with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgresql", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// The URL with its password replaced by `***`.
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_and_postgres_violations() {
        let sqlite = "Applying lists.0002_item_unique...\ndjango.db.utils.IntegrityError: UNIQUE constraint failed: new__lists_item.list_id, new__lists_item.text";
        assert_eq!(
            Violation::parse(sqlite),
            Some(Violation::Unique {
                table: Some("lists_item".into()),
                index: None,
                columns: vec!["list_id".into(), "text".into()]
            })
        );
        let pg = "django.db.utils.IntegrityError: could not create unique index \"lists_item_list_id_text_9a6c_uniq\"\nDETAIL:  Key (list_id, text)=(1, milk) is duplicated.";
        assert_eq!(
            Violation::parse(pg),
            Some(Violation::Unique {
                table: None,
                index: Some("lists_item_list_id_text_9a6c_uniq".into()),
                columns: vec!["list_id".into(), "text".into()]
            })
        );
        assert_eq!(
            Violation::parse(
                "sqlite3.IntegrityError: NOT NULL constraint failed: new__lists_item.text"
            ),
            Some(Violation::NotNull {
                table: "lists_item".into(),
                column: "text".into()
            })
        );
        assert_eq!(Violation::parse("all good"), None);
    }

    #[test]
    fn urls() {
        let url = "postgresql://app:s3cret@127.0.0.1:5432/shop?sslmode=disable";
        assert_eq!(database_name(url), "shop");
        assert_eq!(
            with_database(url, "shop_x"),
            "postgresql://app:s3cret@127.0.0.1:5432/shop_x?sslmode=disable"
        );
        assert_eq!(
            hide_password(url),
            "postgresql://app:***@127.0.0.1:5432/shop?sslmode=disable"
        );
        assert_eq!(
            hide_password("postgresql://app@h/db"),
            "postgresql://app@h/db"
        );
        assert_eq!(url_password(url).as_deref(), Some("s3cret"));
        assert_eq!(url_password("postgresql://app@h/db"), None);
    }
}
