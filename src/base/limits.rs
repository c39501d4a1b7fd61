//! Resource limits of this process: a deploy to many hosts holds a few
//! descriptors per host (the SSH processes' pipes), more than the usual
//! soft limit of 1,024 allows past ~200 hosts. The soft limit on open
//! files is raised to the hard one at start, as far as the system lets.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// What macOS accepts at most for a process (`OPEN_MAX`) when the hard
/// limit is "unlimited".
const MACOS_OPEN_MAX: u64 = 10_240;

/// Raises the soft limit on open files to the hard limit; returns the
/// soft limit now in force (`None`: unlimited).
pub fn raise_open_files() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return limit.current;
    }
    let set = |to: Option<u64>| {
        let raised = Rlimit {
            current: to,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised).is_ok()
    };
    if set(limit.maximum) {
        return limit.maximum;
    }
    // macOS refuses "unlimited" as a soft limit.
    let most = Some(
        limit
            .maximum
            .map_or(MACOS_OPEN_MAX, |m| m.min(MACOS_OPEN_MAX)),
    );
    if most > limit.current && set(most) {
        return most;
    }
    limit.current
}

/// `EMFILE`: this process has no descriptor left.
pub const EMFILE: i32 = 24;

/// Runs `cmd` to its end (`Command::output`) on a thread that may block;
/// when no descriptor is free (other hosts' connections hold them), waits
/// for some to be given back and tries again: 20 ms, doubling to a second,
/// for a minute at most.
pub fn output_when_free(cmd: &mut std::process::Command) -> std::io::Result<std::process::Output> {
    let mut wait = std::time::Duration::from_millis(20);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(EMFILE) && std::time::Instant::now() < until => {
                std::thread::sleep(wait + crate::base::time::jitter(wait));
                wait = (wait * 2).min(std::time::Duration::from_secs(1));
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let before = getrlimit(Resource::Nofile);
        let now = raise_open_files();
        assert_eq!(getrlimit(Resource::Nofile).current, now);
        assert!(now.is_none() || now >= before.current);
        assert!(now <= before.maximum || before.maximum.is_none());
    }
}
