//! Putting a backup back in place, without a moment in which the app
//! sees half a database or writes into a file that is being replaced:
//! while the app's writes wait (SQLite's write lock, PostgreSQL's table
//! locks), the database as it is is saved whole (what the restore
//! replaces is never lost), then the backup's schema and rows replace
//! it in the same transaction. A restore that fails changes nothing.
//! Writes that waited go into the restored database.

use crate::base::shell::quote;
use crate::data::database::{without_password, Db, Kind};

/// SQLite: `live backup saved`. The live file keeps its inode, mode and
/// owner, so the app's open connections see the restored database (no
/// restart needed).
const SQLITE_RESTORE: &str = r#"import os, sqlite3, sys, urllib.parse
live, backup, saved = sys.argv[1:4]
os.makedirs(os.path.dirname(saved) or ".", exist_ok=True)
conn = sqlite3.connect(live, timeout=60, isolation_level=None, uri=False)
conn.execute("PRAGMA foreign_keys = OFF")
conn.execute("ATTACH DATABASE ? AS gantry_backup", ("file:" + urllib.parse.quote(os.path.abspath(backup)) + "?mode=ro",))
q = lambda name: '"%s"' % name.replace('"', '""')
conn.execute("BEGIN IMMEDIATE")
try:
    old = os.umask(0o077)
    reader = sqlite3.connect(live, timeout=60)
    out = sqlite3.connect(saved)
    reader.backup(out)
    out.close()
    reader.close()
    os.umask(old)
    print("saved")
    for typ, name in conn.execute("SELECT type, name FROM main.sqlite_master WHERE type IN ('view', 'table') AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table'").fetchall():
        conn.execute("DROP %s IF EXISTS main.%s" % (typ.upper(), q(name)))
    for typ, name, sql in conn.execute("SELECT type, name, sql FROM gantry_backup.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type <> 'table', rowid").fetchall():
        conn.execute(sql)
        if typ == "table":
            conn.execute("INSERT INTO main.%s SELECT * FROM gantry_backup.%s" % (q(name), q(name)))
    if conn.execute("SELECT 1 FROM gantry_backup.sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        conn.execute("DELETE FROM main.sqlite_sequence")
        conn.execute("INSERT INTO main.sqlite_sequence SELECT * FROM gantry_backup.sqlite_sequence")
    version = conn.execute("PRAGMA gantry_backup.user_version").fetchone()[0]
    conn.execute("PRAGMA main.user_version = %d" % int(version))
    conn.execute("COMMIT")
except BaseException:
    conn.execute("ROLLBACK")
    raise
conn.execute("DETACH DATABASE gantry_backup")
print("restored")
"#;

/// The PostgreSQL restore, with `$backup` (a `pg_dump -Fc` file), `$saved`
/// and `$url` set.
const PG_RESTORE: &str = r#"toc=$(mktemp)
trap 'rm -f "$toc" "$toc.keep"' EXIT
pg_restore -l "$backup" >"$toc"
have_schemas=$(psql -X -A -t -v ON_ERROR_STOP=1 "$url" -c "SELECT nspname FROM pg_namespace")
have_ext=$(psql -X -A -t -v ON_ERROR_STOP=1 "$url" -c "SELECT extname FROM pg_extension")
for e in $(awk '$4 == "EXTENSION" { print $6 }' "$toc"); do
    printf '%s\n' "$have_ext" | grep -qx -- "$e" && continue
    ok=$(psql -X -A -t -v ON_ERROR_STOP=1 "$url" -c "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR coalesce((SELECT bool_or(trusted) FROM pg_available_extension_versions WHERE name = '$e'), false)")
    if [ "$ok" != t ]; then
        echo "the backup needs the extension $e, which the database's role may not create; nothing was changed: have a superuser run CREATE EXTENSION $e; then restore again" >&2
        exit 1
    fi
done
gantry_schemas=$have_schemas gantry_ext=$have_ext awk '
BEGIN { n = split(ENVIRON["gantry_schemas"], a, "\n"); for (i = 1; i <= n; i++) S[a[i]] = 1; n = split(ENVIRON["gantry_ext"], b, "\n"); for (i = 1; i <= n; i++) E[b[i]] = 1 }
$4 == "SCHEMA" && $6 != "public" && ($6 in S) { next }
$4 == "EXTENSION" && ($6 in E) { next }
$4 == "COMMENT" && $6 == "EXTENSION" && ($7 in E) { next }
{ print }' "$toc" >"$toc.keep"
export gantry_saved="$saved" gantry_url="$url"
mkdir -p "$(dirname "$saved")"
attempt() {
{
    echo 'BEGIN;'
    echo 'SET client_min_messages = warning;'
    # Writes wait from here to the commit; what they would have changed
    # first is saved, whole, by pg_dump, which these locks let read.
    cat <<'SQL'
DO $gantry$ DECLARE r record; BEGIN
  FOR r IN SELECT format('LOCK TABLE %I.%I IN EXCLUSIVE MODE', n.nspname, c.relname) AS q
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
    -- Tables that reference others first, as the app's writes lock them.
    ORDER BY (SELECT count(*) FROM pg_constraint f WHERE f.conrelid = c.oid AND f.contype = 'f') DESC
  LOOP EXECUTE r.q; END LOOP;
END $gantry$;
\! umask 077; pg_dump -Fc -f "$gantry_saved" "$gantry_url" || { rm -f "$gantry_saved"; echo 'the database could not be saved as it is, so nothing was restored' >&2; kill $PPID; }
SQL
    echo 'CREATE TEMP TABLE gantry_dumped (n text) ON COMMIT DROP;'
    awk '$4 == "SCHEMA" { print $6 }' "$toc" | sed "s/'/''/g; s/.*/INSERT INTO gantry_dumped VALUES ('&');/"
    cat <<'SQL'
DO $gantry$ DECLARE r record; BEGIN
  FOR r IN SELECT format('DROP SCHEMA %I CASCADE', nspname) AS q FROM pg_namespace
    WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%' AND nspname NOT IN (SELECT n FROM gantry_dumped)
      AND NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extnamespace = pg_namespace.oid)
  LOOP EXECUTE r.q; END LOOP;
  FOR r IN SELECT format('DROP %s IF EXISTS %I.%I CASCADE', CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, n.nspname, c.relname) AS q
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY c.relkind = 'S'
  LOOP EXECUTE r.q; END LOOP;
  FOR r IN SELECT format('DROP %s IF EXISTS %s CASCADE', CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END, p.oid::regprocedure) AS q
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP EXECUTE r.q; END LOOP;
  FOR r IN SELECT format('DROP %s IF EXISTS %I.%I CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname) AS q
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd', 'r') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  LOOP EXECUTE r.q; END LOOP;
END $gantry$;
SQL
    pg_restore -L "$toc.keep" -f - "$backup"
    echo 'COMMIT;'
} | psql -X -q -v ON_ERROR_STOP=1 "$url" >/dev/null
}
# The app's transactions may take the same locks in another order: a
# deadlock aborts this transaction (nothing changed), which is tried again.
tries=0
err=$(mktemp)
until attempt 2>"$err"; do
    tries=$((tries + 1))
    if [ $tries -ge 5 ] || ! grep -q "deadlock detected" "$err"; then cat "$err" >&2; rm -f "$err"; exit 1; fi
    sleep 1
done
rm -f "$err"
echo restored"#;

/// The script that saves the database as it is to `saved`, then puts
/// `backup` back; prints `restored`.
pub fn script(db: &Db, backup: &str, saved: &str) -> String {
    let missing = format!(
        "[ -f {} ] || {{ echo 'backup {} is missing' >&2; exit 1; }}",
        quote(backup),
        backup.replace('\'', "")
    );
    match db.engine {
        Kind::Sqlite => format!(
            "set -e\n{missing}\npython3 -c {} {} {} {}",
            quote(SQLITE_RESTORE),
            quote(&db.location),
            quote(backup),
            quote(saved)
        ),
        Kind::Postgres => format!(
            "{}set -e\n{missing}\nbackup={}\nsaved={}\nurl={}\n{PG_RESTORE}",
            db.prelude(),
            quote(backup),
            quote(saved),
            quote(&without_password(&db.location))
        ),
    }
}
