//! Health checks against a site behind HTTPS: a real nginx on loopback
//! ports with certificates from a throw-away CA made with openssl, in front
//! of the example app. A valid certificate passes with `health.ca`; without
//! it, and with a certificate for another name or an expired one, the check
//! fails saying why; an `http://` URL that redirects to `https://` is
//! followed.

use std::path::Path;
use std::process::Command;

use crate::harness::{free_port, nginx_with, Nginx, Test};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and three server certificates it signs: for 127.0.0.1, for
/// another name, and one that expired in 2020; and a self-signed one for
/// 127.0.0.1 as `openssl req -x509` makes it (`CA:TRUE`).
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
            "-days",
            "30",
            "-subj",
            "/CN=self",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Gantry Test CA",
        ],
    );
    for (name, san) in [
        ("good", "IP:127.0.0.1"),
        ("wrong", "DNS:other.example"),
        ("expired", "IP:127.0.0.1"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName={san}\n"),
        )
        .unwrap();
        if name == "expired" {
            // `openssl ca` can sign with dates in the past.
            std::fs::write(dir.join("index.txt"), "").unwrap();
            std::fs::write(dir.join("serial"), "1000\n").unwrap();
            std::fs::write(
                dir.join("ca.cnf"),
                "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\ndefault_md = sha256\npolicy = any\ncopy_extensions = none\n[any]\ncommonName = supplied\n",
            )
            .unwrap();
            openssl(
                dir,
                &[
                    "ca",
                    "-batch",
                    "-config",
                    "ca.cnf",
                    "-cert",
                    "ca.pem",
                    "-keyfile",
                    "ca.key",
                    "-in",
                    "expired.csr",
                    "-out",
                    "expired.pem",
                    "-startdate",
                    "20200101000000Z",
                    "-enddate",
                    "20200102000000Z",
                    "-extfile",
                    "expired.ext",
                ],
            );
        } else {
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "30",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
    }
}

/// nginx with a TLS server per certificate and a plain one that redirects
/// to the good one, all proxying to the app.
fn nginx(t: &Test, app_port: u16, ports: &[(u16, &str)], plain: u16, good: u16) -> Nginx {
    let certs = t.dir.join("certs");
    let mut servers = String::new();
    for (port, name) in ports {
        servers.push_str(&format!(
            "server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {c}/{name}.pem; ssl_certificate_key {c}/{name}.key; location / {{ proxy_pass http://127.0.0.1:{app_port}; }} }}\n",
            c = certs.display()
        ));
    }
    servers.push_str(&format!(
        "server {{ listen 127.0.0.1:{plain}; return 301 https://127.0.0.1:{good}$request_uri; }}\n"
    ));
    Nginx::start(t, &nginx_with(t, &servers), plain)
}

#[test]
fn https_health_checks_trust_a_private_ca_and_say_why_a_certificate_fails() {
    let mut t = Test::new().hosts(1).start();
    certificates(&t.dir.join("certs"));
    std::fs::copy(t.dir.join("certs/ca.pem"), t.repo.join("ca.pem")).unwrap();
    std::fs::copy(t.dir.join("certs/self.pem"), t.repo.join("self.pem")).unwrap();
    let app_port = t.app_port("staging", 0);
    let (good, wrong, expired, plain) = (free_port(), free_port(), free_port(), free_port());
    let own = free_port();
    let _nginx = nginx(
        &t,
        app_port,
        &[
            (good, "good"),
            (wrong, "wrong"),
            (expired, "expired"),
            (own, "self"),
        ],
        plain,
        good,
    );
    let base = t.config(&[("staging", &[0])]);
    let trusting = |url: &str, ca: Option<&str>| {
        base.replace(
            "url = \"http://{host}:{app_port}/health\"",
            &format!(
                "url = \"{url}\"{}",
                ca.map(|f| format!(", ca = \"{f}\"")).unwrap_or_default()
            ),
        )
    };
    let with = |url: &str, ca: bool| trusting(url, ca.then_some("ca.pem"));
    let https = |port: u16| format!("https://127.0.0.1:{port}/health");

    // A deploy whose check speaks HTTPS to the private CA's certificate.
    let config = with(&https(good), true);
    assert_ne!(config, base);
    t.write_config(&config);
    let sha = t.commit("Check over HTTPS", &[]);
    t.gantry(&["deploy", "staging"]).success();
    assert!(t.current("staging", 0).unwrap().ends_with(&sha[..8]));

    // A failing check gives up after three attempts.
    let verify = |t: &Test, config: String| {
        t.write_config(&config.replace("retries = 40", "retries = 2"));
        t.gantry(&["verify", "staging", "--health-only"])
    };
    verify(&t, with(&https(good), false))
        .code(6)
        .stderr_has("TLS: the site's certificate is signed by an issuer this check does not trust: set `deploy.health.ca` to your authority's certificate (PEM)");
    verify(&t, with(&https(wrong), true))
        .code(6)
        .stderr_has("TLS: the site's certificate is issued for `other.example`, not `127.0.0.1`");
    verify(&t, with(&https(expired), true))
        .code(6)
        .stderr_has("TLS: the site's certificate expired on 2020-01-02: renew it");

    // A self-signed certificate (CA:TRUE, as `openssl req -x509` makes
    // it): trusted exactly when `health.ca` names it, and only for its
    // names; it trusts nothing it did not sign.
    verify(&t, trusting(&https(own), Some("self.pem"))).success();
    verify(&t, trusting(&https(own), Some("ca.pem")))
        .code(6)
        .stderr_has("TLS: the site's certificate is self-signed: set `deploy.health.ca` to that certificate (PEM) to trust exactly it");
    verify(&t, trusting(&https(own), None))
        .code(6)
        .stderr_has("TLS: the site's certificate is self-signed");
    verify(
        &t,
        trusting(&format!("https://localhost:{own}/health"), Some("self.pem")),
    )
    .code(6)
    .stderr_has("TLS: the site's certificate is issued for `127.0.0.1`, not `localhost`");
    verify(&t, trusting(&https(good), Some("self.pem")))
        .code(6)
        .stderr_has("not trust");
    // Over plain HTTP to a TLS port, or TLS to a plain one: a sentence.
    let run = verify(
        &t,
        trusting(&format!("https://127.0.0.1:{plain}/health"), Some("ca.pem")),
    );
    run.code(6).stderr_has("TLS: the handshake with 127.0.0.1:");
    assert!(!run.stderr.contains("Other("), "{}", run.stderr);
    // http:// that redirects to https:// on the same site is followed.
    verify(&t, with(&format!("http://127.0.0.1:{plain}/health"), true)).success();
}
