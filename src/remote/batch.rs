//! Several steps of one host in one SSH channel: the prepare phase sends
//! its upload, links, builds and finish as one script, so a host costs one
//! round trip there instead of one per step. Each step still has its name
//! in the progress, its own output, and its own failure report.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

use crate::base::{secrets, shell};
use crate::cli::output::{Printer, Verbosity};
use crate::error::HostProblem;
use crate::remote::host::{Lines, Stream};
use crate::remote::release::{self, Layout, Planned};
use crate::remote::site::{interrupted, until_interrupted, Site, NOT_STARTED};

/// Starts each step's output in a batch; `MARK failed I CODE` ends a failed
/// one.
const MARK: &str = "@@gantry-step";

/// The script that runs `steps` in order and stops at the first that
/// fails, or before the next one once the file `stop` exists (Gantry
/// makes it on an interrupt). Each runs in its own `sh`, with its stderr
/// merged into its stdout and its name on its command line (for `status`
/// to find a step a killed Gantry left running, as with single steps),
/// except Gantry's own short ones (`inline`), which run in a subshell;
/// only the step that uploads reads stdin.
pub fn batch_script(path: &str, steps: &[Planned], stop: &str) -> String {
    // `${g}`: the batch's own command line must not carry the steps'
    // markers, only each step's does.
    let mut script = format!("g=gantry\ns={}\n", shell::quote(stop));
    for (i, step) in steps.iter().enumerate() {
        script.push_str(&format!(
            "[ ! -e \"$s\" ] || {{ echo '{MARK} {i}'; echo '{NOT_STARTED}'; echo '{MARK} failed {i} 130'; exit 130; }}\n"
        ));
        let stdin = if step.upload { "" } else { " </dev/null" };
        if step.inline {
            // A statement of its own, never the left of `||`: there the
            // shell would ignore the step's `set -e`.
            script.push_str(&format!(
                "echo '{MARK} {i}'\n(\n{}\n){stdin} 2>&1\nc=$?; [ $c -eq 0 ] || {{ echo \"{MARK} failed {i} $c\"; exit $c; }}\n",
                step.script
            ));
            continue;
        }
        let rest = format!(
            "{} {}\n{}",
            shell::quote(path),
            shell::quote(&step.name),
            step.script
        );
        script.push_str(&format!(
            "echo '{MARK} {i}'\nsh -c \": ${{g}}-step \"{}{stdin} 2>&1 || {{ c=$?; echo \"{MARK} failed {i} $c\"; exit $c; }}\n",
            shell::quote(&rest)
        ));
    }
    script
}

/// Returns on an interrupt, or once `stop` turns true.
async fn stop_asked(stop: Option<watch::Receiver<bool>>) {
    let stopped = async {
        if let Some(mut stop) = stop {
            if stop.wait_for(|s| *s).await.is_ok() {
                return;
            }
        }
        std::future::pending().await
    };
    tokio::select! {
        () = until_interrupted() => {}
        () = stopped => {}
    }
}

/// Makes the stop file of a batch in the lock folder, if the lock is
/// still this run's (`token`).
fn stop_script(layout: &Layout, token: &str) -> String {
    let stop = shell::quote(&format!("{}/stop", layout.lock()));
    release::if_held(layout, token, &format!(": > {stop}"))
}

/// The output of each step that ran, and the failed step with its exit
/// code, read from a batch's stdout.
fn split(stdout: &str, count: usize) -> (Vec<String>, Option<(usize, Option<i32>)>) {
    let mut outputs: Vec<String> = Vec::new();
    let mut failed = None;
    for line in stdout.split_inclusive('\n') {
        let Some(rest) = line.trim_end().strip_prefix(MARK) else {
            if let Some(last) = outputs.last_mut() {
                last.push_str(line);
            }
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words.as_slice() {
            [i] if i.parse::<usize>().is_ok_and(|i| i < count) => outputs.push(String::new()),
            ["failed", i, code] => failed = Some((i.parse().unwrap_or(0), code.parse().ok())),
            _ => {}
        }
    }
    (outputs, failed)
}

impl Site {
    /// Runs `steps` in one channel, in order, stopping at the first that
    /// fails or at an interrupt; `stdin` goes to the step that uploads;
    /// `token` is the lock this run holds here. Returns each step's
    /// output (stdout and stderr). A batch whose scripts hold a secret runs
    /// step by step instead, each on `sh -s` (see `step_with`).
    pub async fn batch(
        &self,
        printer: &Printer,
        steps: &[Planned],
        stdin: Option<&[u8]>,
        token: &str,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<Vec<String>, HostProblem> {
        if steps.iter().any(|s| secrets::contains_any(&s.script)) {
            let mut outputs = Vec::new();
            for step in steps {
                let out = self
                    .run(printer, step, stdin.filter(|_| step.upload))
                    .await?;
                outputs.push(format!("{}{}", out.stdout, out.stderr));
            }
            return Ok(outputs);
        }
        let Some(first) = steps.first() else {
            return Ok(Vec::new());
        };
        if interrupted() {
            return Err(self.problem(&first.name, first.shown.as_deref(), None, NOT_STARTED));
        }
        // The progress names each step as its mark comes; with `-v`, every
        // line the steps print is shown too.
        let verbose = printer.verbosity() == Verbosity::Verbose;
        // The step running now, for a connection that breaks mid-batch.
        let current = AtomicUsize::new(0);
        let show = |_: Stream, line: &str| match line.strip_prefix(MARK) {
            Some(rest) => {
                let i = rest.trim().parse::<usize>().ok();
                if let Some((i, step)) = i.and_then(|i| Some(i).zip(steps.get(i))) {
                    current.store(i, Ordering::SeqCst);
                    printer.host(self.name(), &step.name);
                }
            }
            None if verbose => printer.detail(self.name(), line),
            None => {}
        };
        let lines: Lines<'_> = &show;
        let stop_file = format!("{}/stop", self.layout.lock());
        let script = batch_script(&self.layout.path, steps, &stop_file);
        // On an interrupt or `stop`, the step that runs finishes and no
        // other starts: the stop file goes in this run's lock folder
        // (removed with it).
        let run = self.conn.run_with(&script, stdin, Some(lines));
        let mut run = std::pin::pin!(run);
        let out = tokio::select! {
            out = &mut run => out,
            () = stop_asked(stop.cloned()) => {
                let _ = self.conn.run(&stop_script(&self.layout, token), None).await;
                run.await
            }
        };
        let (outputs, failed) = match &out {
            Ok(out) => split(&out.stdout, steps.len()),
            Err(_) => (Vec::new(), None),
        };
        let done = match out {
            Ok(out) if out.success() => Ok(outputs),
            Ok(out) => {
                // The failed step is the last that started.
                let (i, code) = failed.unwrap_or((outputs.len().saturating_sub(1), out.code));
                let step = &steps[i.min(steps.len() - 1)];
                let output = format!(
                    "{}{}",
                    outputs.get(i).cloned().unwrap_or_default(),
                    out.stderr
                );
                let tail: Vec<&str> = output.lines().collect();
                let detail = tail[tail.len().saturating_sub(20)..].join("\n");
                let mut problem = self.problem(&step.name, step.shown.as_deref(), code, &detail);
                problem.output = output;
                Err(problem)
            }
            Err(e) => {
                let step = &steps[current.load(Ordering::SeqCst).min(steps.len() - 1)];
                let mut problem =
                    self.problem(&step.name, step.shown.as_deref(), None, &e.to_string());
                problem.unreachable = true;
                Err(problem)
            }
        };
        let (step, ok) = match &done {
            Ok(_) => (&steps[steps.len() - 1].name, true),
            Err(p) => (&p.step, false),
        };
        printer.host_ended(self.name(), step, ok);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(name: &str, script: &str, upload: bool) -> Planned {
        Planned {
            name: name.into(),
            shown: None,
            script: script.into(),
            upload,
            inline: false,
        }
    }

    /// Runs a batch with the real `sh`, its stdin from `input`.
    fn run(steps: &[Planned], input: &str) -> (Option<i32>, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(batch_script("/srv/app", steps, "/nonexistent/stop"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn each_step_gets_its_own_output_and_only_the_upload_reads_stdin() {
        let steps = [
            planned("upload", "cat; echo", true),
            planned("build", "echo built; echo warned >&2; cat", false),
            planned("finish", "exit 0", false),
        ];
        let (code, stdout) = run(&steps, "the archive");
        assert_eq!(code, Some(0));
        let (outputs, failed) = split(&stdout, 3);
        assert_eq!(outputs, ["the archive\n", "built\nwarned\n", ""]);
        assert_eq!(failed, None);
    }

    #[test]
    fn once_the_stop_file_exists_no_other_step_starts() {
        let dir = std::env::temp_dir().join(format!("gantry-batch-stop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let stop = dir.join("stop");
        let never = dir.join("never");
        let steps = [
            planned("upload", "true", true),
            // What Gantry does on an interrupt while this step runs.
            planned(
                "build",
                &format!("echo building; : > '{}'", stop.display()),
                false,
            ),
            planned(
                "collectstatic",
                &format!(": > '{}'", never.display()),
                false,
            ),
        ];
        let script = batch_script("/srv/app", &steps, stop.to_str().unwrap());
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(130));
        assert!(!never.exists(), "the step after the stop did not run");
        let (outputs, failed) = split(&String::from_utf8_lossy(&out.stdout), 3);
        assert_eq!(outputs, ["", "building\n", &format!("{NOT_STARTED}\n")]);
        assert_eq!(failed, Some((2, Some(130))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_first_failing_step_stops_the_batch_and_is_named() {
        let steps = [
            planned("upload", "true", true),
            planned("build", "echo compiling; exit 3", false),
            planned("finish", "echo never", false),
        ];
        let (code, stdout) = run(&steps, "");
        assert_eq!(code, Some(3));
        let (outputs, failed) = split(&stdout, 3);
        assert_eq!(outputs, ["", "compiling\n"]);
        assert_eq!(failed, Some((1, Some(3))));
    }
}
