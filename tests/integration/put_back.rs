//! Putting a deploy back never loses a write: with client threads adding
//! items to live through every deploy, each item the app acknowledged
//! (201) is in live's database afterwards, on SQLite and PostgreSQL, for a
//! failing migration, two migrations of which the second fails, a failed
//! health check after a migration, a failure in the second batch of a
//! rolling deploy, a migration that only added (kept), and an
//! irreversible one (the backup restored, the database as it was saved).
//! On PostgreSQL, `pg_dump --schema-only` (owners, grants to a read-only
//! role, a second schema, an extension, a comment) is the same after each
//! put-back as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::harness::{sqlite, Test};
use crate::migrations::Engine;

/// Threads that add items to live's hosts until stopped, keeping the
/// texts the app acknowledged.
pub struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Writers {
    pub fn start(targets: Vec<(String, u16)>, tag: &str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..2)
            .map(|n| {
                let (stop, acked, targets) = (stop.clone(), acked.clone(), targets.clone());
                let tag = format!("{tag}-{n}");
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) && i < 100_000 {
                        let (ip, port) = &targets[i as usize % targets.len()];
                        let text = format!("{tag}-{i}");
                        if post(ip, *port, &text) {
                            acked.lock().unwrap().push(text);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Writers {
            stop,
            acked,
            threads,
        }
    }

    /// Stops the writers; the texts acknowledged.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Adds an item; true when the app answered 201.
fn post(ip: &str, port: u16, text: &str) -> bool {
    match crate::harness::post_item(ip, port, text) {
        Some(answer) => crate::harness::created(&answer),
        None => {
            // Nothing listens between a stop and a start: not acknowledged.
            std::thread::yield_now();
            false
        }
    }
}

struct Live {
    t: Test,
    engine: Engine,
    /// The SQLite file both live hosts open.
    db: std::path::PathBuf,
}

impl Live {
    fn start(engine: Engine) -> Live {
        let builder = Test::new().hosts(2).django();
        let mut t = match engine {
            Engine::Sqlite => builder.start(),
            Engine::Postgres => builder.postgres().start(),
        };
        let db = t.dir.join("live.sqlite3");
        let database = match engine {
            Engine::Sqlite => format!("engine = \"sqlite\"\npath = \"{}\"", db.display()),
            Engine::Postgres => {
                let pg = t.postgres.as_ref().unwrap();
                pg.sql("postgres", "CREATE DATABASE live");
                format!(
                    "engine = \"postgres\"\nurl = \"postgresql://postgres@127.0.0.1:{}/live\"",
                    pg.port
                )
            }
        };
        let (p1, p2) = (t.app_port("live", 0), t.app_port("live", 1));
        let config = format!(
            r#"{head}restart = "sh restart.sh"
env = {{ PYTHON = "{{python}}", APP_HOST = "{{host}}", APP_PORT = "{{app_port}}" }}
health = {{ url = "http://{{host}}:{{app_port}}/health", body = "{{commit}}", timeout = "2s", retries = 20, interval = "250ms" }}

[database]
{database}

[environments.live]
batch = 1
hosts = [
  {{ address = "{a1}", vars = {{ hostid = "h0", app_port = "{p1}" }} }},
  {{ address = "{a2}", vars = {{ hostid = "h1", app_port = "{p2}" }} }},
]
tags = {{ moving = "", history = "" }}
"#,
            head = crate::migrations::django_head(&t),
            a1 = t.address(0),
            a2 = t.address(1),
        );
        t.write_config(&config);
        t.commit("Add config", &[]);
        t.gantry(&["deploy", "live"]).success();
        Live { t, engine, db }
    }

    fn targets(&mut self) -> Vec<(String, u16)> {
        (0..2)
            .map(|i| (self.t.ip(i).to_string(), self.t.app_port("live", i)))
            .collect()
    }

    fn sql(&self, sql: &str) -> String {
        match self.engine {
            Engine::Sqlite => sqlite(&self.db, sql),
            Engine::Postgres => self.t.postgres.as_ref().unwrap().sql("live", sql),
        }
    }

    fn items(&self) -> std::collections::HashSet<String> {
        self.sql("SELECT text FROM lists_item")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn migrations(&self) -> Vec<String> {
        self.sql("SELECT app || '.' || name FROM django_migrations WHERE app = 'lists' ORDER BY id")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The schema as `pg_dump` prints it, privileges included (PostgreSQL),
    /// or as SQLite lists it.
    fn schema(&self) -> String {
        match self.engine {
            Engine::Sqlite => self.sql("SELECT type, name, sql FROM sqlite_master ORDER BY 1, 2"),
            Engine::Postgres => {
                let pg = self.t.postgres.as_ref().unwrap();
                let out = std::process::Command::new("pg_dump")
                    .args(["--schema-only", "-h", "127.0.0.1", "-U", "postgres"])
                    .args(["-p", &pg.port.to_string(), "live"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    /// Commits the migrations (and other files) given, over the app.
    fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        self.t.commit(message, files)
    }

    /// Runs `gantry ARGS` with writers on both live hosts, and checks that
    /// every acknowledged item is in the database (or, after a restore, in
    /// the copy saved before it). Returns the run.
    fn deploy_with_writers(&mut self, args: &[&str], tag: &str) -> crate::harness::Run {
        let writers = Writers::start(self.targets(), tag);
        // The writers are under way before the deploy starts.
        crate::harness::wait_until(30, "the first acknowledged write", || {
            !writers.acked.lock().unwrap().is_empty()
        });
        let run = self.t.gantry(args);
        let acked = writers.stop();
        assert!(
            acked.len() > 20,
            "{tag}: the writers wrote ({})",
            acked.len()
        );
        let rows = self.items();
        let lost: Vec<&String> = acked.iter().filter(|a| !rows.contains(*a)).collect();
        assert!(
            lost.is_empty(),
            "{tag}: {} of {} acknowledged items are not in the database, e.g. {:?}\n{}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)],
            run.stderr
        );
        run
    }

    /// Removes migrations from the app (after a failed deploy).
    fn remove(&self, files: &[&str], message: &str) {
        for f in files {
            std::fs::remove_file(self.t.repo.join(f)).unwrap();
        }
        crate::harness::git(&self.t.repo, &["add", "-A"]);
        self.t.commit(message, &[]);
    }
}

const SLOW_FAIL: &str = r#"import time
from django.db import migrations


def fail(apps, schema_editor):
    time.sleep(2)
    raise RuntimeError("this migration fails after 2 seconds")


class Migration(migrations.Migration):
    dependencies = [("lists", "DEPENDS")]
    operations = [migrations.RunPython(fail, migrations.RunPython.noop)]
"#;

const UNIQUE: &str = r#"from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("lists", "0001_initial")]
    operations = [migrations.AlterUniqueTogether(name="item", unique_together={("list", "text")})]
"#;

const IRREVERSIBLE: &str = r#"from django.db import migrations


def touch(apps, schema_editor):
    pass


class Migration(migrations.Migration):
    dependencies = [("lists", "0001_initial")]
    operations = [
        migrations.RunPython(touch),
        migrations.AlterUniqueTogether(name="item", unique_together={("list", "text")}),
    ]
"#;

const NOTE: &str = r#"from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lists", "0001_initial")]
    operations = [migrations.AddField(model_name="item", name="note", field=models.TextField(null=True))]
"#;

/// The health view of the new commits: 500 where the host's shared folder
/// holds `unhealthy`, so that one host of a rolling deploy can fail.
const HEALTH: &str = r#"
import os as _os
from pathlib import Path as _Path

_plain_health = health


def health(request):
    if (_Path(_os.environ.get("GANTRY_SHARED", "/nonexistent")) / "unhealthy").exists():
        return HttpResponse("unhealthy\n", status=500)
    return _plain_health(request)
"#;

fn slow_fail(depends: &str) -> String {
    SLOW_FAIL.replace("DEPENDS", depends)
}

fn views_with_marker(t: &Test) -> String {
    let views = std::fs::read_to_string(t.repo.join("lists/views.py")).unwrap();
    format!("{views}{HEALTH}")
}

fn story(engine: Engine) {
    let mut live = Live::start(engine);
    let initial = ["lists.0001_initial"];
    assert_eq!(live.migrations(), initial);
    if engine == Engine::Postgres {
        // What a DBA adds by hand: a read-only role, a second schema, an
        // extension, a comment; every put-back must keep them.
        let pg = live.t.postgres.as_ref().unwrap();
        pg.sql(
            "live",
            "CREATE ROLE reporting; GRANT SELECT ON lists_item TO reporting; \
             CREATE SCHEMA reports; CREATE TABLE reports.daily (day date, items int); \
             GRANT USAGE ON SCHEMA reports TO reporting; CREATE EXTENSION citext; \
             COMMENT ON TABLE lists_item IS 'what people add'",
        );
    }
    let schema = live.schema();
    let site = |live: &Live, i: usize| live.t.site("live", i).join("shared");

    // 1. A migration that fails after two seconds, rolled back by itself:
    // nothing is restored.
    let fail = slow_fail("0001_initial");
    live.commit(
        "A migration that fails",
        &[("lists/migrations/0002_fail.py", &fail)],
    );
    let run = live.deploy_with_writers(&["deploy", "live", "--no-rehearse"], "fails");
    run.code(1)
        .stderr_has("this migration fails after 2 seconds")
        .stderr_has("the failed migration rolled back by itself): nothing was restored");
    assert_eq!(live.migrations(), initial);
    assert_eq!(live.schema(), schema, "the schema after a failed migration");
    live.remove(
        &["lists/migrations/0002_fail.py"],
        "Drop the failing migration",
    );

    // 2. Two migrations, the second fails: the first is reversed.
    let fail = slow_fail("0002_item_unique");
    live.commit(
        "A constraint, then a failure",
        &[
            ("lists/migrations/0002_item_unique.py", UNIQUE),
            ("lists/migrations/0003_fail.py", &fail),
        ],
    );
    let run = live.deploy_with_writers(&["deploy", "live", "--no-rehearse"], "second");
    run.code(1)
        .stderr_has("migration lists.0002_item_unique reversed on")
        .stderr_has("every row is kept");
    assert_eq!(live.migrations(), initial);
    assert_eq!(live.schema(), schema, "the schema after a reversal");
    live.remove(&["lists/migrations/0003_fail.py"], "Drop the failure");

    // 3. The migration passes, then the first batch's health check fails.
    let views = views_with_marker(&live.t);
    live.commit("Health looks at a marker", &[("lists/views.py", &views)]);
    std::fs::write(site(&live, 0).join("unhealthy"), "").unwrap();
    // The rehearsal says ahead what putting it back would do: it reversed
    // the migration on the copy.
    live.t.gantry(&["rehearse", "live"]).success().stderr_has(
        "if this deploy is put back, its migrations are reversed (done on the copy too: it works), removing ",
    );
    // A rolling deploy whose migration breaks the serving release is
    // refused unless asked for: here it is, to test putting it back.
    let run = live.deploy_with_writers(&["deploy", "live", "--allow-incompatible"], "health");
    run.code(1)
        .stderr_has("health check")
        .stderr_has("migration lists.0002_item_unique reversed on");
    assert_eq!(live.migrations(), initial);
    assert_eq!(
        live.schema(),
        schema,
        "the schema after a failed health check"
    );

    // 4. The same, failing in the second batch of the rolling deploy.
    std::fs::remove_file(site(&live, 0).join("unhealthy")).unwrap();
    std::fs::write(site(&live, 1).join("unhealthy"), "").unwrap();
    let run = live.deploy_with_writers(&["deploy", "live", "--allow-incompatible"], "batch");
    run.code(1)
        .stderr_has("migration lists.0002_item_unique reversed on");
    assert_eq!(live.migrations(), initial);
    assert_eq!(
        live.schema(),
        schema,
        "the schema after a failed second batch"
    );

    // 5. A migration that only adds a nullable column is kept.
    live.remove(&["lists/migrations/0002_item_unique.py"], "No constraint");
    live.commit("A note", &[("lists/migrations/0002_note.py", NOTE)]);
    live.t
        .gantry(&["rehearse", "live"])
        .success()
        .stderr_has("if this deploy is put back, its new schema is kept (the migrations only add");
    let run = live.deploy_with_writers(&["deploy", "live"], "keep");
    run.code(1).stderr_has(
        "keeps migration lists.0002_note: the release that serves again runs on its schema",
    );
    assert_eq!(live.migrations(), ["lists.0001_initial", "lists.0002_note"]);
    let note = live.sql("SELECT count(*) FROM lists_item WHERE note IS NULL");
    assert_ne!(note.trim(), "0", "the column is still there");

    // 6. An irreversible migration: the last resort is the backup, and the
    // database as it was before the restore is saved beside it.
    live.remove(&["lists/migrations/0002_note.py"], "No note");
    // The kept column goes first, by hand, as a user would.
    live.sql("ALTER TABLE lists_item DROP COLUMN note");
    live.sql("DELETE FROM django_migrations WHERE name = '0002_note'");
    live.commit(
        "An irreversible migration",
        &[("lists/migrations/0002_irreversible.py", IRREVERSIBLE)],
    );
    live.t.gantry(&["rehearse", "live"]).success().stderr_has(
        "if this deploy is put back, only the backup can do it (reversing them fails on the copy",
    );
    let writers = Writers::start(live.targets(), "restore");
    crate::harness::wait_until(30, "the first acknowledged write", || {
        !writers.acked.lock().unwrap().is_empty()
    });
    let run = live.t.gantry(&["deploy", "live", "--allow-incompatible"]);
    let acked = writers.stop();
    run.code(1)
        .stderr_has("was restored from")
        .stderr_has("is not in it")
        .stderr_has("but in the database as it was just before the restore, saved in");
    assert_eq!(live.migrations(), initial);
    let saved_dir = live.t.site("live", 0).join(".gantry/saved");
    let saved: Vec<_> = std::fs::read_dir(&saved_dir).unwrap().flatten().collect();
    assert_eq!(saved.len(), 1, "one saved copy in {}", saved_dir.display());
    let saved_rows = match engine {
        Engine::Sqlite => sqlite(&saved[0].path(), "SELECT text FROM lists_item"),
        Engine::Postgres => {
            let out = std::process::Command::new("pg_restore")
                .args(["-a", "-t", "lists_item", "-f", "-"])
                .arg(saved[0].path())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let rows = live.items();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|a| !rows.contains(*a) && !saved_rows.contains(a.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged, and neither in the database nor saved: {lost:?}"
    );
    if engine == Engine::Postgres {
        assert_eq!(live.schema(), schema, "the schema after a restore");
    }

    // `gantry restore` by hand keeps every grant, schema, extension and
    // comment too, and saves what it replaces.
    let backups = live.t.gantry(&["backups", "live", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&backups.stdout).unwrap();
    // The newest: taken just before the irreversible migration.
    let list = value["backups"].as_array().unwrap();
    let newest = list.last().unwrap()["name"].as_str().unwrap().to_string();
    live.t
        .gantry(&["restore", "live", &newest, "--yes"])
        .success()
        .stderr_has("the database as it was is saved in");
    assert_eq!(live.schema(), schema, "the schema after `gantry restore`");
    assert_eq!(
        std::fs::read_dir(&saved_dir).unwrap().count(),
        2,
        "`gantry restore` saved the database it replaced"
    );
}

#[test]
fn sqlite_put_backs_keep_every_acknowledged_write() {
    story(Engine::Sqlite);
}

#[test]
fn postgres_put_backs_keep_every_acknowledged_write_and_every_grant() {
    story(Engine::Postgres);
}
