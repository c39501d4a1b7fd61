//! Every error's rendering, pinned whole: what a person reads when it
//! happens.

use std::path::PathBuf;

use insta::assert_snapshot;

use super::*;
use crate::model::commit::Report;
use crate::model::lock::LockInfo;
use crate::model::violation::Violation;

mod data;
mod hooks_and_fleets;
mod warnings;

fn commit() -> Commit {
    Commit {
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        subject: "Add a unique email".into(),
    }
}

fn problem(host: &str, step: &str) -> HostProblem {
    HostProblem {
        host: host.into(),
        step: step.into(),
        command: Some("sudo systemctl restart gunicorn".into()),
        code: Some(3),
        detail: "Job for gunicorn.service failed.".into(),
        output: "Job for gunicorn.service failed.".into(),
        ..HostProblem::default()
    }
}

fn unreachable(host: &str, key: Option<KeyProblem>) -> HostProblem {
    HostProblem {
        host: host.into(),
        step: "connect".into(),
        detail: match key {
            Some(k) => format!("{}; the connection was refused", k.describe()),
            None => "ssh: connect to host web2 port 22: Connection refused".into(),
        },
        unreachable: true,
        key,
        ..HostProblem::default()
    }
}

fn lock(pid: u32) -> LockInfo {
    LockInfo {
        user: "ana".into(),
        machine: "laptop".into(),
        pid,
        since: "2026-11-26T10:00:00Z".into(),
        command: "gantry deploy live HEAD".into(),
        token: "t".into(),
        reason: None,
    }
}

fn report(violation: Option<Violation>) -> Report {
    Report {
        put_back: None,
        breaks: Vec::new(),
        findings: Vec::new(),
        env: "live".into(),
        commit: commit(),
        host: "web1".into(),
        pending: true,
        seconds: 1.5,
        migration: Some("accounts.0002_unique_email".into()),
        output: "django.db.utils.IntegrityError: UNIQUE constraint failed: accounts_user.email"
            .into(),
        violation,
        rows: vec!["accounts_user: email=a@example.com: 2 rows, ids 3, 7".into()],
    }
}

fn failure() -> Failure {
    Failure {
        action: "deploy".into(),
        env: "live".into(),
        problems: vec![problem("web2", "restart")],
        serving: vec![
            ("web1".into(), "20261125T090000.000Z-aaaaaaaa".into()),
            ("web2".into(), "20261125T090000.000Z-aaaaaaaa".into()),
        ],
        recovery: vec![],
        notes: vec!["the database was restored from /srv/app/.gantry/backups/x.sqlite3 (taken just before the migration)".into()],
        constraint: None,
        interrupted: false,
        stuck: vec![],
    }
}

#[test]
fn no_config() {
    let e = Error::NoConfig {
        start: "/home/ana/app".into(),
    };
    assert_snapshot!(e.to_string(), @r"
        no `gantry.toml` in `/home/ana/app` or any folder above it
          = help: run `gantry init` to write one, or pass `--config PATH`
        ");
    assert_eq!(e.exit_status(), ExitStatus::Usage);
}

#[test]
fn usage_errors() {
    let dir = PathBuf::from("/home/ana/app");
    let errors = [
        Error::DirtyTree {
            changes: vec![" M app.py".into()],
        },
        Error::NotARevision { rev: "-x".into() },
        Error::NotARepository { dir: dir.clone() },
        Error::UnknownCommit {
            rev: "nope".into(),
            dir: dir.clone(),
        },
        Error::TagPattern {
            pattern: "DEPLOYED-%Q".into(),
            reason: "`%Q` is not a strftime field".into(),
        },
        Error::NotABackup {
            env: "live".into(),
            backup: "../x".into(),
        },
        Error::RestoreNotConfirmed {
            env: "live".into(),
            backup: "20261126T100000Z.sqlite3".into(),
        },
        Error::RestoreDeclined,
        Error::NoDatabase { env: "live".into() },
        Error::NothingToRehearse,
        Error::NoHostWithRole {
            env: "live".into(),
            role: "wroker".into(),
        },
        Error::NotADemo { dir: dir.clone() },
        Error::DemoFolderTaken { dir: dir.clone() },
        Error::AlreadyExists {
            path: dir.join("gantry.toml"),
        },
        Error::MissingSecrets {
            missing: vec!["SECRET_KEY: set the environment variable `APP_SECRET`".into()],
        },
        Error::ReleaseEndUnclear {
            ends: vec!["live".into(), "demo".into()],
        },
        Error::NotOnRemote {
            commit: commit(),
            remote: "origin".into(),
            in_release: false,
        },
        Error::NotOnRemote {
            commit: commit(),
            remote: "origin".into(),
            in_release: true,
        },
    ];
    for e in &errors {
        assert_eq!(e.exit_status(), ExitStatus::Usage, "{e}");
    }
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_snapshot!(all.join("\n---\n"), @r#"
        the work tree has uncommitted changes:
             M app.py
          = help: commit or stash them first: a release deploys exactly what is committed
        ---
        `-x` is not a revision
        ---
        `/home/ana/app` is not in a git repository; Gantry deploys commits
          = help: keep `gantry.toml` at the root of the app's repository
        ---
        `nope` is not a commit in /home/ana/app
        ---
        the tag pattern `DEPLOYED-%Q` cannot be used: `%Q` is not a strftime field
        ---
        `../x` is not a backup name; `gantry backups live` lists them
        ---
        restoring replaces `live`'s database with the backup `20261126T100000Z.sqlite3`; pass `--yes` to confirm
        ---
        not restored
        ---
        `live` has no database configured
          = help: set `[database]` (or `[environments.live.database]`) with `engine = "sqlite"` or `"postgres"`
        ---
        there is nothing to rehearse: `deploy.migrate` is not set
        ---
        no host of `live` has the role `wroker`: a host's roles are its `roles = [...]` in gantry.toml (`web` when it names none)
        ---
        `/home/ana/app` is not a Gantry demo folder
        ---
        `/home/ana/app` exists and is not a Gantry demo folder; pass `--dir` with a new folder
        ---
        `/home/ana/app/gantry.toml` already exists; pass `--force` to overwrite it
        ---
        secrets are missing on this machine; nothing was changed:
          SECRET_KEY: set the environment variable `APP_SECRET`
        ---
        the config has several environments a release could end at (live, demo); say which with `--to ENV`
          = help: or chain them with `requires = "…"`
        ---
        commit 01234567 (Add a unique email) is not on the remote `origin`
          = help: push it first (`git push origin HEAD`); Gantry only deploys commits the whole team can see
        ---
        commit 01234567 (Add a unique email) is not on the remote `origin`
          = help: push it (`git push origin HEAD`), or run `gantry release --push`
        "#);
}

#[test]
fn git_and_io_keep_their_cause() {
    let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
    let e = Error::io("/srv/app/gantry.toml", io);
    assert_snapshot!(e.to_string(), @r"`/srv/app/gantry.toml`: permission denied");
    assert!(std::error::Error::source(&e).is_some());
    let e = Error::Git {
        command: "git push -q origin HEAD".into(),
        cause: GitCause::Failed {
            stderr: "fatal: could not read from remote repository".into(),
        },
    };
    assert_snapshot!(e.to_string(), @r"`git push -q origin HEAD` failed: fatal: could not read from remote repository");
    assert_eq!(e.exit_status(), ExitStatus::Error);
}

#[test]
fn unreachable_hosts_with_and_without_key_problems() {
    for (key, status) in [
        (None, ExitStatus::Unreachable),
        (Some(KeyProblem::Unknown), ExitStatus::Unreachable),
        (Some(KeyProblem::Changed), ExitStatus::Unreachable),
    ] {
        let e = Error::Unreachable {
            env: "live".into(),
            problems: vec![unreachable("web2", key)],
        };
        assert_eq!(e.exit_status(), status);
    }
    let render = |key| {
        Error::Unreachable {
            env: "live".into(),
            problems: vec![unreachable("web2", key)],
        }
        .to_string()
    };
    assert_snapshot!(render(None), @r"
        cannot reach 1 of the hosts of `live`; nothing was changed
          web2: connect failed
            reason:
              ssh: connect to host web2 port 22: Connection refused
          = help: check that `ssh HOST` works from this machine
        ");
    assert_snapshot!(render(Some(KeyProblem::Unknown)), @r"
        cannot reach 1 of the hosts of `live`; nothing was changed
          web2: connect failed
            reason:
              the host's key is not in known_hosts; the connection was refused
          = help: Gantry never accepts an unknown key, whatever your ssh_config says: get the server's fingerprint from its owner (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console), connect once with `ssh HOST` and compare before answering yes (or add a checked line to `ssh.known_hosts`)
        ");
    assert_snapshot!(render(Some(KeyProblem::Changed)), @r"
        cannot reach 1 of the hosts of `live`; nothing was changed
          web2: connect failed
            reason:
              the host's key has CHANGED since it was recorded in known_hosts; the connection was refused
          = help: a changed key is what a machine in the middle looks like (or a server that was reinstalled): ask the server's owner for its new fingerprint (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console); only if it matches, remove the old key with `ssh-keygen -R HOST` (`-R '[HOST]:PORT'` for another port) and connect once with `ssh` to record the new one
        ");
}

#[test]
fn locked_by_a_live_or_a_gone_process() {
    let held = |info| Error::Locked {
        env: "live".into(),
        held: vec![HeldLock {
            host: "web1".into(),
            info,
        }],
    };
    // This test's own process is alive; pid 0 is `gantry lock` (on purpose).
    let e = held(Some(lock(std::process::id())));
    assert_eq!(e.exit_status(), ExitStatus::Locked);
    let text = e.to_string();
    assert!(text.contains("wait for that deploy to finish"), "{text}");
    assert_snapshot!(held(None).to_string(), @r"
        `live` is locked; nothing was changed
          web1: held, with no record of who holds it
          = help: the process that took the lock is gone; if no deploy is running, clear it with `gantry unlock live`
        ");
}

#[test]
fn a_failed_deploy_says_what_every_host_serves() {
    let e = Error::Failed(Box::new(failure()));
    assert_eq!(e.exit_status(), ExitStatus::Failed);
    assert_snapshot!(e.to_string(), @r"
        deploy to `live` failed on 1 host
          web2: restart failed (exit status 3)
            command: sudo systemctl restart gunicorn
            output:
              Job for gunicorn.service failed.
          the database was restored from /srv/app/.gantry/backups/x.sqlite3 (taken just before the migration)
          every host was left serving what it served before:
            web1: 20261125T090000.000Z-aaaaaaaa
            web2: 20261125T090000.000Z-aaaaaaaa
          = help: fix the cause above and run the deploy again
        ");
}

#[test]
fn an_interrupted_start_names_each_host_as_it_was_left() {
    let f = Failure {
        problems: vec![
            HostProblem {
                detail: "ssh: connect to host web3 port 22: Connection timed out".into(),
                ..unreachable("web3", None)
            },
            HostProblem {
                host: "web2".into(),
                step: "lock".into(),
                detail: "interrupted (Ctrl-C or SIGTERM) before this step started".into(),
                ..HostProblem::default()
            },
        ],
        serving: vec![
            ("web1".into(), "20261125T090000.000Z-aaaaaaaa".into()),
            ("web2".into(), NOT_LOCKED.into()),
            ("web3".into(), NOT_REACHED.into()),
            ("web4".into(), NO_RELEASE.into()),
        ],
        notes: vec![],
        interrupted: true,
        ..failure()
    };
    let e = Error::Failed(Box::new(f));
    assert_eq!(e.exit_status(), ExitStatus::Interrupted);
    assert_snapshot!(e.to_string(), @r"
        deploy to `live` was interrupted (Ctrl-C or SIGTERM)
          web3: connect failed
            reason:
              ssh: connect to host web3 port 22: Connection timed out
          web2: lock failed
            reason:
              interrupted (Ctrl-C or SIGTERM) before this step started
          every host was left serving what it served before:
            web1: 20261125T090000.000Z-aaaaaaaa
            web2: unchanged (not locked)
            web3: unchanged (not reached)
            web4: nothing (no release was live)
          = help: run the deploy again when you want it
        ");
}

#[test]
fn interrupted_and_not_put_back() {
    let mut f = failure();
    f.interrupted = true;
    let e = Error::Failed(Box::new(f.clone()));
    assert_eq!(e.exit_status(), ExitStatus::Interrupted);
    assert_snapshot!(e.to_string(), @r"
        deploy to `live` was interrupted (Ctrl-C or SIGTERM)
          web2: restart failed (exit status 3)
            command: sudo systemctl restart gunicorn
            output:
              Job for gunicorn.service failed.
          the database was restored from /srv/app/.gantry/backups/x.sqlite3 (taken just before the migration)
          every host was left serving what it served before:
            web1: 20261125T090000.000Z-aaaaaaaa
            web2: 20261125T090000.000Z-aaaaaaaa
          = help: run the deploy again when you want it
        ");
    f.stuck = vec![("web2".into(), "20261126T100000.000Z-01234567".into())];
    f.recovery = vec![unreachable("web2", None)];
    f.notes = vec![
        "the database was kept migrated, because web2 still runs the new release on it".into(),
    ];
    let e = Error::Failed(Box::new(f));
    assert_eq!(e.exit_status(), ExitStatus::NotPutBack);
    assert_snapshot!(e.to_string(), @r"
        deploy to `live` was interrupted (Ctrl-C or SIGTERM)
          web2: restart failed (exit status 3)
            command: sudo systemctl restart gunicorn
            output:
              Job for gunicorn.service failed.
          the database was kept migrated, because web2 still runs the new release on it
          these hosts could not be put back and run the new release:
            web2: 20261126T100000.000Z-01234567
          putting hosts back also failed; these hosts need a person:
          web2: connect failed
            reason:
              ssh: connect to host web2 port 22: Connection refused
          what each host serves now:
            web1: 20261125T090000.000Z-aaaaaaaa
            web2: 20261126T100000.000Z-01234567 (the new release: it could not be put back)
          = help: when the hosts above can be reached, check them with `gantry status live`, clear the lock with `gantry unlock live`, and deploy again (the commit you want everywhere)
        ");
}

#[test]
fn hosts_failed_a_command() {
    let e = Error::Hosts {
        what: "`df -h`".into(),
        problems: vec![problem("web1", "exec")],
    };
    assert_eq!(e.exit_status(), ExitStatus::Failed);
    assert_snapshot!(e.to_string(), @r"
        `df -h` failed on 1 host
          web1: exec failed (exit status 3)
            command: sudo systemctl restart gunicorn
            output:
              Job for gunicorn.service failed.
        ");
}

#[test]
fn verification_and_gates() {
    let e = Error::VerifyFailed {
        env: "staging".into(),
        commit: commit().sha,
        reasons: vec!["functional tests failed (exit status 1):\nFAIL: test_home".into()],
    };
    assert_eq!(e.exit_status(), ExitStatus::NotVerified);
    assert_snapshot!(e.to_string(), @r"
        verification of `staging` (commit 01234567) failed
          functional tests failed (exit status 1):
            FAIL: test_home
          = help: the failure is recorded against the commit; fix it, deploy again and re-run `gantry verify staging`
        ");
    let gate = |last| Error::NotVerified {
        env: "live".into(),
        required: "staging".into(),
        commit: Box::new(commit()),
        last_verified: last,
    };
    assert_snapshot!(gate(None).to_string(), @r"
        commit 01234567 (Add a unique email) has not been verified on `staging`, which `live` requires; nothing was changed
          no commit has been verified on `staging` yet
          = help: deploy it to `staging` and run `gantry verify staging` (or `gantry release`); or pass `--force`, and the record will say the gate was forced
        ");
    let older = Commit {
        sha: "fedcba9876543210".into(),
        subject: "Fix the footer".into(),
    };
    let last = Some(Box::new((older, "2026-11-25 10:00 UTC".to_string())));
    assert_snapshot!(gate(last).to_string(), @r"
        commit 01234567 (Add a unique email) has not been verified on `staging`, which `live` requires; nothing was changed
          the last commit verified on `staging` is fedcba98 (Fix the footer), 2026-11-25 10:00 UTC
          = help: deploy it to `staging` and run `gantry verify staging` (or `gantry release`); or pass `--force`, and the record will say the gate was forced
        ");
}

#[test]
fn a_stopped_release_shows_its_tree_under_the_cause() {
    let e = Error::ReleaseStopped {
        tree: vec![
            "✓ 01234567 (Add a unique email) is on `origin`".into(),
            "✗ live: deploy failed; it still serves what it served".into(),
        ],
        cause: Box::new(Error::NoDatabase { env: "live".into() }),
    };
    assert_eq!(e.exit_status(), ExitStatus::Usage);
    assert!(std::error::Error::source(&e).is_some());
    assert_snapshot!(e.to_string(), @r#"
        `live` has no database configured
          = help: set `[database]` (or `[environments.live.database]`) with `engine = "sqlite"` or `"postgres"`

        the release stopped:
          ✓ 01234567 (Add a unique email) is on `origin`
          ✗ live: deploy failed; it still serves what it served
        "#);
}
