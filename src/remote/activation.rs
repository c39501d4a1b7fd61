//! One host's activation as one script that runs detached on the host
//! (`setsid`, SIGHUP ignored): switch `current`, restart, run the host-side health
//! check, and on a failure put the host back by itself (switch back,
//! restart the old release). It finishes whatever happens to the
//! controller or the network, and leaves its verdict in
//! `.gantry/activation/verdict`; the controller starts it, waits for the
//! verdict, and coordinates hosts. The release that was last activated to
//! the end is kept in `.gantry/activated`, which `status` compares with
//! `current`.

use crate::base::shell::quote;
use crate::config::Health;
use crate::remote::release::{self, Layout};

/// What one activation runs on a host.
pub struct Activation<'a> {
    pub layout: &'a Layout,
    /// The release `current` is switched to.
    pub release: &'a str,
    /// Where to put the host back when a step fails: `Some(previous)`
    /// (`Some(None)`: no release was live, so `current` is removed), or
    /// `None` not to put it back (a put-back itself).
    pub put_back: Option<Option<&'a str>>,
    /// The restart, as a complete script (run in `current`).
    pub restart: Option<String>,
    /// The host-side health check, as a complete script that exits 0 when
    /// the app is healthy.
    pub check: Option<String>,
    /// The host-side health check of the release a put-back returns to:
    /// the host is back only once that release answers again.
    pub check_back: Option<String>,
    /// A handover instead of the web app's restart (`[deploy.handover]`),
    /// and the release `current` points at before (where a failed move
    /// puts it); `restart` and `check` are then the host's other roles'.
    pub handover: Option<(crate::remote::handover::Scripts, Option<&'a str>)>,
}

/// The folder where an activation keeps its phase, log and verdict.
pub fn dir(layout: &Layout) -> String {
    format!("{}/activation", layout.gantry())
}

/// Touched by every activation that went through: the app read the env
/// file then (`data::env_file`).
pub fn env_started_file(layout: &Layout) -> String {
    format!("{}/env-started", layout.gantry())
}

/// The file naming the release last activated to the end.
pub fn activated_file(layout: &Layout) -> String {
    format!("{}/activated", layout.gantry())
}

impl Activation<'_> {
    /// The program that runs detached.
    fn program(&self) -> String {
        let d = quote(&dir(self.layout));
        let mut s = format!(
            "cd {path} || exit 1\nd={d}\nrm -f \"$d/program\"\necho $$ > \"$d/pid\"\n\
             phase() {{ printf '%s\\n' \"$1\" > \"$d/phase\"; }}\n\
             verdict() {{ printf '%s\\n' \"$1\" > \"$d/verdict.tmp\" && mv -f \"$d/verdict.tmp\" \"$d/verdict\"; }}\n",
            path = quote(&self.layout.path),
        );
        // Subshells, not `sh -c`: a script may hold the database's URL,
        // which must not stand on a command line.
        let restart = self.restart.as_ref().map(|r| format!("(\n{r}\n)"));
        if let Some((handover, serving)) = &self.handover {
            s.push_str(&handover.program(self.layout, self.release, *serving));
            // The host's other roles, once the web app moved: a failure
            // leaves the host on the new release, for the controller to
            // switch back.
            s.push_str("back() { verdict \"failed|$1|$2|new\"; exit 0; }\n");
            s.push_str(&self.restart_and_check(restart.as_deref()));
            s.push_str(&self.done());
            return s;
        }
        // back STEP CODE: puts the host back (or not), then gives the verdict.
        match self.put_back {
            Some(previous) => {
                let switch_back = release::switch_back_script(self.layout, previous);
                let mut restart_old = match (&restart, previous) {
                    (Some(r), Some(_)) => format!(
                        "{r} || {{ verdict \"failed|$1|$2|stuck|restarting the old release failed\"; exit 0; }}\n"
                    ),
                    _ => String::new(),
                };
                if let (Some(c), Some(_)) = (&self.check_back, previous) {
                    restart_old.push_str(&format!(
                        "  (\n{c}\n) || {{ verdict \"failed|$1|$2|unhealthy\"; exit 0; }}\n"
                    ));
                }
                s.push_str(&format!(
                    "back() {{\n  phase 'put back'\n  {{\n{switch_back}\n  }} >/dev/null || {{ verdict \"failed|$1|$2|stuck|switching back failed\"; exit 0; }}\n  {restart_old}  verdict \"failed|$1|$2|back\"\n  exit 0\n}}\n"
                ));
            }
            None => s.push_str("back() { verdict \"failed|$1|$2|new\"; exit 0; }\n"),
        }
        s.push_str(&format!(
            "phase switch\n{{\n{}\n}} >/dev/null || {{ verdict 'failed|switch|1|old'; exit 0; }}\n",
            release::switch_script(self.layout, self.release)
        ));
        s.push_str(&self.restart_and_check(restart.as_deref()));
        s.push_str(&self.done());
        s
    }

    /// The restart (a subshell) and the check, each calling `back STEP
    /// CODE` when it fails.
    fn restart_and_check(&self, restart: Option<&str>) -> String {
        let mut s = String::new();
        if let Some(r) = restart {
            s.push_str(&format!(
                "phase restart\n{r}\nrc=$?\n[ $rc -eq 0 ] || back restart $rc\n"
            ));
        }
        if let Some(c) = &self.check {
            s.push_str(&format!(
                "phase 'health check'\n(\n{c}\n)\nrc=$?\n[ $rc -eq 0 ] || back 'health check' $rc\n"
            ));
        }
        s
    }

    /// The end of a program that went through: what it activated, when
    /// the app read its env file, the verdict.
    fn done(&self) -> String {
        format!(
            "printf '%s\\n' {} > {}\n: > {}\nverdict ok\n",
            quote(self.release),
            quote(&activated_file(self.layout)),
            quote(&env_started_file(self.layout))
        )
    }

    /// Starts the activation detached (its own session, and SIGHUP
    /// ignored, so it finishes even if this connection or the controller
    /// goes away), waits for it in the same channel, then prints its
    /// verdict, and after a failure the end of its log. The program is
    /// written to a private file first by the shell's `printf` (it may hold
    /// the database's URL), never passed on a command line.
    pub fn run_script(&self) -> String {
        format!(
            "d={d}\n{{ [ -d \"$d\" ] || mkdir -p \"$d\"; }} && rm -f \"$d/verdict\" \"$d/verdict.tmp\" \"$d/phase\" \"$d/pid\" || exit 1\n\
             (umask 077 && printf '%s\\n' {program} > \"$d/program\") || exit 1\n\
             if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi\n\
             (trap '' HUP; exec $s sh \"$d/program\") > \"$d/log\" 2>&1 < /dev/null &\n\
             wait $! 2>/dev/null\n\
             {read}\n\
             if [ \"$v\" = ok ]; then echo ok; exit 0; fi\n\
             [ -n \"$v\" ] && printf '%s\\n' \"$v\" || echo 'failed|activation|1|unknown|the activation process ended without a verdict'\n\
             echo '--- log'\ntail -n 30 \"$d/log\" 2>/dev/null\ntrue",
            d = quote(&dir(self.layout)),
            program = quote(&self.program()),
            read = release::read_line("v", &format!("{}/verdict", dir(self.layout))),
        )
    }
}

/// An activation's outcome on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Switched, restarted and (host-side) checked.
    Ok,
    /// A step failed. `state` says where the host is now.
    Failed {
        step: String,
        code: Option<i32>,
        state: HostState,
        /// Why putting back failed, or the end of the log.
        detail: String,
    },
}

/// Where a host is after a failed activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Never switched.
    Old,
    /// Put back by the host itself.
    Back,
    /// Put back, but the old release failed its health check then.
    Unhealthy,
    /// Still on the new release (no put-back was asked for).
    New,
    /// Putting back failed: the host needs a person.
    Stuck,
    /// Unknown: the activation vanished.
    Unknown,
}

/// Reads what `run_script` printed.
pub fn parse(out: &str) -> Verdict {
    let (head, log) = out.split_once("--- log").unwrap_or((out, ""));
    let line = head.trim();
    if line == "ok" {
        return Verdict::Ok;
    }
    let mut parts = line.splitn(5, '|');
    let _failed = parts.next();
    let step = parts.next().unwrap_or("activation").to_string();
    let code = parts.next().and_then(|c| c.parse().ok());
    let state = match parts.next() {
        Some("old") => HostState::Old,
        Some("back") => HostState::Back,
        Some("unhealthy") => HostState::Unhealthy,
        Some("new") => HostState::New,
        Some("stuck") => HostState::Stuck,
        _ => HostState::Unknown,
    };
    let reason = parts.next().unwrap_or("").to_string();
    let log = log.trim().to_string();
    let detail = match (reason.is_empty(), log.is_empty()) {
        (true, _) => log,
        (false, true) => reason,
        (false, false) => format!("{reason}\n{log}"),
    };
    Verdict::Failed {
        step,
        code,
        state,
        detail,
    }
}

/// The host-side health check as a script: GETs `url` with curl (or
/// Python's urllib where curl is missing) until the status and the body
/// match, within the check's retries and interval. `as_from`: the URL the
/// check stands for, when `url` is the app's own port: its host goes in
/// `Host` (an app such as Django answers only the names it serves) and its
/// scheme in `X-Forwarded-Proto`, as the proxy in front would send them.
pub fn host_check_script(
    health: &Health,
    url: &str,
    body: Option<&str>,
    as_from: Option<&str>,
) -> String {
    let secs = health.timeout.as_secs().max(1);
    let (host, proto) = as_from
        .and_then(|u| u.split_once("://"))
        .map(|(scheme, rest)| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (host.to_string(), scheme.to_string())
        })
        .unwrap_or_default();
    let headers = if host.is_empty() {
        String::new()
    } else {
        format!(
            "-H {} -H {} ",
            quote(&format!("Host: {host}")),
            quote(&format!("X-Forwarded-Proto: {proto}"))
        )
    };
    format!(
        "u={u}\nwant={want}\nn=0\nwhile :; do\n\
         \x20 if command -v curl >/dev/null 2>&1; then out=$(curl -sS -m {secs} {headers}-w '\\n%{{http_code}}' \"$u\" 2>&1)\n\
         \x20 elif command -v python3 >/dev/null 2>&1; then out=$(python3 -c {py} \"$u\" {secs} {host_arg} {proto_arg} 2>&1)\n\
         \x20 else echo 'neither curl nor python3 is on the host'; exit 2; fi\n\
         \x20 code=$(printf '%s\\n' \"$out\" | tail -n 1)\n\
         \x20 if [ \"$code\" = {status} ]; then\n\
         \x20   case \"$out\" in *\"$want\"*) exit 0 ;; esac\n\
         \x20   last=\"status $code, but the body does not contain \\`$want\\`\"\n\
         \x20 else last=\"status $code, expected {status}: $(printf '%s\\n' \"$out\" | tail -n 2 | head -n 1)\"; fi\n\
         \x20 n=$((n + 1))\n\
         \x20 if [ $n -gt {retries} ]; then echo \"GET $u did not pass after $n attempts: $last\"; exit 1; fi\n\
         \x20 sleep {interval:.3}\ndone",
        u = quote(url),
        want = quote(body.unwrap_or("")),
        py = quote(crate::remote::health::PY_GET),
        host_arg = quote(&host),
        proto_arg = quote(&proto),
        status = health.status,
        retries = health.retries,
        interval = health.interval.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> String {
        crate::base::shell::run_for_test(script)
    }

    fn site(name: &str) -> (std::path::PathBuf, Layout) {
        let dir = std::env::temp_dir().join(format!("gantry-act-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for r in ["old", "new"] {
            std::fs::create_dir_all(dir.join("releases").join(r)).unwrap();
        }
        std::fs::create_dir_all(dir.join(".gantry")).unwrap();
        let layout = Layout::new(dir.to_str().unwrap());
        sh(&release::switch_script(&layout, "old"));
        (dir, layout)
    }

    fn current(dir: &std::path::Path) -> String {
        std::fs::read_link(dir.join("current"))
            .unwrap()
            .display()
            .to_string()
    }

    #[test]
    fn a_failed_restart_puts_the_host_back_by_itself() {
        let (dir, layout) = site("back");
        // The restart fails for the new release only.
        let restart =
            "[ \"$(readlink current)\" = releases/old ] || { echo broken; exit 3; }".to_string();
        let a = Activation {
            layout: &layout,
            release: "new",
            put_back: Some(Some("old")),
            restart: Some(format!("cd {} && {restart}", quote(&layout.path))),
            check: None,
            check_back: None,
            handover: None,
        };
        let verdict = parse(&sh(&a.run_script()));
        assert_eq!(
            verdict,
            Verdict::Failed {
                step: "restart".into(),
                code: Some(3),
                state: HostState::Back,
                detail: "broken".into()
            }
        );
        assert_eq!(current(&dir), "releases/old");
        assert!(!dir.join(".gantry/activated").exists());

        // Back only once the old release passes its check.
        let unhealthy = Activation {
            check_back: Some("echo old is down; exit 7".into()),
            ..a
        };
        let verdict = parse(&sh(&unhealthy.run_script()));
        let Verdict::Failed { state, detail, .. } = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(state, HostState::Unhealthy);
        assert_eq!(detail.lines().last(), Some("old is down"));
        assert_eq!(current(&dir), "releases/old");
        let a = Activation {
            check_back: Some("true".into()),
            ..unhealthy
        };
        assert!(matches!(
            parse(&sh(&a.run_script())),
            Verdict::Failed {
                state: HostState::Back,
                ..
            }
        ));

        let ok = Activation {
            restart: Some("true".into()),
            ..a
        };
        assert_eq!(parse(&sh(&ok.run_script())), Verdict::Ok);
        assert_eq!(current(&dir), "releases/new");
        assert_eq!(
            std::fs::read_to_string(dir.join(".gantry/activated")).unwrap(),
            "new\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Answers GETs on a loopback port: 200 when the `Host` header names
    /// `example.com` and `X-Forwarded-Proto` says https (as Django behind
    /// its proxy would), 400 otherwise. Serves `n` requests.
    fn picky_server(n: usize) -> u16 {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let mut stream = stream.unwrap();
                let mut head = Vec::new();
                for line in BufReader::new(&stream).lines() {
                    let line = line.unwrap();
                    if line.is_empty() {
                        break;
                    }
                    head.push(line.to_ascii_lowercase());
                }
                let ok = head.iter().any(|l| l == "host: example.com")
                    && head.iter().any(|l| l == "x-forwarded-proto: https");
                let status = if ok { "200 OK" } else { "400 Bad Request" };
                let _ = write!(stream, "HTTP/1.0 {status}\r\nContent-Length: 3\r\n\r\nok\n");
            }
        });
        port
    }

    #[test]
    fn a_check_on_the_app_s_own_port_sends_the_host_and_scheme_it_stands_for() {
        let health = crate::config::Health {
            retries: 0,
            ..crate::config::Health::plain()
        };
        let port = picky_server(3);
        let url = format!("http://127.0.0.1:{port}/health");
        let from = Some("https://example.com/health");
        let script = host_check_script(&health, &url, Some("ok"), from);
        assert_eq!(crate::remote::release::sh_code(&script, b""), Some(0));
        // Python's urllib, where curl is missing, sends them too.
        let py = std::process::Command::new("python3")
            .args(["-c", crate::remote::health::PY_GET, &url, "2"])
            .args(["example.com", "https"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&py.stdout);
        assert!(out.starts_with("ok") && out.ends_with("\n200"), "{out}");
        // Without them, the app refuses the check.
        let script = host_check_script(&health, &url, Some("ok"), None);
        assert_eq!(crate::remote::release::sh_code(&script, b""), Some(1));
    }
}
