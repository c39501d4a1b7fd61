"""Applies the numbered SQL files in migrations/ that the database has not
seen yet, each in its own transaction, and records them. Exits non-zero,
naming the migration, when one fails; that migration leaves no trace.

    python3 migrate.py            apply pending migrations
    python3 migrate.py --check    exit 1 when migrations are pending
    python3 migrate.py --sql      print the pending migrations' SQL for
                                  Gantry's checks (`[database] sql`)
    python3 migrate.py --reverse  reverse the migrations named in
                                  GANTRY_MIGRATIONS (newest first), each by
                                  the part of its file after `-- down`;
                                  exits 3 for one without that part

Gantry runs `--reverse` when a deploy that applied migrations is put back
and the release going back does not run on the new schema.
"""

import os
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DB_PATH = os.environ.get("DB_PATH", os.path.join(HERE, "db.sqlite3"))


def pending(conn):
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)")
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    folder = os.path.join(HERE, "migrations")
    return [n for n in sorted(os.listdir(folder)) if n.endswith(".sql") and n not in done]


def parts(name):
    """The migration's SQL statements up and down (None without `-- down`)."""
    with open(os.path.join(HERE, "migrations", name)) as f:
        text = f.read()
    up, sep, down = text.partition("\n-- down\n")
    split = lambda sql: [s for s in sql.split(";") if s.strip()]
    return split(up), (split(down) if sep else None)


def run(conn, name, statements, record):
    try:
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement)
        conn.execute(record, (name,))
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        conn.execute("ROLLBACK")
        print(f"migration {name} failed: {e}", file=sys.stderr)
        sys.exit(1)


def reverse(conn):
    for name in os.environ.get("GANTRY_MIGRATIONS", "").split():
        _, down = parts(name)
        if down is None:
            print(f"migration {name} is irreversible (no `-- down` part)", file=sys.stderr)
            sys.exit(3)
        run(conn, name, down, "DELETE FROM schema_migrations WHERE name = ?")
        print(f"reversed {name}")


def main():
    conn = sqlite3.connect(DB_PATH, timeout=10, isolation_level=None)
    if "--reverse" in sys.argv:
        reverse(conn)
        return
    todo = pending(conn)
    if "--sql" in sys.argv:
        for name in todo:
            up, down = parts(name)
            print(f"-- gantry-migration: {name}")
            if down is None:
                print("-- gantry-irreversible: no `-- down` part")
            print(";\n".join(s.strip() for s in up) + ";")
        return
    if "--check" in sys.argv:
        print("\n".join(todo) if todo else "no pending migrations")
        sys.exit(1 if todo else 0)
    for name in todo:
        up, _ = parts(name)
        run(conn, name, up, "INSERT INTO schema_migrations (name) VALUES (?)")
        print(f"applied {name}")
    if not todo:
        print("no pending migrations")


if __name__ == "__main__":
    main()
