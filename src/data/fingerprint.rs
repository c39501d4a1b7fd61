//! A database's identity, read on the migrate host before and after
//! anything that may change it: SQLite's file (inode, size, its contents'
//! version) and
//! PostgreSQL's cheap equivalent (per-table row counts), plus, for both,
//! the schema and the applied migrations. Comparing two fingerprints says
//! exactly what changed: a rehearsal that touched the real database, a
//! copy the app never used, a migration that migrated something else.

use std::collections::{BTreeMap, BTreeSet};

use crate::base::shell::quote;
use crate::data::database::{Db, Kind};

/// What identifies one database at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// There was no database (SQLite: no file).
    pub missing: bool,
    /// SQLite: the file's inode and size, and a version of its contents
    /// and its `-wal`'s: a sha256 of each file up to 64 MiB; above that,
    /// its size, modification time and header (SQLite's change counter,
    /// the WAL's salts), so a big database is not read whole.
    pub inode: Option<u64>,
    pub size: Option<u64>,
    pub contents: Option<String>,
    /// A hash of the tables, columns, indexes and constraints.
    pub schema: String,
    /// How many migrations the app's migration table lists (Django's,
    /// Rails', Alembic's, knex's, Flyway's), and a hash of them (`-`
    /// without such a table).
    pub migrations: (u64, String),
    /// Rows per table.
    pub rows: BTreeMap<String, u64>,
    /// A sum of each table's rows' hashes: with `rows`, what tells the
    /// tables whose rows changed between two fingerprints.
    pub sums: BTreeMap<String, String>,
    /// Every object of the schema, one line each (`schema`): on
    /// PostgreSQL with schemas, owners, privileges, extensions, comments.
    pub objects: BTreeSet<String>,
    /// The migrations the migration table lists, in the order applied.
    pub applied: Vec<String>,
}

/// Reads a SQLite file's identity without writing to it (read-only URI).
const SQLITE_FINGERPRINT: &str = r#"import hashlib, os, sqlite3, sys, urllib.parse
p = sys.argv[1]
if not os.path.exists(p):
    print("missing")
    sys.exit(0)
whole = int(sys.argv[2]) if len(sys.argv) > 2 else 64 << 20
h = hashlib.sha256()
for part in (p, p + "-wal"):
    if os.path.exists(part):
        st = os.stat(part)
        with open(part, "rb") as f:
            if st.st_size <= whole:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            else:
                h.update(b"%d %d " % (st.st_size, st.st_mtime_ns) + f.read(100))
st = os.stat(p)
print("inode", st.st_ino)
print("size", st.st_size)
print("contents", h.hexdigest())
c = sqlite3.connect("file:" + urllib.parse.quote(os.path.abspath(p)) + "?mode=ro", uri=True)
MIGRATION_TABLES = ["django_migrations", "schema_migrations", "alembic_version", "knex_migrations", "flyway_schema_history"]
def digest(rows):
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
print("schema", digest(c.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()))
tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
known = [t for t in MIGRATION_TABLES if t in tables]
rows = [r for t in known for r in c.execute('SELECT * FROM "%s" ORDER BY 1' % t).fetchall()]
print("migrations", len(rows), digest(rows) if known else "-")
for t in sorted(tables):
    if t.startswith("sqlite_"):
        continue
    n, s = 0, 0
    for r in c.execute('SELECT * FROM "%s"' % t.replace('"', '""')):
        n += 1
        s = (s + int.from_bytes(hashlib.sha256(repr(r).encode()).digest()[:8], "big")) % (1 << 64)
    print("rows", t.replace(" ", "%20"), n)
    print("sum", t.replace(" ", "%20"), s)
"#;

/// Opens a SQLite file read-only for `SQLITE_OBJECTS` alone.
const SQLITE_OPEN: &str = r#"import hashlib, os, sqlite3, sys, urllib.parse
p = sys.argv[1]
if not os.path.exists(p):
    print("missing")
    sys.exit(0)
c = sqlite3.connect("file:" + urllib.parse.quote(os.path.abspath(p)) + "?mode=ro", uri=True)
tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
"#;

/// The script that prints only the schema's objects and the applied
/// migrations of the database at `location`: no row is read, so it costs
/// the same on a database of any size (what each deploy records).
pub fn schema_script(db: &Db, location: &str) -> String {
    match db.engine {
        Kind::Sqlite => format!(
            "python3 -c {} {}",
            quote(&format!(
                "{SQLITE_OPEN}{}",
                crate::data::schema::SQLITE_OBJECTS
            )),
            quote(location)
        ),
        Kind::Postgres => format!(
            "{}psql -X -A -t -v ON_ERROR_STOP=1 {} -c {}",
            db.prelude(),
            quote(&crate::data::database::without_password(location)),
            quote(crate::data::schema::POSTGRES_OBJECTS)
        ),
    }
}

/// The SQLite script whole: identity, then the schema's objects.
fn sqlite_script() -> String {
    format!(
        "{SQLITE_FINGERPRINT}{}",
        crate::data::schema::SQLITE_OBJECTS
    )
}

/// PostgreSQL: schema, migrations and row counts, one line each.
const POSTGRES_FINGERPRINT: &str = "\
SELECT 'schema ' || md5(\
 coalesce((SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' || is_nullable, ',' ORDER BY table_name, column_name) FROM information_schema.columns WHERE table_schema = 'public'), '') || '|' || \
 coalesce((SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ',' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace), '') || '|' || \
 coalesce((SELECT string_agg(indexdef, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'), ''))
UNION ALL SELECT CASE WHEN to_regclass('public.django_migrations') IS NULL THEN 'migrations 0 -' ELSE 'migrations ' || \
 (xpath('/row/c/text()', query_to_xml('SELECT count(*)::text || '' '' || left(md5(coalesce(string_agg(app || ''.'' || name, '','' ORDER BY id), '''')), 16) AS c FROM public.django_migrations', false, true, '')))[1]::text END
UNION ALL SELECT 'rows ' || table_name || ' ' || \
 (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text \
 FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
UNION ALL SELECT 'sum ' || table_name || ' ' || \
 (xpath('/row/c/text()', query_to_xml(format('SELECT coalesce(sum(hashtext(t::text)::bigint), 0) AS c FROM %I.%I t', table_schema, table_name), false, true, '')))[1]::text \
 FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'";

/// The script that prints the fingerprint of the database at `location`
/// (a file, or a URL) of `db`'s engine.
pub fn script(db: &Db, location: &str) -> String {
    script_reading_whole(db, location, 64 << 20)
}

/// `script`, reading a SQLite file whole only up to `whole` bytes.
fn script_reading_whole(db: &Db, location: &str, whole: u64) -> String {
    match db.engine {
        Kind::Sqlite => format!(
            "python3 -c {} {} {whole}",
            quote(&sqlite_script()),
            quote(location)
        ),
        Kind::Postgres => format!(
            "{}psql -X -A -t -v ON_ERROR_STOP=1 {} -c {} -c {}",
            db.prelude(),
            quote(&crate::data::database::without_password(location)),
            quote(POSTGRES_FINGERPRINT),
            quote(crate::data::schema::POSTGRES_OBJECTS)
        ),
    }
}

impl Fingerprint {
    /// Parses what `script` printed.
    pub fn parse(out: &str) -> Fingerprint {
        let mut f = Fingerprint::default();
        for line in out.lines() {
            if let Some(object) = line.strip_prefix("object ") {
                f.objects.insert(object.to_string());
                continue;
            }
            if let Some(migration) = line.strip_prefix("applied ") {
                f.applied.push(migration.to_string());
                continue;
            }
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some("missing"), _, _) => f.missing = true,
                (Some("inode"), Some(n), _) => f.inode = n.parse().ok(),
                (Some("size"), Some(n), _) => f.size = n.parse().ok(),
                (Some("contents"), Some(h), _) => f.contents = Some(h.to_string()),
                (Some("schema"), Some(h), _) => f.schema = h.to_string(),
                (Some("migrations"), Some(n), Some(h)) => {
                    f.migrations = (n.parse().unwrap_or(0), h.to_string())
                }
                (Some("rows"), Some(table), Some(n)) => {
                    f.rows.insert(table.to_string(), n.parse().unwrap_or(0));
                }
                (Some("sum"), Some(table), Some(n)) => {
                    f.sums.insert(table.to_string(), n.to_string());
                }
                _ => {}
            }
        }
        f
    }

    /// What differs from `before`, in words; empty when nothing does.
    /// Structural changes (the file replaced, the schema, the applied
    /// migrations) come first; they are what a migration does.
    pub fn changes(&self, before: &Fingerprint) -> Changes {
        let mut c = Changes::default();
        match (before.missing, self.missing) {
            (true, false) => c.structural.push("the database was created".into()),
            (false, true) => c.structural.push("the database was removed".into()),
            _ => {}
        }
        if self.missing || before.missing {
            return c;
        }
        if self.inode != before.inode {
            c.structural.push(format!(
                "the file was replaced (inode {} → {})",
                show(before.inode),
                show(self.inode)
            ));
        }
        if self.schema != before.schema {
            c.structural
                .push("the schema changed (tables, columns, indexes or constraints)".into());
        } else if self.objects != before.objects {
            let diff = crate::data::schema::Diff::between(&before.objects, &self.objects);
            let mut seen: Vec<String> = diff
                .removed
                .iter()
                .map(|l| format!("- {}", crate::data::schema::shown(l)))
                .chain(
                    diff.added
                        .iter()
                        .map(|l| format!("+ {}", crate::data::schema::shown(l))),
                )
                .collect();
            seen.truncate(4);
            c.structural.push(format!(
                "the schema changed (owners, privileges, schemas, extensions or comments: {})",
                seen.join("; ")
            ));
        }
        if self.migrations != before.migrations {
            c.structural.push(format!(
                "the applied migrations changed ({} → {})",
                before.migrations.0, self.migrations.0
            ));
        }
        if self.contents != before.contents {
            c.content.push(format!(
                "the file's contents changed (size {} → {}, version {} → {})",
                show(before.size),
                show(self.size),
                short(&before.contents),
                short(&self.contents)
            ));
        }
        // SQLite's file version already says its rows changed.
        let tables: std::collections::BTreeSet<&String> = before
            .rows
            .keys()
            .chain(self.rows.keys())
            .filter(|_| self.contents.is_none())
            .collect();
        for t in tables {
            let (a, b) = (before.rows.get(t), self.rows.get(t));
            if a != b {
                c.content.push(format!(
                    "rows of {t}: {} → {}",
                    a.map_or("none".into(), u64::to_string),
                    b.map_or("none".into(), u64::to_string)
                ));
            }
        }
        c
    }
}

impl Fingerprint {
    /// The tables whose rows differ from `before` (added, removed or
    /// changed), by their counts and sums.
    pub fn tables_changed(&self, before: &Fingerprint) -> Vec<String> {
        let tables: BTreeSet<&String> = before.rows.keys().chain(self.rows.keys()).collect();
        tables
            .into_iter()
            .filter(|t| {
                before.rows.get(*t) != self.rows.get(*t) || before.sums.get(*t) != self.sums.get(*t)
            })
            .map(|t| t.replace("%20", " "))
            .collect()
    }
}

/// How two fingerprints differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// What a migration changes: file identity, schema, migrations.
    pub structural: Vec<String>,
    /// Rows and bytes only: what the app itself does while it serves.
    pub content: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.structural.is_empty() && self.content.is_empty()
    }

    /// Every change, structural first.
    pub fn all(&self) -> Vec<String> {
        self.structural
            .iter()
            .chain(&self.content)
            .cloned()
            .collect()
    }
}

fn show(n: Option<u64>) -> String {
    n.map_or("?".into(), |n| n.to_string())
}

fn short(h: &Option<String>) -> String {
    h.as_deref()
        .map_or("?".into(), |h| h[..h.len().min(12)].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a script and returns what it printed.
    fn sh(script: &str) -> String {
        crate::base::shell::run_for_test(script)
    }

    fn sqlite(path: &std::path::Path, sql: &str) {
        sh(&format!(
            "python3 -c {} {} {}",
            quote("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"),
            quote(path.to_str().unwrap()),
            quote(sql)
        ));
    }

    #[test]
    fn the_schema_record_reads_objects_and_migrations_but_no_row() {
        let dir = std::env::temp_dir().join(format!("gantry-schema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("app.sqlite3");
        sqlite(
            &db,
            "CREATE TABLE items (text TEXT NOT NULL); INSERT INTO items VALUES ('a');\
             CREATE TABLE schema_migrations (name TEXT); INSERT INTO schema_migrations VALUES ('0001_items.sql');",
        );
        let path = db.to_str().unwrap();
        let out = sh(&schema_script(&Db::sqlite(path), path));
        assert!(!out.contains("rows ") && !out.contains("sum "), "{out}");
        let f = Fingerprint::parse(&out);
        assert!(f.objects.contains("table items"), "{:?}", f.objects);
        assert_eq!(f.applied, ["0001_items.sql"]);
        let full = Fingerprint::parse(&sh(&script(&Db::sqlite(path), path)));
        assert_eq!((f.objects, f.applied), (full.objects, full.applied));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sqlite_fingerprint_tells_rows_from_migrations() {
        tells_rows_from_migrations(64 << 20, "read whole");
    }

    #[test]
    fn a_big_sqlite_fingerprint_tells_rows_from_migrations_without_reading_it_whole() {
        // Every file counts as big: only its size, time and header are read.
        tells_rows_from_migrations(0, "big");
        // In WAL mode the writes go to the -wal file first.
        tells_rows_from_migrations(0, "wal");
    }

    fn tells_rows_from_migrations(whole: u64, case: &str) {
        let dir = std::env::temp_dir().join(format!("gantry-fp-{}-{case}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db.sqlite3");
        let db = Db::sqlite(file.to_str().unwrap());
        let read = || {
            Fingerprint::parse(&sh(&script_reading_whole(
                &db,
                file.to_str().unwrap(),
                whole,
            )))
        };
        if case == "wal" {
            sqlite(&file, "PRAGMA journal_mode=WAL;");
        }

        let missing = read();
        assert!(missing.missing || case == "wal");
        sqlite(&file, "CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT); CREATE TABLE item (id INTEGER PRIMARY KEY, text TEXT);");
        let created = read();
        if case != "wal" {
            assert_eq!(
                created.changes(&missing).structural,
                ["the database was created"]
            );
        }
        assert_eq!(read(), created, "reading changes nothing");

        sqlite(&file, "INSERT INTO item (text) VALUES ('milk');");
        let rows = read();
        let c = rows.changes(&created);
        assert!(c.structural.is_empty(), "{c:?}");
        assert_eq!(c.content.len(), 1, "{c:?}");
        // A second write right after, of the same size, is still seen.
        sqlite(&file, "UPDATE item SET text = 'eggs';");
        let c = read().changes(&rows);
        assert_eq!(c.content.len(), 1, "{case}: {c:?}");
        let rows = read();

        sqlite(&file, "INSERT INTO django_migrations (app, name) VALUES ('lists', '0002'); CREATE UNIQUE INDEX u ON item (text);");
        let migrated = read();
        let c = migrated.changes(&rows);
        assert_eq!(
            c.structural,
            [
                "the schema changed (tables, columns, indexes or constraints)",
                "the applied migrations changed (0 → 1)"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
