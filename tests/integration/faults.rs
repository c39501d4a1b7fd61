//! Faults late in a deploy, on real sshd hosts: SIGINT, SIGTERM and
//! SIGKILL of the controller while hosts restart and while they are
//! health-checked, on 1 and on 3 hosts; a network cut after the switch with
//! a migration; a host that cannot be put back. Phases are reached by
//! waiting for markers the hosts write, never by sleeping. Every run must
//! leave each host on a complete release that is the one the app actually
//! serves. Full disks are in `full_disk.rs`.

use std::path::Path;

use crate::harness::{collect, processes_matching, signal, sqlite, wait_until, Test};

/// The restart waits while `hold-restart` exists in the site folder (and
/// says so with `holding-restart`), after the switch.
const HOLD_RESTART: &str = r#"set -eu
if [ -e "$GANTRY_PATH/hold-restart" ]; then
    touch "$GANTRY_PATH/holding-restart"
    i=0
    while [ -e "$GANTRY_PATH/hold-restart" ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done
fi
"#;

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// The hosts are switched and restarting.
    Restart,
    /// The hosts are restarted and answer unhealthy.
    Health,
}

fn fault_config(t: &mut Test, hosts: &[usize]) -> String {
    t.config(&[("staging", hosts)])
        .replace(
            "restart = \"sh restart.sh\"",
            "restart = \"sh ci/hold_restart.sh && sh restart.sh\"",
        )
        .replace("retries = 40", "retries = 400")
}

/// The commit the app on host `i` answers with, and the commit `current`
/// points at there.
fn served(t: &mut Test, i: usize) -> (String, String) {
    let mut answer = String::new();
    // A host that finished its restart on its own may still be starting
    // the app: wait for it to answer.
    wait_until(30, "the app to answer", || {
        match t.get("staging", i, "/health") {
            Some((200, body)) => {
                answer = body.trim().trim_start_matches("ok ").to_string();
                true
            }
            _ => false,
        }
    });
    let current = std::fs::read_to_string(t.site("staging", i).join("current/REVISION"))
        .unwrap_or_default()
        .trim()
        .to_string();
    (answer, current)
}

/// One deploy of a new commit, stopped by `sig` in `phase`.
fn fault(t: &mut Test, hosts: &[usize], sig: &str, phase: Phase) {
    let before: Vec<String> = hosts.iter().map(|&i| served(t, i).1).collect();
    let new = t.commit(
        &format!("{sig} at {phase:?}"),
        &[("NOTES", &format!("{sig} {phase:?}\n"))],
    );
    let sites: Vec<_> = hosts.iter().map(|&i| t.site("staging", i)).collect();
    match phase {
        Phase::Restart => {
            for s in &sites {
                std::fs::write(s.join("hold-restart"), "").unwrap();
            }
        }
        Phase::Health => {
            for s in &sites {
                std::fs::write(s.join("shared/data/unhealthy"), &new).unwrap();
            }
        }
    }
    let mut deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
    let stderr = collect(deploy.stderr.take().unwrap());
    match phase {
        Phase::Restart => wait_until(60, "every host to hold in its restart", || {
            sites.iter().all(|s| s.join("holding-restart").exists())
        }),
        Phase::Health => wait_until(60, "the health checks to start", || {
            stderr.lock().unwrap().matches("health check http").count() >= hosts.len()
        }),
    }
    let pid = deploy.id();
    signal(pid, sig);
    if sig != "KILL" {
        wait_until(30, "gantry to take the interrupt", || {
            stderr.lock().unwrap().contains("interrupted:")
        });
    }
    for s in &sites {
        let _ = std::fs::remove_file(s.join("hold-restart"));
        let _ = std::fs::remove_file(s.join("holding-restart"));
    }
    let code = deploy.wait().unwrap().code();
    // Hosts finish what they started, with or without the controller.
    wait_until(60, "every host's activation to end", || {
        sites.iter().all(|s| {
            s.join(".gantry/activation/verdict").exists() || !s.join(".gantry/activation").exists()
        })
    });
    for s in &sites {
        let _ = std::fs::remove_file(s.join("shared/data/unhealthy"));
    }
    let stderr = stderr.finish();
    let context = format!("{sig} at {phase:?} on {} hosts\n{stderr}", hosts.len());
    if sig == "KILL" {
        assert_eq!(code, None, "{context}");
        // No SSH master of the killed Gantry outlives it.
        let masters = format!("gantry-ssh-0/{pid}/");
        wait_until(15, "the killed gantry's SSH masters to close", || {
            !processes_matching(&masters)
        });
        // Nor its control folder.
        let bases = [
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_default(),
            "/tmp".into(),
        ];
        wait_until(15, "the killed gantry's control folder to go", || {
            bases
                .iter()
                .all(|b| !Path::new(b).join(format!("gantry-ssh-0/{pid}")).exists())
        });
        for &i in hosts {
            let (answer, current) = served(t, i);
            assert_eq!(
                answer, current,
                "host {i} serves what `current` points at: {context}"
            );
            assert!(!current.is_empty(), "{context}");
        }
        let status = t.gantry(&["status", "staging"]);
        assert!(
            !status.stdout.contains("mismatch"),
            "{}\n{context}",
            status.stdout
        );
        assert!(
            status.stdout.contains("locked:"),
            "the lock says so: {}",
            status.stdout
        );
        t.gantry(&["unlock", "staging"]).success();
    } else {
        assert_eq!(code, Some(8), "{context}");
        assert!(
            context.contains("was interrupted (Ctrl-C or SIGTERM)"),
            "{context}"
        );
        for (n, &i) in hosts.iter().enumerate() {
            let (answer, current) = served(t, i);
            assert_eq!(current, before[n], "host {i} was put back: {context}");
            assert_eq!(
                answer, before[n],
                "host {i} serves the old commit: {context}"
            );
            assert!(
                !t.site("staging", i).join(".gantry/lock").exists(),
                "{context}"
            );
        }
    }
}

fn faults_on(n: usize) {
    let mut t = Test::new().hosts(n).start();
    let hosts: Vec<usize> = (0..n).collect();
    let config = fault_config(&mut t, &hosts);
    t.write_config(&config);
    t.commit("Add config", &[("ci/hold_restart.sh", HOLD_RESTART)]);
    t.gantry(&["deploy", "staging"]).success();
    for sig in ["INT", "TERM", "KILL"] {
        for phase in [Phase::Restart, Phase::Health] {
            fault(&mut t, &hosts, sig, phase);
        }
    }
}

#[test]
fn signals_at_restart_and_health_check_on_one_host_leave_it_consistent() {
    faults_on(1);
}

#[test]
fn signals_at_restart_and_health_check_on_three_hosts_leave_them_consistent() {
    faults_on(3);
}

#[test]
fn network_cut_after_the_switch_keeps_the_migrated_database_for_the_cut_host() {
    let mut t = Test::new().hosts(1).isolated_hosts(1).start();
    // Host 0's health check fails within 2s; the cut is seen within 3s.
    let config = fault_config(&mut t, &[0, 1])
        .replace("retries = 400", "retries = 8")
        .replace(
            "[deploy]",
            "keepalive = \"1s\"\nconnect_timeout = \"3s\"\n\n[deploy]",
        );
    t.write_config(&config);
    t.commit("Add config", &[("ci/hold_restart.sh", HOLD_RESTART)]);
    t.gantry(&["deploy", "staging"]).success();
    let old = t.current("staging", 0);

    // A migration, then the cut host holds in its restart (after its
    // switch) while the other host fails its health check.
    let new = t.commit(
        "A migration",
        &[(
            "migrations/0100_notes.sql",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);\n",
        )],
    );
    let cut = t.site("staging", 1);
    std::fs::write(cut.join("hold-restart"), "").unwrap();
    std::fs::write(t.site("staging", 0).join("shared/data/unhealthy"), &new).unwrap();
    let mut deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
    let stderr = collect(deploy.stderr.take().unwrap());
    wait_until(60, "the cut host to hold in its restart", || {
        cut.join("holding-restart").exists()
    });
    t.hosts[1].netns.as_ref().unwrap().cut();
    std::fs::remove_file(cut.join("hold-restart")).unwrap();
    let code = deploy.wait().unwrap().code();
    let stderr = stderr.finish();
    std::fs::remove_file(t.site("staging", 0).join("shared/data/unhealthy")).unwrap();

    assert_eq!(code, Some(9), "{stderr}");
    assert!(
        !stderr.contains("every host was left serving what it served before"),
        "{stderr}"
    );
    assert!(
        stderr.contains("these hosts could not be put back and run the new release"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the database was kept migrated, because"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(the new release: it could not be put back)"),
        "{stderr}"
    );
    // The reachable host is back on the old release; the database it
    // shares with the cut host's new release keeps the migration.
    assert_eq!(t.current("staging", 0), old);
    let applied = sqlite(
        &t.site("staging", 0).join("shared/data/app.sqlite3"),
        "SELECT name FROM schema_migrations ORDER BY name",
    );
    assert!(applied.contains("0100_notes.sql"), "the migration was kept");
    // The cut host finished its activation by itself and serves what
    // `current` points at: the new release.
    t.hosts[1].netns.as_ref().unwrap().restore();
    let (answer, current) = served(&mut t, 1);
    assert_eq!(
        (answer.as_str(), current.as_str()),
        (new.as_str(), new.as_str())
    );
}

#[test]
fn a_step_still_running_after_gantry_was_killed_is_shown_by_status() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    let site = t.site("staging", 0);
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hold"), "").unwrap();
    let mut deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
    wait_until(60, "the build to hold", || site.join("holding").exists());
    signal(deploy.id(), "KILL");
    deploy.wait().unwrap();

    let status = t.gantry(&["status", "staging"]);
    let running: Vec<&str> = status
        .stdout
        .lines()
        .filter(|l| l.contains("still running (pid, step):"))
        .collect();
    assert_eq!(running.len(), 1, "{}", status.stdout);
    assert!(running[0].contains("build 2/2"), "{}", status.stdout);
    assert!(status.stdout.contains("locked:"), "{}", status.stdout);

    std::fs::remove_file(site.join("hold")).unwrap();
    wait_until(30, "the build to end", || {
        !t.gantry(&["status", "staging"])
            .stdout
            .contains("still running")
    });
}

/// What a deploy whose restart fails did, with `obstacle` put on the
/// site while the restart held: Gantry's exit code and stderr, the commit
/// and release served before, and the new commit.
struct FailedRestart {
    code: Option<i32>,
    stderr: String,
    good: String,
    old: String,
    new: String,
}

fn failed_restart(t: &mut Test, obstacle: impl FnOnce(&Path, &str)) -> FailedRestart {
    let config = fault_config(t, &[0]);
    t.write_config(&config);
    // The restart holds, then fails when `fail-restart` is there.
    let hook = format!("{HOLD_RESTART}[ ! -e \"$GANTRY_PATH/fail-restart\" ]\n");
    let good = t.commit("Add config", &[("ci/hold_restart.sh", &hook)]);
    t.gantry(&["deploy", "staging"]).success();
    let site = t.site("staging", 0);
    let old = t.current("staging", 0).unwrap();
    let new = t.commit("New", &[("NOTES", "new\n")]);
    std::fs::write(site.join("hold-restart"), "").unwrap();
    std::fs::write(site.join("fail-restart"), "").unwrap();
    let mut deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
    let stderr = collect(deploy.stderr.take().unwrap());
    wait_until(60, "the restart to hold", || {
        site.join("holding-restart").exists()
    });
    obstacle(&site, &old);
    std::fs::remove_file(site.join("hold-restart")).unwrap();
    let code = deploy.wait().unwrap().code();
    FailedRestart {
        code,
        stderr: stderr.finish(),
        good,
        old,
        new,
    }
}

#[test]
fn a_host_that_cannot_be_switched_back_keeps_the_release_it_runs() {
    let mut t = Test::new().hosts(1).start();
    // A folder where the switch back makes its new link: it cannot be
    // renamed over `current`, so the host stays on the new release.
    let FailedRestart {
        code, stderr, new, ..
    } = failed_restart(&mut t, |site, old| {
        std::fs::create_dir_all(site.join(format!(".current-{old}/in-the-way"))).unwrap();
    });
    let site = t.site("staging", 0);
    assert_eq!(code, Some(9), "{stderr}");
    assert!(stderr.contains("switching back failed"), "{stderr}");
    let current = t.current("staging", 0).unwrap();
    assert!(current.ends_with(&new[..8]), "{current}\n{stderr}");
    // What `current` points at is still there, whole.
    let revision = std::fs::read_to_string(site.join("current/REVISION"));
    assert_eq!(revision.unwrap_or_default().trim(), new, "{stderr}");
}

#[test]
fn a_host_put_back_whose_report_cannot_be_written_is_found_back() {
    let mut t = Test::new().hosts(1).start();
    // The host puts itself back, but no verdict can be written (as on a
    // full disk), nor can Gantry's own putting back start.
    let verdict = t.site("staging", 0).join(".gantry/activation/verdict.tmp");
    let FailedRestart {
        code,
        stderr,
        good,
        old,
        ..
    } = failed_restart(&mut t, |_, _| {
        std::fs::create_dir_all(verdict.join("in-the-way")).unwrap();
    });
    std::fs::remove_dir_all(&verdict).unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "but `current` points at the old release again and it answers the health check"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("every host was left serving what it served before"),
        "{stderr}"
    );
    assert_eq!(t.current("staging", 0).unwrap(), old, "{stderr}");
    assert_eq!(served(&mut t, 0).0, good, "{stderr}");
}
