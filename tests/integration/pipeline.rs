//! The release pipeline: verify, gates, promote, tags and the ledger in the
//! remote, `gantry release` and `gantry demo`.

use crate::harness::{git, Test};

const VERIFY: &str = "\n[verify]\ncommand = \"python3 functional_tests.py\"\nenv = { STAGING_SERVER = \"{host}:{app_port}\" }\n";

/// Staging on host 0, live on host 1 requiring staging, functional tests.
fn pipeline_config(t: &mut Test) -> String {
    let config = t.config(&[("staging", &[0]), ("live", &[1])]);
    let config = config.replace(
        "[environments.live]\n",
        "[environments.live]\nrequires = \"staging\"\n",
    );
    format!("{config}{VERIFY}")
}

fn origin(t: &Test) -> std::path::PathBuf {
    t.dir.join("origin.git")
}

/// The commit a ref points at on the bare origin, if it exists.
fn on_origin(t: &Test, reference: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(origin(t))
        .args([
            "rev-parse",
            "-q",
            "--verify",
            &format!("{reference}^{{commit}}"),
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn origin_tags(t: &Test) -> Vec<String> {
    git(&origin(t), &["tag", "-l"])
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn ledger(t: &Test, sha: &str) -> Vec<serde_json::Value> {
    git(
        &origin(t),
        &["notes", "--ref", "refs/notes/gantry", "show", sha],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn break_functional_tests(t: &Test) -> String {
    let app = std::fs::read_to_string(t.repo.join("app.py")).unwrap();
    let broken = app.replace("<title>To-Do</title>", "<title>Oops</title>");
    assert_ne!(app, broken);
    t.commit("Rename the page", &[("app.py", &broken)])
}

#[test]
fn release_of_a_good_commit_reaches_live_tagged_and_recorded() {
    let mut t = Test::new().hosts(2).start();
    let config = pipeline_config(&mut t);
    t.write_config(&config);
    let sha = t.commit("Add config", &[]);

    let run = t.gantry(&["release"]);
    run.success()
        .stderr_has("test_can_add_an_item_and_see_it_listed")
        .stderr_has("✓ staging: verified (health checks and functional tests)")
        .stderr_has("✓ live: verified (health checks)");

    assert_eq!(
        t.get("staging", 0, "/health").unwrap().1.trim(),
        format!("ok {sha}")
    );
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {sha}")
    );
    assert_eq!(
        on_origin(&t, "refs/tags/LIVE").as_deref(),
        Some(sha.as_str())
    );
    let deployed: Vec<String> = origin_tags(&t)
        .into_iter()
        .filter(|n| n.starts_with("DEPLOYED-"))
        .collect();
    assert_eq!(deployed.len(), 1, "{deployed:?}");
    assert_eq!(
        on_origin(&t, &format!("refs/tags/{}", deployed[0])).as_deref(),
        Some(sha.as_str())
    );
    let message = git(&origin(&t), &["cat-file", "-p", &deployed[0]]);
    assert!(message.contains("Deployed to live"), "{message}");
    assert!(
        message.contains("verification: passed on staging"),
        "{message}"
    );

    let events = ledger(&t, &sha);
    let kinds: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().into(),
                e["env"].as_str().unwrap().into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("deploy", "staging", "ok"),
        ("verify", "staging", "passed"),
        ("deploy", "live", "ok"),
        ("verify", "live", "passed"),
    ];
    assert_eq!(
        kinds,
        expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );

    let status = t.gantry(&["status", "--json"]);
    status.success();
    let value: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for env in value["environments"].as_array().unwrap() {
        assert_eq!(env["verified"], true, "{env}");
        assert_eq!(env["commit"], sha.as_str());
    }
    assert_eq!(value["environments"][1]["behind"]["commits"], 0);
    t.gantry(&["status"])
        .success()
        .stdout_has("LIVE")
        .stdout_has("up to date with staging");
}

#[test]
fn failing_functional_tests_stop_the_release_before_live() {
    let mut t = Test::new().hosts(2).start();
    let config = pipeline_config(&mut t);
    t.write_config(&config);
    let good = t.commit("Add config", &[]);
    t.gantry(&["release"]).success();
    let live_before = t.current("live", 1);
    let tags_before = origin_tags(&t);

    let bad = break_functional_tests(&t);
    let run = t.gantry(&["release"]);
    run.code(6)
        .stderr_has("verification of `staging`")
        .stderr_has("functional tests failed: `python3 functional_tests.py` exited with status 1")
        .stderr_has("✗ staging: verification failed")
        .stderr_has("· live: not started; it still serves what it served");

    assert_eq!(t.current("live", 1), live_before);
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {good}")
    );
    assert_eq!(origin_tags(&t), tags_before, "no tag was created or moved");
    assert_eq!(
        on_origin(&t, "refs/tags/LIVE").as_deref(),
        Some(good.as_str())
    );
    let last = ledger(&t, &bad).pop().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["outcome"].as_str()),
        (Some("verify"), Some("failed"))
    );
}

#[test]
fn unverified_commit_is_refused_by_the_gate_unless_forced() {
    let mut t = Test::new().hosts(2).start();
    // A history pattern that gives every deploy the same name, as two
    // deploys in one minute get with `DEPLOYED-%F/%H%M`.
    let config = pipeline_config(&mut t).replace(
        "[environments.live]\n",
        "[environments.live]\ntags = { moving = \"LIVE\", history = \"DEPLOYED-fixed\" }\n",
    );
    t.write_config(&config);
    let good = t.commit("Add config", &[]);
    t.gantry(&["release"]).success();

    let next = t.commit("Next", &[("NEWS", "next\n")]);
    t.gantry(&["deploy", "live"])
        .code(6)
        .stderr_has(&format!(
            "commit {} (Next) has not been verified on `staging`, which `live` requires",
            &next[..8]
        ))
        .stderr_has(&format!(
            "the last commit verified on `staging` is {} (Add config)",
            &good[..8]
        ))
        .stderr_has("--force");
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {good}")
    );

    t.gantry(&["deploy", "live", "--force"])
        .success()
        .stderr_has("recorded as forced");
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {next}")
    );
    let last = t.history("live", 1).pop().unwrap();
    assert_eq!(last["forced"], true);
    let deploy = ledger(&t, &next)
        .into_iter()
        .find(|e| e["event"] == "deploy")
        .unwrap();
    assert_eq!(deploy["forced"], true);
    t.gantry(&["status", "live"])
        .success()
        .stdout_has("(forced past the gate)");

    // The regular way: deploy to staging, verify, promote.
    let third = t.commit("Third", &[("NEWS", "third\n")]);
    t.gantry(&["deploy", "staging"]).success();
    t.gantry(&["verify", "staging"]).success();
    t.gantry(&["promote", "staging", "live"]).success();
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {third}")
    );
    assert_eq!(
        origin_tags(&t),
        [
            "DEPLOYED-fixed",
            "DEPLOYED-fixed-2",
            "DEPLOYED-fixed-3",
            "LIVE"
        ]
    );
    assert_eq!(
        on_origin(&t, "refs/tags/DEPLOYED-fixed-2").as_deref(),
        Some(next.as_str())
    );
    assert_eq!(
        on_origin(&t, "refs/tags/LIVE").as_deref(),
        Some(third.as_str())
    );
}

#[test]
fn release_refuses_a_dirty_tree_and_an_unpushed_commit() {
    let mut t = Test::new().hosts(2).start();
    let config = pipeline_config(&mut t);
    t.write_config(&config);
    t.commit("Add config", &[]);

    std::fs::write(t.repo.join("app.py"), "# edited\n").unwrap();
    t.gantry(&["release"])
        .code(2)
        .stderr_has("the work tree has uncommitted changes")
        .stderr_has("M app.py");
    git(&t.repo, &["checkout", "--", "app.py"]);

    std::fs::write(t.repo.join("NEWS"), "local\n").unwrap();
    git(&t.repo, &["add", "NEWS"]);
    git(&t.repo, &["commit", "-q", "-m", "Not pushed"]);
    t.gantry(&["release"])
        .code(2)
        .stderr_has("(Not pushed) is not on the remote `origin`")
        .stderr_has("gantry release --push");
    assert!(!t.site("staging", 0).exists(), "nothing was deployed");

    let sha = t.head();
    t.gantry(&["release", "--push"]).success();
    assert_eq!(
        on_origin(&t, "refs/heads/main").as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {sha}")
    );
}

#[test]
fn versioned_tags_count_up_and_are_never_forced() {
    let mut t = Test::new().hosts(2).start();
    let config = pipeline_config(&mut t).replace(
        "[environments.live]\n",
        "[environments.live]\ntags = { scheme = \"version\" }\n",
    );
    t.write_config(&config);
    // The origin refuses to move an existing tag, as many teams' servers do.
    let hook = origin(&t).join("hooks/update");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1\" in refs/tags/*) [ \"$2\" = 0000000000000000000000000000000000000000 ] || { echo \"tag $1 may not move\" >&2; exit 1; } ;; esac\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();

    let first = t.commit("Add config", &[]);
    t.gantry(&["release"]).success();
    let second = t.commit("Second", &[("NEWS", "second\n")]);
    t.gantry(&["release"]).success();

    assert_eq!(origin_tags(&t), ["v1", "v2"]);
    assert_eq!(
        on_origin(&t, "refs/tags/v1").as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        on_origin(&t, "refs/tags/v2").as_deref(),
        Some(second.as_str())
    );
    // The hook does refuse a moved tag, so the releases above never forced one.
    let forced = std::process::Command::new("git")
        .arg("-C")
        .arg(&t.repo)
        .args([
            "push",
            "-q",
            "-f",
            "origin",
            &format!("{second}:refs/tags/v1"),
        ])
        .output()
        .unwrap();
    assert!(!forced.status.success());
}

#[test]
fn demo_runs_green_with_nothing_but_the_prerequisites() {
    let t = Test::new().start();
    let home = t.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let dir = t.dir.join("demo");
    let out = std::process::Command::new(crate::harness::GANTRY)
        .args(["demo", "--dir"])
        .arg(&dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .current_dir(&t.dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("✓ staging: verified (health checks and functional tests)"),
        "{stderr}"
    );
    assert!(stderr.contains("✓ live: tagged DEPLOYED-"), "{stderr}");
    assert!(stderr.contains("the apps were stopped"), "{stderr}");
    // Nothing is left running.
    for env in ["staging", "live"] {
        assert!(!dir
            .join("sites")
            .join(env)
            .join("shared/data/app.pid")
            .exists());
    }
    let tags = git(&dir.join("origin.git"), &["tag", "-l"]);
    assert!(tags.contains("LIVE"), "{tags}");
}

#[test]
fn the_ledger_and_tags_are_written_without_a_git_identity() {
    let mut t = Test::new().hosts(1).start();
    let config = t.config(&[("live", &[0])]);
    t.write_config(&config);
    let sha = t.commit("Add config", &[]);
    git(&t.repo, &["config", "--unset", "user.name"]);
    git(&t.repo, &["config", "--unset", "user.email"]);
    let home = t.dir.join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = t
        .command(&["deploy", "live"])
        .env("HOME", &home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        on_origin(&t, "refs/tags/LIVE").as_deref(),
        Some(sha.as_str())
    );
    let tagger = git(
        &origin(&t),
        &[
            "for-each-ref",
            "--format=%(taggername) %(taggeremail)",
            "refs/tags/LIVE",
        ],
    );
    assert_eq!(tagger.trim(), "Gantry <gantry@localhost>");
    assert_eq!(ledger(&t, &sha).len(), 1);
}

#[test]
fn rollback_moves_the_live_tag_back_on_the_remote_and_status_agrees() {
    let mut t = Test::new().hosts(2).start();
    let config = pipeline_config(&mut t);
    t.write_config(&config);
    let first = t.commit("Add config", &[]);
    t.gantry(&["release"]).success();
    let second = t.commit("Second", &[("NOTES", "two\n")]);
    t.gantry(&["release"]).success();
    assert_eq!(
        on_origin(&t, "refs/tags/LIVE").as_deref(),
        Some(second.as_str())
    );

    t.gantry(&["rollback", "live"])
        .success()
        .stderr_has(&format!("Moved LIVE back to {}", &first[..8]));
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {first}")
    );
    // What the remote says now, as anyone would read it.
    let listing = git(&t.repo, &["ls-remote", "--tags", "origin"]);
    let live = listing
        .lines()
        .find(|l| l.ends_with("\trefs/tags/LIVE^{}"))
        .unwrap_or_else(|| panic!("LIVE is on origin: {listing}"));
    assert_eq!(live.split('\t').next(), Some(first.as_str()), "{listing}");
    let last = ledger(&t, &first).pop().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["env"].as_str()),
        (Some("rollback"), Some("live"))
    );

    let status = t.gantry(&["status", "--json"]);
    status.success();
    let value: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let live = &value["environments"][1];
    assert_eq!(live["commit"], first.as_str());
    let tags: Vec<&str> = live["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"LIVE"), "{tags:?}");
    assert_eq!(value["environments"][0]["tags"], serde_json::json!([]));
    let text = t.gantry(&["status"]);
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with("live"))
        .unwrap()
        .to_string();
    assert!(line.contains("LIVE"), "{line}");
    assert!(line.contains("rolled back to"), "{line}");
}

/// The SSH masters a Gantry run starts, counted by an `ssh` first on its
/// PATH that logs its arguments and runs the real one.
fn masters_started(t: &Test, args: &[&str]) -> usize {
    let spy = t.dir.join("spy");
    std::fs::create_dir_all(&spy).unwrap();
    let log = t.dir.join("ssh-calls.log");
    let _ = std::fs::remove_file(&log);
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {}\nexec /usr/bin/ssh \"$@\"\n",
        log.display()
    );
    std::fs::write(spy.join("ssh"), script).unwrap();
    std::fs::set_permissions(
        spy.join("ssh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", spy.display(), std::env::var("PATH").unwrap());
    let out = t.command(args).env("PATH", path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').any(|w| w == "-M"))
        .count()
}

/// How many sessions (one per command Gantry runs) host `i` has started.
fn sessions_started(t: &Test, i: usize) -> usize {
    std::fs::read_to_string(t.hosts[i].dir.join("sshd.log"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("Starting session: command"))
        .count()
}

#[test]
fn a_redeploy_runs_four_commands_per_host() {
    // Lock (with what the host serves), prepare (upload, shared links,
    // build, finish the release), activate (switch, restart), finish
    // (history, pruning and the unlock): one channel each.
    let mut t = Test::new().hosts(2).start();
    let config = t.config(&[("staging", &[0, 1])]);
    let config = config
        .replace("migrate = \"python3 migrate.py\"\n", "")
        .replace(
            "APP_PORT = \"{app_port}\" }",
            "APP_PORT = \"{app_port}\", DB_PATH = \"{shared}/data/app.sqlite3\" }",
        )
        .replace(
            "[database]\nengine = \"sqlite\"\npath = \"{shared}/data/app.sqlite3\"\ncheck = \"python3 migrate.py --check\"\n",
            "",
        );
    assert!(!config.contains("[database]"), "{config}");
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    t.commit("Second", &[("NEWS", "2\n")]);
    let before = [sessions_started(&t, 0), sessions_started(&t, 1)];
    t.gantry(&["deploy", "staging"]).success();
    for (i, before) in before.into_iter().enumerate() {
        assert_eq!(sessions_started(&t, i) - before, 4, "host {i}");
    }
    // The lock was given back by the finish phase.
    assert!(!t.site("staging", 0).join(".gantry/lock").exists());
}

/// A deploy of what the ledger (fetched from the remote) says went live
/// asks each host what it serves in one command, without its lock; where
/// a host says otherwise, or a deploy holds its lock, the deploy goes on
/// as usual.
#[test]
fn a_noop_asks_each_host_once_and_takes_no_lock() {
    let mut t = Test::new().hosts(2).start();
    t.configure(&[("staging", &[0, 1])]);
    t.gantry(&["deploy", "staging"]).success();
    let first = t.current("staging", 0).unwrap();
    let second = t.commit("Second", &[("NEWS", "2\n")]);
    t.gantry(&["deploy", "staging"]).success();

    // As in a fresh clone (a CI job): this machine has no ledger until
    // the deploy fetches it from the remote.
    let notes = std::process::Command::new("git")
        .args(["update-ref", "-d", "refs/notes/gantry"])
        .current_dir(&t.repo)
        .status()
        .unwrap();
    assert!(notes.success());
    let before = [sessions_started(&t, 0), sessions_started(&t, 1)];
    t.gantry(&["deploy", "staging"])
        .success()
        .stderr_has("already serves");
    for (i, before) in before.into_iter().enumerate() {
        assert_eq!(sessions_started(&t, i) - before, 1, "host {i}");
    }

    // Another run holds the lock: the deploy meets it, as every deploy does.
    t.gantry(&["lock", "staging", "--reason", "maintenance"])
        .success();
    t.gantry(&["deploy", "staging"])
        .code(4)
        .stderr_has("maintenance");
    t.gantry(&["unlock", "staging"]).success();

    // Host 0 was put back by hand: the hosts decide, not the ledger.
    let site = t.site("staging", 0);
    let tmp = site.join("current.tmp");
    std::os::unix::fs::symlink(format!("releases/{first}"), &tmp).unwrap();
    std::fs::rename(&tmp, site.join("current")).unwrap();
    let run = t.gantry(&["deploy", "staging"]);
    run.success();
    assert!(!run.stderr.contains("already serves"), "{}", run.stderr);
    for i in 0..2 {
        assert_eq!(
            t.get("staging", i, "/health").unwrap().1.trim(),
            format!("ok {second}"),
            "host {i}"
        );
    }
}

#[test]
fn a_finish_that_cannot_record_still_gives_back_the_lock() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    // The history cannot be appended to: the finish script fails there.
    let history = t.site("staging", 0).join(".gantry/history.jsonl");
    std::fs::remove_file(&history).unwrap();
    std::fs::create_dir(&history).unwrap();
    t.commit("Second", &[("NEWS", "2\n")]);
    t.gantry(&["deploy", "staging"])
        .success()
        .stderr_has("could not record the deploy or prune old releases");
    assert!(!t.site("staging", 0).join(".gantry/lock").exists());
    std::fs::remove_dir(&history).unwrap();
    t.commit("Third", &[("NEWS", "3\n")]);
    t.gantry(&["deploy", "staging"]).success();
}

#[test]
fn a_release_opens_one_connection_per_host() {
    let mut t = Test::new().hosts(2).start();
    let config = pipeline_config(&mut t);
    t.write_config(&config);
    t.commit("Add config", &[]);
    // Two hosts, each deployed, rehearsed and verified: one master each.
    assert_eq!(masters_started(&t, &["release"]), 2);
    t.commit("Second", &[("NEWS", "2\n")]);
    assert_eq!(masters_started(&t, &["release"]), 2);
}

/// The functional tests run with the repository's `.venv` when there is
/// one: its `python` is first on the PATH, as after `activate`.
#[test]
fn verify_runs_the_functional_tests_with_the_repositorys_venv() {
    let mut t = Test::new().hosts(1).start();
    let config = t.config(&[("staging", &[0])]);
    let verify = "\n[verify]\ncommand = \"python functional_tests.py\"\nenv = { STAGING_SERVER = \"{host}:{app_port}\" }\n";
    t.write_config(&format!("{config}{verify}"));
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    // A virtualenv whose python notes that it ran, then runs the tests.
    let bin = t.repo.join(".venv/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let python = bin.join("python");
    std::fs::write(
        &python,
        "#!/bin/sh\necho \"$VIRTUAL_ENV\" > \"$(dirname \"$0\")/../../venv-used\"\nexec python3 \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.gantry(&["verify", "staging"])
        .success()
        .stderr_has("python functional_tests.py");
    let used = std::fs::read_to_string(t.repo.join("venv-used")).expect("the .venv's python ran");
    assert_eq!(used.trim(), t.repo.join(".venv").display().to_string());
}
