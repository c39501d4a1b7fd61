//! A handover instead of a restart (`[deploy.handover]`), behind a real
//! nginx: with clients requesting through it all along, a deploy, a
//! rollback and a deploy whose new release fails its check drop no
//! request; after a move every answer is the new release's (`X-Release`);
//! a slow request the old release took before the move finishes with 200.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{free_port, nginx_with, Nginx, Test};

/// nginx on `port` proxying to the upstream file the handover writes.
fn proxy(t: &Test, port: u16, upstream: &std::path::Path, first: u16) -> Nginx {
    std::fs::create_dir_all(upstream.parent().unwrap()).unwrap();
    // Until the first handover writes it: nothing listens there yet.
    std::fs::write(upstream, format!("server 127.0.0.1:{first};\n")).unwrap();
    let http = format!(
        "upstream app {{ include {u}; }}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; proxy_next_upstream error timeout; }} }}\n",
        u = upstream.display()
    );
    Nginx::start(t, &nginx_with(t, &http), port)
}

/// One GET through the proxy: the status and the `X-Release` header.
pub fn get(port: u16, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))?;
    let release = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Release: "))
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((status, release))
}

/// Clients requesting `/` through the proxy until stopped: every answer
/// that was not a 200, and how many there were.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    answers: Arc<Mutex<(usize, Vec<String>)>>,
}

impl Load {
    pub fn start(port: u16, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new((0, Vec::new())));
        let threads = (0..clients)
            .map(|_| {
                let (stop, answers) = (stop.clone(), answers.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let answer = get(port, "/", Duration::from_secs(10));
                        let mut a = answers.lock().unwrap();
                        a.0 += 1;
                        match answer {
                            Ok((200, _)) => {}
                            Ok((status, release)) => {
                                a.1.push(format!("status {status} ({release})"))
                            }
                            Err(e) => a.1.push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            answers,
        }
    }

    /// Stops the clients: how many requests, and the failures.
    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let a = self.answers.lock().unwrap();
        (a.0, a.1.clone())
    }
}

/// Asserts that no request of a load failed, and that there were some.
pub fn assert_none_failed(what: &str, (requests, failed): (usize, Vec<String>)) {
    assert!(
        failed.is_empty(),
        "{what}: {} of {requests} failed, first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        requests > 20,
        "{what}: the clients made {requests} requests"
    );
}

/// The example app on one host with a handover behind a real nginx, its
/// first release deployed: the proxy's port, the proxy, that commit.
fn handed_over(t: &mut Test) -> (u16, Nginx, String) {
    let (proxy_port, a, b) = (free_port(), free_port(), free_port());
    let dir = t.dir.display().to_string();
    // The restart and the direct check give way to a handover behind the
    // proxy, and a check through it.
    let base = t.config(&[("staging", &[0])]);
    let config = with_handover(&base, &dir, proxy_port, [a, b], "6s");
    t.write_config(&config);
    let first = t.commit("Handover", &[]);
    let upstream = t.site("staging", 0).join("shared/upstream.conf");
    let proxy = proxy(t, proxy_port, &upstream, a);
    t.gantry(&["deploy", "staging"]).success();
    (proxy_port, proxy, first)
}

#[test]
fn a_handover_drops_no_request_in_a_deploy_a_rollback_or_a_failed_check() {
    let mut t = Test::new().hosts(1).start();
    let (proxy_port, _proxy, first) = handed_over(&mut t);
    assert_eq!(
        get(proxy_port, "/", Duration::from_secs(5)).unwrap(),
        (200, first.clone())
    );
    t.gantry(&["plan", "staging"])
        .success()
        .stdout_has("handover: start beside")
        .stdout_has("GANTRY_PORT")
        .stdout_has("handover: move traffic");

    // A deploy under load, with a slow request in flight on the old release.
    let second = t.commit("Second", &[("notes.txt", "two\n")]);
    let slow = std::thread::spawn(move || get(proxy_port, "/slow?s=4", Duration::from_secs(30)));
    let load = Load::start(proxy_port, 4);
    t.gantry(&["deploy", "staging"]).success();
    assert_none_failed("deploy", load.finish());
    assert_eq!(
        slow.join().unwrap(),
        Ok((200, first.clone())),
        "the slow request"
    );
    for _ in 0..10 {
        assert_eq!(
            get(proxy_port, "/", Duration::from_secs(5)).unwrap(),
            (200, second.clone())
        );
    }

    // A rollback under load: a handover back.
    let load = Load::start(proxy_port, 4);
    t.gantry(&["rollback", "staging"]).success();
    assert_none_failed("rollback", load.finish());
    assert_eq!(
        get(proxy_port, "/", Duration::from_secs(5)).unwrap(),
        (200, first.clone())
    );

    // A release whose check fails on its own port: traffic never moves.
    let third = t.commit("Broken", &[("notes.txt", "three\n")]);
    std::fs::write(t.site("staging", 0).join("shared/data/unhealthy"), &third).unwrap();
    let load = Load::start(proxy_port, 4);
    t.gantry(&["deploy", "staging"])
        .code(1)
        .stderr_has("health check");
    assert_none_failed("failed check", load.finish());
    assert_eq!(
        get(proxy_port, "/", Duration::from_secs(5)).unwrap(),
        (200, first)
    );
    // The broken release's app was stopped: one app runs, on one port.
    let pids = std::fs::read_dir(t.site("staging", 0).join("shared/data"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pid")
        })
        .count();
    assert_eq!(pids, 1);
}

/// `config` with a handover instead of its restart (the example apps'
/// `start.sh`/`stop.sh` on `ports`, the test's nginx reloaded, `drain`),
/// and its health check through the proxy on `proxy_port`.
fn with_handover(config: &str, dir: &str, proxy_port: u16, ports: [u16; 2], drain: &str) -> String {
    let [a, b] = ports;
    drop_line(&drop_line(config, "restart = "), "health = ").replacen(
        "[database]",
        &format!(
            "health = {{ url = \"http://127.0.0.1:{proxy_port}/health\", body = \"{{commit}}\", timeout = \"2s\", retries = 80, interval = \"250ms\" }}\n\n\
             [deploy.handover]\nports = [\"{a}\", \"{b}\"]\nstart = \"sh start.sh\"\nstop = \"sh stop.sh\"\n\
             reload = \"nginx -s reload -p {dir}/nginx/ -c nginx.conf\"\ndrain = \"{drain}\"\n\n[database]"
        ),
        1,
    )
}

/// `text` without the line that starts with `start`.
pub fn drop_line(text: &str, start: &str) -> String {
    assert!(text.contains(start), "{start}");
    text.lines()
        .filter(|l| !l.starts_with(start))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn migrations_that_break_the_serving_release_are_refused_before_a_handover() {
    let mut t = Test::new().hosts(1).start();
    let (proxy_port, _proxy, first) = handed_over(&mut t);
    let migration = (
        "migrations/0002_unique.sql",
        "CREATE UNIQUE INDEX items_text ON items (text);\n-- down\nDROP INDEX items_text;\n",
    );
    t.commit("Items are unique", &[migration]);
    t.gantry(&["deploy", "staging"])
        .code(7)
        .stderr_has("break the release it serves, which keeps serving beside the new one during a handover; nothing was migrated")
        .stderr_has("added: index items items_text unique")
        .stderr_has("--allow-incompatible");
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    let indexes =
        || crate::harness::sqlite(&db, "SELECT name FROM sqlite_master WHERE type = 'index'");
    assert!(!indexes().contains("items_text"), "nothing was migrated");
    assert_eq!(
        get(proxy_port, "/", Duration::from_secs(5)).unwrap(),
        (200, first)
    );
    // Asked for, it runs.
    let sha = t.head();
    t.gantry(&["deploy", "staging", "--allow-incompatible"])
        .success();
    assert!(indexes().contains("items_text"));
    assert_eq!(
        get(proxy_port, "/", Duration::from_secs(5)).unwrap(),
        (200, sha)
    );
}

/// The Django example behind the nginx site `gantry setup` writes, with a
/// handover: gunicorn per release on two ports (`start.sh`/`stop.sh`, as
/// the per-port systemd unit setup writes would on a server).
#[test]
fn the_django_example_behind_setup_s_nginx_site_drops_no_request() {
    let mut t = Test::new().hosts(1).django().start();
    let conf = crate::harness::nginx_conf(&t);
    let (nginx_port, a, b) = (free_port(), free_port(), free_port());
    let dir = t.dir.display().to_string();
    let config = crate::setup::django_setup_config(&mut t, nginx_port);
    let app_port = t.app_port("staging", 0);
    let config = config.replace(&format!(", upstream = \"127.0.0.1:{app_port}\""), "");
    let config = with_handover(&config, &dir, nginx_port, [a, b], "5s");
    t.write_config(&config);
    let first = t.commit("Handover", &[]);
    // Setup writes the upstream file and a site that includes it (its
    // reload runs `nginx -t` on them), and the per-port unit.
    t.gantry(&["setup", "staging"])
        .success()
        .stdout_has("upstream file")
        .stdout_has("systemd template unit");
    let site = std::fs::read_to_string(t.dir.join("nginx/sites/site-staging")).unwrap();
    let upstream = t.site("staging", 0).join("shared/upstream.conf");
    assert!(
        site.contains(&format!("include {};", upstream.display()))
            && site.contains("proxy_next_upstream error timeout;"),
        "{site}"
    );
    let unit = t.dir.join("systemd/gunicorn-staging@.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("--bind 127.0.0.1:%i"), "{text}");
    crate::harness::systemd_verify(&[&unit]);
    let _nginx = Nginx::start(&t, &conf, nginx_port);
    t.gantry(&["deploy", "staging"]).success();
    assert_eq!(
        get(nginx_port, "/", Duration::from_secs(5)).unwrap(),
        (200, first.clone())
    );
    // What the unit would read to know its release.
    let slot = std::fs::read_to_string(t.site("staging", 0).join(".gantry/handover/slot")).unwrap();
    let port = if slot.trim() == "0" { a } else { b };
    let named = std::fs::read_to_string(
        t.site("staging", 0)
            .join(format!(".gantry/handover/{port}.env")),
    )
    .unwrap();
    let current = std::fs::canonicalize(t.site("staging", 0).join("current")).unwrap();
    assert_eq!(named, format!("GANTRY_RELEASE={}\n", current.display()));

    // A deploy and a rollback under load, a slow request in flight.
    let second = t.commit("Second", &[("notes.txt", "two\n")]);
    let slow = std::thread::spawn(move || get(nginx_port, "/slow?s=3", Duration::from_secs(30)));
    let load = Load::start(nginx_port, 4);
    t.gantry(&["deploy", "staging"]).success();
    assert_none_failed("deploy", load.finish());
    assert_eq!(slow.join().unwrap(), Ok((200, first.clone())));
    assert_eq!(
        get(nginx_port, "/", Duration::from_secs(5)).unwrap(),
        (200, second)
    );
    let load = Load::start(nginx_port, 4);
    t.gantry(&["rollback", "staging"]).success();
    assert_none_failed("rollback", load.finish());
    assert_eq!(
        get(nginx_port, "/", Duration::from_secs(5)).unwrap(),
        (200, first)
    );

    // A changed `.env`: setup hands the release over to itself, under load,
    // and the gunicorn that serves then reads the new value.
    t.write_config(&config.replace("GREETING = \"hello\"", "GREETING = \"bonjour\""));
    let load = Load::start(nginx_port, 4);
    t.gantry(&["setup", "staging"])
        .success()
        .stdout_has("the app was restarted");
    assert_none_failed("setup", load.finish());
    let shared = t.site("staging", 0).join("shared");
    let slot = std::fs::read_to_string(t.site("staging", 0).join(".gantry/handover/slot")).unwrap();
    let port = if slot.trim() == "0" { a } else { b };
    let pid = std::fs::read_to_string(shared.join(format!("gunicorn-{port}.pid"))).unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains("GREETING=bonjour"));
}

/// A row of `bench/downtime.sh`: mode, command, requests and failures.
type Row = (&'static str, &'static str, (usize, Vec<String>));

/// A deploy of a new commit and a rollback under load through `port`.
fn measure(t: &Test, port: u16, mode: &'static str, rows: &mut Vec<Row>) {
    t.commit("Second", &[("notes.txt", "two\n")]);
    for (what, args) in [
        ("deploy", ["deploy", "staging"]),
        ("rollback", ["rollback", "staging"]),
    ] {
        let load = Load::start(port, 4);
        t.gantry(&args).success();
        rows.push((mode, what, load.finish()));
    }
}

/// Not a test: the numbers `bench/downtime.sh` prints. Four clients
/// request through a real nginx while the example app is deployed and
/// rolled back, once with a plain restart and once with a handover.
#[test]
#[ignore = "a measurement: bench/downtime.sh"]
#[allow(clippy::print_stdout)] // its table is what the bench prints
fn downtime_of_a_restart_and_of_a_handover() {
    let mut rows = Vec::new();
    // A plain restart: nginx proxies straight to the app's port.
    {
        let mut t = Test::new().hosts(1).start();
        let port = free_port();
        let app_port = t.app_port("staging", 0);
        let app = format!("{}:{app_port}", t.ip(0));
        t.configure(&[("staging", &[0])]);
        let http = format!(
            "upstream app {{ server {app}; }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; proxy_next_upstream error timeout; }} }}\n"
        );
        let _nginx = Nginx::start(&t, &nginx_with(&t, &http), port);
        t.gantry(&["deploy", "staging"]).success();
        measure(&t, port, "restart", &mut rows);
    }
    // A handover.
    {
        let mut t = Test::new().hosts(1).start();
        let (port, _proxy, _) = handed_over(&mut t);
        measure(&t, port, "handover", &mut rows);
    }
    println!(
        "{:<10} {:<9} {:>9} {:>7}  first failure",
        "mode", "command", "requests", "failed"
    );
    for (mode, what, (requests, failed)) in rows {
        let first = failed.first().cloned().unwrap_or_default();
        println!(
            "{mode:<10} {what:<9} {requests:>9} {:>7}  {first}",
            failed.len()
        );
    }
}
