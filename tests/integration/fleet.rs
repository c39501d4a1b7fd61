//! A fleet: 300 hosts (names in the test's ssh_config, all one real sshd)
//! deployed under a hard limit of 256 open files, where every host's
//! channel open at once would take about 1,500: commands run as many at a
//! time as the limit allows, and the deploy is whole, no lock left. Its
//! progress is counts of hosts per step.

use crate::harness::Test;

#[test]
fn three_hundred_hosts_under_256_open_files_deploy_whole() {
    let n = 300;
    let t = Test::new().hosts(1).start();
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
    // No build, no restart, no check: the cost is the hosts'.
    let config = format!(
        "[app]\nname = \"fleet\"\n\n[ssh]\nconfig = \"{c}\"\n\n[deploy]\npath = \"{d}/sites/{{env}}/{{hostid}}\"\nparallel = 32\n\n[environments.live]\nhosts = [\n{hosts}]\n",
        c = ssh_config.display(),
        d = t.dir.display(),
    );
    t.write_config(&config);
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
