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

    let run = t.gantry(&["rehearse", "staging", &sha]);
    run.success()
        .stderr_has("0003_tags.sql cannot be reversed")
        .stderr_has("0004_body.sql renames items or one of its columns, which the release still serving reads by its old name: `ALTER TABLE items RENAME COLUMN note TO body`; instead: add the new name beside the old one");
    assert!(!run.stderr.contains("0002_note.sql"), "{}", run.stderr);
    let json = t.gantry(&["rehearse", "staging", &sha, "--json"]);
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    let found: Vec<(&str, &str)> = value["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["migration"].as_str().unwrap(),
                f["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("0003_tags.sql", "irreversible"),
            ("0004_body.sql", "breaks")
        ]
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
