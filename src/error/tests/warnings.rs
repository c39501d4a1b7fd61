//! Every warning: what went wrong without stopping the command.

use insta::assert_snapshot;

use crate::error::{Done, Warning};

#[test]
fn every_warning() {
    let cause = || "`git push -q origin refs/notes/gantry` failed: rejected".to_string();
    let fetch =
        "`git fetch -q origin refs/notes/gantry` failed: could not read from remote repository";
    let all = [
        Warning::NotRecordedOnHost {
            cause: "web1: record, prune, unlock failed (exit status 1)".into(),
        },
        Warning::NotRecorded {
            done: Done::Deploy,
            cause: cause(),
        },
        Warning::NotRecorded {
            done: Done::Rollback,
            cause: cause(),
        },
        Warning::NotRecorded {
            done: Done::Verification,
            cause: cause(),
        },
        Warning::NotTagged { cause: cause() },
        Warning::TagNotMoved { cause: cause() },
        Warning::RollbackCommitMissing {
            commit: "1a2b3c4d".into(),
            cause: "`1a2b3c4d` is not a revision".into(),
        },
        Warning::Forced {
            commit: "1a2b3c4d".into(),
            required: "staging".into(),
            env: "live".into(),
        },
        Warning::NotRehearsed { env: "live".into() },
        Warning::DeltaFailed {
            host: "web1".into(),
            cause: "tar: Unexpected EOF in archive".into(),
        },
        Warning::BackupsNotPruned {
            cause: "web1: prune backups failed (exit status 1)".into(),
        },
        Warning::NotPutBack {
            cause: "web1: unlock failed (exit status 1)".into(),
        },
        Warning::FoundBack {
            host: "web1".into(),
            reported: "no verdict".into(),
            healthy: true,
        },
        Warning::FoundBack {
            host: "web1".into(),
            reported: "no verdict".into(),
            healthy: false,
        },
        Warning::RestoredNotRestarted {
            cause: "web1: restart failed (exit status 1)".into(),
        },
        Warning::RestoredNotAnswering {
            url: "http://web1:8000/health".into(),
            attempts: 30,
            last: "connection refused".into(),
        },
        Warning::CopyNotDeleted {
            cause: "web1: drop the copy failed (exit status 1)".into(),
        },
        Warning::WritesDuringRehearsal {
            env: "live".into(),
            changes: vec![
                "lists_item: 3 rows → 4".into(),
                "lists_list: 1 row → 2".into(),
            ],
        },
        Warning::CopyUnchanged,
        Warning::WaitingForLock { env: "live".into() },
        Warning::NotUnlocked {
            cause: "web1: unlock failed (exit status 1)".into(),
        },
        Warning::HistoryNotWritten {
            cause: "web1: record history failed (exit status 1)".into(),
        },
        Warning::LedgerNotFetched {
            remote: "origin".into(),
            cause: fetch.into(),
        },
        Warning::TagsNotRead {
            remote: "origin".into(),
            cause: fetch.into(),
        },
        Warning::Interrupted,
    ];
    let text: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_snapshot!(text.join("\n"), @r"
    could not record the deploy or prune old releases: web1: record, prune, unlock failed (exit status 1)
    the deploy succeeded, but recording it in the git remote failed: `git push -q origin refs/notes/gantry` failed: rejected
    the rollback succeeded, but recording it in the git remote failed: `git push -q origin refs/notes/gantry` failed: rejected
    could not record the verification in the git remote: `git push -q origin refs/notes/gantry` failed: rejected
    the deploy succeeded, but tagging it failed: `git push -q origin refs/notes/gantry` failed: rejected
    the rollback succeeded, but moving the tag failed: `git push -q origin refs/notes/gantry` failed: rejected
    the rollback succeeded, but its commit 1a2b3c4d is not in this repository, so the tags were not moved: `1a2b3c4d` is not a revision
    1a2b3c4d is not verified on `staging`; deploying to `live` anyway because of --force (recorded as forced)
    migrations are pending on `live` and are not rehearsed (--no-rehearse; recorded)
    web1: the delta upload failed (tar: Unexpected EOF in archive); sending the whole archive
    could not prune old backups: web1: prune backups failed (exit status 1)
    could not put the host back: web1: unlock failed (exit status 1)
    web1: putting back reported no success (no verdict), but `current` points at the old release again and it answers the health check
    web1: putting back reported no success (no verdict), but `current` points at the old release again
    restored, but the restart failed: web1: restart failed (exit status 1)
    restored, but the app does not answer: GET http://web1:8000/health after 30 attempts: connection refused
    could not delete the rehearsal's copy: web1: drop the copy failed (exit status 1)
    `live`'s database took writes while the rehearsal ran (lists_item: 3 rows → 4; lists_list: 1 row → 2); its schema and applied migrations did not change, so these are the app's own writes
    the copy did not change: either no migration was pending, or the app did not use the copy (set `database.check` so Gantry can tell)
    `live` is locked by another deploy; waiting for it (--lock-wait)
    could not release the lock: web1: unlock failed (exit status 1)
    could not write history: web1: record history failed (exit status 1)
    could not fetch the ledger from `origin`: `git fetch -q origin refs/notes/gantry` failed: could not read from remote repository
    could not read the tags of `origin`: `git fetch -q origin refs/notes/gantry` failed: could not read from remote repository
    interrupted: no new step will start; what this run changed is being put back
    ");
}

#[test]
fn writes_still_held() {
    let w = Warning::WritesStillHeld {
        host: "web1".into(),
        file: "/srv/app/.gantry/maintenance".into(),
        cause: "connection lost".into(),
    };
    assert_snapshot!(w.to_string(), @"web1 still answers writes with 503: /srv/app/.gantry/maintenance could not be removed (connection lost); remove it, or run `gantry unlock`");
}

#[test]
fn what_init_warns_of() {
    let all = [
        Warning::InitWithoutGunicorn { uwsgi: true },
        Warning::InitWithoutGunicorn { uwsgi: false },
        Warning::InitFixedAllowedHosts {
            file: "src/shop/settings/production.py".into(),
        },
        Warning::InitDebugOn {
            module: "shop.settings".into(),
        },
    ];
    let text: Vec<String> = all.iter().map(|w| w.to_string()).collect();
    assert_snapshot!(text.join("\n"), @r"
    gunicorn is not in the requirements, uwsgi is: the systemd unit runs gunicorn; add gunicorn to requirements.txt, or give `setup.systemd` a template of your own that runs uwsgi
    gunicorn is not in the requirements, and the systemd unit runs it: add gunicorn to requirements.txt
    ALLOWED_HOSTS is written in `src/shop/settings/production.py`, not read from a variable: add each environment's domain there, or Django answers 400 to every request on the servers
    the app runs with DEBUG = True with `shop.settings` and the values in `[env]`: turn DEBUG off in it before a deploy
    ");
}

#[test]
fn a_failed_first_deploy_that_cannot_stop_the_app() {
    let all = [
        Warning::AppMayStillRun {
            host: "web1".into(),
        },
        Warning::AppNotStopped {
            host: "web1".into(),
            cause: "`sudo systemctl stop gunicorn-shop` failed (exit status 5)".into(),
        },
        Warning::NoSchemaRecord {
            release: "20261126T041510.042Z-1a2b3c4d".into(),
        },
        Warning::BalancerOut {
            host: "web1".into(),
            step: "join the balancer".into(),
            cause: "`./lb join web1` (on this machine) exited with status 2".into(),
        },
        Warning::HookFailed {
            hook: "after_switch".into(),
            host: Some("web1".into()),
            cause: "`curl -fsS http://127.0.0.1/warm` exited with status 22".into(),
        },
        Warning::HookFailed {
            hook: "on_failure".into(),
            host: None,
            cause: "`./notify.sh` (on this machine) exited with status 1".into(),
        },
        Warning::NotTriedOnTheCopy {
            release: "20261126T041510.042Z-1a2b3c4d".into(),
        },
        Warning::BackUnhealthy {
            host: "web2".into(),
            cause: "http://127.0.0.1:8000/health answered 500".into(),
            balancer: true,
        },
        Warning::BackUnhealthy {
            host: "web2".into(),
            cause: "curl: (7) Failed to connect to 127.0.0.1 port 8000".into(),
            balancer: false,
        },
    ];
    let text: Vec<String> = all.iter().map(|w| w.to_string()).collect();
    assert_snapshot!(text.join("\n"), @r"
    web1 serves no release again, but the app this deploy started may still run from the removed one: stop it by hand, and set `deploy.stop` (`sudo systemctl stop UNIT`) so a failed first deploy stops it
    web1 serves no release again, but stopping the app this deploy started failed: `sudo systemctl stop gunicorn-shop` failed (exit status 5); stop it by hand
    there is no record of the schema 20261126T041510.042Z-1a2b3c4d went live with (it was deployed before Gantry kept one): only the code goes back, the schema stays as it is
    web1 serves the release it served before, but `join the balancer` failed: `./lb join web1` (on this machine) exited with status 2; the balancer may send it no traffic: run `[deploy.balancer] join` for it by hand
    the `after_switch` hook failed for web1: `curl -fsS http://127.0.0.1/warm` exited with status 22; the deploy goes on (the hook is advisory, or runs when the outcome is known)
    the `on_failure` hook failed: `./notify.sh` (on this machine) exited with status 1; the deploy goes on (the hook is advisory, or runs when the outcome is known)
    20261126T041510.042Z-1a2b3c4d was not started against the reversed copy before the real database is touched (`deploy.serve` is not set): its health check comes after the switch only; set `deploy.serve` to the command that runs the app in the foreground on $GANTRY_PORT
    web2 was put back to the release it served before, which then failed its health check: http://127.0.0.1:8000/health answered 500; look at the app on that host (`deploy.logs` shows its log); it is left out of the balancer: run `[deploy.balancer] join` for it by hand once it answers
    web2 was put back to the release it served before, which then failed its health check: curl: (7) Failed to connect to 127.0.0.1 port 8000; look at the app on that host (`deploy.logs` shows its log)
    ");
}

#[test]
fn an_env_file_that_differs_from_the_config() {
    let differs = |names: &[&str]| Warning::EnvFileDiffers {
        host: "web1".into(),
        env: "live".into(),
        file: "/srv/shop/shared/.env".into(),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    let text = [differs(&["DJANGO_DEBUG", "GREETING"]), differs(&[])].map(|w| w.to_string());
    assert_snapshot!(text.join("\n"), @r"
    /srv/shop/shared/.env on web1 does not say what the config does for `DJANGO_DEBUG`, `GREETING`: the app does not see the config's values; `gantry setup live` writes them and restarts the app
    web1 has no env file (/srv/shop/shared/.env): the app runs without the config's `[env]`; `gantry setup live` writes it
    ");
}

#[test]
fn files_the_app_wrote_inside_the_release() {
    let w = Warning::WrittenInRelease {
        host: "web1".into(),
        kept: vec![("src/db.sqlite3".into(), 1), ("src/media/".into(), 118)],
    };
    assert_snapshot!(w.to_string(), @r#"the app on web1 writes inside the release, and what it wrote goes when the release is pruned: `src/db.sqlite3` (1 file), `src/media/` (118 files); keep it across releases with `deploy.shared = ["src/db.sqlite3", "src/media/"]` (relative to the release's root)"#);
}

#[test]
fn what_the_checks_of_a_migration_find() {
    let all = [
        Warning::MigrationFinding(Box::new(crate::model::commit::Finding {
            migration: "lists.0004_index".into(),
            statement: "CREATE INDEX \"lists_item_text_idx\" ON \"lists_item\" (\"text\")".into(),
            rule: "locks".into(),
            what: "builds an index on lists_item while writes to it wait".into(),
            instead: "CREATE INDEX CONCURRENTLY, in a migration of its own".into(),
        })),
        Warning::ChecksNotRun {
            cause: "ModuleNotFoundError: No module named 'django'".into(),
        },
    ];
    let text: Vec<String> = all.iter().map(|w| w.to_string()).collect();
    assert_snapshot!(text.join("\n"), @r#"
    lists.0004_index builds an index on lists_item while writes to it wait: `CREATE INDEX "lists_item_text_idx" ON "lists_item" ("text")`; instead: CREATE INDEX CONCURRENTLY, in a migration of its own (once looked at: `[database] reviewed = ["lists.0004_index"]`)
    the pending migrations' SQL could not be checked (ModuleNotFoundError: No module named 'django'): they are rehearsed all the same; `[database] sql` prints it for apps outside the Django preset
    "#);
}
