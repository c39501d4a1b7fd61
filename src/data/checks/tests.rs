use super::*;

fn rules(sql: &str, engine: Kind) -> Vec<(String, String)> {
    check(sql, engine)
        .into_iter()
        .map(|f| (f.migration, f.rule))
        .collect()
}

fn pair(migration: &str, rule: &str) -> (String, String) {
    (migration.to_string(), rule.to_string())
}

#[test]
fn each_rule_fires_on_its_statement_and_not_on_the_others() {
    // What Django's sqlmigrate prints for PostgreSQL, one migration each.
    let sql = r#"-- gantry-migration: lists.0002_item_unique
ALTER TABLE "lists_item" ADD CONSTRAINT "lists_item_list_id_text_uniq" UNIQUE ("list_id", "text");
-- gantry-migration: lists.0003_item_note
ALTER TABLE "lists_item" ADD COLUMN "note" text NULL;
-- gantry-migration: lists.0004_index
CREATE INDEX "lists_item_text_idx" ON "lists_item" ("text");
-- gantry-migration: lists.0005_index_concurrently
CREATE INDEX CONCURRENTLY "lists_item_note_idx" ON "lists_item" ("note");
-- gantry-migration: lists.0006_drop_note
ALTER TABLE "lists_item" DROP COLUMN "note" CASCADE;
-- gantry-migration: lists.0007_done
ALTER TABLE "lists_item" ADD COLUMN "done" boolean DEFAULT false NOT NULL;
ALTER TABLE "lists_item" ALTER COLUMN "done" DROP DEFAULT;
-- gantry-migration: lists.0008_text_type
ALTER TABLE "lists_item" ALTER COLUMN "text" TYPE varchar(200);
-- gantry-migration: lists.0009_tags
CREATE TABLE "lists_tag" ("id" bigint NOT NULL PRIMARY KEY, "name" text NOT NULL);
CREATE INDEX "lists_tag_name_idx" ON "lists_tag" ("name");
ALTER TABLE "lists_tag" ADD CONSTRAINT "lists_tag_name_uniq" UNIQUE ("name");
-- gantry-migration: lists.0010_backfill
-- gantry-irreversible: Raw Python operation
-- gantry-migration: lists.0011_fk
ALTER TABLE "lists_item" ADD CONSTRAINT "lists_item_tag_fk" FOREIGN KEY ("tag_id") REFERENCES "lists_tag" ("id") DEFERRABLE INITIALLY DEFERRED NOT VALID;
"#;
    assert_eq!(
        rules(sql, Kind::Postgres),
        [
            pair("lists.0002_item_unique", "locks"),
            pair("lists.0004_index", "locks"),
            pair("lists.0006_drop_note", "breaks"),
            pair("lists.0007_done", "breaks"),
            pair("lists.0008_text_type", "rewrites"),
            pair("lists.0010_backfill", "irreversible"),
        ]
    );
    let findings = check(sql, Kind::Postgres);
    assert_eq!(
        findings[1].statement,
        r#"CREATE INDEX "lists_item_text_idx" ON "lists_item" ("text")"#
    );
    assert_eq!(
        findings[1].what,
        "builds an index on lists_item while writes to it wait"
    );
    assert!(
        findings[2].what.contains("lists_item.note"),
        "{}",
        findings[2].what
    );
}

#[test]
fn sqlite_table_rebuilds_are_found_but_its_index_builds_are_not() {
    // What Django prints for SQLite when a column changes.
    let sql = r#"-- gantry-migration: lists.0002_text_unique
CREATE TABLE "new__lists_item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "text" text NOT NULL UNIQUE);
INSERT INTO "new__lists_item" ("id", "text") SELECT "id", "text" FROM "lists_item";
DROP TABLE "lists_item";
ALTER TABLE "new__lists_item" RENAME TO "lists_item";
-- gantry-migration: lists.0003_index
CREATE UNIQUE INDEX "lists_item_uniq" ON "lists_item" ("list_id", "text");
-- gantry-migration: lists.0004_drop
ALTER TABLE "lists_item" DROP COLUMN "note";
"#;
    assert_eq!(
        rules(sql, Kind::Sqlite),
        [
            pair("lists.0002_text_unique", "rewrites"),
            pair("lists.0004_drop", "breaks"),
        ]
    );
}
