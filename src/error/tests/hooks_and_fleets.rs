//! The error of a hook that stopped a deploy, and problems on many hosts.

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
