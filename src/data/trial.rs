//! A release tried on a rehearsal's copy of the data before the real
//! database is touched: its app started in the scratch area with
//! `deploy.serve` on a free port of the host, seeing the copy only, its
//! health check made on that port, then the app stopped (its whole process
//! group). A rollback does this with the release it goes back to, on the
//! copy its reversal was rehearsed on.

use crate::base::shell::quote;
use crate::config::Health;
use crate::data::rehearse::Scratch;
use crate::data::steps::Steps;
use crate::error::Error;
use crate::remote::activation;

/// Finds a port no one listens on, on the host.
const FREE_PORT: &str = "python3 -c 'import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $(( 20000 + $$ % 30000 ))";

/// The path the trial checks: the handover's, or that of `deploy.health`'s
/// URL, or `/`.
fn check_path(scratch: &Scratch<'_>, url: Option<&str>) -> String {
    if let Some(h) = &scratch.config.deploy.handover {
        return h.check.clone();
    }
    url.and_then(|u| u.split_once("://"))
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/".to_string())
}

/// Starts `release` (at `commit`, "" when unknown) from the scratch area
/// against the copy, checks it, stops it. `None`: `deploy.serve` is not
/// set, nothing was tried; `Some(Err(why))`: the app failed its check.
pub(crate) async fn serve_and_check(
    scratch: &Scratch<'_>,
    release: &str,
    commit: &str,
) -> Result<Option<Result<(), String>>, Error> {
    let Some(serve) = &scratch.config.deploy.serve else {
        return Ok(None);
    };
    let (site, printer) = (scratch.site, scratch.printer);
    scratch.place(release, release).await?;
    let port = site
        .step(printer, "find a free port", None, FREE_PORT, None)
        .await
        .map_err(|p| scratch.fail(p))?
        .stdout
        .trim()
        .to_string();
    let mut steps = Steps::new(
        scratch.config,
        scratch.env,
        &site.spec,
        scratch.layout,
        release,
        commit,
    );
    steps.db_env = scratch.db.app_env(scratch.copy);
    let app = steps.command_with(serve, &[("GANTRY_PORT".to_string(), port.clone())]);
    let vars = steps.vars();
    let health = scratch.config.deploy.health.as_ref();
    let from = health.map(|h| h.url.render(&vars));
    let url = format!(
        "http://127.0.0.1:{port}{}",
        check_path(scratch, from.as_deref())
    );
    let body = health
        .and_then(|h| h.body.as_ref())
        .map(|b| b.render(&vars));
    let fallback = Health::plain();
    let check = activation::host_check_script(
        health.unwrap_or(&fallback),
        &url,
        body.as_deref(),
        from.as_deref(),
    );
    let script = trial_script(&scratch.layout.rehearsals(), &app, &check);
    let step = format!("start {release} against the copy and check it");
    match site.step(printer, &step, None, &script, None).await {
        Ok(_) => Ok(Some(Ok(()))),
        Err(p) if p.unreachable => Err(scratch.fail(p)),
        Err(p) => {
            let why = p.output.trim().to_string();
            Ok(Some(Err(format!(
                "{release}, started against the copy with `deploy.serve` (`{}`), failed its health check on port {port}: {why}",
                serve.source()
            ))))
        }
    }
}

/// Runs `app` (a script that may hold the database's URL: written to a
/// private file, never on a command line) in its own session, then
/// `check` (cut short if the app stops); stops the app's process group
/// whatever the check said (TERM, then KILL after 10 s) and waits until
/// none of it runs (a child that outlives the app's shell would hold the
/// port or the copy open). On a failure
/// prints the check's words and the end of the app's output.
fn trial_script(dir: &str, app: &str, check: &str) -> String {
    format!(
        "d={d}\nmkdir -p \"$d\" || exit 1\n\
         (umask 077 && printf '%s\\n' {app} > \"$d/serve\") || exit 1\n\
         if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi\n\
         $s sh \"$d/serve\" > \"$d/serve.log\" 2>&1 < /dev/null &\n\
         pid=$!\n\
         alive() {{ kill -0 \"$1\" 2>/dev/null && ! grep -qs ') Z' \"/proc/$1/stat\"; }}\n\
         (\n{check}\n) > \"$d/check.log\" 2>&1 &\n\
         c=$!\n\
         while alive \"$c\"; do\n\
         \x20 if ! alive \"$pid\"; then kill \"$c\" 2>/dev/null; echo 'the app stopped before it answered' >> \"$d/check.log\"; break; fi\n\
         \x20 sleep 0.1\ndone\n\
         wait \"$c\"\nrc=$?\n\
         gone() {{ if command -v ps >/dev/null 2>&1; then ! ps -A -o pgid= -o stat= 2>/dev/null | awk -v g=\"$pid\" '$1 == g && $2 !~ /^Z/ {{ f = 1 }} END {{ exit !f }}'; else ! kill -0 \"-$pid\" 2>/dev/null; fi; }}\n\
         kill -TERM \"-$pid\" 2>/dev/null || kill -TERM \"$pid\" 2>/dev/null\n\
         n=0\nuntil gone || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done\n\
         gone || kill -KILL \"-$pid\" 2>/dev/null || kill -KILL \"$pid\" 2>/dev/null\n\
         wait \"$pid\" 2>/dev/null\n\
         if [ $rc -ne 0 ]; then cat \"$d/check.log\"; echo 'the app printed:'; tail -n 15 \"$d/serve.log\"; fi\n\
         exit $rc",
        d = quote(dir),
        app = quote(app),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trial_stops_the_app_whatever_its_check_said() {
        let dir = std::env::temp_dir().join(format!("gantry-trial-{}", std::process::id()));
        let d = dir.display().to_string();
        let pids = format!("{d}/pids");
        // An app that starts a child of its own and waits forever.
        let app = format!("sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; echo started; wait");
        let started = format!("until grep -q started {d}/serve.log; do sleep 0.05; done");
        let cases = [
            (started.clone(), true),
            (format!("{started}; echo nope; exit 3"), false),
        ];
        for (check, ok) in cases {
            let _ = std::fs::remove_file(&pids);
            // In a subshell: the script ends with `exit`.
            let script = format!("(\n{}\n)\necho \"rc=$?\"", trial_script(&d, &app, &check));
            let out = crate::base::shell::run_for_test(&script);
            assert_eq!(out.contains("rc=0"), ok, "{out}");
            if !ok {
                assert!(out.contains("nope") && out.contains("started"), "{out}");
            }
            let listed = std::fs::read_to_string(&pids).unwrap();
            for pid in listed.split_whitespace() {
                assert!(
                    !std::path::Path::new(&format!("/proc/{pid}")).exists()
                        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                            .unwrap_or_default()
                            .contains(") Z "),
                    "process {pid} of the app still runs"
                );
            }
        }
        // An app that stops at once: the check that would wait a
        // minute is cut short.
        let out = crate::base::shell::run_for_test(&format!(
            "(\n{}\n)\necho \"rc=$?\"",
            trial_script(&d, "echo cannot start; exit 3", "sleep 60")
        ));
        assert!(out.contains("the app stopped before it answered"), "{out}");
        assert!(
            out.contains("cannot start") && !out.contains("rc=0"),
            "{out}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
