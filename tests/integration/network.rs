//! A host cut off from the network mid-deploy, through a network namespace.

use crate::harness::{wait_until, Test};

#[test]
fn host_cut_off_mid_deploy_leaves_every_host_serving_and_a_stale_lock() {
    let mut t = Test::new().hosts(1).isolated_hosts(1).start();
    let config = t.config(&[("staging", &[0, 1])]).replace(
        "[deploy]",
        "keepalive = \"1s\"\nconnect_timeout = \"3s\"\n\n[deploy]",
    );
    t.write_config(&config);
    let good = t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"]).success();
    let before: Vec<_> = (0..2).map(|i| t.current("staging", i)).collect();

    t.commit("Second", &[("NEWS", "second\n")]);
    let cut_off = t.site("staging", 1);
    std::fs::write(cut_off.join("hold"), "").unwrap();
    let deploy = t.command(&["deploy", "staging"]).spawn().unwrap();
    wait_until(
        60,
        "the deploy to reach the build on the isolated host",
        || cut_off.join("holding").exists(),
    );
    t.hosts[1].netns.as_ref().unwrap().cut();
    std::fs::remove_file(cut_off.join("hold")).unwrap();
    let out = deploy.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: build 2/2 failed", t.address(1))),
        "{stderr}"
    );
    assert!(stderr.contains("connection lost"), "{stderr}");
    for (i, before) in before.iter().enumerate() {
        assert_eq!(
            &t.current("staging", i),
            before,
            "host {i} still points at the old release"
        );
    }
    assert_eq!(
        t.get("staging", 0, "/health").unwrap().1.trim(),
        format!("ok {good}")
    );
    assert!(
        !t.site("staging", 0).join(".gantry/lock").exists(),
        "the reachable host was unlocked"
    );
    assert!(
        cut_off.join(".gantry/lock").exists(),
        "the cut-off host keeps its lock"
    );

    t.hosts[1].netns.as_ref().unwrap().restore();
    assert_eq!(
        t.get("staging", 1, "/health").unwrap().1.trim(),
        format!("ok {good}")
    );
    t.gantry(&["deploy", "staging"])
        .code(4)
        .stderr_has(&format!("{}: held by", t.address(1)))
        .stderr_has("[stale: that process is no longer running]");
    t.gantry(&["unlock", "staging"]).success();
    let second = t.head();
    t.gantry(&["deploy", "staging"]).success();
    for i in 0..2 {
        assert_eq!(
            t.get("staging", i, "/health").unwrap().1.trim(),
            format!("ok {second}")
        );
    }
}

#[test]
fn health_check_on_the_host_reaches_an_app_only_the_host_can_see() {
    let mut t = Test::new().isolated_hosts(1).start();
    // The app listens on the host's own loopback: invisible from here.
    let config = t
        .config(&[("staging", &[0])])
        .replace("APP_HOST = \"{host}\"", "APP_HOST = \"127.0.0.1\"")
        .replace(
            "url = \"http://{host}:{app_port}/health\"",
            "url = \"http://127.0.0.1:{app_port}/health\"",
        );
    let from_here = config.replace("retries = 40", "retries = 3");
    t.write_config(&from_here);
    t.commit("Add config", &[]);
    t.gantry(&["deploy", "staging"])
        .code(1)
        .stderr_has("health check failed")
        .stderr_has("cannot connect to 127.0.0.1:");
    assert_eq!(t.current("staging", 0), None, "nothing went live");

    let on_host = config.replace(
        "interval = \"250ms\" }",
        "interval = \"250ms\", on = \"host\" }",
    );
    t.write_config(&on_host);
    let sha = t.commit("Check from the host", &[]);
    t.gantry(&["deploy", "staging"]).success();
    assert!(t.current("staging", 0).unwrap().ends_with(&sha[..8]));
    t.gantry(&["verify", "staging"]).success();
}

#[test]
fn health_check_on_a_host_without_curl_uses_python() {
    let mut t = Test::new().hosts(1).hosts_without(&["curl"]).start();
    let config = t.config(&[("staging", &[0])]).replace(
        "interval = \"250ms\" }",
        "interval = \"250ms\", on = \"host\" }",
    );
    t.write_config(&config);
    let sha = t.commit("Check from a host without curl", &[]);
    t.gantry(&["deploy", "staging"]).success();
    t.gantry(&[
        "exec",
        "staging",
        "--",
        "sh",
        "-c",
        "command -v curl || echo no-curl",
    ])
    .success()
    .stdout_has("no-curl");
    assert!(t.current("staging", 0).unwrap().ends_with(&sha[..8]));
    // The fallback tells a wrong answer from a right one.
    let wrong = config
        .replace("body = \"{commit}\"", "body = \"not-what-it-says\"")
        .replace("retries = 40", "retries = 1");
    assert_ne!(wrong, config);
    t.write_config(&wrong);
    t.commit("Expect another body", &[]);
    t.gantry(&["deploy", "staging"])
        .code(1)
        .stderr_has("but the body does not contain `not-what-it-says`");
    assert!(t.current("staging", 0).unwrap().ends_with(&sha[..8]));
}
