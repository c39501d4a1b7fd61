//! Deploys, failed deploys and rollbacks: what ends up serving on each host.

use crate::harness::{sqlite, Test};

#[test]
fn deploy_to_one_host_serves_the_new_commit() {
    let mut t = Test::new().hosts(1).start();
    let sha = t.configure(&[("staging", &[0])]);

    t.gantry(&["deploy", "staging"])
        .success()
        .stderr_has("Deployed");

    let current = t.current("staging", 0).expect("current is set");
    assert!(
        current.ends_with(&sha[..8]),
        "{current} is not a release of {sha}"
    );
    let (status, body) = t.get("staging", 0, "/health").expect("the app answers");
    assert_eq!((status, body.trim()), (200, format!("ok {sha}").as_str()));
    let history = t.history("staging", 0);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["action"], "deploy");
    assert_eq!(history[0]["outcome"], "ok");
    assert_eq!(history[0]["commit"], sha.as_str());
    assert_eq!(history[0]["release"], current.as_str());
    // The shared folder is linked, and the migration ran against it.
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    assert!(db.exists(), "migrations created the shared database");
    let (_, page) = t.get("staging", 0, "/").unwrap();
    assert!(!page.contains("database not ready"), "{page}");
}

#[test]
fn deploy_to_three_hosts_serves_everywhere() {
    let mut t = Test::new().hosts(3).start();
    let sha = t.configure(&[("staging", &[0, 1, 2])]);

    t.gantry(&["deploy", "staging"]).success();

    for i in 0..3 {
        let current = t.current("staging", i).expect("current is set");
        assert!(current.ends_with(&sha[..8]));
        let (status, body) = t.get("staging", i, "/health").unwrap();
        assert_eq!(
            (status, body.trim().to_string()),
            (200, format!("ok {sha}"))
        );
        let history = t.history("staging", i);
        assert_eq!(history.len(), 1, "host {i} has one history line");
        assert_eq!(history[0]["host"], t.address(i).as_str());
    }
}

#[test]
fn failing_build_changes_no_host() {
    let mut t = Test::new().hosts(3).start();
    let good = t.configure(&[("staging", &[0, 1, 2])]);
    t.gantry(&["deploy", "staging"]).success();
    let before: Vec<_> = (0..3).map(|i| t.current("staging", i)).collect();

    std::fs::write(t.site("staging", 1).join("fail-build"), "disk full").unwrap();
    let bad = t.commit("Second", &[("NEWS", "second\n")]);
    let run = t.gantry(&["deploy", "staging"]);

    run.code(1)
        .stderr_has(&format!(
            "{}: build 2/2 failed (exit status 3)",
            t.address(1)
        ))
        .stderr_has("command: sh ci/hooks.sh")
        .stderr_has("build failed on purpose: disk full")
        .stderr_has("every host was left serving what it served before");
    for (i, before) in before.iter().enumerate() {
        assert_eq!(
            &t.current("staging", i),
            before,
            "host {i} still points at the old release"
        );
        let (_, body) = t.get("staging", i, "/health").unwrap();
        assert_eq!(
            body.trim(),
            format!("ok {good}"),
            "host {i} still serves the old commit"
        );
        assert!(
            !t.releases("staging", i)
                .iter()
                .any(|r| r.ends_with(&bad[..8])),
            "the failed release was removed from host {i}"
        );
        let last = t.history("staging", i).pop().unwrap();
        assert_eq!(last["outcome"], "failed");
    }
}

#[test]
fn failing_health_check_on_one_host_puts_all_back() {
    let mut t = Test::new().hosts(3).start();
    let config = t.config(&[("staging", &[0, 1, 2])]);
    t.write_config(&config);
    let good = t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let before: Vec<_> = (0..3).map(|i| t.current("staging", i)).collect();

    let bad = t.commit("Broken release", &[("NEWS", "broken\n")]);
    // The third host's app reports itself unhealthy when it runs `bad`.
    std::fs::write(t.site("staging", 2).join("shared/data/unhealthy"), &bad).unwrap();
    // The app's log says why; the report shows its last lines.
    let config = config.replace("retries = 40", "retries = 6").replace(
        "restart = \"sh restart.sh\"",
        "restart = \"sh restart.sh\"\nlogs = \"tail -n 3 {shared}/data/app.log\"",
    );
    t.write_config(&config);
    let run = t.gantry(&["deploy", "staging", &bad]);

    run.code(1)
        .stderr_has(&format!("{}: health check failed", t.address(2)))
        .stderr_has("status 500, expected 200")
        .stderr_has("app log (`tail -n 3")
        .stderr_has("\"GET /health HTTP/1.1\" 500");
    for (i, before) in before.iter().enumerate() {
        assert_eq!(
            &t.current("staging", i),
            before,
            "host {i} was switched back"
        );
        let (status, body) = t.get("staging", i, "/health").unwrap();
        assert_eq!(
            (status, body.trim().to_string()),
            (200, format!("ok {good}")),
            "host {i} serves the old commit"
        );
    }
}

#[test]
fn rollback_returns_to_the_previous_release() {
    let mut t = Test::new().hosts(2).start();
    let first = t.configure(&[("staging", &[0, 1])]);
    t.gantry(&["deploy", "staging"]).success();
    let first_release = t.current("staging", 0).unwrap();
    let second = t.commit("Second", &[("NEWS", "second\n")]);
    t.gantry(&["deploy", "staging"]).success();
    assert_eq!(
        t.get("staging", 0, "/health").unwrap().1.trim(),
        format!("ok {second}")
    );

    t.gantry(&["rollback", "staging"])
        .success()
        .stderr_has("Rolled back");

    for i in 0..2 {
        assert_eq!(
            t.current("staging", i).as_deref(),
            Some(first_release.as_str())
        );
        assert_eq!(
            t.get("staging", i, "/health").unwrap().1.trim(),
            format!("ok {first}")
        );
        let last = t.history("staging", i).pop().unwrap();
        assert_eq!(last["action"], "rollback");
        assert_eq!(last["commit"], first.as_str());
    }
    let log = t.gantry(&["log", "staging"]);
    log.success().stdout_has("rollback ok");
}

#[test]
fn rollback_without_a_previous_release_fails_clearly() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    let before = t.current("staging", 0);

    t.gantry(&["rollback", "staging"])
        .code(1)
        .stderr_has("rollback of `staging` (nothing was changed) failed on 1 host")
        .stderr_has("no release older than");
    assert_eq!(t.current("staging", 0), before);
}

#[test]
fn keeps_only_the_configured_number_of_releases() {
    let mut t = Test::new().hosts(1).start();
    let config = t
        .config(&[("staging", &[0])])
        .replace("keep_releases = 3", "keep_releases = 2");
    t.write_config(&config);
    let mut shas = Vec::new();
    for n in 0..4 {
        shas.push(t.commit(&format!("Release {n}"), &[("NEWS", &format!("{n}\n"))]));
        t.gantry(&["deploy", "staging"]).success();
    }
    let releases = t.releases("staging", 0);
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(releases[0].ends_with(&shas[2][..8]));
    assert!(releases[1].ends_with(&shas[3][..8]));
}

#[test]
fn local_target_deploys_without_ssh() {
    let mut t = Test::new().start();
    let port = t.app_port("staging", 0);
    let config = format!(
        r#"[deploy]
path = "{dir}/sites/{{env}}/h0"
shared = ["data/"]
build = ["sh build.sh"]
migrate = "python3 migrate.py"
restart = "sh restart.sh"
env = {{ APP_PORT = "{port}", DB_PATH = "{{shared}}/data/app.sqlite3" }}
health = {{ url = "http://127.0.0.1:{port}/health", body = "{{commit}}", retries = 40, interval = "250ms" }}

[environments.staging]
hosts = ["local"]
"#,
        dir = t.dir.display()
    );
    t.write_config(&config);
    let sha = t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    assert_eq!(
        t.get("staging", 0, "/health").unwrap().1.trim(),
        format!("ok {sha}")
    );
    t.gantry(&["status"])
        .success()
        .stdout_has(&format!("staging  {} (Add config)", &sha[..8]));
}

#[test]
fn unpushed_commit_is_refused() {
    let t = Test::new().start();
    t.write_config("[deploy]\npath = \"/tmp/gantry-it/unpushed_commit_is_refused/site\"\n[environments.staging]\nhosts = [\"local\"]\n");
    t.commit("Add config", &[]);
    std::fs::write(t.repo.join("NEWS"), "local only\n").unwrap();
    crate::harness::git(&t.repo, &["commit", "-qam", "x", "--allow-empty"]);
    crate::harness::git(&t.repo, &["add", "NEWS"]);
    crate::harness::git(&t.repo, &["commit", "-qm", "Local only"]);
    t.gantry(&["deploy", "staging"])
        .code(2)
        .stderr_has("(Local only) is not on the remote `origin`")
        .stderr_has("git push origin HEAD");
    assert!(!std::path::Path::new("/tmp/gantry-it/unpushed_commit_is_refused/site").exists());
}

#[test]
fn rolling_deploy_switches_back_every_batch_when_a_later_batch_fails() {
    let mut t = Test::new().hosts(3).start();
    let config = t
        .config(&[("live", &[0, 1, 2])])
        .replace("keep_releases = 3", "keep_releases = 3\nbatch = 1")
        .replace("retries = 40", "retries = 6");
    t.write_config(&config);
    let good = t.commit("Add config", &[]);
    t.gantry(&["deploy", "live"]).success();
    let before: Vec<_> = (0..3).map(|i| t.current("live", i)).collect();

    let bad = t.commit("Broken on the last host", &[("NEWS", "broken\n")]);
    std::fs::write(t.site("live", 2).join("shared/data/unhealthy"), &bad).unwrap();
    t.gantry(&["deploy", "live"])
        .code(1)
        .stderr_has(&format!("{}: health check failed", t.address(2)));

    for (i, before) in before.iter().enumerate() {
        assert_eq!(
            &t.current("live", i),
            before,
            "host {i} is back on the old release"
        );
        assert_eq!(
            t.get("live", i, "/health").unwrap().1.trim(),
            format!("ok {good}")
        );
        // Every host ran the new release in turn, then the old one again.
        let log = std::fs::read_to_string(t.site("live", i).join("shared/data/app.log")).unwrap();
        let started: Vec<&str> = log
            .lines()
            .filter_map(|l| l.strip_prefix("serving commit "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            started,
            [good.as_str(), bad.as_str(), good.as_str()],
            "host {i}"
        );
    }
}

#[test]
fn failed_activation_after_a_migration_keeps_what_only_added_and_reverses_the_rest() {
    let mut t = Test::new().hosts(1).start();
    let config = t
        .config(&[("staging", &[0])])
        .replace("retries = 40", "retries = 6")
        .replace(
            "check = \"python3 migrate.py --check\"",
            "check = \"python3 migrate.py --check\"\nreverse = \"python3 migrate.py --reverse\"",
        );
    t.write_config(&config);
    let good = t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    let schema = || {
        sqlite(
            &db,
            "SELECT type, name, sql FROM sqlite_master ORDER BY 1, 2",
        )
    };
    let applied = || {
        sqlite(&db, "SELECT name FROM schema_migrations ORDER BY rowid")
            .trim()
            .to_string()
    };
    crate::migrations::add_item(&mut t, "staging", 0, "milk");
    let serving = t.current("staging", 0);

    // A release whose migration passes but which then fails its health
    // check. The column has a default: the old release runs on it, so it
    // is kept (with its record), and nothing is restored.
    let bad = t.commit(
        "Add a done flag",
        &[(
            "migrations/0002_done.sql",
            "ALTER TABLE items ADD COLUMN done INTEGER NOT NULL DEFAULT 0;\n",
        )],
    );
    std::fs::write(t.site("staging", 0).join("shared/data/unhealthy"), &bad).unwrap();
    t.gantry(&["deploy", "staging"])
        .code(1)
        .stderr_has("health check failed")
        .stderr_has(
            "keeps migration 0002_done.sql: the release that serves again runs on its schema",
        )
        .stderr_has("every host was left serving what it served before");
    assert_eq!(t.current("staging", 0), serving);
    assert_eq!(
        t.get("staging", 0, "/health").unwrap().1.trim(),
        format!("ok {good}")
    );
    assert_eq!(applied(), "0001_items.sql\n0002_done.sql");
    let kept = schema();

    // A unique index is reversed by `[database] reverse`, every row kept.
    let unique = t.commit(
        "Items are unique",
        &[(
            "migrations/0003_unique.sql",
            "CREATE UNIQUE INDEX items_text ON items (text);\n-- down\nDROP INDEX items_text;\n",
        )],
    );
    std::fs::write(t.site("staging", 0).join("shared/data/unhealthy"), &unique).unwrap();
    t.gantry(&["deploy", "staging"])
        .code(1)
        .stderr_has("migration 0003_unique.sql reversed on")
        .stderr_has("(`python3 migrate.py --reverse`): every row is kept")
        .stderr_has("the reversal removed what they had added: index items_text on items");
    assert_eq!(schema(), kept, "the schema is what it was");
    assert_eq!(applied(), "0001_items.sql\n0002_done.sql");
    assert_eq!(sqlite(&db, "SELECT text FROM items").trim(), "milk");
    assert_eq!(t.current("staging", 0), serving);
}

#[test]
fn deploying_what_every_host_serves_does_nothing_unless_redeploy() {
    let mut t = Test::new().hosts(2).start();
    let sha = t.configure(&[("staging", &[0, 1])]);
    t.gantry(&["deploy", "staging"]).success();
    let releases: Vec<_> = (0..2).map(|i| t.releases("staging", i)).collect();
    let history = t.history("staging", 0).len();

    t.gantry(&["deploy", "staging"])
        .success()
        .stderr_has(&format!(
        "`staging` already serves {} on every host; nothing to do (`--redeploy` deploys it again)",
        &sha[..8]
    ));
    for (i, before) in releases.iter().enumerate() {
        assert_eq!(&t.releases("staging", i), before, "no release was made");
        assert!(!t.site("staging", i).join(".gantry/lock").exists());
    }
    assert_eq!(t.history("staging", 0).len(), history, "nothing to record");

    t.gantry(&["deploy", "staging", "--redeploy"]).success();
    assert_eq!(t.releases("staging", 0).len(), releases[0].len() + 1);
    assert_eq!(
        t.get("staging", 1, "/health").unwrap().1.trim(),
        format!("ok {sha}")
    );
}

/// `bytes` of noise that does not compress.
fn noise(bytes: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn a_redeploy_sends_only_what_changed() {
    let mut t = Test::new().hosts(2).start();
    t.configure(&[("staging", &[0, 1])]);
    std::fs::write(t.repo.join("big.bin"), noise(8_000_000, 7)).unwrap();
    std::fs::write(t.repo.join("gone.txt"), "to be deleted\n").unwrap();
    t.commit(
        "Big and soon gone",
        &[("old/notes/gone.md", "the only file of old/\n")],
    );
    let sent = |t: &Test| -> Vec<u64> {
        let run = t.gantry(&["deploy", "staging", "--json"]);
        run.success();
        let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        value["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["uploaded_bytes"].as_u64().unwrap())
            .collect()
    };
    let first = sent(&t);
    assert!(
        first.iter().all(|&b| b > 8_000_000),
        "the first upload is whole: {first:?}"
    );

    // One file changes (60 KB that do not compress), one is deleted.
    let changed = noise(60_000, 11);
    std::fs::write(t.repo.join("NOTES.bin"), &changed).unwrap();
    std::fs::remove_file(t.repo.join("gone.txt")).unwrap();
    std::fs::remove_dir_all(t.repo.join("old")).unwrap();
    let sha = t.commit("One file changes", &[]);
    let compressed = {
        let out = std::process::Command::new("gzip")
            .arg("-c")
            .arg(t.repo.join("NOTES.bin"))
            .output()
            .unwrap();
        out.stdout.len() as u64
    };
    let second = sent(&t);
    for (i, bytes) in second.iter().enumerate() {
        assert!(
            *bytes <= 2 * compressed,
            "host {i} got {bytes} bytes for a change of {compressed} compressed bytes"
        );
        let current = t.site("staging", i).join("current");
        assert_eq!(std::fs::read(current.join("NOTES.bin")).unwrap(), changed);
        assert_eq!(
            std::fs::metadata(current.join("big.bin")).unwrap().len(),
            8_000_000
        );
        assert!(
            !current.join("gone.txt").exists(),
            "the deleted file is gone"
        );
        assert!(
            !current.join("old").exists(),
            "a folder whose files were all deleted is gone"
        );
        assert_eq!(
            t.get("staging", i, "/health").unwrap().1.trim(),
            format!("ok {sha}")
        );
    }
    // The release made from the delta is the commit, file for file.
    let listing = |dir: &std::path::Path| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("find . -type f ! -name REVISION ! -path './data*' ! -path '*/__pycache__/*' -exec sha256sum {} + | sort; find . -type d ! -path './data*' ! -path '*/__pycache__*' | sort")
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let fresh = t.fresh_archive("fresh");
    assert_eq!(
        listing(&t.site("staging", 0).join(".gantry/source/tree")),
        listing(&fresh)
    );

    // A source whose update was interrupted (its COMMIT emptied first) is
    // never a base: that host gets the whole archive, the other a delta.
    std::fs::write(t.site("staging", 0).join(".gantry/source/COMMIT"), "").unwrap();
    std::fs::write(t.repo.join("NOTES.bin"), noise(60_000, 13)).unwrap();
    let sha = t.commit("Another change", &[]);
    let third = sent(&t);
    assert!(third[0] > 8_000_000, "whole archive: {third:?}");
    assert!(third[1] <= 2 * compressed, "delta: {third:?}");
    for i in 0..2 {
        assert_eq!(
            t.get("staging", i, "/health").unwrap().1.trim(),
            format!("ok {sha}")
        );
    }
    assert_eq!(
        std::fs::read_to_string(t.site("staging", 0).join(".gantry/source/COMMIT")).unwrap(),
        format!("{sha}\n")
    );

    // Thousands of files deleted at once: their list goes on stdin (in the
    // script it would pass the 128 KiB one argument may have), and each
    // host still gets a delta, not the whole archive.
    let vendored: Vec<(String, String)> = (0..2500)
        .map(|i| {
            let path = format!("vendor/package-{:02}/module_{i:04}.py", i / 100);
            (path, format!("# {i}\n"))
        })
        .collect();
    let files: Vec<(&str, &str)> = vendored
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    t.commit("Vendor a library", &files);
    sent(&t);
    std::fs::remove_dir_all(t.repo.join("vendor")).unwrap();
    let sha = t.commit("Unvendor it", &[]);
    for (i, bytes) in sent(&t).iter().enumerate() {
        assert!(
            *bytes < 1_000_000,
            "host {i} got {bytes} bytes, not a delta"
        );
        let current = t.site("staging", i).join("current");
        assert!(!current.join("vendor").exists(), "host {i}");
        assert!(current.join("big.bin").exists(), "host {i}");
        assert_eq!(
            t.get("staging", i, "/health").unwrap().1.trim(),
            format!("ok {sha}")
        );
    }
}

/// A build step that records each run and makes `out/` with a script that
/// names the release it was built in, as a virtualenv's entry points do.
const COUNTED_BUILD: &str = r#"set -eu
echo run >> "$GANTRY_PATH/../builds"
mkdir -p out/bin
cp requirements.txt out/
printf '#!%s/out/bin/python\n' "$GANTRY_RELEASE" > out/bin/tool
"#;

#[test]
fn a_build_step_whose_inputs_did_not_change_is_skipped_and_its_outputs_reused() {
    let mut t = Test::new().hosts(1).start();
    let config = t.config(&[("staging", &[0])]).replace(
        "build = [\"sh build.sh\", \"sh ci/hooks.sh\"]",
        "build = [{ run = \"sh ci/counted.sh\", inputs = [\"requirements.txt\"], outputs = [\"out\"], key = \"python3 --version\" }, \"sh build.sh\"]",
    );
    assert!(config.contains("ci/counted.sh"), "{config}");
    t.write_config(&config);
    t.commit(
        "A counted build",
        &[
            ("ci/counted.sh", COUNTED_BUILD),
            ("requirements.txt", "django\n"),
        ],
    );
    let builds = |t: &Test| {
        std::fs::read_to_string(t.dir.join("sites/staging/builds"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    t.gantry(&["deploy", "staging"]).success();
    assert_eq!(builds(&t), 1);

    // Another file changes: the step is skipped, its outputs copied.
    let sha = t.commit("Unrelated", &[("NOTES", "notes\n")]);
    t.gantry(&["deploy", "staging"])
        .success()
        .stderr_has("build 1/2 skipped: inputs unchanged, outputs reused");
    assert_eq!(builds(&t), 1, "the step did not run again");
    let current = std::fs::canonicalize(t.site("staging", 0).join("current")).unwrap();
    assert!(current.ends_with(format!("releases/{}", t.current("staging", 0).unwrap())));
    assert!(current.to_string_lossy().ends_with(&sha[..8]));
    assert_eq!(
        std::fs::read_to_string(current.join("out/requirements.txt")).unwrap(),
        "django\n"
    );
    // A copy, never the serving release's own files; its scripts name
    // the new release.
    assert_eq!(
        std::fs::read_to_string(current.join("out/bin/tool")).unwrap(),
        format!("#!{}/out/bin/python\n", current.display())
    );
    let previous = &t.releases("staging", 0)[0];
    let old_tool = t
        .site("staging", 0)
        .join("releases")
        .join(previous)
        .join("out/bin/tool");
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        std::fs::metadata(&old_tool).unwrap().ino(),
        std::fs::metadata(current.join("out/bin/tool"))
            .unwrap()
            .ino()
    );

    // Its input changes: it runs.
    t.commit(
        "New requirements",
        &[("requirements.txt", "django\ngunicorn\n")],
    );
    t.gantry(&["deploy", "staging"]).success();
    assert_eq!(builds(&t), 2);
    let current = std::fs::canonicalize(t.site("staging", 0).join("current")).unwrap();
    assert_eq!(
        std::fs::read_to_string(current.join("out/requirements.txt")).unwrap(),
        "django\ngunicorn\n"
    );

    // Outputs that cannot be renamed whole (here a script whose name the
    // rename cannot follow) are not reused: the step runs, rather than
    // leave a copy that names a release the next deploys prune.
    let serving = current;
    std::fs::write(
        serving.join("out/bin/odd\nname"),
        format!("#!{}/out/bin/python\n", serving.display()),
    )
    .unwrap();
    t.commit("Unrelated again", &[("NOTES", "more notes\n")]);
    let run = t.gantry(&["deploy", "staging"]);
    run.success();
    assert_eq!(builds(&t), 3, "the step ran");
    let current = std::fs::canonicalize(t.site("staging", 0).join("current")).unwrap();
    assert_ne!(current, serving);
    for entry in std::fs::read_dir(current.join("out/bin")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&serving.display().to_string()),
            "{} names the release it was copied from",
            path.display()
        );
    }
}
