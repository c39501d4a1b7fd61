//! The error of a hook that stopped a deploy, and problems on many hosts
//! and what they serve.

use insta::assert_snapshot;

use super::*;

#[test]
fn a_failed_hook_before_anything_changed() {
    let e = Error::HookFailed {
        hook: "before_deploy".into(),
        detail: "`./notify.sh start` (on this machine) exited with status 1\nslack: no token"
            .into(),
    };
    assert_eq!(e.exit_status(), ExitStatus::Failed);
    assert_snapshot!(e.to_string(), @r"
    the `before_deploy` hook failed, and nothing was changed: `./notify.sh start` (on this machine) exited with status 1
    slack: no token
    ");
}

#[test]
fn problems_that_differ_only_by_their_host_are_written_once() {
    let refused = |host: &str| HostProblem {
        host: host.into(),
        step: "connect".into(),
        detail: "cannot connect: Connection refused".into(),
        unreachable: true,
        ..HostProblem::default()
    };
    let mut problems: Vec<HostProblem> =
        (1..=300).map(|i| refused(&format!("web{i:03}"))).collect();
    problems.insert(
        1,
        HostProblem {
            detail: "cannot connect: Permission denied (publickey)".into(),
            ..refused("db1")
        },
    );
    let e = Error::Unreachable {
        env: "live".into(),
        problems,
    };
    assert_snapshot!(e.to_string(), @r"
    cannot reach 301 of the hosts of `live`; nothing was changed
      web001, web002, web003 and 297 more: connect failed
        reason:
          cannot connect: Connection refused
      db1: connect failed
        reason:
          cannot connect: Permission denied (publickey)
      = help: check that `ssh HOST` works from this machine
    ");
}

#[test]
fn what_many_hosts_serve_is_one_line_per_group() {
    let old = "20261125T090000.000Z-aaaaaaaa";
    let mut serving: Vec<(String, String)> = (0..300)
        .map(|i| (format!("web{i:03}"), old.to_string()))
        .collect();
    serving[5].1 = NO_RELEASE.into();
    serving[9].1 = NO_RELEASE.into();
    let f = Failure {
        problems: vec![problem("web007", "restart")],
        serving,
        notes: vec![],
        stuck: vec![("web007".into(), "20261126T100000.000Z-01234567".into())],
        ..failure()
    };
    assert_snapshot!(Error::Failed(Box::new(f)).to_string(), @r"
    deploy to `live` failed on 1 host
      web007: restart failed (exit status 3)
        command: sudo systemctl restart gunicorn
        output:
          Job for gunicorn.service failed.
      these hosts could not be put back and run the new release:
        web007: 20261126T100000.000Z-01234567
      what each host serves now:
        web005, web009: nothing (no release was live)
        web007: 20261126T100000.000Z-01234567 (the new release: it could not be put back)
        the other 297 hosts: 20261125T090000.000Z-aaaaaaaa
      = help: when the hosts above can be reached, check them with `gantry status live`, clear the lock with `gantry unlock live`, and deploy again (the commit you want everywhere)
    ");
}

#[test]
fn connections_this_machine_could_not_start_are_a_local_error() {
    let local = |host: &str| {
        HostProblem {
        host: host.into(),
        step: "connect".into(),
        detail: "cannot start an SSH master on this machine: Too many open files (os error 24) (its open-files limit, `ulimit -n`, is too low for this many hosts: raise its hard limit)".into(),
        unreachable: false,
        ..HostProblem::default()
    }
    };
    let e = Error::Unreachable {
        env: "live".into(),
        problems: (1..=16).map(|i| local(&format!("web{i:02}"))).collect(),
    };
    assert_eq!(e.exit_status(), ExitStatus::Error);
    assert_snapshot!(e.to_string(), @r"
    could not connect to 16 of the hosts of `live`: this machine could not start what a connection needs; nothing was changed
      web01, web02, web03 and 13 more: connect failed
        reason:
          cannot start an SSH master on this machine: Too many open files (os error 24) (its open-files limit, `ulimit -n`, is too low for this many hosts: raise its hard limit)
      = help: raise the limit the reason names on this machine (open files: the hard limit, `ulimit -Hn`, set by `nofile` in /etc/security/limits.conf or `LimitNOFILE=` for a service) and deploy again; docs/fleets.md says how much a fleet needs
    ");
}
