//! Django apps wired like the open-source ones people deploy
//! (`tests/fixtures/django-split`), through the file `gantry init` writes:
//! settings split into base/dev/production, `STATIC_ROOT` and
//! `MEDIA_ROOT` in sub-folders, `DJANGO_ALLOWED_HOSTS` read as a comma
//! list, no functional tests. Uploads made on the site survive releases,
//! pruning and a rollback; `/static/` and `/media/` answer through the
//! nginx site `gantry setup` writes.

use crate::harness::{
    django_python, free_port, http_get, nginx_conf, post, wait_until, Nginx, Test,
};

fn written(t: &Test) -> String {
    std::fs::read_to_string(t.repo.join("gantry.toml")).unwrap()
}

/// Replaces `from` (which must be there) with `to`.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` in:\n{text}");
    text.replacen(from, to, 1)
}

#[test]
fn init_asks_a_split_settings_app_what_it_reads() {
    let t = Test::new().django_split().start();
    t.app_venv();
    t.gantry(&["init"]).success().stderr_has(
        "settings `superlists.settings.production` for servers, beside manage.py's `superlists.settings.dev`",
    );
    let text = written(&t);
    for line in [
        "DJANGO_SETTINGS_MODULE = \"superlists.settings.production\"",
        "DJANGO_ALLOWED_HOSTS = \"{domain}\"   # ALLOWED_HOSTS reads it",
        "DJANGO_DEBUG = \"False\"   # turns DEBUG off (asked of the app)",
        "DJANGO_SECRET_KEY = { generate = true }",
        "static = \"{current}/src/collect_static\"",
        "static_url = \"/static/\"",
        "media = \"{shared}/src/media\"",
        "media_url = \"/media/\"",
        "shared = [\"src/db.sqlite3\", \"src/media/\"]",
        "wsgi = \"superlists.wsgi\"",
    ] {
        assert!(text.contains(line), "`{line}` in:\n{text}");
    }
    // No functional tests: a smoke check of the home page.
    assert!(text.contains("command = '''python3 -c "), "{text}");
    assert!(!text.contains("DJANGO_DEBUG_FALSE"), "{text}");

    // ALLOWED_HOSTS written in the settings, and uwsgi instead of gunicorn.
    let production = t.repo.join("src/superlists/settings/production.py");
    let settings = std::fs::read_to_string(&production).unwrap();
    std::fs::write(
        &production,
        swap(
            &settings,
            "os.environ.get(\"DJANGO_ALLOWED_HOSTS\", \"\").split(\",\")",
            "[\"example.com\"]",
        ),
    )
    .unwrap();
    let requirements = std::fs::read_to_string(t.repo.join("requirements.txt")).unwrap();
    std::fs::write(
        t.repo.join("requirements.txt"),
        swap(&requirements, "gunicorn>=23", "uwsgi>=2"),
    )
    .unwrap();
    let run = t.gantry(&["init", "--force"]);
    run.success()
        .stderr_has("ALLOWED_HOSTS is written in `src/superlists/settings/production.py`")
        .stderr_has("gunicorn is not in the requirements, uwsgi is");
    let text = written(&t);
    assert!(!text.contains("ALLOWED_HOST = "), "{text}");
    assert!(
        text.contains("# ALLOWED_HOSTS is written in src/superlists/settings/production.py"),
        "{text}"
    );
    assert!(!run.stderr.contains("DEBUG = True"), "{}", run.stderr);
}

/// The config `init` wrote for the split fixture, with what a test's
/// machine needs instead of systemd, sudo and real domains: the
/// fixture's interpreter, its sites under the test's folder, `restart.sh`
/// and the test's nginx.
fn from_init(t: &mut Test, nginx_port: u16) -> String {
    t.app_venv();
    t.gantry(&["init"]).success();
    let dir = t.dir.display().to_string();
    let app_port = t.app_port("staging", 0);
    let mut text = written(t);
    let swaps = [
        ("[vars]\n", format!("[vars]\npython = \"{}\"\n", django_python())),
        ("keep_releases = 5", "keep_releases = 2".into()),
        (
            "path = \"/home/{user}/sites/{domain}\"",
            format!("path = \"{dir}/sites/{{env}}/{{hostid}}\""),
        ),
        // A restart instead of init's handover (tested in `setup`).
        (
            "[deploy.handover]\nports = [\"8001\", \"8002\"]\nstart = \"sudo -n systemctl enable --now gunicorn-{domain}@$GANTRY_PORT\"\nstop = \"sudo -n systemctl disable --now gunicorn-{domain}@$GANTRY_PORT\"\n",
            "".into(),
        ),
        (
            "logs = \"sudo journalctl -u 'gunicorn-{domain}@*' -n 20 --no-pager\"",
            "logs = \"tail -n 20 {shared}/gunicorn.log\"\n\
             restart = \"sh restart.sh\"\nenv = { PYTHON = \"{python}\", APP_HOST = \"{host}\", APP_PORT = \"{app_port}\" }\n\
             stop = 'kill \"$(cat \"$GANTRY_SHARED/gunicorn.pid\")\"'".into(),
        ),
        (
            "health = { url = \"http://{domain}/\"",
            "health = { url = \"http://{host}:{app_port}/health\", body = \"{commit}\"".into(),
        ),
        ("sudo = true", "sudo = false".into()),
        (
            "systemd = { name = \"gunicorn-{domain}\" }",
            format!("systemd = {{ name = \"gunicorn-{{env}}\", dir = \"{dir}/systemd\", reload = \"\" }}"),
        ),
        (
            "nginx = { name = \"{domain}\" }",
            format!("nginx = {{ name = \"site-{{env}}\", dir = \"{dir}/nginx/sites\", reload = \"nginx -t -q -p {dir}/nginx/ -c {dir}/nginx/nginx.conf\" }}"),
        ),
    ];
    for (from, to) in swaps {
        text = swap(&text, from, &to);
    }
    let envs = text.find("[environments.staging]").unwrap();
    text.truncate(envs);
    text.push_str(&format!(
        "[ssh]\nconfig = \"{dir}/ssh_config\"\n\n[environments.staging]\nhosts = [{{ address = \"{addr}\", vars = {{ hostid = \"h0\", domain = \"127.0.0.1\", app_port = \"{app_port}\", listen = \"127.0.0.1:{nginx_port}\", upstream = \"127.0.0.1:{app_port}\" }} }}]\n",
        addr = t.address(0),
    ));
    text
}

/// GET through nginx: the status and body.
fn get(port: u16, path: &str) -> (u16, String) {
    http_get("127.0.0.1", port, path).expect("nginx answers")
}

#[test]
fn uploads_survive_releases_pruning_and_a_rollback_behind_the_nginx_site() {
    let mut t = Test::new().hosts(1).django_split().start();
    let conf = nginx_conf(&t);
    let port = free_port();
    let config = from_init(&mut t, port);
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["setup", "staging"]).success();
    t.gantry(&["deploy", "staging"]).success();
    let _nginx = Nginx::start(&t, &conf, port);

    let (status, css) = get(port, "/static/lists/style.css");
    assert_eq!(status, 200, "{css}");
    assert!(css.contains("gantry-example-style"), "{css}");
    let answer = post("127.0.0.1", port, "/upload?name=photo.txt", "made-on-live").unwrap();
    assert!(answer.contains(" 201 "), "{answer}");
    let kept = t
        .site("staging", 0)
        .join("shared/src/media/uploads/photo.txt");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "made-on-live");
    let first = t.current("staging", 0).unwrap();

    // Two more releases: with keep_releases = 2 the one the upload was made
    // in is pruned.
    for n in 2..=3 {
        std::fs::write(t.repo.join(format!("src/release-{n}.txt")), "x\n").unwrap();
        t.commit(&format!("Release {n}"), &[]);
        t.gantry(&["deploy", "staging"]).success();
        assert_eq!(
            get(port, "/media/uploads/photo.txt"),
            (200, "made-on-live".into())
        );
        assert_eq!(get(port, "/static/lists/style.css").0, 200);
    }
    assert!(!t.releases("staging", 0).contains(&first), "pruned");
    // Nothing the app writes is left inside the release.
    let check = t.gantry(&["check", "staging"]);
    check.success();
    assert!(!check.stderr.contains("writes inside"), "{}", check.stderr);
    t.gantry(&["rollback", "staging"]).success();
    assert_eq!(
        get(port, "/media/uploads/photo.txt"),
        (200, "made-on-live".into())
    );
    let (status, page) = get(port, "/");
    assert_eq!(status, 200, "{page}");
    // The app runs with the production settings: a missing page is
    // Django's plain 404, not the debug page.
    let (status, missing) = get(port, "/no-such-page");
    assert_eq!(status, 404);
    assert!(!missing.contains("DEBUG = True"), "{missing}");
}

/// Whether process `pid` runs (a zombie's cmdline is empty).
fn running(pid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

#[test]
fn a_first_deploy_refused_by_allowed_hosts_names_the_variable_and_stops_the_app() {
    let mut t = Test::new().hosts(1).django_split().start();
    nginx_conf(&t);
    let config = from_init(&mut t, free_port());
    // The environment's domain is not the one the check asks for.
    t.write_config(&swap(
        &config,
        "domain = \"127.0.0.1\"",
        "domain = \"www.example.com\"",
    ));
    t.commit("Add config", &[]);
    t.gantry(&["setup", "staging"]).success();
    let run = t.gantry(&["deploy", "staging"]);
    run.code(1).stderr_has(
        "status 400, expected 200 (Django answers 400 to a host name it does not allow: ALLOWED_HOSTS reads `DJANGO_ALLOWED_HOSTS`",
    );
    // The app's recent log is shown.
    run.stderr_has("app log (`tail -n 20 ");
    assert_eq!(t.current("staging", 0), None, "no release is live");
    let pid = t.app_pid("staging", 0);
    wait_until(30, "the app the deploy started to stop", || !running(&pid));

    // The domain set right: setup writes it, and the deploy goes through.
    t.write_config(&config);
    t.commit("The right domain", &[]);
    t.gantry(&["setup", "staging"])
        .success()
        .stdout_has("~ DJANGO_ALLOWED_HOSTS (value changed)");
    t.gantry(&["deploy", "staging"]).success();
}

#[test]
fn check_names_the_folder_an_app_writes_inside_the_release() {
    let mut t = Test::new().hosts(1).django_split().start();
    nginx_conf(&t);
    // Uploads kept in a folder the app does not use (what `init` wrote
    // before it asked the app).
    let config = swap(
        &from_init(&mut t, free_port()),
        "shared = [\"src/db.sqlite3\", \"src/media/\"]",
        "shared = [\"src/db.sqlite3\", \"media/\"]",
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["setup", "staging"]).success();
    t.gantry(&["deploy", "staging"]).success();
    let app = t.app_port("staging", 0);
    for name in ["a.txt", "b.txt"] {
        let answer = post("127.0.0.1", app, &format!("/upload?name={name}"), "x").unwrap();
        assert!(answer.contains(" 201 "), "{answer}");
    }
    t.gantry(&["check", "staging"]).success().stderr_has(
        "writes inside the release, and what it wrote goes when the release is pruned: `src/media/` (2 files); keep it across releases with `deploy.shared = [\"src/media/\"]`",
    );
}
