//! A rollback takes the schema back: with a writer adding items all along,
//! a rollback past a reversible migration (a unique index) reverses it,
//! after rehearsing that on a copy, and every acknowledged item stays; the
//! old release then takes a repeated item again. A migration that cannot
//! be reversed, or whose reversal would drop what was written since,
//! refuses the rollback, changing nothing, and names the two ways out:
//! `--code-only` (the rollback of before) and `--restore-backup`; so does
//! an old release that fails its health check against the reversed copy.

use crate::harness::{sqlite, Test};
use crate::migrations::Engine;
use crate::put_back::Writers;

/// The example app on one host, with its reversal configured, and how to
/// run it on a port of its own (for trials on a copy).
fn reversible(t: &mut Test) {
    let config = t
        .config(&[("staging", &[0])])
        .replacen(
            "check = \"python3 migrate.py --check\"",
            "check = \"python3 migrate.py --check\"\nreverse = \"python3 migrate.py --reverse\"",
            1,
        )
        .replacen(
            "restart = \"sh restart.sh\"",
            "restart = \"sh restart.sh\"\nserve = \"APP_HOST=127.0.0.1 APP_PORT=$GANTRY_PORT exec python3 app.py\"",
            1,
        );
    t.write_config(&config);
}

const UNIQUE: (&str, &str) = (
    "migrations/0002_unique.sql",
    "CREATE UNIQUE INDEX items_text ON items (text);\n-- down\nDROP INDEX items_text;\n",
);

#[test]
fn a_rollback_reverses_the_migrations_the_old_release_does_not_run_on() {
    let mut t = Test::new().hosts(1).start();
    reversible(&mut t);
    let first = t.commit("Items", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let old = t.current("staging", 0).unwrap();
    let unique = t.commit("Items are unique", &[UNIQUE]);
    t.gantry(&["deploy", "staging", "--allow-incompatible"])
        .success();
    // The ledger says which migrations the release went live with.
    let events = crate::pipeline::ledger(&t, &unique);
    let deployed = events.iter().find(|e| e["event"] == "deploy").unwrap();
    assert_eq!(
        deployed["migrations"],
        serde_json::json!(["0001_items.sql", "0002_unique.sql"])
    );
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    let indexes = || sqlite(&db, "SELECT name FROM sqlite_master WHERE type = 'index'");
    assert!(indexes().contains("items_text"));

    // What it would do, read without changing anything.
    t.gantry(&["plan", "staging", "--rollback"])
        .success()
        .stdout_has(&format!("-> {old}"))
        .stdout_has("schema: reversed, once rehearsed on a copy and backed up: 0002_unique.sql (python3 migrate.py --reverse)");
    assert!(indexes().contains("items_text"));

    // The old release, started against the reversed copy, does not
    // answer there: refused, nothing changed.
    let config = std::fs::read_to_string(t.repo.join("gantry.toml")).unwrap();
    let serve = "APP_HOST=127.0.0.1 APP_PORT=$GANTRY_PORT exec python3 app.py";
    t.write_config(&config.replacen(serve, "echo the old app fails to start; exit 3", 1));
    t.gantry(&["rollback", "staging"])
        .code(7)
        .stderr_has(&format!(
            "{old}, started against the copy with `deploy.serve`"
        ))
        .stderr_has("failed its health check on port")
        .stderr_has("the old app fails to start");
    assert!(indexes().contains("items_text"));
    assert_ne!(t.current("staging", 0).unwrap(), old);
    t.write_config(&config);

    let port = t.app_port("staging", 0);
    let writers = Writers::start(vec![(t.ip(0).to_string(), port)], "w");
    let run = t.gantry(&["rollback", "staging"]);
    let acked = writers.stop();
    run.success()
        .stderr_has("Rehearsing the reversal of 0002_unique.sql on a copy of staging's data")
        .stderr_lacks("was not started against the reversed copy")
        .stderr_has("the schema is back: 0002_unique.sql reversed on the database, every row kept");
    assert!(!indexes().contains("items_text"), "{}", indexes());
    assert_eq!(t.current("staging", 0).unwrap(), old);
    let rows = sqlite(&db, "SELECT text FROM items");
    let missing: Vec<&String> = acked
        .iter()
        .filter(|a| !rows.contains(a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} lost: {missing:?}",
        missing.len(),
        acked.len()
    );
    assert!(!acked.is_empty());
    // The old release takes a repeated item again.
    let ip = t.ip(0).to_string();
    for _ in 0..2 {
        let answer = crate::harness::post_item(&ip, port, "twice").unwrap();
        assert!(crate::harness::created(&answer), "{answer}");
    }
    assert_eq!(
        t.get("staging", 0, "/health").unwrap().1.trim(),
        format!("ok {first}")
    );
}

#[test]
fn a_rollback_that_cannot_take_the_schema_back_is_refused_but_the_backup_can() {
    let mut t = Test::new().hosts(1).start();
    reversible(&mut t);
    t.commit("Items", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let old = t.current("staging", 0).unwrap();
    // No `-- down`: it cannot be reversed.
    let irreversible = (
        "migrations/0002_unique.sql",
        "CREATE UNIQUE INDEX items_text ON items (text);\n",
    );
    t.commit("Items are unique, for good", &[irreversible]);
    t.gantry(&["deploy", "staging", "--allow-incompatible"])
        .success();
    let new = t.current("staging", 0).unwrap();
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    let indexes = || sqlite(&db, "SELECT name FROM sqlite_master WHERE type = 'index'");

    t.gantry(&["rollback", "staging"])
        .code(7)
        .stderr_has("was refused, and nothing changed: 0002_unique.sql applied since")
        .stderr_has("is irreversible")
        .stderr_has("gantry rollback staging --code-only")
        .stderr_has(&format!(
            "gantry rollback staging --restore-backup {new}.sqlite3`: the code back, and the database put back from the backup taken before those migrations, "
        ));
    assert_eq!(t.current("staging", 0).unwrap(), new);
    assert!(indexes().contains("items_text"));

    // The backup, asked for: not without a yes.
    let backup = format!("{new}.sqlite3");
    t.gantry(&["rollback", "staging", "--restore-backup", &backup])
        .code(2)
        .stderr_has("pass `--yes` to confirm");
    assert_eq!(t.current("staging", 0).unwrap(), new);
    t.gantry(&["rollback", "staging", "--restore-backup", &backup, "--yes"])
        .success();
    assert_eq!(t.current("staging", 0).unwrap(), old);
    assert!(!indexes().contains("items_text"), "the backup is back");
}

/// Whether staging's `lists_item` has a unique constraint.
fn unique(t: &Test, engine: Engine) -> bool {
    match engine {
        Engine::Sqlite => sqlite(
            &t.site("staging", 0).join("shared/db.sqlite3"),
            "SELECT group_concat(sql) FROM sqlite_master WHERE tbl_name = 'lists_item'",
        )
        .contains("UNIQUE"),
        Engine::Postgres => !t
            .postgres
            .as_ref()
            .unwrap()
            .sql(
                "staging",
                "SELECT conname FROM pg_constraint WHERE conrelid = 'lists_item'::regclass AND contype = 'u'",
            )
            .trim()
            .is_empty(),
    }
}

/// The book's case on the Django example: a release added a unique
/// constraint (reversible); its rollback takes the constraint away, so the
/// old form takes a repeated item again, and the items written meanwhile
/// stay. Then a release whose data migration has no reverse and that
/// constrains again: its rollback is refused.
fn django_story(engine: Engine) {
    use crate::migrations::{add_item, commit_stage, config, start};
    let mut t = start(engine);
    // gunicorn in the foreground on a port of its own: the old release is
    // tried on the reversed copy before the real database is touched.
    let text = config(&mut t, engine, None).replacen(
        "restart = \"sh restart.sh\"",
        "restart = \"sh restart.sh\"\nserve = \"exec {python} -m gunicorn --bind 127.0.0.1:$GANTRY_PORT superlists.wsgi\"",
        1,
    );
    t.write_config(&text);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let old = t.current("staging", 0).unwrap();
    add_item(&mut t, "staging", 0, "milk");
    commit_stage(&t, "2-dedupe", "Items are unique per list");
    let run = t.gantry(&["deploy", "staging", "--allow-incompatible"]);
    run.success();
    // The checks before it ran: on PostgreSQL the constraint is validated
    // against every row while writes wait; SQLite's index has no better way.
    let locks = "lists.0002_item_unique adds a constraint checked against every row of lists_item while writes wait";
    assert_eq!(
        run.stderr.contains(locks),
        engine == Engine::Postgres,
        "{}",
        run.stderr
    );
    add_item(&mut t, "staging", 0, "eggs");
    assert!(unique(&t, engine));
    t.gantry(&["rollback", "staging"])
        .success()
        .stderr_has("Rehearsing the reversal of lists.0002_item_unique")
        .stderr_has(&format!("start {old} against the copy and check it"))
        .stderr_lacks("was not started against the reversed copy")
        .stderr_has(
            "the schema is back: lists.0002_item_unique reversed on the database, every row kept",
        );
    assert!(!unique(&t, engine), "the constraint is gone");
    assert_eq!(t.current("staging", 0).unwrap(), old);
    // The old form takes a repeated item again, and eggs stayed.
    add_item(&mut t, "staging", 0, "milk");
    let page = t.get("staging", 0, "/").unwrap().1;
    assert_eq!(page.matches("<li>milk</li>").count(), 2, "{page}");
    assert!(page.contains("<li>eggs</li>"), "{page}");

    // A release after it whose data migration has no reverse, and that
    // makes every item's text unique: refused.
    std::fs::write(
        t.repo.join("lists/migrations/0003_item_text_unique.py"),
        "from django.db import migrations, models\n\n\ndef forward(apps, schema_editor):\n    pass\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"lists\", \"0002_item_unique\")]\n    operations = [\n        migrations.RunPython(forward),\n        migrations.AlterField(\"item\", \"text\", models.TextField(default=\"\", unique=True)),\n    ]\n",
    )
    .unwrap();
    t.commit("Item texts are unique", &[]);
    t.gantry(&["deploy", "staging", "--allow-incompatible"])
        .success();
    let new = t.current("staging", 0).unwrap();
    t.gantry(&["rollback", "staging"])
        .code(7)
        .stderr_has("was refused, and nothing changed: lists.0003_item_text_unique applied since")
        .stderr_has("IrreversibleError")
        .stderr_has("--code-only");
    assert_eq!(t.current("staging", 0).unwrap(), new);
    assert!(unique(&t, engine));
    // The code only, as asked: the schema stays.
    t.gantry(&["rollback", "staging", "--code-only"]).success();
    assert_ne!(t.current("staging", 0).unwrap(), new);
    assert!(unique(&t, engine));
}

#[test]
fn django_rollbacks_take_the_schema_back_on_sqlite() {
    django_story(Engine::Sqlite);
}

#[test]
fn django_rollbacks_take_the_schema_back_on_postgres() {
    django_story(Engine::Postgres);
}

#[test]
fn a_rollback_keeps_migrations_that_only_add() {
    let mut t = Test::new().hosts(1).start();
    reversible(&mut t);
    t.commit("Items", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let old = t.current("staging", 0).unwrap();
    let note = (
        "migrations/0002_note.sql",
        "ALTER TABLE items ADD COLUMN note TEXT;\n-- down\nALTER TABLE items DROP COLUMN note;\n",
    );
    t.commit("Items may have a note", &[note]);
    t.gantry(&["deploy", "staging"]).success();
    let plan = t.gantry(&["plan", "staging", "--rollback", "--json"]);
    let value: serde_json::Value = serde_json::from_str(plan.stdout.trim()).unwrap();
    assert_eq!(value["schema"], "keep");
    assert_eq!(value["migrations"][0], "0002_note.sql");
    assert_eq!(value["hosts"][0]["to"], old.as_str());
    t.gantry(&["rollback", "staging"])
        .success()
        .stderr_has("The schema stays: 0002_note.sql only add what");
    assert_eq!(t.current("staging", 0).unwrap(), old);
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    assert!(sqlite(&db, "SELECT sql FROM sqlite_master WHERE name = 'items'").contains("note"));
}

#[test]
fn a_rollback_never_drops_what_was_written_since() {
    let mut t = Test::new().hosts(1).start();
    reversible(&mut t);
    t.commit("Items", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let tags = (
        "migrations/0002_tags.sql",
        "CREATE TABLE tags (name TEXT);\nCREATE UNIQUE INDEX items_text ON items (text);\n-- down\nDROP INDEX items_text;\nDROP TABLE tags;\n",
    );
    t.commit("Tags, and items are unique", &[tags]);
    t.gantry(&["deploy", "staging", "--allow-incompatible"])
        .success();
    let new = t.current("staging", 0).unwrap();
    // The new release wrote a tag.
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    sqlite(&db, "INSERT INTO tags (name) VALUES ('urgent')");
    t.gantry(&["rollback", "staging"])
        .code(7)
        .stderr_has("reversing them would drop what was written since: table tags (1 rows)")
        .stderr_has("--code-only");
    assert_eq!(t.current("staging", 0).unwrap(), new);
    assert_eq!(sqlite(&db, "SELECT name FROM tags").trim(), "urgent");
}
