//! Hosts: host keys, quoting of config values on the way to a real shell,
//! and the commands that only look (plan, check, status, exec).

use crate::harness::Test;

#[test]
fn unknown_host_key_is_refused() {
    let t = Test::new().hosts(2).start();
    let mut t = t;
    t.configure(&[("staging", &[0, 1])]);
    // Host 1's key is not known.
    t.set_known_hosts(|i| i == 0);

    t.gantry(&["deploy", "staging"])
        .code(3)
        .stderr_has("cannot reach 1 of the hosts of `staging`; nothing was changed")
        .stderr_has(&format!("{}: connect failed", t.address(1)))
        .stderr_has("the host's key is not in known_hosts, so the connection was refused")
        .stderr_has("Gantry never accepts an unknown key");
    assert!(
        !t.site("staging", 0).exists(),
        "nothing was done on the reachable host either"
    );
    assert!(!t.site("staging", 1).exists());
    // `check`, the first thing a new user runs, gives the same advice.
    t.gantry(&["check", "staging"])
        .code(3)
        .stderr_has("the host's key is not in known_hosts")
        .stderr_has("connect once with `ssh HOST` and compare");

    // A user ssh_config that would accept any key changes nothing.
    let config = std::fs::read_to_string(t.dir.join("ssh_config")).unwrap();
    for lenient in ["no", "accept-new"] {
        let text = config.replace(
            "StrictHostKeyChecking yes",
            &format!("StrictHostKeyChecking {lenient}"),
        );
        assert_ne!(text, config);
        std::fs::write(t.dir.join("ssh_config"), text).unwrap();
        t.gantry(&["deploy", "staging"])
            .code(3)
            .stderr_has("the host's key is not in known_hosts");
        let known = std::fs::read_to_string(t.dir.join("known_hosts")).unwrap();
        assert_eq!(
            known.lines().count(),
            1,
            "no key was added ({lenient}): {known}"
        );
        assert!(!t.site("staging", 1).exists());
    }
}

#[test]
fn changed_host_key_is_refused() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    // known_hosts names another key for the host's address.
    let other = t.dir.join("other_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut parts = key.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        t.hosts[0].port,
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    std::fs::write(t.dir.join("known_hosts"), line).unwrap();

    let run = t.gantry(&["deploy", "staging"]);
    run.code(3)
        .stderr_has("the host's key has CHANGED since it was recorded in known_hosts")
        .stderr_has("ask the server's owner for its new fingerprint")
        .stderr_has("ssh-keygen -R");
    assert!(
        !run.stderr.contains("ssh-keyscan"),
        "no advice to trust whatever key answers: {}",
        run.stderr
    );
    assert!(!t.site("staging", 0).exists());
}

#[test]
fn hostile_config_values_reach_the_shell_literally() {
    let mut t = Test::new().hosts(1).start();
    let dir = t.dir.display().to_string();
    let hostile = format!(
        "it's $(touch {dir}/pwned1) `touch {dir}/pwned2`; touch {dir}/pwned3 \"q\" *\nsecond line"
    );
    let toml_value = hostile
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let site = format!("{dir}/sites/it's a $(site) `dir`;");
    let config = format!(
        r#"[ssh]
config = "{dir}/ssh_config"

[vars]
hostile = "{toml_value}"

[deploy]
path = "{site}/{{env}}"
shared = ["data dir/", "it's.txt"]
build = ["printf '%s' {{hostile}} > hostile.txt", "printf '%s' \"$HOSTILE\" > env.txt", "printf '%s' {{release}} > release.txt"]
env = {{ HOSTILE = "{{hostile}}" }}

[environments.staging]
hosts = ["{address}"]
"#,
        address = t.address(0)
    );
    t.write_config(&config);
    t.commit("Add config", &[]);

    t.gantry(&["deploy", "staging"]).success();

    let current = std::path::Path::new(&site).join("staging/current");
    assert_eq!(
        std::fs::read_to_string(current.join("hostile.txt")).unwrap(),
        hostile
    );
    assert_eq!(
        std::fs::read_to_string(current.join("env.txt")).unwrap(),
        hostile
    );
    let release = std::fs::read_to_string(current.join("release.txt")).unwrap();
    assert!(
        release.starts_with(&format!("{site}/staging/releases/")),
        "{release}"
    );
    assert!(current.join("data dir").is_symlink());
    assert!(current.join("it's.txt").is_symlink());
    for n in 1..=3 {
        assert!(
            !t.dir.join(format!("pwned{n}")).exists(),
            "a config value ran as a command"
        );
    }
    let _ = t.app_port("staging", 0);
}

#[test]
fn plan_prints_the_commands_and_changes_nothing() {
    let mut t = Test::new().hosts(2).start();
    let config = t.config(&[("staging", &[0, 1])]);
    t.write_config(&config);
    let sha = t.commit("Add config", &[]);

    let run = t.gantry(&["plan", "staging"]);
    run.success()
        .stdout_has(&format!(
            "Plan: deploy {} (Add config) to staging",
            &sha[..8]
        ))
        .stdout_has(&format!(
            "== {} ({}; web)",
            t.address(1),
            t.site("staging", 1).display()
        ))
        .stdout_has("# upload (stdin: git archive of the commit)")
        .stdout_has("tar -x -f - -C")
        .stdout_has("cd ")
        .stdout_has("sh ci/hooks.sh")
        .stdout_has("python3 migrate.py")
        .stdout_has("mv -T")
        .stdout_has("GET http://127.0.0.1:")
        .stdout_has("Nothing was run.")
        .stdout_has("else they are reversed by\n# nothing: `[database] reverse` is not set;");
    // Migrations run once: only the first host's plan has them.
    assert_eq!(run.stdout.matches("# migrate").count(), 1);
    assert!(!t.site("staging", 0).exists());
    assert!(!t.site("staging", 1).exists());

    let json = t.gantry(&["plan", "staging", "--json"]);
    json.success();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan --json is JSON");
    assert_eq!(value["commit"], sha.as_str());
    let steps: Vec<&str> = value["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "lock",
            "upload",
            "link shared",
            "build 1/2",
            "build 2/2",
            "finish release",
            "check pending migrations",
            "fingerprint the database",
            "rehearse on a copy",
            "back up the database",
            "migrate",
            "if the deploy is put back after this",
            "switch current",
            "restart"
        ]
    );
    assert!(!t.site("staging", 0).exists());
}

#[test]
fn exec_check_and_status_report_every_host() {
    let mut t = Test::new().hosts(2).start();
    let sha = t.configure(&[("staging", &[0, 1])]);

    t.gantry(&["check"])
        .success()
        .stdout_has(&format!("staging {}: ok", t.address(1)));
    t.gantry(&["deploy", "staging"]).success();

    let exec = t.gantry(&["exec", "staging", "--", "cat", "REVISION"]);
    exec.success()
        .stdout_has(&format!("[{}] {sha}", t.address(0)))
        .stdout_has(&format!("[{}] {sha}", t.address(1)));
    t.gantry(&["exec", "staging", "--", "sh", "-c", "exit 7"])
        .code(1)
        .stderr_has("(exit status 7)");

    let status = t.gantry(&["status", "--json"]);
    status.success();
    let value: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let hosts = value["environments"][0]["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    for h in hosts {
        assert_eq!(h["commit"], sha.as_str());
        assert_eq!(h["last"]["outcome"], "ok");
    }
    let log = t.gantry(&["log", "staging", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&log.stdout).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 2);
}

#[test]
fn user_comes_from_the_ssh_config_not_the_local_user() {
    let mut t = Test::new().hosts(1).start();
    let mut ssh_config = std::fs::read_to_string(t.dir.join("ssh_config")).unwrap();
    ssh_config.push_str("  User root\n");
    std::fs::write(t.dir.join("ssh_config"), ssh_config).unwrap();
    let address = t.address(0);
    let bare = address.trim_start_matches("root@");
    let config = t
        .config(&[("staging", &[0])])
        .replace(&address, bare)
        .replace("/sites/{env}/{hostid}", "/sites/{env}/{user}");
    assert!(config.contains(&format!("\"{bare}\"")), "{config}");
    t.write_config(&config);
    t.commit("Hosts without a user", &[]);
    let out = t
        .command(&["deploy", "staging"])
        .env("USER", "someone-else")
        .env("LOGNAME", "someone-else")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.dir.join("sites/staging/root/current").exists());
    assert!(!t.dir.join("sites/staging/someone-else").exists());
}

#[test]
fn connections_a_busy_jump_host_drops_are_made_again() {
    let (t, aliases) = eight_hosts_behind_one_busy_sshd("");
    let run = t.gantry(&["-v", "status", "staging"]);
    run.success().stderr_has("connect again");
    for a in &aliases {
        run.stdout_has(a);
    }
}

#[test]
fn handshakes_are_bounded_by_max_concurrent_starts() {
    // One handshake at a time: the busy sshd, which drops a connection
    // when two have not authenticated yet, never has to drop one. (Two at
    // a time would be racy: sshd counts a connection as authenticated a
    // moment after the client does, so a third can come while it still
    // counts two.)
    let (t, aliases) = eight_hosts_behind_one_busy_sshd("max_concurrent_starts = 1\n");
    let run = t.gantry(&["-v", "status", "staging"]);
    run.success().stderr_lacks("connect again");
    for a in &aliases {
        run.stdout_has(a);
    }
}

/// Eight hosts that all reach one sshd, as hosts behind one jump host
/// each open a connection to it; like a bastion under sshd's
/// `MaxStartups`, beyond 2 connections that have not authenticated yet it
/// drops every new one. `ssh` is added to the config's `[ssh]`.
fn eight_hosts_behind_one_busy_sshd(ssh: &str) -> (Test, Vec<String>) {
    let mut t = Test::new().hosts(1).start();
    let sshd = &t.hosts[0];
    sshd.reconfigure("MaxStartups 2:100:2\n");
    let (ip, port) = (sshd.ip.clone(), sshd.port);
    let mut ssh_config = std::fs::read_to_string(t.dir.join("ssh_config")).unwrap();
    let aliases: Vec<String> = (0..8).map(|i| format!("behind{i}")).collect();
    ssh_config = format!(
        "Host {}\n  HostName {ip}\n  Port {port}\n  User root\n{ssh_config}",
        aliases.join(" ")
    );
    std::fs::write(t.dir.join("ssh_config"), ssh_config).unwrap();
    let config = t.config(&[("staging", &[0])]);
    let head = config.split("\n[environments.staging]").next().unwrap();
    let head = head.replacen("[ssh]\n", &format!("[ssh]\n{ssh}"), 1);
    let hosts: Vec<String> = aliases
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!("{{ address = \"{a}\", vars = {{ hostid = \"h{i}\", app_port = \"1\" }} }}")
        })
        .collect();
    t.write_config(&format!(
        "{head}\n[environments.staging]\nhosts = [{}]\n",
        hosts.join(", ")
    ));
    t.commit("Eight hosts behind one sshd", &[]);
    (t, aliases)
}

/// Sixteen hosts in `live`, their config written.
fn sixteen_hosts() -> (usize, Test) {
    let n = 16;
    let mut t = Test::new().hosts(n).start();
    let all: Vec<usize> = (0..n).collect();
    let config = t.config(&[("live", &all)]);
    t.write_config(&config);
    (n, t)
}

/// `gantry deploy live` started by a shell that first runs `ulimit`.
pub fn deploy_under(t: &Test, ulimit: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ulimit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_gantry"))
        .args(["deploy", "live"])
        .current_dir(&t.repo)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Sixteen hosts at once under a soft limit of 24 open files (the hard one
/// higher, as on most systems): Gantry raises its soft limit to the hard
/// one at start, so the deploy is whole, where 24 descriptors are too few
/// even to connect sixteen hosts.
#[test]
fn many_hosts_under_a_low_soft_open_files_limit_deploy_whole() {
    let (n, mut t) = sixteen_hosts();
    let sha = t.commit("Many hosts", &[]);
    let out = deploy_under(&t, "ulimit -Sn 24");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for i in 0..n {
        assert_eq!(
            t.get("live", i, "/health").unwrap().1.trim(),
            format!("ok {sha}")
        );
    }
}

/// The same sixteen hosts under hard limits of 24 to 88 open files: a
/// process that finds no descriptor free (an SSH master, a channel, a
/// shell, git) waits for other hosts' to be given back, so the deploy is
/// whole, with no lock left (before the waits, at these limits a
/// connection, git or a step failed, and one host in a few runs was
/// switched and could not be put back).
#[test]
fn running_out_of_descriptors_leaves_every_host_as_it_was() {
    let (n, t) = sixteen_hosts();
    t.commit("Many hosts", &[]);
    t.gantry(&["deploy", "live"]).success();
    for (k, limit) in [24, 32, 48, 88].into_iter().enumerate() {
        let sha = t.commit(&format!("Change {k}"), &[("notes.txt", &format!("{k}\n"))]);
        let out = deploy_under(&t, &format!("ulimit -n {limit}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "limit {limit}\n{stderr}");
        for i in 0..n {
            let current = t.current("live", i);
            assert!(
                current.as_deref().is_some_and(|c| c.ends_with(&sha[..8])),
                "host {i} at limit {limit}: {current:?}\n{stderr}"
            );
            assert!(
                !t.site("live", i).join(".gantry/lock").exists(),
                "host {i} is left locked at limit {limit}\n{stderr}"
            );
        }
    }
}

#[test]
fn check_names_max_startups_when_a_server_drops_every_connection() {
    let mut t = Test::new().hosts(1).start();
    // A "host" whose sshd drops every connection before the key exchange,
    // as one past its `MaxStartups` does.
    let dropper = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dropper.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in dropper.incoming() {
            drop(conn);
        }
    });
    let config = t.config(&[("staging", &[0])]);
    let hosts_end = config.rfind("\n]\n").unwrap();
    t.write_config(&format!(
        "{},\n  {{ address = \"root@127.0.0.1:{port}\", vars = {{ hostid = \"h9\", app_port = \"1\" }} }}{}",
        &config[..hosts_end],
        &config[hosts_end..]
    ));
    t.commit("A host that drops connections", &[]);
    t.gantry(&["check", "staging"])
        .code(3)
        .stderr_has(&format!("127.0.0.1:{port}"))
        .stderr_has("again and again: sshd does so past its `MaxStartups`");
}

/// How OpenSSH sees hosts that no `Host` pattern of the ssh_config but `*`
/// singles out is asked once for all of them; a host a pattern names is
/// asked on its own (a test counts the `ssh -G` calls through a `ssh` on
/// `PATH` that logs them).
#[test]
fn hosts_the_ssh_config_does_not_single_out_cost_one_ssh_g() {
    let t = Test::new().start();
    let bin = t.dir.join("counting-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = t.dir.join("ssh-g.log");
    let ssh = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v ssh"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" -G \"*) echo \"$*\" >> {} ;; esac\nexec {} \"$@\"\n",
            log.display(),
            ssh.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let hosts: Vec<String> = (1..=6).map(|i| format!("\"Web{i}\"")).collect();
    let plan = |ssh_config: &str| {
        std::fs::write(t.dir.join("fleet_ssh_config"), ssh_config).unwrap();
        let _ = std::fs::remove_file(&log);
        t.write_config(&format!(
            "[ssh]\nconfig = \"{}/fleet_ssh_config\"\n[deploy]\npath = \"/srv/{{host}}/{{user}}/{{port}}\"\n\
             [environments.live]\nhosts = [{}]\n",
            t.dir.display(),
            hosts.join(", ")
        ));
        let out = t
            .command(&["plan", "live"])
            .env("PATH", &path)
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        (String::from_utf8_lossy(&out.stdout).into_owned(), calls)
    };
    let (shown, calls) = plan("Host *\n  User deploy\n  Port 2200\n");
    assert_eq!(calls, 1, "{shown}");
    for i in 1..=6 {
        assert!(
            shown.contains(&format!("/srv/web{i}/deploy/2200")),
            "{shown}"
        );
    }
    let (shown, calls) =
        plan("Host Web3\n  HostName 10.0.0.3\n  User ops\nHost *\n  User deploy\n");
    assert_eq!(calls, 2, "{shown}");
    assert!(shown.contains("/srv/10.0.0.3/ops/22"), "{shown}");
    assert!(shown.contains("/srv/web4/deploy/22"), "{shown}");
    let (shown, calls) = plan("Match all\n  User ops\n");
    assert_eq!(calls, 6, "{shown}");
    assert!(shown.contains("/srv/web6/ops/22"), "{shown}");
}
