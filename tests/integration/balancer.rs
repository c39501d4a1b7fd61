//! Hosts behind a load balancer Gantry does not run (`[deploy.balancer]`):
//! three hosts behind a real nginx that does not retry (as most external
//! balancers do not), deployed one at a time with plain restarts. Each host
//! leaves the pool and drains before its app restarts, and joins again once
//! healthy: with clients requesting through the balancer all along, no
//! request fails, in a rolling deploy and in one whose second host fails
//! its check (both hosts switched back the same way, the balancer's
//! commands one at a time).

use std::time::Duration;

use crate::handover::{assert_none_failed, get, Load};
use crate::harness::{free_port, nginx_with, Nginx, Test};

/// The balancer: nginx on `port` over the three hosts' apps, without
/// retries, its upstream file edited by `lb.sh leave|join IP PORT`.
fn balancer(t: &mut Test, port: u16) -> Nginx {
    let lb = t.dir.join("lb");
    std::fs::create_dir_all(&lb).unwrap();
    let servers: String = (0..3)
        .map(|i| {
            let port = t.app_port("live", i);
            format!("server {}:{port};\n", t.ip(i))
        })
        .collect();
    std::fs::write(lb.join("upstream.conf"), servers).unwrap();
    let dir = t.dir.display();
    std::fs::write(
        lb.join("lb.sh"),
        format!(
            "set -eu\nf={dir}/lb/upstream.conf\n\
             mkdir {dir}/lb/busy 2>/dev/null || echo \"$*\" >> {dir}/lb/overlaps\n\
             case \"$1\" in\n  leave) sed -i \"s|^server $2:$3;|# server $2:$3;|\" \"$f\" ;;\n  \
             join) sed -i \"s|^# server $2:$3;|server $2:$3;|\" \"$f\" ;;\nesac\n\
             echo \"$1 $2:$3 (GANTRY_HOST=$GANTRY_HOST)\" >> {dir}/lb/moves\n\
             nginx -s reload -p {dir}/nginx/ -c nginx.conf\n\
             sleep 0.2\nrmdir {dir}/lb/busy 2>/dev/null || true\n"
        ),
    )
    .unwrap();
    let http = format!(
        "upstream pool {{ include {dir}/lb/upstream.conf; }}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://pool; proxy_next_upstream off; }} }}\n"
    );
    Nginx::start(t, &nginx_with(t, &http), port)
}

/// Three hosts of `live`, one at a time, behind the balancer, their
/// first release deployed: the balancer's port, the balancer, that commit.
fn pooled(t: &mut Test) -> (u16, Nginx, String) {
    let port = free_port();
    let config = t
        .config(&[("live", &[0, 1, 2])])
        .replacen("keep_releases = 3\n", "keep_releases = 3\nbatch = 1\n", 1)
        .replacen(
            "[database]",
            &format!(
                "[deploy.balancer]\nleave = \"sh {d}/lb/lb.sh leave {{host}} {{app_port}}\"\n\
                 join = \"sh {d}/lb/lb.sh join {{host}} {{app_port}}\"\ndrain = \"4s\"\n\n[database]",
                d = t.dir.display()
            ),
            1,
        );
    t.write_config(&config);
    let first = t.commit("Behind a balancer", &[]);
    let lb = balancer(t, port);
    t.gantry(&["deploy", "live"]).success();
    (port, lb, first)
}

/// Every host is in the pool: no line of the upstream file is left out.
fn all_in_pool(t: &Test) {
    let upstream = std::fs::read_to_string(t.dir.join("lb/upstream.conf")).unwrap();
    assert!(!upstream.contains('#'), "{upstream}");
}

#[test]
fn hosts_leave_the_balancer_and_drain_before_they_restart() {
    let mut t = Test::new().hosts(3).start();
    let (port, _lb, first) = pooled(&mut t);
    all_in_pool(&t);
    t.gantry(&["plan", "live"])
        .success()
        .stdout_has("leave the balancer (on this machine)")
        .stdout_has("lb.sh leave 127.0.0.1")
        .stdout_has("join the balancer (on this machine)");

    // A rolling deploy under load, with a slow request on each host (the
    // balancer goes round), taken before any host left.
    let second = t.commit("Second", &[("notes.txt", "two\n")]);
    let slow: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(port, "/slow?s=3", Duration::from_secs(30))))
        .collect();
    let load = Load::start(port, 4);
    t.gantry(&["deploy", "live"])
        .success()
        .stderr_has("leave the balancer")
        .stderr_has("join the balancer");
    assert_none_failed("rolling deploy", load.finish());
    for s in slow {
        assert_eq!(
            s.join().unwrap(),
            Ok((200, first.clone())),
            "a slow request"
        );
    }
    all_in_pool(&t);
    for _ in 0..9 {
        assert_eq!(
            get(port, "/", Duration::from_secs(5)).unwrap(),
            (200, second.clone())
        );
    }
    // One leave and one join per host, one host at a time, with its own
    // address in the environment.
    let moves = std::fs::read_to_string(t.dir.join("lb/moves")).unwrap();
    let this_deploy: Vec<&str> = moves.lines().skip(6).collect();
    let expected: Vec<String> = (0..3)
        .flat_map(|i| {
            let p = t.app_port("live", i);
            let ip = t.ip(i).to_string();
            ["leave", "join"].map(|m| format!("{m} {ip}:{p} (GANTRY_HOST={ip})"))
        })
        .collect();
    assert_eq!(this_deploy, expected);

    // Two hosts at a time, checked on the hosts: the second host's new
    // release fails its check and the host puts itself back; the first
    // one is switched back. Each is out of the pool while it restarts and
    // back in only once its app answers (the apps take a second to open
    // their port); the two hosts' commands never overlap.
    let config = std::fs::read_to_string(t.repo.join("gantry.toml")).unwrap();
    let config = config.replacen("batch = 1\n", "batch = 2\n", 1).replacen(
        "interval = \"250ms\" }",
        "interval = \"250ms\", on = \"host\" }",
        1,
    );
    t.write_config(&config);
    let third = t.commit("Broken on one", &[("notes.txt", "three\n")]);
    std::fs::write(t.site("live", 1).join("shared/data/unhealthy"), &third).unwrap();
    for i in 0..3 {
        std::fs::write(t.site("live", i).join("shared/data/start-delay"), "1").unwrap();
    }
    let load = Load::start(port, 4);
    t.gantry(&["deploy", "live"])
        .code(1)
        .stderr_has("health check");
    assert_none_failed("failed rolling deploy", load.finish());
    assert!(
        !t.dir.join("lb/overlaps").exists(),
        "balancer commands overlapped"
    );
    all_in_pool(&t);
    for _ in 0..9 {
        assert_eq!(
            get(port, "/", Duration::from_secs(5)).unwrap(),
            (200, second.clone())
        );
    }
}
