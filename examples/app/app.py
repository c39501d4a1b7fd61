"""A tiny web app for Gantry's quick start and tests: standard library only.

GET /        the commit this release runs and the items in the database
GET /health  "ok <commit>" (status 500 when the data folder's `unhealthy`
             file names this commit, so tests can break one release)
GET /slow?s=N  answers after N seconds (at most 30): a request in flight
The app opens its port only after the seconds the data folder's
`start-delay` file names (if any), as a big app takes time to load.
Every answer names the commit in an `X-Release` header.
POST /items  adds an item (form field `text`)

Settings come from the environment: APP_HOST (default 127.0.0.1), APP_PORT,
DB_PATH, and the commit from
the REVISION file Gantry writes into each release (or GANTRY_COMMIT).
"""

import html
import os
import sqlite3
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HERE = os.path.dirname(os.path.abspath(__file__))


def commit():
    for folder in (HERE, os.path.dirname(HERE)):
        try:
            with open(os.path.join(folder, "REVISION")) as f:
                return f.read().strip()
        except OSError:
            pass
    return os.environ.get("GANTRY_COMMIT", "unknown")


COMMIT = commit()
DB_PATH = os.environ.get("DB_PATH", os.path.join(HERE, "db.sqlite3"))


def db():
    return sqlite3.connect(DB_PATH, timeout=10)


def unhealthy():
    marker = os.path.join(os.path.dirname(DB_PATH), "unhealthy")
    try:
        with open(marker) as f:
            return f.read().strip() == COMMIT
    except OSError:
        return False


class Handler(BaseHTTPRequestHandler):
    def send(self, status, text, content_type="text/plain; charset=utf-8"):
        body = text.encode()
        self.send_response(status)
        self.send_header("X-Release", COMMIT)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            if unhealthy():
                self.send(500, f"unhealthy {COMMIT}\n")
            else:
                self.send(200, f"ok {COMMIT}\n")
            return
        if self.path.startswith("/slow?s="):
            time.sleep(min(float(self.path.split("=", 1)[1] or 0), 30))
            self.send(200, f"slow {COMMIT}\n")
            return
        if self.path != "/":
            self.send(404, "not found\n")
            return
        try:
            with db() as conn:
                rows = conn.execute("SELECT id, text FROM items ORDER BY id").fetchall()
        except sqlite3.Error as e:
            rows = [(0, f"(database not ready: {e})")]
        items = "".join(f"<li>{html.escape(text)}</li>" for _, text in rows)
        self.send(
            200,
            f"<!doctype html><title>To-Do</title><p id=commit>commit {COMMIT}</p>"
            f"<form method=post action=/items><input name=text><button>Add</button></form>"
            f"<ul id=items>{items}</ul>\n",
            "text/html; charset=utf-8",
        )

    def do_POST(self):
        if self.path != "/items":
            self.send(404, "not found\n")
            return
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        text = form.get("text", [""])[0]
        with db() as conn:
            conn.execute("INSERT INTO items (text) VALUES (?)", (text,))
        self.send(201, "added\n")

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))


def start_delay():
    try:
        with open(os.path.join(os.path.dirname(DB_PATH), "start-delay")) as f:
            return min(float(f.read().strip() or 0), 30)
    except (OSError, ValueError):
        return 0


def main():
    time.sleep(start_delay())
    port = int(os.environ.get("APP_PORT", "8000"))
    host = os.environ.get("APP_HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"serving commit {COMMIT} on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
