//! The errors about data: rehearsals, failed migrations, an app that
//! opens another database.

use insta::assert_snapshot;

use super::*;

#[test]
fn a_failed_migration_names_the_constraint_and_the_rows() {
    let mut f = failure();
    f.problems = vec![problem("web1", "migration accounts.0002_unique_email")];
    f.serving.truncate(1);
    f.notes = vec!["the database was restored from its backup".into()];
    f.constraint = Some((
        "UNIQUE on accounts_user (email)".into(),
        vec!["accounts_user: email=a@example.com: 2 rows, ids 3, 7".into()],
    ));
    assert_snapshot!(Error::Failed(Box::new(f)).to_string(), @r"
        deploy to `live` failed on 1 host
          web1: migration accounts.0002_unique_email failed (exit status 3)
            command: sudo systemctl restart gunicorn
            output:
              Job for gunicorn.service failed.
          constraint: UNIQUE on accounts_user (email)
          rows that violate it:
            accounts_user: email=a@example.com: 2 rows, ids 3, 7
          the database was restored from its backup
          every host was left serving what it served before:
            web1: 20261125T090000.000Z-aaaaaaaa
          = help: fix the cause above and run the deploy again
        ");
}

#[test]
fn rehearsals() {
    let unique = Violation::Unique {
        table: Some("accounts_user".into()),
        index: None,
        columns: vec!["email".into()],
    };
    let e = Error::RehearsalFailed(Box::new(report(Some(unique))));
    assert_eq!(e.exit_status(), ExitStatus::RehearsalFailed);
    assert_snapshot!(e.to_string(), @r"
        the migrations of 01234567 (Add a unique email) fail on a copy of `live`'s data; `live` was not touched
          migration: accounts.0002_unique_email (failed after 1.5s on the copy, on web1)
          constraint: UNIQUE (email) on table accounts_user
          rows that violate it:
            accounts_user: email=a@example.com: 2 rows, ids 3, 7
          = help: write a data migration that merges or fixes these rows before the constraint is added, then release again
        ");
    let e = Error::RehearsalFailed(Box::new(report(None)));
    assert_snapshot!(e.to_string(), @r"
        the migrations of 01234567 (Add a unique email) fail on a copy of `live`'s data; `live` was not touched
          migration: accounts.0002_unique_email (failed after 1.5s on the copy, on web1)
          output:
            django.db.utils.IntegrityError: UNIQUE constraint failed: accounts_user.email
          = help: fix the migration and rehearse again with `gantry rehearse live`
        ");
    let e = Error::CopyNotUsed(Box::new(CopyNotUsed {
        env: "live".into(),
        host: "web1".into(),
        copy: "/srv/app/.gantry/rehearsals/shared/db.sqlite3".into(),
        env_var: Some("DB_PATH".into()),
        check: "python manage.py migrate --check".into(),
    }));
    assert_eq!(e.exit_status(), ExitStatus::RehearsalFailed);
    assert_snapshot!(e.to_string(), @r"
        the app did not use the database Gantry copied: the migrations of `live`'s rehearsal ran, but the copy did not change; `live` was not touched
          looked for: a change in the copy /srv/app/.gantry/rehearsals/shared/db.sqlite3 (given to the app as DB_PATH) after the migrate command, which `python manage.py migrate --check` said had migrations pending
          on: web1
          = help: the app must open its database from DB_PATH, or keep its SQLite file in `deploy.shared` and point `database.path` at it under {shared}; then rehearse again
        ");
    let e = Error::RealDatabaseChanged(Box::new(RealChanged {
        env: "live".into(),
        host: "web1".into(),
        database: "/srv/app/shared/db.sqlite3".into(),
        changes: vec!["the migrations table gained 0002_unique_email".into()],
    }));
    assert_eq!(e.exit_status(), ExitStatus::Failed);
    assert_snapshot!(e.to_string(), @r"
        the real database of `live` changed while its rehearsal ran (/srv/app/shared/db.sqlite3 on web1)
          the migrations table gained 0002_unique_email
          = help: the rehearsal reached the real database: check the app's settings for a database it opens by a fixed path outside `deploy.shared`; `gantry backups live` lists the backups taken before earlier migrations
        ");
}

#[test]
fn the_app_opens_another_database() {
    let wrong = |rehearsal| {
        Error::WrongDatabase(Box::new(WrongDatabase {
            env: "live".into(),
            host: "web1".into(),
            expected: "/srv/app/shared/db.sqlite3".into(),
            env_var: Some("DB_PATH".into()),
            app: "/srv/app/releases/x/db.sqlite3 (SQLite)".into(),
            rehearsal,
        }))
    };
    assert_eq!(wrong(false).exit_status(), ExitStatus::Usage);
    assert_snapshot!(wrong(false).to_string(), @r#"
        the app on `live` does not use the database in gantry.toml; nothing was migrated
          gantry.toml:  /srv/app/shared/db.sqlite3 (`[database]`, given to the app as DB_PATH)
          the app uses: /srv/app/releases/x/db.sqlite3 (SQLite) (Django's DATABASES["default"], asked on web1)
          = help: make the settings read the database from DB_PATH (`"NAME": os.environ["DB_PATH"]`, or DATABASE_URL for PostgreSQL), or point `[database]` at what the app uses; a SQLite file must be kept in `deploy.shared`
        "#);
    assert_snapshot!(wrong(true).to_string(), @r#"
        the app did not use the database Gantry copied for the rehearsal of `live`; nothing was migrated, `live` was not touched
          the copy:     /srv/app/shared/db.sqlite3, given to the app as DB_PATH
          the app uses: /srv/app/releases/x/db.sqlite3 (SQLite) (Django's DATABASES["default"], asked on web1)
          = help: make the settings read the database from DB_PATH (`"NAME": os.environ["DB_PATH"]`, or DATABASE_URL for PostgreSQL), or point `[database]` at what the app uses; a SQLite file must be kept in `deploy.shared`
        "#);
}

#[test]
fn what_putting_the_database_back_did() {
    let migrations = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let all = [
        PutBack::Unchanged {
            host: "web1".into(),
        },
        PutBack::Kept {
            host: "web1".into(),
            migrations: migrations(&["lists.0002_note"]),
        },
        PutBack::Reversed {
            host: "web1".into(),
            migrations: migrations(&["lists.0002_note", "lists.0003_unique"]),
            command: ".venv/bin/python manage.py migrate lists 0001_initial".into(),
            removes: vec![
                "column lists_item.note, with its values".into(),
                "index lists_item_uniq on lists_item".into(),
            ],
        },
        PutBack::Restored {
            host: "web1".into(),
            backup: "/srv/app/.gantry/backups/x.sqlite3".into(),
            why: "reversing the migrations failed: IrreversibleError".into(),
            since: "2026-12-03T09:00:00Z".into(),
            until: "2026-12-03T09:00:14Z".into(),
            tables: vec!["lists_item".into()],
            saved: "/srv/app/.gantry/saved/20261203T090014.000Z.sqlite3".into(),
        },
        PutBack::KeptForStuckHosts {
            hosts: vec!["web2".into()],
            backup: Some("/srv/app/.gantry/backups/x.sqlite3".into()),
        },
    ];
    let text: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_snapshot!(text.join("\n"), @r"
    the database on web1 has its schema and migration records as they were (the failed migration rolled back by itself): nothing was restored, and every write made meanwhile is kept
    the database on web1 keeps migration lists.0002_note: the release that serves again runs on its schema (they only added), so nothing was reversed or restored, and every write is kept
    migrations lists.0002_note and lists.0003_unique reversed on web1 (`.venv/bin/python manage.py migrate lists 0001_initial`): every row is kept; the reversal removed what they had added: column lists_item.note, with its values, index lists_item_uniq on lists_item
    the database on web1 was restored from /srv/app/.gantry/backups/x.sqlite3 (reversing the migrations failed: IrreversibleError); what was written to it from 2026-12-03T09:00:00Z to 2026-12-03T09:00:14Z is not in it (rows changed in: lists_item), but in the database as it was just before the restore, saved in /srv/app/.gantry/saved/20261203T090014.000Z.sqlite3
    the database was kept migrated, because web2 still runs the new release on it; the backup taken before the migration is /srv/app/.gantry/backups/x.sqlite3
    ");
}

#[test]
fn what_a_rehearsal_foresees_for_putting_back() {
    use crate::model::commit::Foreseen;
    let all = [
        Foreseen::Keep,
        Foreseen::Reverse { removes: vec![] },
        Foreseen::Reverse {
            removes: vec!["index lists_item_uniq on lists_item".into()],
        },
        Foreseen::Restore {
            why: "reversing them fails on the copy: IrreversibleError".into(),
        },
    ];
    let text: Vec<String> = all.iter().map(Foreseen::describe).collect();
    assert_snapshot!(text.join("\n"), @r"
    if this deploy is put back, its new schema is kept (the migrations only add what the serving release never writes)
    if this deploy is put back, its migrations are reversed (done on the copy too: it works)
    if this deploy is put back, its migrations are reversed (done on the copy too: it works), removing index lists_item_uniq on lists_item
    if this deploy is put back, only the backup can do it (reversing them fails on the copy: IrreversibleError): writes made meanwhile would be in the saved copy, not the database; deploy with `--maintenance` to hold them
    ");
}

#[test]
fn migrations_that_break_the_release_serving_beside_the_new_one() {
    let e = Error::BreaksTheServingRelease {
        env: "live".into(),
        how: "a handover",
        breaks: vec![
            "changed or removed: column lists_item text text not null".into(),
            "added: index lists_item lists_item_text_uniq unique".into(),
        ],
    };
    assert_eq!(
        e.exit_status(),
        crate::cli::exit::ExitStatus::RehearsalFailed
    );
    assert_snapshot!(e.to_string(), @r"
    the migrations rehearsed for `live` break the release it serves, which keeps serving beside the new one during a handover; nothing was migrated
      changed or removed: column lists_item text text not null
      added: index lists_item lists_item_text_uniq unique
      = help: deploy it in two steps: first a release whose migrations only add (a new table, a nullable column or one with a default) and whose code works with both schemas, then one that drops, renames or constrains
      = help: or run it anyway with `--allow-incompatible` (requests the old release serves meanwhile may fail)
    ");
}

#[test]
fn a_rollback_that_cannot_take_the_schema_back() {
    let e = Error::RollbackNeedsTheSchema(Box::new(crate::error::RollbackRefused {
        env: "live".into(),
        release: "20261126T041510.042Z-1a2b3c4d".into(),
        migrations: vec!["lists.0003_item_note".into()],
        why: "reversing them fails on the copy: IrreversibleError: Operation <RunPython> in lists.0003_item_note is not reversible".into(),
        backup: Some((
            "20261127T090000.000Z-5e6f7a8b.sqlite3".into(),
            "2 days".into(),
        )),
    }));
    assert_eq!(
        e.exit_status(),
        crate::cli::exit::ExitStatus::RehearsalFailed
    );
    assert_snapshot!(e.to_string(), @r"
    the rollback of `live` to 20261126T041510.042Z-1a2b3c4d was refused, and nothing changed: lists.0003_item_note applied since 20261126T041510.042Z-1a2b3c4d went live cannot be taken back (reversing them fails on the copy: IrreversibleError: Operation <RunPython> in lists.0003_item_note is not reversible)
      = help: `gantry rollback live --code-only` switches the code back and leaves the schema as it is (the old code then runs on the new schema)
      = help: or `gantry rollback live --restore-backup 20261127T090000.000Z-5e6f7a8b.sqlite3`: the code back, and the database put back from the backup taken before those migrations, 2 days ago (every write made since is lost)
    ");
}

#[test]
fn strict_checks_refuse_a_deploy() {
    let e = Error::MigrationChecks {
        env: "live".into(),
        migrations: vec!["lists.0004_index".into(), "lists.0005_body".into()],
    };
    assert_eq!(
        e.exit_status(),
        crate::cli::exit::ExitStatus::RehearsalFailed
    );
    assert_snapshot!(e.to_string(), @r#"
    the checks of `live`'s pending migrations found, in lists.0004_index, lists.0005_body, what `[database] checks = "strict"` refuses (each is in a warning above); nothing was migrated
      = help: make each change the safe way its warning says, or, once you have looked at a migration, list it in `[database] reviewed`
    "#);
}
