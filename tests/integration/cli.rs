//! The command line itself: exit codes documented in `--help`, the version.

use crate::harness::Test;

#[test]
fn help_documents_the_exit_codes() {
    let t = Test::new().start();
    let run = t.gantry(&["--help"]);
    run.success()
        .stdout_has("Exit codes:\n  0  success\n  1  failed on a host; every host was left serving what it served before\n  2  bad config or usage; nothing was touched\n  3  a host could not be reached\n  4  the environment is locked by another deploy (see `gantry unlock`)\n  5  another error on this machine (git, files)\n  6  verification failed, or a gate refused an unverified commit\n  7  a migration failed on a copy of the data; nothing live was touched");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let t = Test::new().start();
    let run = t.gantry(&["--version"]);
    run.success();
    // The commit this source tree is at: the one the binary was built from.
    let head = crate::harness::git(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &["rev-parse", "--short=12", "HEAD"],
    );
    assert_eq!(
        run.stdout,
        format!("gantry {} ({})\n", env!("CARGO_PKG_VERSION"), head.trim())
    );
}

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let t = Test::new().start();
    std::fs::remove_file(t.repo.join("gantry.toml")).ok();
    t.gantry(&["init"]).success();
    t.gantry(&["plan", "staging"])
        .success()
        .stdout_has("Nothing was run.");
    t.gantry(&["init"])
        .code(2)
        .stderr_has("already exists; pass `--force`");
    t.gantry(&["init", "--force"]).success();
}

/// Runs `gantry ARGS` on a pseudo-terminal (util-linux `script`), so the
/// printer believes a person is watching.
fn on_a_terminal(t: &Test, args: &str, no_color: bool) -> String {
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} {args}", crate::harness::GANTRY),
        "/dev/null",
    ])
    .current_dir(&t.repo)
    .env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd.output().expect("`script` (util-linux) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let t = Test::new().start();
    t.write_config(&format!(
        "[deploy]\npath = \"{}/site\"\n[environments.staging]\nhosts = [\"local\"]\n",
        t.dir.display()
    ));
    t.commit("Add config", &[]);
    let blue_arrow = "\x1b[1m\x1b[34m==>";
    let tty = on_a_terminal(&t, "deploy staging", false);
    assert!(tty.contains(blue_arrow), "{tty:?}");
    assert!(tty.contains("Deployed"), "{tty:?}");
    let plain = on_a_terminal(&t, "deploy staging --redeploy", true);
    assert!(!plain.contains("\x1b[34m"), "{plain:?}");
    assert!(!plain.contains("\x1b[1m"), "{plain:?}");
    assert!(plain.contains("==> Deployed"), "{plain:?}");
    // Not a terminal: plain, greppable lines with a host prefix.
    let piped = t.gantry(&["deploy", "staging", "--redeploy"]);
    piped.success().stderr_has("[local] upload");
    assert!(!piped.stderr.contains('\x1b'), "{}", piped.stderr);
}

#[test]
fn a_folder_that_is_not_a_repository_is_named() {
    let t = Test::new().start();
    let outside = t.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("gantry.toml"),
        "[deploy]\npath = \"/tmp/x\"\n[environments.staging]\nhosts = [\"local\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::harness::GANTRY)
        .args(["deploy", "staging"])
        .current_dir(&outside)
        .env("GIT_CEILING_DIRECTORIES", &t.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not in a git repository"), "{stderr}");
}

#[test]
fn gantry_config_names_the_file_from_anywhere() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    let elsewhere = t.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run = |config: Option<&std::path::Path>| {
        let mut cmd = t.command(&["plan", "staging"]);
        cmd.current_dir(&elsewhere);
        if let Some(c) = config {
            cmd.env("GANTRY_CONFIG", c);
        }
        cmd.output().unwrap()
    };
    let without = run(None);
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("no `gantry.toml`"));
    let with = run(Some(&t.repo.join("gantry.toml")));
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(String::from_utf8_lossy(&with.stdout).contains("Plan: deploy"));
}

/// Runs `gantry ARGS --json`: stdout must be exactly one JSON document.
fn json(t: &Test, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = t.gantry(&all);
    run.code(code);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "`gantry {}` printed no single JSON document ({e}):\n{}",
            all.join(" "),
            run.stdout
        )
    })
}

#[test]
fn every_command_honours_json_errors_included() {
    let mut t = Test::new().hosts(1).start();
    let first = t.configure(&[("staging", &[0])]);
    let host = t.address(0);
    let site = t.site("staging", 0).display().to_string();

    let check = json(&t, &["check"], 0);
    assert_eq!(
        check,
        serde_json::json!({
            "action": "check",
            "config": t.repo.join("gantry.toml").display().to_string(),
            "valid": true,
            "hosts": [{"env": "staging", "host": host, "path": site, "ok": true}],
        })
    );
    let setup = json(&t, &["setup", "staging"], 0);
    assert_eq!(setup["action"], "setup");
    assert_eq!(setup["hosts"][0]["host"], host.as_str());

    let deploy = json(&t, &["deploy", "staging"], 0);
    assert_eq!(deploy["action"], "deploy");
    assert_eq!(deploy["commit"], first.as_str());
    assert_eq!(deploy["rehearsal"], "passed");
    assert_eq!(deploy["hosts"][0]["serving"], deploy["release"]);
    assert_eq!(deploy["hosts"][0]["previous"], serde_json::Value::Null);

    let verify = json(&t, &["verify", "staging", "--health-only"], 0);
    assert_eq!(
        verify,
        serde_json::json!({"action": "verify", "env": "staging", "commit": first, "outcome": "passed", "checks": "health checks"})
    );
    let exec = json(
        &t,
        &[
            "exec",
            "staging",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ],
        0,
    );
    assert_eq!(
        exec,
        serde_json::json!({
            "action": "exec",
            "env": "staging",
            "command": "sh -c 'echo out; echo err >&2'",
            "hosts": [{"host": host, "code": 0, "stdout": "out\n", "stderr": "err\n"}],
        })
    );
    let rehearse = json(&t, &["rehearse", "staging"], 0);
    assert_eq!(rehearse["pending"], false);

    let second = t.commit("Second", &[("NOTES", "two\n")]);
    let release = json(&t, &["release"], 0);
    assert_eq!(release["action"], "release");
    assert_eq!(release["commit"], second.as_str());
    assert_eq!(release["environments"][0]["env"], "staging");
    let rollback = json(&t, &["rollback", "staging"], 0);
    assert_eq!(rollback["action"], "rollback");
    assert_eq!(rollback["commit"], first.as_str());

    for args in [
        &["status"][..],
        &["log", "staging"],
        &["plan", "staging"],
        &["backups", "staging"],
    ] {
        json(&t, args, 0);
    }
    // Errors are a document too, with the exit code unchanged.
    let error = json(&t, &["deploy", "production"], 2);
    assert_eq!(error["error"]["exit_code"], 2);
    assert_eq!(
        error["error"]["hints"],
        serde_json::json!(["environments in this file: staging"]),
        "{error}"
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("there is no environment `production`"),
        "{error}"
    );
}

#[test]
fn exec_streams_stdout_and_stderr_apart() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    let run = t.gantry(&[
        "exec",
        "staging",
        "--",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    run.success();
    let host = t.address(0);
    assert_eq!(run.stdout, format!("[{host}] to-out\n"));
    assert!(
        run.stderr.contains(&format!("[{host}] to-err\n")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("to-out"), "{}", run.stderr);
}

#[test]
fn status_and_log_show_local_time_with_its_zone_or_utc() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    let run = |args: &[&str]| {
        let out = t.command(args).env("TZ", "Europe/Paris").output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // November in Paris is CET, one hour ahead of UTC.
    for args in [&["log", "staging"][..], &["status", "staging"]] {
        let local = run(args);
        assert!(local.contains(" +01:00 CET"), "{args:?}: {local}");
        let mut utc_args = args.to_vec();
        utc_args.push("--utc");
        let utc = run(&utc_args);
        assert!(utc.contains(" +00:00 UTC"), "{args:?}: {utc}");
        assert!(!utc.contains("CET"), "{utc}");
    }
}

#[test]
fn man_page_documents_every_command_and_the_exit_codes() {
    let t = Test::new().start();
    let run = t.gantry(&["man"]);
    run.success();
    assert!(run.stdout.starts_with(".ie"), "roff: {}", &run.stdout[..80]);
    assert!(run.stdout.contains(".TH gantry 1"));
    assert!(run
        .stdout
        .contains("9  failed, and some hosts could not be put back"));
    for command in [
        "init", "setup", "check", "plan", "deploy", "verify", "promote", "release", "rehearse",
        "rollback", "status", "log", "exec", "man",
    ] {
        assert!(
            run.stdout.contains(&format!("gantry\\-{command}(1)"))
                || run.stdout.contains(&format!("\\fB{command}\\fR"))
                || run.stdout.contains(&format!("\n{command}\n")),
            "`{command}` is in the man page"
        );
    }
}

#[test]
fn under_github_actions_hosts_are_grouped_and_errors_annotated() {
    let mut t = Test::new().hosts(2).start();
    t.configure(&[("staging", &[0, 1])]);
    let site = t.site("staging", 1);
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("fail-build"), "on purpose").unwrap();
    let out = t
        .command(&["deploy", "staging"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for i in 0..2 {
        let host = t.address(i);
        let start = stderr
            .find(&format!("::group::{host}\n"))
            .unwrap_or_else(|| panic!("a group for {host}: {stderr}"));
        let group = &stderr[start..];
        let end = group.find("::endgroup::").expect("the group ends");
        assert!(group[..end].contains("upload"), "{stderr}");
        assert!(
            !group[..end].contains("[root@"),
            "lines in a group need no prefix"
        );
    }
    let annotation = stderr
        .lines()
        .find(|l| l.starts_with("::error title=gantry::"))
        .unwrap_or_else(|| panic!("an error annotation: {stderr}"));
    assert!(
        annotation.contains("deploy to `staging` failed on 1 host%0A"),
        "{annotation}"
    );
    // Outside GitHub Actions, nothing of this.
    let plain = t.gantry(&["deploy", "staging"]);
    assert!(!plain.stderr.contains("::group::") && !plain.stderr.contains("::error"));
}

/// A repository git refuses to read (another user owns it) is not "not a
/// repository": the error is git's own, with its way out.
#[test]
fn a_repository_git_will_not_read_is_named_as_git_says() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    let chown = |owner: &str| {
        let status = std::process::Command::new("chown")
            .args(["-R", owner])
            .arg(&t.repo)
            .status()
            .unwrap();
        assert!(status.success());
    };
    chown("12345:12345");
    let run = t.gantry(&["deploy", "staging"]);
    chown("0:0");
    run.code(5)
        .stderr_has("`git rev-parse --git-dir` failed: fatal: detected dubious ownership")
        .stderr_has("safe.directory")
        .stderr_lacks("not in a git repository");
}
