//! Hooks: the example app on two hosts with a hook at every point, each
//! writing a line to a log. A deploy runs them in order, with their
//! variables; a failing `before_deploy` changes nothing (no release, no
//! lock) and `on_failure` hears of it; a failing `after_switch` on one host
//! puts both hosts back; a rollback runs the switch hooks and
//! `after_rollback`; `plan` lists them.

use crate::harness::Test;

/// The example app on hosts 0 and 1 of `live` with a hook at every point.
fn hooked(t: &mut Test) -> std::path::PathBuf {
    let log = t.dir.join("hooks.log");
    let l = log.display();
    let hooks = format!(
        r#"[hooks]
before_deploy = "test ! -f {d}/stop || {{{{ echo stopped by the team; exit 3; }}}}; echo before $GANTRY_ENV $GANTRY_COMMIT >> {l}"
after_prepare = {{ run = "echo prepared $GANTRY_HOST $(cat REVISION) $GANTRY_HOOK $(basename $GANTRY_RELEASE) >> {l}", on = "web" }}
before_switch = "echo switch $GANTRY_HOST >> {l}"
after_switch = {{ run = "echo switched $GANTRY_HOST >> {l}; test ! -f $GANTRY_SHARED/refuse", on = "web" }}
after_deploy = "echo after $GANTRY_OUTCOME $GANTRY_RELEASE >> {l}"
on_failure = "echo failure $GANTRY_OUTCOME >> {l}"
after_rollback = "echo rolled $GANTRY_OUTCOME >> {l}"

[database]"#,
        d = t.dir.display(),
    );
    let config = t
        .config(&[("live", &[0, 1])])
        .replacen("[database]", &hooks, 1);
    t.write_config(&config);
    log
}

fn lines(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    std::fs::write(log, "").unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn hooks_run_at_their_points_and_a_failing_one_changes_nothing_or_puts_back() {
    let mut t = Test::new().hosts(2).start();
    let log = hooked(&mut t);
    let first = t.commit("Hooked", &[]);
    t.gantry(&["plan", "live"])
        .success()
        .stdout_has("Hook before_deploy (on this machine): test ! -f")
        .stdout_has("Hook after_switch (on the web hosts): echo switched");
    t.gantry(&["deploy", "live"])
        .success()
        .stderr_has("hook after_prepare");
    let release = t.current("live", 0).unwrap();
    let (ip0, ip1) = (t.ip(0).to_string(), t.ip(1).to_string());
    let ran = lines(&log);
    assert_eq!(ran[0], format!("before live {first}"));
    let mut middle = ran[1..ran.len() - 1].to_vec();
    middle.sort();
    let mut expected: Vec<String> = [&ip0, &ip1]
        .iter()
        .flat_map(|ip| {
            [
                format!("prepared {ip} {first} after_prepare {release}"),
                format!("switch {ip}"),
                format!("switched {ip}"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(middle, expected, "{ran:?}");
    assert_eq!(ran.last().unwrap(), &format!("after ok {release}"));
    // The ledger says which hooks ran.
    let events = crate::pipeline::ledger(&t, &first);
    let deployed = events.iter().find(|e| e["event"] == "deploy").unwrap();
    assert_eq!(
        deployed["hooks"],
        serde_json::json!([
            "before_deploy: ok",
            "after_prepare: ok",
            "before_switch: ok",
            "after_switch: ok",
            "after_deploy: ok"
        ])
    );

    // A failing before_deploy: nothing changed, no lock left.
    let second = t.commit("Second", &[("notes.txt", "two\n")]);
    std::fs::write(t.dir.join("stop"), "").unwrap();
    t.gantry(&["deploy", "live"])
        .code(1)
        .stderr_has("the `before_deploy` hook failed, and nothing was changed")
        .stderr_has("stopped by the team");
    assert_eq!(lines(&log), ["failure failed"]);
    for i in 0..2 {
        assert_eq!(t.current("live", i).unwrap(), release);
        assert!(!t.site("live", i).join(".gantry/lock").exists());
        let releases = std::fs::read_dir(t.site("live", i).join("releases")).unwrap();
        assert_eq!(releases.count(), 1, "no new release on host {i}");
    }
    std::fs::remove_file(t.dir.join("stop")).unwrap();

    // A failing after_switch on host 1: both hosts put back.
    std::fs::write(t.site("live", 1).join("shared/refuse"), "").unwrap();
    t.gantry(&["deploy", "live"])
        .code(1)
        .stderr_has("hook after_switch");
    assert!(lines(&log).contains(&"failure failed".to_string()));
    for i in 0..2 {
        assert_eq!(t.current("live", i).unwrap(), release);
        assert_eq!(
            t.get("live", i, "/health").unwrap().1.trim(),
            format!("ok {first}")
        );
    }
    std::fs::remove_file(t.site("live", 1).join("shared/refuse")).unwrap();
    t.gantry(&["deploy", "live"]).success();
    assert_eq!(
        t.get("live", 1, "/health").unwrap().1.trim(),
        format!("ok {second}")
    );
    lines(&log);
    // A rollback switches too: the switch hooks run, then after_rollback.
    t.gantry(&["rollback", "live"]).success();
    let ran = lines(&log);
    assert_eq!(ran.last().unwrap(), "rolled ok", "{ran:?}");
    assert_eq!(ran.iter().filter(|l| l.starts_with("switched ")).count(), 2);
}

#[test]
fn a_hook_on_the_hosts_of_a_point_that_runs_here_is_a_config_error() {
    let mut t = Test::new().hosts(1).start();
    let config = t.config(&[("live", &[0])]).replacen(
        "[database]",
        "[hooks]\nbefore_deploy = { run = \"true\", on = \"web\" }\n\n[database]",
        1,
    );
    t.write_config(&config);
    t.gantry(&["check"])
        .code(2)
        .stderr_has("`before_deploy` runs on this machine only")
        .stderr_has("hooks.before_deploy.on");
}
