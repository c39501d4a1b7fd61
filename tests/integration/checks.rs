//! Checks of what pending migrations will do, before they run: on the
//! example app (SQLite, `[database] sql`), each check fires on its
//! migration and not on the others, in `rehearse`'s output and its JSON;
//! `checks = "strict"` refuses the deploy before anything migrates, and
//! `reviewed` quiets a migration that was looked at. (The Django preset's
//! `sqlmigrate` path on PostgreSQL is in `rollback_schema`.)

use crate::harness::{sqlite, Test};

const MIGRATIONS: [(&str, &str); 3] = [
    (
        "migrations/0002_note.sql",
        "ALTER TABLE items ADD COLUMN note TEXT;\n-- down\nALTER TABLE items DROP COLUMN note;\n",
    ),
    ("migrations/0003_tags.sql", "CREATE TABLE tags (name TEXT);\n"),
    (
        "migrations/0004_body.sql",
        "ALTER TABLE items RENAME COLUMN note TO body;\n-- down\nALTER TABLE items RENAME COLUMN body TO note;\n",
    ),
];

/// `(migration, rule)` of each finding in a `--json` answer.
fn findings(stdout: &str) -> Vec<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    value["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let field = |k: &str| f[k].as_str().unwrap().to_string();
            (field("migration"), field("rule"))
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(m, r)| (m.to_string(), r.to_string()))
        .collect()
}

fn config(t: &mut Test, extra: &str) -> String {
    t.config(&[("staging", &[0])]).replacen(
        "check = \"python3 migrate.py --check\"",
        &format!(
            "check = \"python3 migrate.py --check\"\nsql = \"python3 migrate.py --sql\"\n{extra}"
        ),
        1,
    )
}

#[test]
fn each_check_fires_on_its_migration_and_strict_refuses_before_anything_migrates() {
    let mut t = Test::new().hosts(1).start();
    let text = config(&mut t, "");
    t.write_config(&text);
    t.commit("Items", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let sha = t.commit("Notes, tags, bodies", &MIGRATIONS);
    // The plan runs nothing on the hosts: it says the checks will run, and
    // where to see what they find.
    t.gantry(&["plan", "staging"]).success().stdout_has(
        "their SQL checked first (warn); `gantry rehearse staging` shows what the checks find",
    );

    let run = t.gantry(&["rehearse", "staging", &sha]);
    run.success()
        .stderr_has("0003_tags.sql cannot be reversed")
        .stderr_has("0004_body.sql renames items or one of its columns, which the release still serving reads by its old name: `ALTER TABLE items RENAME COLUMN note TO body`; instead: add the new name beside the old one");
    assert!(!run.stderr.contains("0002_note.sql"), "{}", run.stderr);
    let json = t.gantry(&["rehearse", "staging", &sha, "--json"]);
    assert_eq!(
        findings(&json.stdout),
        pairs(&[
            ("0003_tags.sql", "irreversible"),
            ("0004_body.sql", "breaks")
        ])
    );

    // Strict: refused before anything migrates.
    let strict = config(&mut t, "checks = \"strict\"");
    t.write_config(&strict);
    t.commit("Strict checks", &[]);
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    let tables = || sqlite(&db, "SELECT name FROM sqlite_master WHERE type = 'table'");
    t.gantry(&["deploy", "staging"])
        .code(7)
        .stderr_has(
            "found, in 0003_tags.sql, 0004_body.sql, what `[database] checks = \"strict\"` refuses",
        )
        .stderr_has("[database] reviewed");
    assert!(!tables().contains("tags"), "nothing migrated: {}", tables());

    // Looked at: quiet, and the rehearsal goes on.
    let reviewed = config(
        &mut t,
        "checks = \"strict\"\nreviewed = [\"0003_tags.sql\", \"0004_body.sql\"]",
    );
    t.write_config(&reviewed);
    let sha = t.commit("Reviewed", &[]);
    let run = t.gantry(&["rehearse", "staging", &sha]);
    run.success();
    assert!(!run.stderr.contains("cannot be reversed"), "{}", run.stderr);

    // Warned of, the deploy goes on, and its JSON says what was found.
    let warn = config(&mut t, "");
    t.write_config(&warn);
    t.commit("Checks warn", &[]);
    let run = t.gantry(&["deploy", "staging", "--json"]);
    run.success();
    let value: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let migrations: Vec<&str> = value["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["migration"].as_str().unwrap())
        .collect();
    assert_eq!(migrations, ["0003_tags.sql", "0004_body.sql"]);
    assert!(tables().contains("tags"));
}

/// The Django example's later stages on PostgreSQL, found through the
/// preset (no `[database] sql`): each finding on its migration only.
#[test]
fn the_django_stages_are_checked_through_the_preset_on_postgres() {
    use crate::migrations::{commit_stage, config, start, Engine};
    let mut t = start(Engine::Postgres);
    let text = config(&mut t, Engine::Postgres, None);
    t.write_config(&text);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    for stage in ["2-dedupe", "3-note", "4-backfill"] {
        commit_stage(&t, stage, stage);
    }
    let sha = commit_stage(&t, "5-drop-note", "Notes come and go");
    let run = t.gantry(&["rehearse", "staging", &sha, "--json"]);
    run.success();
    assert_eq!(
        findings(&run.stdout),
        pairs(&[
            ("lists.0002_item_unique", "locks"),
            ("lists.0004_note_backfill", "irreversible"),
            ("lists.0005_remove_item_note", "breaks"),
        ])
    );
}
