//! The deploy lock: concurrent deploys are refused, a killed deploy leaves a
//! recognisably stale lock and a site still serving what it served.

use crate::harness::{collect, copy_dir, interrupt, processes_matching, signal, wait_until, Test};

#[test]
fn second_deploy_is_refused_while_the_first_holds_the_lock() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    let site = t.site("staging", 0);
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hold"), "").unwrap();

    let first = t.command(&["deploy", "staging"]).spawn().unwrap();
    let first_pid = first.id();
    wait_until(60, "the first deploy to reach its build", || {
        site.join("holding").exists()
    });

    t.gantry(&["deploy", "staging"])
        .code(4)
        .stderr_has("`staging` is locked; nothing was changed")
        .stderr_has(&format!("(pid {first_pid})"))
        .stderr_has("for `gantry deploy staging HEAD`")
        .stderr_has("wait for that deploy to finish");

    std::fs::remove_file(site.join("hold")).unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !site.join(".gantry/lock").exists(),
        "the first deploy released its lock"
    );
    t.gantry(&["deploy", "staging"]).success();
}

#[test]
fn killed_deploy_leaves_a_stale_lock_that_unlock_clears() {
    let mut t = Test::new().hosts(1).start();
    let first = t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    let serving = t.current("staging", 0);
    let site = t.site("staging", 0);

    t.commit("Second", &[("NEWS", "second\n")]);
    std::fs::write(site.join("hold"), "").unwrap();
    let mut deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
    let pid = deploy.id();
    wait_until(60, "the deploy to reach its build", || {
        site.join("holding").exists()
    });
    deploy.kill().unwrap();
    deploy.wait().unwrap();
    std::fs::remove_file(site.join("hold")).unwrap();

    // Killed mid-build: nothing that serves changed.
    assert_eq!(t.current("staging", 0), serving);
    assert_eq!(
        t.get("staging", 0, "/health").unwrap().1.trim(),
        format!("ok {first}")
    );

    t.gantry(&["deploy", "staging"])
        .code(4)
        .stderr_has(&format!("(pid {pid})"))
        .stderr_has("[stale: that process is no longer running]")
        .stderr_has("clear it with `gantry unlock staging`");

    t.gantry(&["unlock", "staging"])
        .success()
        .stdout_has("cleared lock held by");
    let last = t.history("staging", 0).pop().unwrap();
    assert_eq!(last["action"], "unlock");
    assert!(last["message"]
        .as_str()
        .unwrap()
        .contains(&format!("pid {pid}")));

    t.gantry(&["deploy", "staging"]).success();
    // The half-made release of the killed deploy was pruned.
    for name in t.releases("staging", 0) {
        assert!(
            site.join("releases").join(&name).join("REVISION").exists(),
            "{name} is complete"
        );
    }
}

#[test]
fn lock_holds_deploys_until_unlock() {
    let mut t = Test::new().hosts(2).start();
    t.configure(&[("staging", &[0, 1])]);

    t.gantry(&["lock", "staging", "--reason", "database upgrade"])
        .success();
    t.gantry(&["deploy", "staging"])
        .code(4)
        .stderr_has(": database upgrade")
        .stderr_has("gantry unlock staging");
    t.gantry(&["status", "staging"])
        .success()
        .stdout_has("locked: held by");
    t.gantry(&["unlock", "staging"]).success();
    t.gantry(&["deploy", "staging"]).success();
}

/// The config with a build step after the one that holds (`hold`), which
/// leaves `after-hold` in the site's folder if it ever starts.
fn with_a_step_after_the_hold(config: String) -> String {
    let config = config.replace(
        "build = [\"sh build.sh\", \"sh ci/hooks.sh\"]",
        "build = [\"sh build.sh\", \"sh ci/hooks.sh\", \"touch \\\"$GANTRY_PATH/after-hold\\\"\"]",
    );
    assert!(config.contains("after-hold"), "{config}");
    config
}

#[test]
fn interrupt_during_build_releases_the_lock_and_changes_nothing() {
    let mut t = Test::new().hosts(1).start();
    let config = with_a_step_after_the_hold(t.config(&[("staging", &[0])]));
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let site = t.site("staging", 0);
    std::fs::remove_file(site.join("after-hold")).unwrap();
    let serving = t.current("staging", 0);

    t.commit("Second", &[("NEWS", "second\n")]);
    std::fs::write(site.join("hold"), "").unwrap();
    let mut deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
    let stderr = crate::harness::collect(deploy.stderr.take().unwrap());
    wait_until(60, "the deploy to reach its build", || {
        site.join("holding").exists()
    });
    interrupt(&deploy, &stderr);
    // The build on the host runs on until `hold` goes; after it, no new
    // step may start.
    std::fs::remove_file(site.join("hold")).unwrap();
    let code = deploy.wait().unwrap().code();
    let stderr = stderr.finish();
    assert_eq!(code, Some(8), "{stderr}");
    assert!(
        stderr.contains("deploy to `staging` was interrupted (Ctrl-C or SIGTERM)"),
        "{stderr}"
    );
    assert_eq!(t.current("staging", 0), serving);
    assert!(!site.join(".gantry/lock").exists(), "the lock was released");
    assert!(
        !site.join("after-hold").exists(),
        "no build step started after the interrupt\n{stderr}"
    );
}

#[test]
fn verbose_output_streams_while_a_step_runs() {
    let mut t = Test::new().hosts(1).start();
    let config = t.config(&[("staging", &[0])]).replace(
        "\"sh ci/hooks.sh\"",
        "\"echo early-line && sh ci/hooks.sh\"",
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    let site = t.site("staging", 0);
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hold"), "").unwrap();

    let mut deploy = t.command(&["-v", "deploy", "staging"]).spawn().unwrap();
    let stderr = crate::harness::collect(deploy.stderr.take().unwrap());
    // The step is still running (it waits on `hold`), yet its first line is out.
    wait_until(60, "the build's first line while it runs", || {
        stderr.lock().unwrap().contains("]   early-line")
    });
    assert!(site.join("hold").exists());
    std::fs::remove_file(site.join("hold")).unwrap();
    assert!(
        deploy.wait().unwrap().success(),
        "{}",
        stderr.lock().unwrap()
    );
}

#[test]
fn of_two_concurrent_lockers_on_three_hosts_exactly_one_wins_every_time() {
    let mut t = Test::new().hosts(3).start();
    t.configure(&[("live", &[0, 1, 2])]);
    for pair in 0..20 {
        let a = t
            .command(&["lock", "live", "--reason", "a"])
            .spawn()
            .unwrap();
        let b = t
            .command(&["lock", "live", "--reason", "b"])
            .spawn()
            .unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = [a.status.code(), b.status.code()];
        codes.sort();
        assert_eq!(
            codes,
            [Some(0), Some(4)],
            "pair {pair}: exactly one wins\n--- a\n{}\n--- b\n{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        // The loser gave back what it took: only the winner's lock is left.
        let winner = if a.status.success() { "a" } else { "b" };
        for i in 0..3 {
            let info =
                std::fs::read_to_string(t.site("live", i).join(".gantry/lock/info")).unwrap();
            assert!(
                info.contains(&format!("\"reason\":\"{winner}\"")),
                "pair {pair}, host {i}: {info}"
            );
        }
        t.gantry(&["unlock", "live"]).success();
    }
}

#[test]
fn lock_wait_waits_for_the_other_deploy_instead_of_failing() {
    let mut t = Test::new().hosts(2).start();
    t.configure(&[("live", &[0, 1])]);
    t.gantry(&["lock", "live", "--reason", "first"]).success();
    t.gantry(&["lock", "live"]).code(4);
    let mut waiting = t
        .command(&["--lock-wait", "60s", "lock", "live", "--reason", "second"])
        .spawn()
        .unwrap();
    let stderr = crate::harness::collect(waiting.stderr.take().unwrap());
    wait_until(30, "the second locker to wait", || {
        stderr
            .lock()
            .unwrap()
            .contains("waiting for it (--lock-wait)")
    });
    t.gantry(&["unlock", "live"]).success();
    let status = waiting.wait().unwrap();
    assert!(status.success(), "{}", stderr.lock().unwrap());
    let info = std::fs::read_to_string(t.site("live", 1).join(".gantry/lock/info")).unwrap();
    assert!(info.contains("\"reason\":\"second\""), "{info}");
}

#[test]
fn escape_sequences_in_a_lock_reason_never_reach_the_terminal() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    let reason = "maintenance \u{1b}[2J\u{1b}]0;owned\u{7}";
    t.gantry(&["lock", "staging", "--reason", reason]).success();
    let runs = [
        ("status", t.gantry(&["status", "staging"])),
        ("log", t.gantry(&["log", "staging"])),
        ("deploy", t.gantry(&["deploy", "staging"])),
    ];
    for (what, run) in &runs {
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.contains("maintenance \\x1b[2J"),
            "{what} shows the reason: {all}"
        );
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}'),
            "{what} printed a raw control character: {all:?}"
        );
    }
    runs[2].1.code(4);
}

/// The host a deploy locks first: the one whose name sorts first.
fn first_locked(t: &Test, hosts: usize) -> usize {
    (0..hosts).min_by_key(|&i| t.address(i)).unwrap()
}

#[test]
fn a_lock_held_on_a_later_host_leaves_no_release_and_no_lock_on_the_others() {
    let mut t = Test::new().hosts(3).start();
    t.configure(&[("live", &[0, 1, 2])]);
    t.gantry(&["deploy", "live"]).success();
    let before: Vec<Vec<String>> = (0..3).map(|i| t.releases("live", i)).collect();
    let serving: Vec<Option<String>> = (0..3).map(|i| t.current("live", i)).collect();
    // A lock on one host that is not locked first, as `gantry lock` leaves
    // it: the deploy takes the first host's lock and prepares there (and
    // on the third host) before it meets this one.
    let held = (first_locked(&t, 3) + 1) % 3;
    t.gantry(&["lock", "live", "--reason", "held"]).success();
    let lock = t.site("live", held).join(".gantry/lock");
    let kept = t.dir.join("kept-lock");
    copy_dir(&lock, &kept);
    t.gantry(&["unlock", "live"]).success();
    copy_dir(&kept, &lock);
    t.commit("Second", &[("NEWS", "second\n")]);

    t.gantry(&["deploy", "live"])
        .code(4)
        .stderr_has("`live` is locked; nothing was changed");
    for i in 0..3 {
        assert_eq!(t.releases("live", i), before[i], "host {i}: no new release");
        assert_eq!(t.current("live", i), serving[i], "host {i}");
        if i != held {
            assert!(
                !t.site("live", i).join(".gantry/lock").exists(),
                "host {i}: the lock was given back"
            );
        }
    }

    // With --lock-wait the deploy waits for that host, then goes on.
    let mut waiting = t
        .command(&["--lock-wait", "60s", "deploy", "live"])
        .spawn()
        .unwrap();
    let stderr = collect(waiting.stderr.take().unwrap());
    wait_until(60, "the deploy to wait", || {
        stderr
            .lock()
            .unwrap()
            .contains("waiting for it (--lock-wait)")
    });
    std::fs::remove_dir_all(&lock).unwrap();
    assert!(waiting.wait().unwrap().success(), "{}", stderr.finish());
    for i in 0..3 {
        assert_ne!(
            t.current("live", i),
            serving[i],
            "host {i} serves the new release"
        );
        assert_eq!(t.releases("live", i).len(), before[i].len() + 1, "host {i}");
    }
}

#[test]
fn a_host_that_fails_to_connect_late_or_an_interrupt_leaves_no_release_and_no_lock() {
    let mut t = Test::new().hosts(2).start();
    let config = with_a_step_after_the_hold(t.config(&[("live", &[0, 1])]));
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "live"]).success();
    let sites: Vec<std::path::PathBuf> = (0..2).map(|i| t.site("live", i)).collect();
    for site in &sites {
        std::fs::remove_file(site.join("after-hold")).unwrap();
    }
    let before: Vec<Vec<String>> = (0..2).map(|i| t.releases("live", i)).collect();
    // A third "host" that takes the connection and says nothing until it
    // is told to hang up (once the others are locked and preparing).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    let hang_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let told = hang_up.clone();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in dead.incoming() {
            if told.load(std::sync::atomic::Ordering::SeqCst) {
                open.clear();
            } else {
                open.push(conn);
            }
        }
    });
    let hang_up_now = |yes: bool| {
        hang_up.store(yes, std::sync::atomic::Ordering::SeqCst);
        // Wakes the listener up, so that it hangs up on what it held.
        drop(std::net::TcpStream::connect(("127.0.0.1", port)));
    };
    let third = format!(
        "{{ address = \"root@127.0.0.1:{port}\", vars = {{ hostid = \"h9\", app_port = \"1\" }} }}"
    );
    let hosts_end = config.rfind("\n]\n").unwrap();
    t.write_config(&format!(
        "{},\n  {third}{}",
        &config[..hosts_end],
        &config[hosts_end..]
    ));
    t.commit("A third host", &[("NEWS", "third\n")]);
    let unchanged = |t: &Test, stderr: &str| {
        for (i, before) in before.iter().enumerate() {
            assert_eq!(
                &t.releases("live", i),
                before,
                "host {i}: no new release\n{stderr}"
            );
            assert!(
                !t.site("live", i).join(".gantry/lock").exists(),
                "host {i}: not left locked\n{stderr}"
            );
        }
    };
    let prepared = |t: &Test| (0..2).any(|i| t.releases("live", i).len() > before[i].len());

    // The third host fails while the others build: their builds stop
    // before the next step, and what they did is put back.
    for site in &sites {
        std::fs::write(site.join("hold"), "").unwrap();
    }
    let deploy = t.command(&["deploy", "live"]).spawn().unwrap();
    wait_until(60, "the connected hosts to reach their build", || {
        sites.iter().all(|s| s.join("holding").exists())
    });
    hang_up_now(true);
    wait_until(60, "the builds to be told to stop", || {
        sites.iter().all(|s| s.join(".gantry/lock/stop").exists())
    });
    for site in &sites {
        std::fs::remove_file(site.join("hold")).unwrap();
    }
    let out = deploy.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot reach 1 of the hosts of `live`; nothing was changed"),
        "{stderr}"
    );
    unchanged(&t, &stderr);
    for site in &sites {
        assert!(
            !site.join("after-hold").exists(),
            "no step started after the stop\n{stderr}"
        );
        std::fs::remove_file(site.join("holding")).unwrap();
    }

    // Ctrl-C while the third host is still connecting (and would be for
    // ten minutes): the same, as an interrupt, without waiting for that
    // connection to time out; its `ssh` does not outlive Gantry.
    hang_up_now(false);
    let patient = std::fs::read_to_string(t.repo.join("gantry.toml"))
        .unwrap()
        .replace("[ssh]\n", "[ssh]\nconnect_timeout = \"600s\"\n");
    t.write_config(&patient);
    t.commit("Connections wait long", &[]);
    let mut deploy = t.command(&["deploy", "live"]).spawn().unwrap();
    let stderr = collect(deploy.stderr.take().unwrap());
    wait_until(60, "a release to be prepared on a connected host", || {
        prepared(&t)
    });
    interrupt(&deploy, &stderr);
    wait_until(60, "gantry to end, not waiting for the connection", || {
        deploy.try_wait().unwrap().is_some()
    });
    let code = deploy.wait().unwrap().code();
    let masters = format!("gantry-ssh-0/{}/", deploy.id());
    wait_until(15, "no ssh of that gantry to be left", || {
        !processes_matching(&masters)
    });
    hang_up_now(true);
    let stderr = stderr.finish();
    assert_eq!(code, Some(8), "{stderr}");
    assert!(
        stderr.contains("deploy to `live` was interrupted (Ctrl-C or SIGTERM)"),
        "{stderr}"
    );
    assert!(stderr.contains("unchanged (not reached)"), "{stderr}");
    unchanged(&t, &stderr);

    // Gantry killed outright while the third host is still connecting:
    // that `ssh` does not outlive it either (its watcher stops it).
    hang_up_now(false);
    let mut deploy = t.command(&["deploy", "live"]).spawn().unwrap();
    wait_until(60, "a release to be prepared on a connected host", || {
        prepared(&t)
    });
    signal(deploy.id(), "KILL");
    deploy.wait().unwrap();
    let masters = format!("gantry-ssh-0/{}/", deploy.id());
    wait_until(15, "no ssh of the killed gantry to be left", || {
        !processes_matching(&masters)
    });
    hang_up_now(true);
}

#[test]
fn of_two_deploys_started_together_at_most_one_deploys() {
    let mut t = Test::new().hosts(3).start();
    t.configure(&[("live", &[0, 1, 2])]);
    t.gantry(&["deploy", "live"]).success();
    let before: Vec<usize> = (0..3).map(|i| t.releases("live", i).len()).collect();
    t.commit("Second", &[("NEWS", "second\n")]);
    let a = t.command(&["deploy", "live"]).spawn().unwrap();
    let b = t.command(&["deploy", "live"]).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    // One deploys; the other is refused by the lock, or, if it came after,
    // finds the commit already served.
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    for out in [&a, &b] {
        assert!(
            out.status.success() || out.status.code() == Some(4),
            "{}",
            text(out)
        );
    }
    assert!(
        a.status.success() || b.status.success(),
        "{}\n{}",
        text(&a),
        text(&b)
    );
    for (i, before) in before.iter().enumerate() {
        assert_eq!(
            t.releases("live", i).len(),
            before + 1,
            "host {i}: exactly one new release\n{}\n{}",
            text(&a),
            text(&b)
        );
        assert!(!t.site("live", i).join(".gantry/lock").exists(), "host {i}");
        let deploys = t
            .history("live", i)
            .iter()
            .filter(|r| r["action"] == "deploy" && r["outcome"] == "ok")
            .count();
        assert_eq!(deploys, 2, "host {i}: the first deploy and one of the two");
    }
}
