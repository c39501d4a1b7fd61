//! The example apps' own scripts, which the demo runs and users copy.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::harness::{copy_dir, django_python, examples, free_port, http_get, wait_until, Test};

/// An old app on `port` that holds it for `secs` after it is told to stop
/// (as a busy machine or a slow shutdown does); its command line names
/// `dir`, so the test's cleanup finds it.
fn slow_to_stop(port: u16, secs: f32, dir: &Path) -> Child {
    let code = "import signal, socket, sys, time\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', int(sys.argv[1])))\n\
         s.listen()\n\
         def stop(*_):\n    time.sleep(float(sys.argv[2]))\n    sys.exit(0)\n\
         signal.signal(signal.SIGTERM, stop)\n\
         while True:\n    s.accept()[0].close()\n";
    let old = Command::new("python3")
        .args(["-c", code, &port.to_string(), &secs.to_string()])
        .arg(dir.join("old-app"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(10, "the old app to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    old
}

/// Runs the example `name`'s `restart.sh` (copied into the test's folder,
/// with `REVISION` "new") while an old app named in `pidfile` holds the
/// port for `secs` after it is stopped: the restart must wait for it to
/// be gone before it starts the new one, or the new one cannot bind the
/// port and, once the old one goes, nothing answers.
fn restart_after_a_slow_stop(name: &str, secs: f32, pidfile: &str, env: &[(&str, &Path)]) {
    let t = Test::new().start();
    let app = t.dir.join(name);
    copy_dir(&examples().join(name), &app);
    std::fs::write(app.join("REVISION"), "new\n").unwrap();
    let data = t.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let mut old = slow_to_stop(port, secs, &t.dir);
    std::fs::write(data.join(pidfile), old.id().to_string()).unwrap();

    let mut restart = Command::new("sh");
    restart
        .arg(app.join("restart.sh"))
        .env("APP_PORT", port.to_string())
        .env("APP_HOST", "127.0.0.1")
        .env("DB_PATH", data.join("app.sqlite3"))
        .env("GANTRY_SHARED", &data);
    for (name, value) in env {
        restart.env(name, value);
    }
    let out = restart.output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        old.try_wait().unwrap().is_some(),
        "the old app is gone before the new one starts\n{said}"
    );
    wait_until(30, "the new app to answer", || {
        http_get("127.0.0.1", port, "/health").is_some_and(|(status, _)| status == 200)
    });
    let (_, body) = http_get("127.0.0.1", port, "/health").unwrap();
    assert_eq!(body.trim(), "ok new");
}

#[test]
fn the_example_restart_waits_for_the_old_app_to_let_go_of_its_port() {
    restart_after_a_slow_stop("app", 1.5, "app.pid", &[]);
}

/// gunicorn retries its bind for about five seconds by itself, so the old
/// one here holds the port for longer than that.
#[test]
fn the_django_example_restart_waits_for_the_old_gunicorn_to_let_go_of_its_port() {
    let python = django_python();
    restart_after_a_slow_stop(
        "django",
        6.5,
        "gunicorn.pid",
        &[("PYTHON", Path::new(&python))],
    );
}
