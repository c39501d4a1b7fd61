//! A handover instead of a restart (`[deploy.handover]`): the new release's
//! app is started beside the one serving, on the other of two ports,
//! checked there before any traffic reaches it, then the proxy's upstream
//! file is pointed at it and the proxy reloaded gracefully, then the old
//! app is given `drain` to finish its requests and stopped. Before the
//! move a failure stops the new app and leaves traffic where it was; a
//! failed move points the upstream back. The slot serving is kept in
//! `.gantry/handover/slot`. This module writes that part of the host-side
//! activation program (`activation`).

use crate::base::shell::quote;
use crate::remote::release::{self, Layout};

/// What a handover runs on a host, each per slot (0 and 1) where the
/// port decides: rendered by the controller, chosen on the host.
pub struct Scripts {
    /// The new release's app started on the slot's port.
    pub start: [String; 2],
    /// The new release's app checked on the slot's port.
    pub check: [String; 2],
    /// The new release's app stopped.
    pub stop_new: [String; 2],
    /// The app of the release serving before stopped; `None` when no
    /// release was live.
    pub stop_old: Option<[String; 2]>,
    /// Each slot's port.
    pub ports: [String; 2],
    /// The upstream file's content for each slot.
    pub lines: [String; 2],
    /// The upstream file.
    pub upstream: String,
    /// Makes the proxy read the upstream file (graceful).
    pub reload: String,
    /// Seconds the old app is given to finish its requests.
    pub drain: f64,
}

/// The file naming the slot (0 or 1) that takes traffic.
pub fn slot_file(layout: &Layout) -> String {
    format!("{}/handover/slot", layout.gantry())
}

/// The file that tells the app started on `port` which release it runs
/// (`GANTRY_RELEASE=/path/releases/NAME`): a systemd template unit per
/// port reads it (`EnvironmentFile=`).
pub fn release_file(layout: &Layout, port: &str) -> String {
    format!("{}/handover/{port}.env", layout.gantry())
}

/// `server …;` for nginx's upstream: a port, or a unix socket's path.
pub fn upstream_line(port: &str) -> String {
    if port.contains('/') {
        format!("server unix:{port};\n")
    } else {
        format!("server 127.0.0.1:{port};\n")
    }
}

/// A shell function `name` that runs `scripts[slot]` in a subshell, the
/// slot in `$1`.
fn by_slot(name: &str, scripts: &[String; 2]) -> String {
    format!(
        "{name}() {{\n  if [ \"$1\" = 0 ]; then (\n{}\n  ) else (\n{}\n  ) fi\n}}\n",
        scripts[0], scripts[1]
    )
}

impl Scripts {
    /// Stops the new release's app on the slot it took, and forgets the
    /// slot: after a failed first deploy, when no release serves.
    pub fn stop_script(&self, layout: &Layout) -> String {
        let slot = quote(&slot_file(layout));
        format!(
            "{}s=$(cat {slot} 2>/dev/null || true)\ncase \"$s\" in 0|1) stop_new \"$s\" ;; esac\nrm -f {slot}",
            by_slot("stop_new", &self.stop_new)
        )
    }

    /// The handover part of the activation program of `release` (after
    /// its `phase` and `verdict` functions): start, check, switch, move,
    /// drain, stop the old. Ends with `verdict` on failure; falls through
    /// on success.
    pub fn program(&self, layout: &Layout, release: &str, previous: Option<&str>) -> String {
        let slot = quote(&slot_file(layout));
        let upstream = quote(&self.upstream);
        let mut s = by_slot("start_new", &self.start);
        s.push_str(&by_slot("check_new", &self.check));
        s.push_str(&by_slot("stop_new", &self.stop_new));
        match &self.stop_old {
            Some(stop) => s.push_str(&by_slot("stop_old", stop)),
            None => s.push_str("stop_old() { :; }\n"),
        }
        s.push_str(&format!(
            "reload_proxy() {{ (\n{}\n) }}\n\
             write_upstream() {{ if [ \"$1\" = 0 ]; then l={l0}; else l={l1}; fi; printf '%s' \"$l\" > {upstream}.tmp && mv -f {upstream}.tmp {upstream}; }}\n",
            self.reload,
            l0 = quote(&self.lines[0]),
            l1 = quote(&self.lines[1]),
        ));
        let switch_back = release::switch_back_script(layout, previous);
        s.push_str(&format!(
            "old=$(cat {slot} 2>/dev/null || true)\n\
             if [ \"$old\" = 0 ]; then new=1; else new=0; fi\n\
             phase start\n\
             mkdir -p \"$(dirname {slot})\"\n\
             if [ $new = 0 ]; then r={r0}; else r={r1}; fi\n\
             printf 'GANTRY_RELEASE=%s\\n' {dir} > \"$r\"\n\
             start_new $new; rc=$?\n\
             if [ $rc -ne 0 ]; then stop_new $new; verdict \"failed|start|$rc|old\"; exit 0; fi\n\
             phase 'health check'\n\
             check_new $new; rc=$?\n\
             if [ $rc -ne 0 ]; then stop_new $new; verdict \"failed|health check|$rc|old\"; exit 0; fi\n\
             phase switch\n\
             {{\n{switch}\n}} >/dev/null || {{ stop_new $new; verdict 'failed|switch|1|old'; exit 0; }}\n\
             phase 'move traffic'\n\
             mkdir -p \"$(dirname {slot})\"\n\
             [ -f {upstream} ] && cp -p {upstream} {upstream}.before\n\
             write_upstream $new && reload_proxy; rc=$?\n\
             if [ $rc -ne 0 ]; then\n\
             \x20 if [ -f {upstream}.before ]; then mv -f {upstream}.before {upstream}; else rm -f {upstream}; fi\n\
             \x20 reload_proxy >/dev/null 2>&1\n\
             \x20 {{\n{switch_back}\n}} >/dev/null 2>&1\n\
             \x20 stop_new $new\n\
             \x20 verdict \"failed|move traffic|$rc|back\"; exit 0\n\
             fi\n\
             rm -f {upstream}.before\n\
             printf '%s\\n' $new > {slot}\n\
             if [ -n \"$old\" ]; then\n\
             \x20 phase drain\n\
             \x20 sleep {drain}\n\
             \x20 stop_old $old || echo 'stopping the old app failed' >&2\n\
             fi\n",
            switch = release::switch_script(layout, release),
            drain = self.drain,
            r0 = quote(&release_file(layout, &self.ports[0])),
            r1 = quote(&release_file(layout, &self.ports[1])),
            dir = quote(&layout.release(release)),
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::activation::{parse, Activation, HostState, Verdict};

    /// A site with releases `old` and `new`, `old` serving on slot 0; each
    /// step writes what it did to `log`.
    fn site(name: &str) -> (std::path::PathBuf, Layout) {
        let dir = std::env::temp_dir().join(format!("gantry-hand-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for r in ["old", "new"] {
            std::fs::create_dir_all(dir.join("releases").join(r)).unwrap();
        }
        std::fs::create_dir_all(dir.join(".gantry/handover")).unwrap();
        std::fs::write(dir.join(".gantry/handover/slot"), "0\n").unwrap();
        std::fs::write(dir.join("upstream"), "server 127.0.0.1:8001;\n").unwrap();
        let layout = Layout::new(dir.to_str().unwrap());
        crate::base::shell::run_for_test(&release::switch_script(&layout, "old"));
        (dir, layout)
    }

    fn scripts(dir: &std::path::Path, check: &str, reload: &str) -> Scripts {
        let log = |what: &str| format!("echo {what} >> {}/log", dir.display());
        Scripts {
            start: [log("start-new-0"), log("start-new-1")],
            check: [check.to_string(), check.to_string()],
            stop_new: [log("stop-new-0"), log("stop-new-1")],
            stop_old: Some([log("stop-old-0"), log("stop-old-1")]),
            lines: [upstream_line("8001"), upstream_line("8002")],
            ports: ["8001".into(), "8002".into()],
            upstream: format!("{}/upstream", dir.display()),
            reload: format!("{}; {reload}", log("reload")),
            drain: 0.0,
        }
    }

    fn run(layout: &Layout, scripts: Scripts) -> Verdict {
        let a = Activation {
            layout,
            release: "new",
            put_back: Some(Some("old")),
            restart: None,
            check: None,
            check_back: None,
            handover: Some((scripts, Some("old"))),
        };
        parse(&crate::base::shell::run_for_test(&a.run_script()))
    }

    fn read(dir: &std::path::Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap_or_default()
    }

    #[test]
    fn moves_traffic_to_the_other_slot_then_stops_the_old_app() {
        let (dir, layout) = site("ok");
        assert_eq!(run(&layout, scripts(&dir, "true", "true")), Verdict::Ok);
        assert_eq!(read(&dir, "log"), "start-new-1\nreload\nstop-old-0\n");
        assert_eq!(read(&dir, "upstream"), "server 127.0.0.1:8002;\n");
        assert_eq!(read(&dir, ".gantry/handover/slot"), "1\n");
        // What a per-port systemd unit reads to know the release it runs.
        assert_eq!(
            read(&dir, ".gantry/handover/8002.env"),
            format!("GANTRY_RELEASE={}/releases/new\n", dir.display())
        );
        assert_eq!(
            std::fs::read_link(dir.join("current")).unwrap().to_str(),
            Some("releases/new")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_host_s_other_roles_restart_after_the_move_and_a_failure_is_left_to_the_controller() {
        let (dir, layout) = site("roles");
        let worker = |restart: &str, check: &str| Activation {
            layout: &layout,
            release: "new",
            put_back: Some(Some("old")),
            restart: Some(format!("echo worker >> {}/log; {restart}", dir.display())),
            check: Some(check.to_string()),
            check_back: None,
            handover: Some((scripts(&dir, "true", "true"), Some("old"))),
        };
        let verdict = parse(&crate::base::shell::run_for_test(
            &worker("true", "true").run_script(),
        ));
        assert_eq!(verdict, Verdict::Ok);
        assert_eq!(
            read(&dir, "log"),
            "start-new-1\nreload\nstop-old-0\nworker\n"
        );
        let verdict = parse(&crate::base::shell::run_for_test(
            &worker("true", "exit 5").run_script(),
        ));
        let Verdict::Failed {
            step, code, state, ..
        } = verdict
        else {
            panic!("it fails");
        };
        assert_eq!(
            (step.as_str(), code, state),
            ("health check", Some(5), HostState::New)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_check_stops_the_new_app_and_moves_nothing() {
        let (dir, layout) = site("check");
        let Verdict::Failed { step, state, .. } = run(&layout, scripts(&dir, "exit 4", "true"))
        else {
            panic!("it fails");
        };
        assert_eq!((step.as_str(), state), ("health check", HostState::Old));
        assert_eq!(read(&dir, "log"), "start-new-1\nstop-new-1\n");
        assert_eq!(read(&dir, "upstream"), "server 127.0.0.1:8001;\n");
        assert_eq!(read(&dir, ".gantry/handover/slot"), "0\n");
        assert_eq!(
            std::fs::read_link(dir.join("current")).unwrap().to_str(),
            Some("releases/old")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_reload_puts_the_upstream_and_current_back() {
        let (dir, layout) = site("reload");
        // The reload fails while the upstream names the new port.
        let reload = format!("! grep -q 8002 {}/upstream", dir.display());
        let Verdict::Failed { step, state, .. } = run(&layout, scripts(&dir, "true", &reload))
        else {
            panic!("it fails");
        };
        assert_eq!((step.as_str(), state), ("move traffic", HostState::Back));
        assert_eq!(read(&dir, "upstream"), "server 127.0.0.1:8001;\n");
        assert_eq!(read(&dir, ".gantry/handover/slot"), "0\n");
        assert_eq!(
            std::fs::read_link(dir.join("current")).unwrap().to_str(),
            Some("releases/old")
        );
        assert!(
            read(&dir, "log").ends_with("stop-new-1\n"),
            "{}",
            read(&dir, "log")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_stop_after_a_failed_first_deploy_stops_the_slot_it_took() {
        let (dir, layout) = site("stop");
        std::fs::write(dir.join(".gantry/handover/slot"), "1\n").unwrap();
        crate::base::shell::run_for_test(&scripts(&dir, "true", "true").stop_script(&layout));
        assert_eq!(read(&dir, "log"), "stop-new-1\n");
        assert!(!dir.join(".gantry/handover/slot").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
