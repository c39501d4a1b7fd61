//! `gantry setup`, secrets, `init` and the JSON output: the server is made
//! ready idempotently, templates render into files real tools accept, and
//! a secret appears nowhere but in its 0600 file.

use std::path::Path;
use std::process::Command;

use crate::harness::{
    django_python, free_port, git, http_get, nginx_conf, wait_until, Nginx, Test,
};

pub fn django_setup_config(t: &mut Test, nginx_port: u16) -> String {
    let python = django_python();
    let app_port = t.app_port("staging", 0);
    let dir = t.dir.display().to_string();
    format!(
        r#"[app]
name = "superlists"
preset = "django"

[ssh]
config = "{dir}/ssh_config"

[vars]
python = "{python}"
wsgi = "superlists.wsgi"

[deploy]
path = "{dir}/sites/{{env}}/{{hostid}}"
restart = "sh restart.sh"
env = {{ PYTHON = "{{python}}", APP_HOST = "{{host}}", APP_PORT = "{{app_port}}" }}
health = {{ url = "http://{{host}}:{{app_port}}/health", body = "{{commit}}", timeout = "2s", retries = 80, interval = "250ms" }}

[database]
engine = "sqlite"
path = "{{shared}}/db.sqlite3"

[env]
DJANGO_ALLOWED_HOST = "{{host}}"
GREETING = "hello"

[secrets]
DJANGO_SECRET_KEY = {{ generate = true }}

[setup]
systemd = {{ name = "gunicorn-{{env}}", dir = "{dir}/systemd", reload = "" }}
nginx = {{ name = "site-{{env}}", dir = "{dir}/nginx/sites", reload = "nginx -t -q -p {dir}/nginx/ -c {dir}/nginx/nginx.conf" }}

[environments.staging]
hosts = [{{ address = "{addr}", vars = {{ hostid = "h0", app_port = "{app_port}", listen = "127.0.0.1:{nginx_port}", upstream = "127.0.0.1:{app_port}" }} }}]
"#,
        addr = t.address(0),
    )
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn env_value(file: &Path, key: &str) -> Option<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn setup_twice_changes_nothing_and_keeps_the_generated_secret() {
    let mut t = Test::new().hosts(1).django().start();
    nginx_conf(&t);
    let config = django_setup_config(&mut t, free_port());
    t.write_config(&config);
    t.commit("Add config", &[]);

    let first = t.gantry(&["setup", "staging"]);
    first
        .success()
        .stdout_has("+ layout")
        .stdout_has("created")
        .stdout_has("5 items changed (5 created, 0 updated), 0 unchanged");
    let env_file = t.site("staging", 0).join("shared/.env");
    assert_eq!(mode(&env_file), 0o600);
    let key = env_value(&env_file, "DJANGO_SECRET_KEY").expect("a secret key was generated");
    assert!(key.len() >= 50, "{key}");
    assert_eq!(env_value(&env_file, "GREETING").as_deref(), Some("hello"));
    // The service reads the database from the variable the migrate
    // command sees.
    assert_eq!(
        env_value(&env_file, "DB_PATH"),
        Some(
            t.site("staging", 0)
                .join("shared/db.sqlite3")
                .display()
                .to_string()
        )
    );
    let unit = t.dir.join("systemd/gunicorn-staging.service");
    let before = std::fs::metadata(&env_file).unwrap().modified().unwrap();
    // The app runs, started with the env file's values.
    t.gantry(&["deploy", "staging"]).success();
    let pid = || t.app_pid("staging", 0);
    let started = pid();

    let second = t.gantry(&["setup", "staging"]);
    second
        .success()
        .stdout_has("everything was already set up: 5 items unchanged");
    assert!(
        !second.stdout.contains("created") && !second.stdout.contains("updated"),
        "{}",
        second.stdout
    );
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(env_value(&env_file, "DJANGO_SECRET_KEY"), Some(key.clone()));

    // A changed value: shown by --dry-run without values, written by the
    // next setup, which restarts the app; the generated secret stays, and a
    // line added on the host by hand stays too (until --force).
    t.write_config(&config.replace("GREETING = \"hello\"", "GREETING = \"bonjour\""));
    let dry = t.gantry(&["setup", "staging", "--dry-run"]);
    dry.success()
        .stdout_has("would update")
        .stdout_has("~ GREETING (value changed)")
        .stdout_has("nothing was changed");
    assert!(!dry.stdout.contains("bonjour") && !dry.stdout.contains(&key));
    assert_eq!(pid(), started, "a dry run restarts nothing");
    let mut text = std::fs::read_to_string(&env_file).unwrap();
    text.push_str("BY_HAND=1\n");
    std::fs::write(&env_file, text).unwrap();
    t.gantry(&["setup", "staging"])
        .success()
        .stdout_has("updated")
        .stdout_has("~ GREETING (value changed)")
        .stdout_has("= BY_HAND (not in the config: kept; --force removes it)")
        .stdout_has("the app was restarted");
    assert_eq!(env_value(&env_file, "GREETING").as_deref(), Some("bonjour"));
    assert_eq!(env_value(&env_file, "BY_HAND").as_deref(), Some("1"));
    // The app runs with the new value.
    assert_ne!(pid(), started);
    let environ = std::fs::read(format!("/proc/{}/environ", pid())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("GREETING=bonjour"), "{environ}");
    t.gantry(&["setup", "staging", "--force"])
        .success()
        .stdout_has("- BY_HAND");
    assert_eq!(env_value(&env_file, "BY_HAND"), None);
    assert_eq!(env_value(&env_file, "DJANGO_SECRET_KEY"), Some(key));
    assert_eq!(mode(&env_file), 0o600);
    assert!(unit.exists());
}

#[test]
fn rendered_unit_passes_systemd_analyze_verify() {
    let mut t = Test::new().hosts(1).django().start();
    nginx_conf(&t);
    let config = django_setup_config(&mut t, free_port());
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["setup", "staging"]).success();
    t.gantry(&["deploy", "staging"]).success();
    let unit = t.dir.join("systemd/gunicorn-staging.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains("ExecStart=/opt/gantry-venv/bin/gunicorn")
            || text.contains("/bin/gunicorn --workers 3"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "EnvironmentFile={}",
        t.site("staging", 0).join("shared/.env").display()
    )));
    // Started with its socket, which systemd holds across restarts.
    let socket = t.dir.join("systemd/gunicorn-staging.socket");
    let held = std::fs::read_to_string(&socket).unwrap();
    assert!(
        held.contains(&format!(
            "ListenStream={}",
            t.site("staging", 0).join("shared/gunicorn.sock").display()
        )) && text.contains("Requires=gunicorn-staging.socket"),
        "{held}"
    );
    crate::harness::systemd_verify(&[&unit, &socket]);
    // And it does fail on a broken unit, so the check means something.
    let broken = t.dir.join("systemd/broken.service");
    std::fs::write(&broken, text.replace("ExecStart=/", "ExecStart=")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn nginx_site_serves_static_files_and_proxies_the_app() {
    let mut t = Test::new().hosts(1).django().start();
    let conf = nginx_conf(&t);
    let port = free_port();
    // A `[vars]` value that names another placeholder is filled in.
    let config = django_setup_config(&mut t, port).replace(
        "wsgi = \"superlists.wsgi\"",
        "wsgi = \"superlists.wsgi\"\nstatic = \"{current}/static\"",
    );
    t.write_config(&config);
    let sha = t.commit("Add config", &[]);
    // Setup's reload runs `nginx -t` on the rendered site.
    t.gantry(&["setup", "staging"])
        .success()
        .stdout_has("nginx site");
    let site = std::fs::read_to_string(t.dir.join("nginx/sites/site-staging")).unwrap();
    assert!(
        site.contains(&format!("listen 127.0.0.1:{port};")),
        "{site}"
    );
    let current = t.site("staging", 0).join("current");
    assert!(
        site.contains(&format!("alias {}/static/;", current.display())),
        "{site}"
    );
    t.gantry(&["deploy", "staging"]).success();

    let _nginx = Nginx::start(&t, &conf, port);
    let (status, css) = http_get("127.0.0.1", port, "/static/lists/style.css").unwrap();
    assert_eq!(status, 200);
    assert!(css.contains("gantry-example-style"), "{css}");
    let (status, page) = http_get("127.0.0.1", port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("<title>To-Do</title>") && page.contains(&sha),
        "{page}"
    );
}

/// POSTs an item through nginx: the whole answer.
fn post_item(port: u16, text: &str) -> String {
    crate::harness::post_item("127.0.0.1", port, text).expect("nginx listens")
}

#[test]
fn maintenance_holds_writes_at_the_nginx_site_while_migrations_run() {
    let (t, port, _nginx) = held_migration(None);
    let site = t.site("staging", 0);
    let mut deploy = t
        .command(&["deploy", "staging", "--maintenance", "--no-rehearse"])
        .spawn()
        .unwrap();
    let stderr = crate::harness::collect(deploy.stderr.take().unwrap());
    wait_until(60, "the migration to start", || {
        site.join("holding").exists()
    });
    let held = post_item(port, "during");
    assert!(held.starts_with("HTTP/1.1 503"), "{held}");
    assert!(held.contains("Retry-After: 10"), "{held}");
    let (status, page) = http_get("127.0.0.1", port, "/").unwrap();
    assert_eq!(status, 200, "reads go on: {page}");
    std::fs::remove_file(site.join("hold")).unwrap();
    let status = deploy.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr.finish());
    assert!(!site.join(".gantry/maintenance").exists());
    assert!(post_item(port, "after").starts_with("HTTP/1.1 201"));
}

/// `maintenance = "irreversible"` holds writes for a migration only the
/// backup could undo (the rehearsal finds it), and not for one that can
/// be reversed.
#[test]
fn maintenance_when_irreversible_holds_writes_only_for_what_cannot_be_reversed() {
    for (migration, held) in [(REVERSIBLE, false), (IRREVERSIBLE, true)] {
        let (t, port, _nginx) = held_migration(Some(migration));
        let site = t.site("staging", 0);
        let mut deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
        let stderr = crate::harness::collect(deploy.stderr.take().unwrap());
        wait_until(120, "the migration to start", || {
            site.join("holding").exists()
        });
        let answer = post_item(port, "during");
        std::fs::remove_file(site.join("hold")).unwrap();
        let status = deploy.wait().unwrap();
        let stderr = stderr.finish();
        assert_eq!(status.code(), Some(0), "{stderr}");
        if held {
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}\n{stderr}");
            assert!(stderr.contains("only the backup can do it"), "{stderr}");
        } else {
            assert!(answer.starts_with("HTTP/1.1 201"), "{answer}\n{stderr}");
        }
        assert!(!site.join(".gantry/maintenance").exists());
    }
}

const REVERSIBLE: &str = "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"lists\", \"0001_initial\")]\n    operations = [migrations.AlterUniqueTogether(name=\"item\", unique_together={(\"list\", \"text\")})]\n";

const IRREVERSIBLE: &str = "from django.db import migrations\n\n\ndef touch(apps, schema_editor):\n    pass\n\n\nclass Migration(migrations.Migration):\n    dependencies = [(\"lists\", \"0001_initial\")]\n    operations = [migrations.RunPython(touch), migrations.AlterUniqueTogether(name=\"item\", unique_together={(\"list\", \"text\")})]\n";

/// A Django site set up and deployed behind the test's nginx, then a
/// commit whose migration waits, on the real database only (not the
/// rehearsal's copy), while the site holds a `hold` file. With a
/// migration, `database.maintenance = "irreversible"` and that migration;
/// else the example's unique constraint. Returns nginx's port and nginx.
fn held_migration(migration: Option<&str>) -> (Test, u16, Nginx) {
    let mut t = Test::new().hosts(1).django().start();
    let conf = nginx_conf(&t);
    let port = free_port();
    let mut config = django_setup_config(&mut t, port).replace(
        "restart = \"sh restart.sh\"",
        "migrate = \"sh ci/hold_real.sh && {python} manage.py migrate --noinput\"\nrestart = \"sh restart.sh\"",
    );
    if migration.is_some() {
        config = config.replace(
            "[database]\n",
            "[database]\nmaintenance = \"irreversible\"\n",
        );
    }
    t.write_config(&config);
    let hold = "if [ -e \"$GANTRY_PATH/hold\" ] && [ \"$DB_PATH\" = \"$GANTRY_PATH/shared/db.sqlite3\" ]; then\n    touch \"$GANTRY_PATH/holding\"\n    i=0\n    while [ -e \"$GANTRY_PATH/hold\" ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done\nfi\n";
    t.commit("Add config", &[("ci/hold_real.sh", hold)]);
    t.gantry(&["setup", "staging"]).success();
    t.gantry(&["deploy", "staging"]).success();
    let nginx = Nginx::start(&t, &conf, port);
    assert!(post_item(port, "before").starts_with("HTTP/1.1 201"));
    match migration {
        None => {
            crate::migrations::commit_stage(&t, "1-unique", "Items are unique per list");
        }
        Some(m) => {
            t.commit("A migration", &[("lists/migrations/0002_unique.py", m)]);
        }
    }
    std::fs::write(t.site("staging", 0).join("hold"), "").unwrap();
    (t, port, nginx)
}

#[test]
fn a_secret_appears_nowhere_but_in_its_file() {
    let secret = "tok-7f3a9c-SECRET-b21e";
    let mut t = Test::new().hosts(1).start();
    let config = t
        .config(&[("live", &[0])])
        .replace(
            "build = [\"sh build.sh\", \"sh ci/hooks.sh\"]",
            "build = [\"sh build.sh\", \"sh ci/hooks.sh\", \"python3 ci/no_leak.py\", \"echo the token is $API_TOKEN\", \"sh ci/leak.sh\"]",
        );
    let config =
        format!("{config}\n[secrets]\nAPI_TOKEN = {{ env = \"GANTRY_TEST_TOKEN\" }}\n\n[setup]\n");
    t.write_config(&config);
    t.commit(
        "Add config",
        &[
            ("ci/leak.sh", "if [ -e \"$GANTRY_PATH/leak-fail\" ]; then echo \"failing with $API_TOKEN\" >&2; exit 1; fi\n"),
            (
                "ci/no_leak.py",
                "import os, sys\nt = os.environ['API_TOKEN']\nfor p in os.listdir('/proc'):\n    try:\n        if p.isdigit() and t in open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='ignore'):\n            sys.exit(f'process {p} has the secret on its command line')\n    except OSError:\n        pass\n",
            ),
        ],
    );
    let run = |t: &Test, args: &[&str]| {
        let out = t
            .command(args)
            .env("GANTRY_TEST_TOKEN", secret)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut seen = String::new();
    let (code, out, err) = run(&t, &["setup", "live"]);
    assert_eq!(code, Some(0), "{err}");
    seen.push_str(&out);
    seen.push_str(&err);
    let env_file = t.site("live", 0).join("shared/.env");
    assert_eq!(mode(&env_file), 0o600);
    assert!(
        std::fs::read_to_string(&env_file).unwrap().contains(secret),
        "the secret reached its file"
    );

    let (code, out, err) = run(&t, &["-v", "deploy", "live", "--force"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("the token is ********"),
        "the build printed the secret, masked: {err}"
    );
    seen.push_str(&out);
    seen.push_str(&err);

    std::fs::write(t.site("live", 0).join("leak-fail"), "").unwrap();
    t.commit("Second", &[("NEWS", "2\n")]);
    let (code, out, err) = run(&t, &["-v", "deploy", "live", "--force"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("failing with ********"), "{err}");
    seen.push_str(&out);
    seen.push_str(&err);
    let (code, out, err) = run(
        &t,
        &[
            "exec",
            "live",
            "--",
            "sh",
            "-c",
            "echo exec sees $API_TOKEN",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("exec sees ********"), "{out}{err}");
    seen.push_str(&out);
    seen.push_str(&err);
    for args in [
        &["status", "--json"][..],
        &["log", "live", "--json"][..],
        &["plan", "live"][..],
    ] {
        let (code, out, err) = run(&t, args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        seen.push_str(&out);
        seen.push_str(&err);
    }

    assert!(!seen.contains(secret), "the secret was printed:\n{seen}");
    let history = std::fs::read_to_string(t.site("live", 0).join(".gantry/history.jsonl")).unwrap();
    assert!(!history.contains(secret), "{history}");
    let origin = t.dir.join("origin.git");
    let tags = git(
        &origin,
        &["for-each-ref", "--format=%(contents)", "refs/tags"],
    );
    assert!(tags.contains("Deployed to live"), "{tags}");
    assert!(!tags.contains(secret), "{tags}");
    let notes = git(&origin, &["log", "-p", "refs/notes/gantry"]);
    assert!(!notes.is_empty() && !notes.contains(secret));
}

#[test]
fn init_on_the_django_example_writes_a_config_that_checks_and_deploys() {
    let t = Test::new().hosts(1).django().start();
    t.gantry(&["init"])
        .success()
        .stderr_has("for a Django app (settings `superlists.settings`)");
    let written = std::fs::read_to_string(t.repo.join("gantry.toml")).unwrap();
    assert!(written.contains("preset = \"django\""));
    t.gantry(&["init"]).code(2).stderr_has("already exists");

    // What a user fills in: their server, its path; and, with no systemd
    // here, the example's start.sh and stop.sh for the per-port unit, this
    // test's nginx, the shared virtualenv for the release's own.
    let conf = nginx_conf(&t);
    let (port, a, b) = (free_port(), free_port(), free_port());
    let dir = t.dir.display().to_string();
    let config = written
        .replace("hosts = [\"deploy@staging.example.com\"]", &format!("hosts = [\"{}\"]", t.address(0)))
        .replace("vars = { domain = \"staging.example.com\" }", &format!("vars = {{ domain = \"127.0.0.1\", listen = \"127.0.0.1:{port}\" }}"))
        .replace("path = \"/home/{user}/sites/{domain}\"", &format!("path = \"{dir}/sites/{{env}}/h0\"\nenv = {{ PYTHON = \"{{python}}\" }}"))
        .replace("url = \"http://{domain}/\"", &format!("url = \"http://{{domain}}:{port}/\""))
        .replace("ports = [\"8001\", \"8002\"]", &format!("ports = [\"{a}\", \"{b}\"]\nreload = \"nginx -s reload -p {dir}/nginx/ -c nginx.conf\""))
        .replace("start = \"sudo -n systemctl enable --now gunicorn-{domain}@$GANTRY_PORT\"", "start = \"sh start.sh\"")
        .replace("stop = \"sudo -n systemctl disable --now gunicorn-{domain}@$GANTRY_PORT\"", "stop = \"sh stop.sh\"")
        .replace("[vars]\n", &format!("[vars]\npython = \"{}\"\n", django_python()))
        .replace("[setup]\nsudo = true", &format!("[ssh]\nconfig = \"{dir}/ssh_config\"\n\n[setup]\nsudo = false"))
        .replace("systemd = { name = \"gunicorn-{domain}\" }", &format!("systemd = {{ name = \"gunicorn-{{domain}}\", dir = \"{dir}/systemd\", reload = \"\" }}"))
        .replace("nginx = { name = \"{domain}\" }", &format!("nginx = {{ name = \"{{domain}}\", dir = \"{dir}/nginx/sites\", reload = \"nginx -t -q -p {dir}/nginx/ -c {dir}/nginx/nginx.conf\" }}"));
    t.write_config(&config);
    t.commit("Add the config gantry init wrote", &[]);
    t.gantry(&["check", "staging"]).success().stdout_has("ok");
    t.gantry(&["setup", "staging"]).success();
    crate::harness::systemd_verify(&[&t.dir.join("systemd/gunicorn-127.0.0.1@.service")]);
    let _nginx = Nginx::start(&t, &conf, port);
    let sha = t.head();
    t.gantry(&["deploy", "staging"]).success();
    let (status, body) = http_get("127.0.0.1", port, "/health").unwrap();
    assert_eq!(
        (status, body.trim().to_string()),
        (200, format!("ok {sha}"))
    );
}

/// `--json` output with the values that change from run to run replaced,
/// each only where it is the value this run must have: the commit deployed,
/// the release the host serves, who deployed, and times that are times.
/// A wrong commit or release stays as it is, and fails the comparison.
fn normalize(value: &mut serde_json::Value, t: &Test) {
    let release = std::fs::read_link(t.site("staging", 0).join("current"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let by = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "root".into()),
        String::from_utf8(
            std::process::Command::new("hostname")
                .output()
                .unwrap()
                .stdout
        )
        .unwrap()
        .trim()
    );
    let known = [
        (t.head(), "<commit>"),
        (release, "<release>"),
        (by, "<by>"),
        (t.dir.display().to_string(), "<dir>"),
        (t.address(0), "<host>"),
    ];
    replace_known(value, &known);
}

fn replace_known(value: &mut serde_json::Value, known: &[(String, &str)]) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let is_time = matches!(v.as_str(), Some(s) if s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' && s.ends_with('Z'));
                if is_time && (key == "time" || key == "since") {
                    *v = serde_json::Value::String("<time>".into());
                } else {
                    replace_known(v, known);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| replace_known(i, known)),
        serde_json::Value::String(s) => {
            for (actual, shown) in known {
                if !actual.is_empty() {
                    *s = s.replace(actual.as_str(), shown);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn json_output_of_status_log_and_plan_matches_its_snapshot() {
    let mut t = Test::new().hosts(1).start();
    let config = t.config(&[("staging", &[0])]).replace(
        "build = [\"sh build.sh\", \"sh ci/hooks.sh\"]",
        "build = [\"sh build.sh\"]",
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();

    let mut status: serde_json::Value =
        serde_json::from_str(&t.gantry(&["status", "--json"]).stdout).unwrap();
    // The host's own record of what it restarted is the release it serves.
    let host = &mut status["environments"][0]["hosts"][0];
    assert_eq!(host["activated"], host["release"], "{host}");
    assert!(host["release"].as_str().unwrap().ends_with(&t.head()[..8]));
    host.as_object_mut().unwrap().remove("activated");
    normalize(&mut status, &t);
    let expected_status = serde_json::json!({
        "environments": [{
            "name": "staging",
            "commit": "<commit>",
            "subject": "Add config",
            "verified": false,
            "verification": null,
            "behind": null,
            "tags": [],
            "deployed": {"event": "deploy", "env": "staging", "time": "<time>", "by": "<by>", "outcome": "ok", "rehearsal": "passed", "release": "<release>", "hosts": ["<host>"], "migrations": ["0001_items.sql"]},
            "hosts": [{
                "host": "<host>",
                "roles": ["web"],
                "reachable": true,
                "release": "<release>",
                "commit": "<commit>",
                "locked": null,
                "last": {"time": "<time>", "action": "deploy", "env": "staging", "host": "<host>", "commit": "<commit>", "release": "<release>", "by": "<by>", "outcome": "ok", "rehearsal": "passed"},
                "mismatch": null,
                "running": [],
            }],
        }],
    });
    assert_eq!(
        status,
        expected_status,
        "{}",
        serde_json::to_string_pretty(&status).unwrap()
    );

    let mut log: serde_json::Value =
        serde_json::from_str(&t.gantry(&["log", "staging", "--json"]).stdout).unwrap();
    normalize(&mut log, &t);
    assert_eq!(
        log,
        serde_json::json!([{"time": "<time>", "action": "deploy", "env": "staging", "host": "<host>", "commit": "<commit>", "release": "<release>", "by": "<by>", "outcome": "ok", "rehearsal": "passed"}])
    );

    let mut plan: serde_json::Value =
        serde_json::from_str(&t.gantry(&["plan", "staging", "--json"]).stdout).unwrap();
    normalize(&mut plan, &t);
    let steps: Vec<serde_json::Value> = plan["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::json!({"name": s["name"], "stdin": s["stdin"]}))
        .collect();
    assert_eq!(plan["env"], "staging");
    assert_eq!(plan["subject"], "Add config");
    assert_eq!(plan["on_remote"], true);
    assert_eq!(plan["migrate_host"], "<host>");
    assert_eq!(plan["hosts"][0]["path"], "<dir>/sites/staging/h0");
    assert_eq!(
        serde_json::Value::Array(steps),
        serde_json::json!([
            {"name": "lock", "stdin": null},
            {"name": "upload", "stdin": "git archive"},
            {"name": "link shared", "stdin": null},
            {"name": "build 1/1", "stdin": null},
            {"name": "finish release", "stdin": null},
            {"name": "check pending migrations", "stdin": null},
            {"name": "fingerprint the database", "stdin": null},
            {"name": "rehearse on a copy", "stdin": null},
            {"name": "back up the database", "stdin": null},
            {"name": "migrate", "stdin": null},
            {"name": "if the deploy is put back after this", "stdin": null},
            {"name": "switch current", "stdin": null},
            {"name": "restart", "stdin": null},
        ])
    );
}

#[test]
fn setup_on_a_host_without_sudo_says_so_and_check_finds_it_first() {
    let mut t = Test::new()
        .hosts(1)
        .hosts_without(&["sudo"])
        .django()
        .start();
    let port = free_port();
    let config = django_setup_config(&mut t, port).replace("[setup]\n", "[setup]\nsudo = true\n");
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["check", "staging"])
        .code(1)
        .stderr_has("missing tools: sudo")
        .stderr_has("`setup.sudo = true` asks for `sudo`");
    let run = t.gantry(&["setup", "staging"]);
    run.code(1)
        .stdout_has("✗ systemd socket: failed")
        .stdout_has("0 created, 0 updated, 0 unchanged, 1 failed")
        .stderr_has("sudo: not found")
        .stderr_has("`sudo` is not installed on");
    assert!(!run.stderr.contains("connection lost"), "{}", run.stderr);
    assert!(
        !run.stdout.contains("everything was already set up"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_reload_that_failed_is_retried_by_the_next_setup_until_it_succeeds() {
    let mut t = Test::new().hosts(1).django().start();
    nginx_conf(&t);
    let port = free_port();
    let reloads = t.dir.join("reloads");
    let ok = t.dir.join("reload-ok");
    let config = django_setup_config(&mut t, port).replace(
        "reload = \"\" }",
        &format!(
            "reload = \"echo reloaded >> {} && test -e {}\" }}",
            reloads.display(),
            ok.display()
        ),
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    let count = || {
        std::fs::read_to_string(&reloads)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // The socket unit (installed first) is installed, its reload fails:
    // setup fails and says so.
    t.gantry(&["setup", "staging"])
        .code(1)
        .stderr_has("reload systemd socket");
    assert_eq!(count(), 1);
    // The socket is unchanged now, but its reload never succeeded: again;
    // then the service's own.
    std::fs::write(&ok, "").unwrap();
    t.gantry(&["setup", "staging"])
        .success()
        .stdout_has("reload pending: the last one did not succeed")
        .stderr_has("reload systemd unit");
    assert_eq!(count(), 3);
    // Done: nothing to reload.
    t.gantry(&["setup", "staging"]).success();
    assert_eq!(count(), 3);
}

#[test]
fn a_deploy_says_when_the_env_file_is_not_the_config_and_restarts_when_it_changed() {
    let mut t = Test::new().hosts(1).django().start();
    nginx_conf(&t);
    let config = django_setup_config(&mut t, free_port());
    t.write_config(&config);
    let sha = t.commit("Add config", &[]);
    t.gantry(&["setup", "staging"]).success();
    t.gantry(&["deploy", "staging"]).success();
    let env_file = t.site("staging", 0).join("shared/.env");
    let pid = || t.app_pid("staging", 0);
    let started = pid();

    // The config changed, setup not run: said before anything runs; the
    // host's file did not change, so nothing is deployed.
    t.write_config(&config.replace("GREETING = \"hello\"", "GREETING = \"bonjour\""));
    let differs = "does not say what the config does for `GREETING`";
    let run = t.gantry(&["deploy", "staging", &sha]);
    run.success()
        .stderr_has(differs)
        .stderr_has("`gantry setup staging` writes them")
        .stderr_has("nothing to do");
    assert_eq!(run.stderr.matches(differs).count(), 1, "{}", run.stderr);
    assert_eq!(pid(), started);

    // The file changed on the host after the app started (by hand, to
    // neither value): the commit it serves is deployed again, the app
    // reads the file, and the difference is said once.
    let text = std::fs::read_to_string(&env_file).unwrap();
    std::fs::write(&env_file, text.replace("GREETING=hello", "GREETING=hola")).unwrap();
    let run = t.gantry(&["deploy", "staging", &sha]);
    run.success()
        .stderr_has("The env file changed on")
        .stderr_has("since the app started: deploying");
    assert_eq!(run.stderr.matches(differs).count(), 1, "{}", run.stderr);
    assert_ne!(pid(), started);
    let environ = std::fs::read(format!("/proc/{}/environ", pid())).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains("GREETING=hola"));
    // Read once: the next deploy of the same commit does nothing.
    t.gantry(&["deploy", "staging", &sha])
        .success()
        .stderr_has("nothing to do");
}
