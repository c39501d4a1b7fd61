//! Roles: the Django example on a web host and a worker host
//! (`[roles.worker]`: the example's `manage.py worker`, restarted
//! gracefully by `worker.sh`, checked by a command). A deploy restarts and
//! checks each host by its role; a worker that fails its check puts every
//! host back, the web host included; an `after_prepare` hook running
//! Django's checks on the web host stops a broken release before anything
//! migrates or switches; `exec --role`, `plan` and `status` name the roles.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::Test;

/// The Django example on host 0 (web) and host 1 (worker) of `live`, one
/// SQLite file both open.
fn web_and_worker() -> Test {
    let mut t = Test::new().hosts(2).django().start();
    let db = t.dir.join("live.sqlite3");
    let (p0, p1) = (t.app_port("live", 0), t.app_port("live", 1));
    let config = format!(
        r#"{head}restart = "sh restart.sh"
env = {{ PYTHON = "{{python}}", APP_HOST = "{{host}}", APP_PORT = "{{app_port}}" }}
health = {{ url = "http://{{host}}:{{app_port}}/health", body = "{{commit}}", timeout = "2s", retries = 80, interval = "250ms" }}

[database]
engine = "sqlite"
path = "{db}"

[roles.worker]
restart = "WORKER_STOP_TIMEOUT=10 sh worker.sh"
check = "{{python}} manage.py worker --check --wait 10"
stop = 'kill "$(cat "$GANTRY_SHARED/worker.pid")"'

[hooks]
after_prepare = {{ run = "{{python}} manage.py check", on = "web" }}

[environments.live]
hosts = [
  {{ address = "{a0}", vars = {{ hostid = "h0", app_port = "{p0}" }} }},
  {{ address = "{a1}", roles = ["worker"], vars = {{ hostid = "h1", app_port = "{p1}" }} }},
]
"#,
        head = crate::migrations::django_head(&t),
        db = db.display(),
        a0 = t.address(0),
        a1 = t.address(1),
    );
    t.write_config(&config);
    t
}

/// The worker's folder on host 1.
fn worker(t: &Test) -> PathBuf {
    t.site("live", 1).join("shared/worker")
}

/// Waits (up to 20 s) until `f` holds, or fails with `what`.
fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The commit of the worker's last heartbeat.
fn heartbeat(t: &Test) -> String {
    std::fs::read_to_string(worker(t).join("heartbeat"))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn web_and_worker_hosts_deploy_by_role_and_a_failed_worker_puts_every_host_back() {
    let mut t = web_and_worker();
    let first = t.commit("Web and worker", &[]);
    t.gantry(&["plan", "live"])
        .success()
        .stdout_has("; web)")
        .stdout_has("; worker)")
        .stdout_has("# restart (worker)")
        .stdout_has("# check (worker)");
    t.gantry(&["deploy", "live"]).success();
    assert_eq!(heartbeat(&t), first);
    assert_eq!(
        t.get("live", 0, "/health").unwrap().1.trim(),
        format!("ok {first}")
    );
    // The worker host runs no web app: nothing listens on its port.
    assert!(t.get("live", 1, "/health").is_none());
    // Its jobs: an item added on the web host is done by the worker.
    crate::migrations::add_item(&mut t, "live", 0, "milk");
    until("the worker did the new item", || {
        std::fs::read_to_string(worker(&t).join("done"))
            .map(|d| d.lines().any(|l| l.ends_with(&first)))
            .unwrap_or(false)
    });
    t.gantry(&["status", "live"])
        .success()
        .stdout_has(&format!("{} [worker]", t.address(1)));
    let run = t.gantry(&["exec", "live", "--role", "worker", "--", "cat", "REVISION"]);
    run.success();
    assert!(run.stdout.contains(&first), "{}", run.stdout);
    assert!(!run.stdout.contains(&t.address(0)), "{}", run.stdout);
    t.gantry(&["exec", "live", "--role", "wroker", "--", "true"])
        .code(2)
        .stderr_has("no host of `live` has the role `wroker`");

    // The next release's worker fails its check: both hosts are put back,
    // and the old worker runs again.
    let old = (t.current("live", 0), t.current("live", 1));
    let second = t.commit("A broken worker", &[("notes.txt", "two\n")]);
    std::fs::write(t.site("live", 1).join("shared/worker-unhealthy"), &second).unwrap();
    t.gantry(&["deploy", "live"])
        .code(1)
        .stderr_has("the worker check `")
        .stderr_has(&format!("no heartbeat from the worker of {second}"));
    assert_eq!((t.current("live", 0), t.current("live", 1)), old);
    assert_eq!(
        t.get("live", 0, "/health").unwrap().1.trim(),
        format!("ok {first}")
    );
    until("the old worker beats again", || heartbeat(&t) == first);
    // The old worker was stopped gracefully each time: after its last job.
    let log = std::fs::read_to_string(t.site("live", 1).join("shared/worker.log")).unwrap();
    assert!(
        log.contains(&format!("worker of {first} stopped after its last job")),
        "{log}"
    );

    // Fixed: deployed on both.
    std::fs::remove_file(t.site("live", 1).join("shared/worker-unhealthy")).unwrap();
    t.gantry(&["deploy", "live"]).success();
    until("the new worker beats", || heartbeat(&t) == second);

    // A model Django's own checks refuse: the `after_prepare` hook stops
    // the deploy before anything migrates or switches.
    let released = (t.current("live", 0), t.current("live", 1));
    let models = std::fs::read_to_string(t.repo.join("lists/models.py")).unwrap();
    let broken = format!(
        "{models}\n\nclass Tag(models.Model):\n    item = models.ForeignKey(\"Nope\", on_delete=models.CASCADE)\n"
    );
    t.commit(
        "A tag of a model that does not exist",
        &[("lists/models.py", &broken)],
    );
    t.gantry(&["deploy", "live"])
        .code(1)
        .stderr_has("hook after_prepare")
        .stderr_has("fields.E300");
    assert_eq!((t.current("live", 0), t.current("live", 1)), released);
    assert_eq!(heartbeat(&t), second);
}

#[test]
fn a_host_role_that_is_not_defined_is_a_config_error() {
    let mut t = Test::new().hosts(1).start();
    let config =
        t.config(&[("live", &[0])])
            .replacen("vars = {", "roles = [\"wroker\"], vars = {", 1);
    assert!(config.contains("wroker"), "{config}");
    t.write_config(&config);
    t.gantry(&["check"])
        .code(2)
        .stderr_has("`wroker` is not a role")
        .stderr_has("environments.live.hosts.roles")
        .stderr_has("add `[roles.wroker]`");
}
