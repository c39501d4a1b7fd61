//! Migrations that never lose data, on the example Django app, for SQLite
//! and a real PostgreSQL server: the rehearsal on a copy of live's data,
//! the backup before a migration and the restore when it fails, and the
//! data migration that makes the constraint pass.

use std::path::Path;

use crate::harness::{django_python, examples, git, sqlite, wait_until, Test};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub fn start(engine: Engine) -> Test {
    let builder = Test::new().hosts(2).django();
    match engine {
        Engine::Sqlite => builder.start(),
        Engine::Postgres => builder.postgres().start(),
    }
}

/// Staging on host 0, live on host 1 (requiring staging), with the Django
/// preset and the engine's database.
pub fn config(t: &mut Test, engine: Engine, migrate: Option<&str>) -> String {
    let database = match engine {
        Engine::Sqlite => "engine = \"sqlite\"\npath = \"{shared}/db.sqlite3\"".to_string(),
        Engine::Postgres => {
            let pg = t.postgres.as_ref().unwrap();
            pg.sql("postgres", "CREATE DATABASE staging");
            pg.sql("postgres", "CREATE DATABASE live");
            format!(
                "engine = \"postgres\"\nurl = \"postgresql://postgres@127.0.0.1:{}/{{env}}\"",
                pg.port
            )
        }
    };
    let migrate = migrate
        .map(|m| format!("migrate = \"{m}\"\n"))
        .unwrap_or_default();
    let tail = restart_and_two_environments(t, &database);
    format!("{}{migrate}{tail}", django_head(t))
}

/// The start of the Django app's config, up to `deploy.build`: the preset,
/// the test's ssh_config, the shared interpreter, the sites' paths.
pub fn django_head(t: &Test) -> String {
    format!(
        r#"[app]
name = "superlists"
preset = "django"

[ssh]
config = "{dir}/ssh_config"

[vars]
python = "{python}"

[deploy]
path = "{dir}/sites/{{env}}/{{hostid}}"
build = ["{{python}} -m compileall -q lists superlists"]
"#,
        dir = t.dir.display(),
        python = django_python(),
    )
}

/// The end of the Django app's config: restart, health check, `database`,
/// and `staging` (host 0) required by `live` (host 1).
pub fn restart_and_two_environments(t: &mut Test, database: &str) -> String {
    let (staging, live) = (t.app_port("staging", 0), t.app_port("live", 1));
    format!(
        r#"restart = "sh restart.sh"
env = {{ PYTHON = "{{python}}", APP_HOST = "{{host}}", APP_PORT = "{{app_port}}" }}
health = {{ url = "http://{{host}}:{{app_port}}/health", body = "{{commit}}", timeout = "2s", retries = 80, interval = "250ms" }}

[database]
{database}

[environments.staging]
hosts = [{{ address = "{s_addr}", vars = {{ hostid = "h0", app_port = "{staging}" }} }}]

[environments.live]
requires = "staging"
hosts = [{{ address = "{l_addr}", vars = {{ hostid = "h1", app_port = "{live}" }} }}]
"#,
        s_addr = t.address(0),
        l_addr = t.address(1),
    )
}

/// Lays a stage of the example's history over the repo and commits it.
pub fn commit_stage(t: &Test, stage: &str, message: &str) -> String {
    copy_over(&examples().join("django/stages").join(stage), &t.repo);
    t.commit(message, &[])
}

pub fn copy_over(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_over(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Adds an item through the app, as a user would.
pub fn add_item(t: &mut Test, env: &str, i: usize, text: &str) {
    let port = t.app_port(env, i);
    let answer = crate::harness::post_item(t.ip(i), port, text).expect("the app listens");
    assert!(crate::harness::created(&answer), "{answer}");
}

/// What live's database holds, to compare before and after: SQLite's file
/// bytes, or PostgreSQL's rows, constraints and applied migrations.
pub fn snapshot(t: &Test, engine: Engine) -> Vec<u8> {
    match engine {
        Engine::Sqlite => std::fs::read(t.site("live", 1).join("shared/db.sqlite3")).unwrap(),
        Engine::Postgres => {
            let pg = t.postgres.as_ref().unwrap();
            let mut text = pg.sql(
                "live",
                "SELECT id, list_id, text FROM lists_item ORDER BY id",
            );
            text.push_str("\n--\n");
            text.push_str(&pg.sql("live", "SELECT conname FROM pg_constraint WHERE conrelid = 'lists_item'::regclass ORDER BY 1"));
            text.push_str("\n--\n");
            text.push_str(&pg.sql(
                "live",
                "SELECT app, name FROM django_migrations ORDER BY id",
            ));
            text.into_bytes()
        }
    }
}

fn live_items(t: &Test, engine: Engine) -> Vec<String> {
    let sql = "SELECT text FROM lists_item ORDER BY id";
    let text = match engine {
        Engine::Sqlite => {
            let db = t.site("live", 1).join("shared/db.sqlite3");
            sqlite(&db, sql)
        }
        Engine::Postgres => t.postgres.as_ref().unwrap().sql("live", sql),
    };
    text.lines().map(str::to_string).collect()
}

/// Compares two snapshots, naming where they differ rather than printing
/// them whole.
#[track_caller]
pub fn assert_same(after: &[u8], before: &[u8], what: &str) {
    if after == before {
        return;
    }
    let offsets: Vec<usize> = (0..after.len().min(before.len()))
        .filter(|&i| after[i] != before[i])
        .take(12)
        .collect();
    panic!(
        "{what}: it differs ({} bytes now, {} before; first differing offsets {offsets:?})\nnow: {}\nbefore: {}",
        after.len(),
        before.len(),
        String::from_utf8_lossy(&after[..after.len().min(400)]).replace('\0', "."),
        String::from_utf8_lossy(&before[..before.len().min(400)]).replace('\0', "."),
    );
}

/// No rehearsal copy or scratch release is left anywhere.
fn assert_no_copies(t: &Test, engine: Engine) {
    for (env, i) in [("staging", 0), ("live", 1)] {
        let scratch = t.site(env, i).join(".gantry/rehearsals");
        let left: Vec<_> = std::fs::read_dir(&scratch)
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{} holds {left:?}", scratch.display());
    }
    if engine == Engine::Postgres {
        let dbs = t.postgres.as_ref().unwrap().databases();
        assert!(!dbs.iter().any(|d| d.contains("rehearsal")), "{dbs:?}");
    }
}

fn constraint_story(engine: Engine) {
    let mut t = start(engine);
    let config = config(&mut t, engine, None);
    t.write_config(&config);
    let first = t.commit("Add config", &[]);
    t.gantry(&["release"])
        .success()
        .stderr_has("✓ live: migrations rehearsed on a copy of its data");
    add_item(&mut t, "live", 1, "milk");
    add_item(&mut t, "live", 1, "milk");
    add_item(&mut t, "live", 1, "eggs");
    add_item(&mut t, "staging", 0, "milk");
    let before = snapshot(&t, engine);
    let live_release = t.current("live", 1);

    // The constraint: found on a copy of live's data; live is not touched.
    let unique = commit_stage(&t, "1-unique", "Items are unique per list");
    let run = t.gantry(&["release"]);
    run.code(7)
        .stderr_has(&format!(
            "the migrations of {} (Items are unique per list) fail on a copy of `live`'s data; `live` was not touched",
            &unique[..8]
        ))
        .stderr_has("migration: lists.0002_item_unique")
        .stderr_has("constraint: UNIQUE (list_id, text)")
        .stderr_has("lists_item: list_id=1, text=milk: 2 rows, ids 1, 2")
        .stderr_has("write a data migration")
        .stderr_has("✓ staging: verified")
        .stderr_has("✗ live: the migrations fail on a copy of its data; it was not touched");
    assert_same(
        &snapshot(&t, engine),
        &before,
        "live's database is unchanged",
    );
    assert_eq!(t.current("live", 1), live_release);
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {first}")
    );
    assert_no_copies(&t, engine);

    // A plain deploy rehearses too, and is refused the same way.
    t.gantry(&["deploy", "live", "--force"])
        .code(7)
        .stderr_has("lists_item: list_id=1, text=milk: 2 rows, ids 1, 2");
    assert_same(
        &snapshot(&t, engine),
        &before,
        "live's database is unchanged by the deploy's rehearsal",
    );

    // Forced past the gate and the rehearsal: the migration fails on live
    // and rolls back by itself, the rows are listed, nothing is restored
    // (so nothing live wrote meanwhile is lost), the old release keeps
    // serving.
    let run = t.gantry(&["deploy", "live", "--force", "--no-rehearse"]);
    run.code(1)
        .stderr_has(&format!(
            "{}: migration lists.0002_item_unique failed",
            t.address(1)
        ))
        .stderr_has("constraint: UNIQUE (list_id, text)")
        .stderr_has("lists_item: list_id=1, text=milk: 2 rows, ids 1, 2")
        .stderr_has("(the failed migration rolled back by itself): nothing was restored")
        .stderr_has("every host was left serving what it served before");
    assert_same(
        &snapshot(&t, engine),
        &before,
        "live's database is as it was",
    );
    let failed = t.history("live", 1).pop().unwrap();
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["rehearsal"], "skipped", "{failed}");
    assert_eq!(t.current("live", 1), live_release);
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {first}")
    );
    let backups = t.gantry(&["backups", "live"]);
    backups.success().stdout_has(&unique[..8]);
    let backup_dir = t.site("live", 1).join(".gantry/backups");
    for entry in std::fs::read_dir(&backup_dir).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "backups are private");
    }

    // The data migration merges the duplicates: its rehearsal passes and
    // leaves live as it was; then the release goes through.
    let dedupe = commit_stage(&t, "2-dedupe", "Merge duplicate items first");
    t.gantry(&["rehearse", "live"])
        .success()
        .stderr_has("Rehearsal passed");
    assert_same(
        &snapshot(&t, engine),
        &before,
        "live's database after a rehearsal that passed",
    );
    t.gantry(&["release"])
        .success()
        .stderr_has("✓ live: verified");
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {dedupe}")
    );
    assert_eq!(live_items(&t, engine), ["milk", "eggs"]);
    assert!(t.current("live", 1).unwrap().ends_with(&dedupe[..8]));
    assert_no_copies(&t, engine);
    let backups = t.gantry(&["backups", "live", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&backups.stdout).unwrap();
    let names: Vec<&str> = value["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    // One per deploy that migrated a database that existed: the failed
    // one and the last; the first deploy's SQLite file did not exist yet
    // (PostgreSQL's empty database did, and is backed up).
    let names = match engine {
        Engine::Sqlite => names,
        Engine::Postgres => names[1..].to_vec(),
    };
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].contains(&unique[..8]), "{names:?}");
    assert!(
        names[1].contains(&dedupe[..8]),
        "a backup was taken before the successful migration: {names:?}"
    );

    // Putting that backup back by hand brings the duplicates back: it is
    // the database as it was before the data migration.
    t.gantry(&["restore", "live", names[1]])
        .code(2)
        .stderr_has("pass `--yes` to confirm");
    assert_eq!(live_items(&t, engine), ["milk", "eggs"]);
    t.gantry(&["restore", "live", names[1], "--yes"])
        .success()
        .stderr_has(&format!("Restored `live`'s database from {}", names[1]));
    assert_eq!(live_items(&t, engine), ["milk", "milk", "eggs"]);
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {dedupe}")
    );
    let last = t.history("live", 1).pop().unwrap();
    assert_eq!(last["action"], "restore");
}

#[test]
fn sqlite_constraint_is_caught_by_the_rehearsal_left_as_it_was_on_failure_and_merged() {
    constraint_story(Engine::Sqlite);
}

#[test]
fn postgres_constraint_is_caught_by_the_rehearsal_left_as_it_was_on_failure_and_merged() {
    constraint_story(Engine::Postgres);
}

fn interrupted_rehearsal(engine: Engine) {
    let mut t = start(engine);
    // The migration waits on the `hold` file, after the copy is made.
    let config = config(
        &mut t,
        engine,
        Some("sh ci/hooks.sh && {python} manage.py migrate --noinput"),
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    t.gantry(&["deploy", "live", "--force"]).success();
    commit_stage(&t, "1-unique", "Items are unique per list");
    let site = t.site("live", 1);
    std::fs::write(site.join("hold"), "").unwrap();

    let mut rehearsal = t.command(&["rehearse", "live"]).spawn().unwrap();
    let stderr = crate::harness::collect(rehearsal.stderr.take().unwrap());
    wait_until(60, "the rehearsal to reach its migration", || {
        site.join("holding").exists()
    });
    match engine {
        Engine::Sqlite => assert!(
            std::fs::read_dir(site.join(".gantry/rehearsals"))
                .unwrap()
                .count()
                > 1,
            "the copy exists while the migration runs"
        ),
        Engine::Postgres => assert!(t
            .postgres
            .as_ref()
            .unwrap()
            .databases()
            .iter()
            .any(|d| d.contains("rehearsal"))),
    }
    crate::harness::interrupt(&rehearsal, &stderr);
    std::fs::remove_file(site.join("hold")).unwrap();
    let status = rehearsal.wait().unwrap();
    assert_eq!(status.code(), Some(8), "an interrupted rehearsal exits 8");

    assert_no_copies(&t, engine);
    assert!(!site.join(".gantry/lock").exists());
    let _ = git(&t.repo, &["status", "--short"]);
}

#[test]
fn sqlite_interrupted_rehearsal_leaves_no_copy() {
    interrupted_rehearsal(Engine::Sqlite);
}

#[test]
fn postgres_interrupted_rehearsal_leaves_no_copy() {
    interrupted_rehearsal(Engine::Postgres);
}

/// A migrate command that changes the database and then fails: Django's
/// migrations run, then a row is written outside any migration, then it
/// exits 1. The migration is reversed; the row stays, as every write does.
const WRITE_THEN_FAIL: &str = r#"set -e
"$PYTHON" manage.py migrate --noinput
"$PYTHON" manage.py shell -c 'from lists.models import Item, List; Item.objects.create(list=List.objects.get_or_create(id=1)[0], text="written by a migrate that failed")'
echo "migrate wrote, then failed" >&2
exit 1
"#;

fn write_then_fail(engine: Engine) {
    let mut t = start(engine);
    let config = config(&mut t, engine, None);
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["release"]).success();
    add_item(&mut t, "live", 1, "milk");
    let live_release = t.current("live", 1);

    let failing = config.replacen(
        "restart = \"sh restart.sh\"",
        "migrate = \"sh ci/write_then_fail.sh\"\nrestart = \"sh restart.sh\"",
        1,
    );
    assert_ne!(failing, config);
    t.write_config(&failing);
    t.commit(
        "A migrate command that writes, then fails",
        &[("ci/write_then_fail.sh", WRITE_THEN_FAIL)],
    );
    commit_stage(&t, "2-dedupe", "Merge duplicate items first");
    let before = snapshot(&t, engine);
    let before_migrations = migrations(&t, engine);

    // The rehearsal fails on the copy; live is not touched.
    t.gantry(&["deploy", "live", "--force"])
        .code(7)
        .stderr_has("migrate wrote, then failed");
    assert_same(
        &snapshot(&t, engine),
        &before,
        "live's database after the rehearsal",
    );

    // Without the rehearsal the migration runs on live, writes, fails: the
    // migration it applied is reversed (the constraint goes, every row
    // stays: the row the command wrote is data like any other).
    t.gantry(&["deploy", "live", "--force", "--no-rehearse"])
        .code(1)
        .stderr_has("migration lists.0002_item_unique reversed on")
        .stderr_has("every row is kept");
    assert_eq!(migrations(&t, engine), before_migrations);
    assert_eq!(
        live_items(&t, engine),
        ["milk", "written by a migrate that failed"]
    );
    assert_eq!(t.current("live", 1), live_release);
    let last = t.history("live", 1).pop().unwrap();
    assert_eq!(last["outcome"], "failed");
}

/// The migrations live's database lists, and its constraints.
fn migrations(t: &Test, engine: Engine) -> String {
    let sql = "SELECT app || '.' || name FROM django_migrations ORDER BY id";
    let constraints = match engine {
        Engine::Sqlite => sqlite(
            &t.site("live", 1).join("shared/db.sqlite3"),
            "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY 1",
        ),
        Engine::Postgres => t.postgres.as_ref().unwrap().sql(
            "live",
            "SELECT conname FROM pg_constraint WHERE conrelid = 'lists_item'::regclass ORDER BY 1",
        ),
    };
    let applied = match engine {
        Engine::Sqlite => sqlite(&t.site("live", 1).join("shared/db.sqlite3"), sql),
        Engine::Postgres => t.postgres.as_ref().unwrap().sql("live", sql),
    };
    format!("{applied}\n--\n{constraints}")
}

#[test]
fn sqlite_migrate_that_writes_then_fails_is_reversed_keeping_every_row() {
    write_then_fail(Engine::Sqlite);
}

#[test]
fn postgres_migrate_that_writes_then_fails_is_reversed_keeping_every_row() {
    write_then_fail(Engine::Postgres);
}

/// Every process's command line that contains `secret`, as `pid: cmdline`.
fn command_lines_with(secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(secret) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

#[test]
fn postgres_password_never_stands_on_a_command_line() {
    let mut t = start(Engine::Postgres);
    let secret = "pw-s3cret-9x";
    let config = config(&mut t, Engine::Postgres, None).replace(
        "postgresql://postgres@",
        &format!("postgresql://postgres:{secret}@"),
    );
    assert!(config.contains(secret));
    t.write_config(&config);
    t.commit("Add config", &[]);

    // Every process on this machine (the hosts are on it) is watched while
    // the release runs: backups, copies, migrations, activations.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                seen.extend(command_lines_with(secret));
                scans += 1;
            }
            (seen, scans)
        })
    };
    let run = t.gantry(&["release"]);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, scans) = watcher.join().unwrap();
    run.success();
    assert!(scans > 10, "the watcher ran ({scans} scans)");
    assert!(
        seen.is_empty(),
        "the password stood on a command line:\n{}",
        seen.join("\n")
    );
    assert!(!run.stderr.contains(secret), "{}", run.stderr);
}
