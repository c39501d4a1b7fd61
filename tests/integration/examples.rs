//! The example apps' own scripts, which the demo runs and users copy.

use std::process::{Command, Stdio};

use crate::harness::{copy_dir, examples, free_port, http_get, wait_until, Test};

/// An old app that holds its port for a moment after it is told to stop
/// (as a busy machine or a slow shutdown does): the restart must wait for
/// it to be gone before it starts the new one, or the new one cannot bind
/// the port and, once the old one goes, nothing answers.
#[test]
fn the_example_restart_waits_for_the_old_app_to_let_go_of_its_port() {
    let t = Test::new().start();
    let app = t.dir.join("app");
    copy_dir(&examples().join("app"), &app);
    std::fs::write(app.join("REVISION"), "new\n").unwrap();
    let data = t.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let slow_to_stop = "import signal, socket, sys, time\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', int(sys.argv[1])))\n\
         s.listen()\n\
         def stop(*_):\n    time.sleep(1.5)\n    sys.exit(0)\n\
         signal.signal(signal.SIGTERM, stop)\n\
         while True:\n    s.accept()[0].close()\n";
    let mut old = Command::new("python3")
        .args(["-c", slow_to_stop, &port.to_string()])
        .arg(t.dir.join("old-app"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(10, "the old app to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    std::fs::write(data.join("app.pid"), old.id().to_string()).unwrap();

    let restart = Command::new("sh")
        .arg(app.join("restart.sh"))
        .env("APP_PORT", port.to_string())
        .env("DB_PATH", data.join("app.sqlite3"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&restart.stderr);
    assert!(restart.status.success(), "{said}");
    assert!(
        old.try_wait().unwrap().is_some(),
        "the old app is gone before the new one starts"
    );
    wait_until(30, "the new app to answer", || {
        http_get("127.0.0.1", port, "/health").is_some_and(|(status, _)| status == 200)
    });
    let (_, body) = http_get("127.0.0.1", port, "/health").unwrap();
    assert_eq!(body.trim(), "ok new");
}
