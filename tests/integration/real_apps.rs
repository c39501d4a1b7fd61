//! Migrations on an app wired the way most small Django sites are, not the
//! way our examples are (`tests/fixtures/django-usual`): the app in `src/`,
//! `requirements.txt` at the root, settings that name a fixed SQLite file
//! next to `manage.py` and ignore `DB_PATH`, the file kept across releases
//! through `deploy.shared`. Rehearsals must never touch the real database,
//! an app that ignores the variable is never reported as passed, and a
//! database Gantry does not protect is refused before anything migrates.

use crate::harness::{django_python, examples, sqlite, Test};
use crate::migrations::{self, add_item, assert_same, copy_over, Engine};

/// The usual fixture on staging (host 0) and live (host 1), with `shared`
/// and `database` as given. Each build appends a line to
/// `sites/<env>/builds-<hostid>`, so a test can count them.
pub fn usual_config(t: &mut Test, shared: &str, database: &str) -> String {
    let python = django_python();
    let tail = migrations::restart_and_two_environments(t, database);
    format!(
        r#"[app]
name = "superlists"
preset = "django"
root = "src"

[ssh]
config = "{dir}/ssh_config"

[vars]
python = "{python}"

[deploy]
path = "{dir}/sites/{{env}}/{{hostid}}"
shared = [{shared}]
build = ["echo built >> {{path}}/../builds-{{hostid}}", "{{python}} -m compileall -q lists superlists"]
{tail}"#,
        dir = t.dir.display(),
    )
}

pub const KEPT_IN_SHARED: &str = "\"src/db.sqlite3\"";
pub const SQLITE_IN_SHARED: &str = "engine = \"sqlite\"\npath = \"{shared}/src/db.sqlite3\"";

/// Lays a stage of the example's history over the usual fixture's app folder.
pub fn commit_stage(t: &Test, stage: &str, message: &str) -> String {
    copy_over(
        &examples().join("django/stages").join(stage),
        &t.repo.join("src"),
    );
    t.commit(message, &[])
}

/// How many times each host has built a release.
fn builds(t: &Test) -> (usize, usize) {
    let count = |env: &str, host: &str| {
        std::fs::read_to_string(t.dir.join("sites").join(env).join(format!("builds-{host}")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    (count("staging", "h0"), count("live", "h1"))
}

pub fn live_db(t: &Test) -> std::path::PathBuf {
    t.site("live", 1).join("shared/src/db.sqlite3")
}

/// The test's folder and ports, replaced so the message can be compared whole.
fn normalize(t: &Test, text: &str) -> String {
    let mut text = text.replace(&t.dir.display().to_string(), "[DIR]");
    for i in 0..2 {
        text = text.replace(&t.address(i), &format!("[HOST{i}]"));
    }
    let mut out = String::new();
    for word in text.split_inclusive(['/', ' ', '\n']) {
        // Release names: 20261126T041510.042Z-1a2b3c4d
        let is_release = word.len() >= 29
            && word.as_bytes()[8] == b'T'
            && word[..8].bytes().all(|b| b.is_ascii_digit());
        if is_release {
            out.push_str("[RELEASE]");
            out.push_str(&word[29..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

/// The usual fixture on two hosts, its database kept in `shared/`, after
/// its first `gantry release`.
fn released() -> (Test, crate::harness::Run) {
    let mut t = Test::new().hosts(2).django_usual().start();
    let config = usual_config(&mut t, KEPT_IN_SHARED, SQLITE_IN_SHARED);
    t.write_config(&config);
    t.commit("Add config", &[]);
    let run = t.gantry(&["release"]);
    (t, run)
}

#[test]
fn usual_django_rehearsals_leave_the_shared_database_byte_identical() {
    let (mut t, run) = released();
    run.success()
        .stderr_has("✓ live: migrations rehearsed on a copy of its data");
    assert_eq!(builds(&t), (1, 1), "each host built its release once");
    add_item(&mut t, "live", 1, "milk");
    add_item(&mut t, "live", 1, "milk");
    add_item(&mut t, "live", 1, "eggs");
    let before = std::fs::read(live_db(&t)).unwrap();

    // A rehearsal that fails, then a release that stops at it.
    commit_stage(&t, "1-unique", "Items are unique per list");
    t.gantry(&["rehearse", "live"])
        .code(7)
        .stderr_has("lists_item: list_id=1, text=milk: 2 rows, ids 1, 2");
    assert_same(
        &std::fs::read(live_db(&t)).unwrap(),
        &before,
        "after a failed rehearsal",
    );
    let counted = builds(&t);
    t.gantry(&["release"])
        .code(7)
        .stderr_has("✗ live: the migrations fail on a copy of its data; it was not touched");
    assert_same(
        &std::fs::read(live_db(&t)).unwrap(),
        &before,
        "after a stopped release",
    );
    assert_eq!(
        builds(&t),
        (counted.0 + 1, counted.1 + 1),
        "the release built each host's release once, rehearsal included"
    );

    // A rehearsal that passes.
    let dedupe = commit_stage(&t, "2-dedupe", "Merge duplicate items first");
    t.gantry(&["rehearse", "live"])
        .success()
        .stderr_has("Rehearsal passed");
    assert_same(
        &std::fs::read(live_db(&t)).unwrap(),
        &before,
        "after a passed rehearsal",
    );

    let counted = builds(&t);
    t.gantry(&["release"])
        .success()
        .stderr_has("✓ live: migrations rehearsed on a copy of its data");
    assert_eq!(builds(&t), (counted.0 + 1, counted.1 + 1));
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {dedupe}")
    );
    let items = sqlite(&live_db(&t), "SELECT text FROM lists_item ORDER BY id");
    assert_eq!(items, "milk\neggs\n");
    // The config stays on this machine.
    let current = t.site("live", 1).join("current");
    assert!(current.join("src/manage.py").exists());
    assert!(!current.join("gantry.toml").exists());
}

#[test]
fn usual_django_database_mismatch_is_caught_by_check_and_before_migrating() {
    let (mut t, run) = released();
    run.success();
    t.gantry(&["check", "live"])
        .success()
        .stdout_has("the app uses");

    // `[database]` names a file the app does not open.
    let wrong = usual_config(
        &mut t,
        KEPT_IN_SHARED,
        "engine = \"sqlite\"\npath = \"{shared}/db.sqlite3\"",
    );
    t.write_config(&wrong);
    t.commit("Point the database elsewhere", &[]);
    let before = std::fs::read(live_db(&t)).unwrap();
    let check = t.gantry(&["-q", "check", "live"]);
    check.code(2);
    assert_eq!(
        normalize(&t, &check.stderr),
        "error: the app on `live` does not use the database in gantry.toml; nothing was migrated
  gantry.toml:  [DIR]/sites/live/h1/shared/db.sqlite3 (`[database]`, given to the app as DB_PATH)
  the app uses: sqlite [DIR]/sites/live/h1/shared/src/db.sqlite3 (NAME = [DIR]/sites/live/h1/releases/[RELEASE]/src/db.sqlite3) (Django's DATABASES[\"default\"], asked on [HOST1])
  = help: make the settings read the database from DB_PATH (`\"NAME\": os.environ[\"DB_PATH\"]`, or DATABASE_URL for PostgreSQL), or point `[database]` at what the app uses; a SQLite file must be kept in `deploy.shared`
"
    );

    commit_stage(&t, "2-dedupe", "Merge duplicate items first");
    let deploy = t.gantry(&["-q", "deploy", "live", "--force"]);
    deploy.code(2);
    assert_eq!(
        normalize(&t, &deploy.stderr),
        normalize(&t, &check.stderr),
        "the deploy stops with the same message before migrating"
    );
    assert_same(
        &std::fs::read(live_db(&t)).unwrap(),
        &before,
        "live's database",
    );
    assert!(
        !t.site("live", 1).join("shared/db.sqlite3").exists(),
        "no database was made where gantry.toml pointed"
    );
}

#[test]
fn usual_django_without_the_shared_link_is_never_rehearsed_as_passed() {
    let mut t = Test::new().hosts(2).django_usual().start();
    // The settings ignore DB_PATH, and nothing links the file they name to
    // the database Gantry copies: a rehearsal would migrate a fresh file.
    let config = usual_config(
        &mut t,
        "",
        "engine = \"sqlite\"\npath = \"{shared}/db.sqlite3\"",
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    let real = t.site("live", 1).join("shared/db.sqlite3");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    sqlite(&real, "CREATE TABLE kept (x); INSERT INTO kept VALUES (1);");
    let before = std::fs::read(&real).unwrap();

    let run = t.gantry(&["rehearse", "live"]);
    run.code(2)
        .stderr_has("the app did not use the database Gantry copied for the rehearsal of `live`")
        .stderr_has("sites/live/h1/.gantry/rehearsals/shared/db.sqlite3");
    assert!(!run.stderr.contains("Rehearsal passed"), "{}", run.stderr);
    assert_same(&std::fs::read(&real).unwrap(), &before, "the real database");
    t.gantry(&["deploy", "live", "--force"])
        .code(2)
        .stderr_has("the app on `live` does not use the database in gantry.toml");
    assert_same(&std::fs::read(&real).unwrap(), &before, "the real database");
}

#[test]
fn an_app_whose_migrations_ignore_the_copy_fails_its_rehearsal() {
    let mut t = Test::new().hosts(1).start();
    // No preset to ask the app: the migrate command and its check open a
    // file of their own, not the copy in DB_PATH.
    let config = t.config(&[("live", &[0])]);
    let other = "DB_PATH=\\\"$GANTRY_SHARED/other.sqlite3\\\"";
    let config = config
        .replace(
            "migrate = \"python3 migrate.py\"",
            &format!("migrate = \"{other} python3 migrate.py\""),
        )
        .replace(
            "check = \"python3 migrate.py --check\"",
            &format!("check = \"{other} python3 migrate.py --check\""),
        );
    assert_eq!(config.matches("other.sqlite3").count(), 2, "{config}");
    t.write_config(&config);
    t.commit("Ignore DB_PATH", &[]);
    let run = t.gantry(&["rehearse", "live"]);
    run.code(7)
        .stderr_has("the app did not use the database Gantry copied")
        .stderr_has("after the migrate command");
    assert!(!run.stderr.contains("Rehearsal passed"), "{}", run.stderr);
}

#[test]
fn init_asks_the_usual_django_app_for_its_database() {
    let t = Test::new().django_usual().start();
    t.app_venv();
    t.gantry(&["init"])
        .success()
        .stderr_has("in `src/`, settings `superlists.settings`");
    let written = std::fs::read_to_string(t.repo.join("gantry.toml")).unwrap();
    assert!(
        written.contains("# Filled in from what the app says"),
        "{written}"
    );
    assert!(
        written.contains("shared = [\"src/db.sqlite3\"]"),
        "{written}"
    );
    assert!(
        written.contains("engine = \"sqlite\"\npath = \"{shared}/src/db.sqlite3\""),
        "{written}"
    );
}

#[test]
fn postgres_settings_that_ignore_database_url_are_refused_and_live_is_row_identical() {
    let mut t = migrations::start(Engine::Postgres);
    let config = migrations::config(&mut t, Engine::Postgres, None);
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["release"]).success();
    add_item(&mut t, "live", 1, "milk");
    add_item(&mut t, "live", 1, "milk");
    add_item(&mut t, "live", 1, "eggs");
    let before = migrations::snapshot(&t, Engine::Postgres);

    // Settings with the database written in: `live`, whatever
    // DATABASE_URL says, so a rehearsal would migrate live itself.
    t.commit(
        "Settings with the database written in",
        &[("superlists/settings.py", &t.fixed_postgres_settings())],
    );
    migrations::commit_stage(&t, "2-dedupe", "Merge duplicate items first");
    let run = t.gantry(&["rehearse", "live"]);
    run.code(2)
        .stderr_has("the app did not use the database Gantry copied for the rehearsal of `live`")
        .stderr_has("the app uses: postgresql `live` on 127.0.0.1:");
    assert!(!run.stderr.contains("Rehearsal passed"), "{}", run.stderr);
    assert_same(
        &migrations::snapshot(&t, Engine::Postgres),
        &before,
        "live after the rehearsal",
    );

    t.gantry(&["deploy", "live", "--force"])
        .code(2)
        .stderr_has("the app did not use the database Gantry copied");
    assert_same(
        &migrations::snapshot(&t, Engine::Postgres),
        &before,
        "live after the deploy",
    );
}

/// A rollback on the usual fixture, with writers on staging all along: the
/// reversal of the unique constraint is rehearsed on the copy the fixed
/// path opens in the scratch area, the old release is started there and
/// checked, then the constraint goes on the real file, every acknowledged
/// item kept, and the old form takes a repeated item again.
#[test]
fn usual_django_rollback_takes_the_constraint_back_keeping_every_write() {
    let mut t = Test::new().hosts(2).django_usual().start();
    let config = usual_config(&mut t, KEPT_IN_SHARED, SQLITE_IN_SHARED).replacen(
        "restart = \"sh restart.sh\"",
        "restart = \"sh restart.sh\"\nserve = \"exec {python} -m gunicorn --bind 127.0.0.1:$GANTRY_PORT superlists.wsgi\"",
        1,
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let old = t.current("staging", 0).unwrap();
    commit_stage(&t, "2-dedupe", "Items are unique per list");
    t.gantry(&["deploy", "staging", "--allow-incompatible"])
        .success();
    let db = t.site("staging", 0).join("shared/src/db.sqlite3");
    let unique = || {
        sqlite(
            &db,
            "SELECT group_concat(sql) FROM sqlite_master WHERE tbl_name = 'lists_item'",
        )
        .contains("UNIQUE")
    };
    assert!(unique());

    let writers = crate::put_back::Writers::start(
        vec![(t.ip(0).to_string(), t.app_port("staging", 0))],
        "usual",
    );
    let run = t.gantry(&["rollback", "staging"]);
    let acked = writers.stop();
    run.success()
        .stderr_has(&format!("start {old} against the copy and check it"))
        .stderr_has(
            "the schema is back: lists.0002_item_unique reversed on the database, every row kept",
        );
    assert!(!unique(), "the constraint is gone");
    assert_eq!(t.current("staging", 0).unwrap(), old);
    let rows = sqlite(&db, "SELECT text FROM lists_item");
    let rows: std::collections::HashSet<&str> = rows.lines().collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|a| !rows.contains(a.as_str()))
        .collect();
    assert!(!acked.is_empty());
    assert!(
        missing.is_empty(),
        "{} of {} lost: {missing:?}",
        missing.len(),
        acked.len()
    );
    add_item(&mut t, "staging", 0, "twice");
    add_item(&mut t, "staging", 0, "twice");
}
