"""Applies the numbered SQL files in migrations/ that the database has not
seen yet, each in its own transaction, and records them. Exits non-zero,
naming the migration, when one fails; that migration leaves no trace.

    python3 migrate.py            apply pending migrations
    python3 migrate.py --check    exit 1 when migrations are pending
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


def main():
    conn = sqlite3.connect(DB_PATH, timeout=10, isolation_level=None)
    todo = pending(conn)
    if "--check" in sys.argv:
        print("\n".join(todo) if todo else "no pending migrations")
        sys.exit(1 if todo else 0)
    for name in todo:
        with open(os.path.join(HERE, "migrations", name)) as f:
            sql = f.read()
        try:
            conn.execute("BEGIN")
            for statement in [s for s in sql.split(";") if s.strip()]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (name) VALUES (?)", (name,))
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            conn.execute("ROLLBACK")
            print(f"migration {name} failed: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"applied {name}")
    if not todo:
        print("no pending migrations")


if __name__ == "__main__":
    main()
