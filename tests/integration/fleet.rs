//! A fleet: 300 hosts (names in the test's ssh_config, all one real sshd)
//! deployed under a hard limit of 256 open files, where every host's
//! channel open at once would take about 1,500: commands run as many at a
//! time as the limit allows, and the deploy is whole, no lock left. Its
//! progress is counts of hosts per step, and a host that fails is named.

use crate::harness::Test;

/// `n` hosts `fleet000`… in the test's ssh_config, all its one sshd, each
/// with its own site folder (`sites/live/fNNN`), `parallel = 32`, and
/// `deploy` holding more keys of `[deploy]`.
fn write_fleet(t: &Test, n: usize, deploy: &str) {
    let (ip, port) = (t.ip(0).to_string(), t.hosts[0].port);
    let ssh_config = t.dir.join("ssh_config");
    let mut ssh = std::fs::read_to_string(&ssh_config).unwrap();
    let mut hosts = String::new();
    for i in 0..n {
        ssh = format!("Host fleet{i:03}\n  HostName {ip}\n  Port {port}\n  User root\n{ssh}");
        hosts.push_str(&format!(
            "  {{ address = \"fleet{i:03}\", vars = {{ hostid = \"f{i:03}\" }} }},\n"
        ));
    }
    std::fs::write(&ssh_config, ssh).unwrap();
    let config = format!(
        "[app]\nname = \"fleet\"\n\n[ssh]\nconfig = \"{c}\"\n\n[deploy]\npath = \"{d}/sites/{{env}}/{{hostid}}\"\nparallel = 32\n{deploy}\n[environments.live]\nhosts = [\n{hosts}]\n",
        c = ssh_config.display(),
        d = t.dir.display(),
    );
    t.write_config(&config);
}

/// Past 20 hosts a host that fails is named on a line of its own as it
/// fails, the count line counts the hosts done and failed, and the error
/// says what the hosts serve in a line per group; nothing is switched
/// anywhere.
#[test]
fn a_host_failing_among_many_is_named_and_counted() {
    let n = 24;
    let t = Test::new().hosts(1).start();
    write_fleet(&t, n, "build = [\"test {hostid} != f007\"]\n");
    t.commit("A fleet", &[]);
    let run = t.gantry(&["deploy", "live"]);
    run.code(1)
        .stderr_has("[fleet007] build 1/1 failed")
        // What every host serves: one line, not 24.
        .stderr_has("all 24 hosts: nothing (no release was live)");
    let counts: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[24 hosts] "))
        .collect();
    assert!(
        counts.iter().any(|l| l.contains(" failed")),
        "no count line counts the failed host\n{}",
        run.stderr
    );
    // No other host is named on a line of its own.
    let named = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[fleet"))
        .count();
    assert_eq!(named, 1, "{}", run.stderr);
    for i in 0..n {
        let site = t.dir.join(format!("sites/live/f{i:03}"));
        assert!(!site.join("current").exists(), "host {i} was switched");
        assert!(
            !site.join(".gantry/lock").exists(),
            "host {i} is left locked"
        );
    }
}

#[test]
fn three_hundred_hosts_under_256_open_files_deploy_whole() {
    let n = 300;
    let t = Test::new().hosts(1).start();
    // No build, no restart, no check: the cost is the hosts'.
    write_fleet(&t, n, "");
    let first = t.commit("A fleet", &[]);
    // Progress is counts of hosts per step, not a line per host and step.
    let run = t.gantry(&["deploy", "live"]);
    run.success().stderr_has("[300 hosts] ");
    let lines = run.stderr.lines().count();
    assert!(lines < 150, "{lines} lines of progress\n{}", run.stderr);
    let current = |i: usize| {
        let link = t.dir.join(format!("sites/live/f{i:03}/current"));
        std::fs::read_link(link).ok()
    };
    let before: Vec<_> = (0..n).map(current).collect();
    assert!(before.iter().all(|c| c
        .as_ref()
        .is_some_and(|c| c.to_string_lossy().ends_with(&first[..8]))));

    let second = t.commit("Second", &[("notes.txt", "two\n")]);
    let out = crate::hosts::deploy_under(&t, "ulimit -n 256");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for i in 0..n {
        let c = current(i).map(|c| c.to_string_lossy().into_owned());
        assert!(
            c.as_deref().is_some_and(|c| c.ends_with(&second[..8])),
            "host {i}: {c:?}"
        );
        let lock = t.dir.join(format!("sites/live/f{i:03}/.gantry/lock"));
        assert!(!lock.exists(), "host {i} is left locked\n{stderr}");
    }
}
