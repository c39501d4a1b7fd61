//! Health checks: an HTTP(S) GET from this machine (`remote::http`) or
//! from the host, retried until the app answers with the expected status
//! (and body text), or the retries run out.

use crate::config::Health;
use crate::remote::http::{get, NoAnswer};

/// The outcome of the last attempt, for the error report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub url: String,
    pub attempts: u32,
    pub last: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GET {} did not pass after {} attempts: {}",
            self.url, self.attempts, self.last
        )
    }
}

/// Where a check's request is made from.
#[derive(Clone, Copy)]
pub enum From<'a> {
    /// This machine.
    Here,
    /// The host itself (`on = "host"`), for apps that only listen there.
    Host(&'a crate::remote::site::Site),
}

/// Checks `url` until it answers `health.status` (with `body` in the
/// answer, when given) or `health.retries` more attempts fail. From this
/// machine, or from `site` when the check is configured `on = "host"`.
/// `stop_on_interrupt` gives up as soon as the run is interrupted.
pub async fn check_from(
    health: &Health,
    url: &str,
    body: Option<&str>,
    site: &crate::remote::site::Site,
    stop_on_interrupt: bool,
) -> Result<(), Failed> {
    let from = if health.on_host {
        From::Host(site)
    } else {
        From::Here
    };
    check_with(health, url, body, from, stop_on_interrupt).await
}

/// Checks from this machine.
pub async fn check(health: &Health, url: &str, body: Option<&str>) -> Result<(), Failed> {
    check_with(health, url, body, From::Here, false).await
}

async fn check_with(
    health: &Health,
    url: &str,
    body: Option<&str>,
    from: From<'_>,
    stop_on_interrupt: bool,
) -> Result<(), Failed> {
    let want = body;
    let mut last = String::new();
    let attempts = health.retries + 1;
    // The wait before the next attempt: the interval, less what quick
    // tries of this one already spent.
    let mut wait = health.interval;
    'attempts: for attempt in 0..attempts {
        if attempt > 0 {
            // An interrupted deploy stops checking the new release and
            // puts it back; checks made while putting back go on.
            if stop_on_interrupt && crate::remote::site::interrupted() {
                last = "interrupted (Ctrl-C or SIGTERM)".into();
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let started = std::time::Instant::now();
        let mut quick = QUICK;
        loop {
            let miss = match once(health, url, want, from).await {
                Ok(()) => return Ok(()),
                Err(miss) => miss,
            };
            last = miss.why;
            // The app is not up yet (refused, or a proxy's 502): from here, try
            // again soon within the interval, 10 ms later, then 20, 40…
            // Any other answer waits the whole interval.
            if !miss.starting || !matches!(from, From::Here) {
                wait = health.interval;
                continue 'attempts;
            }
            let elapsed = started.elapsed();
            if elapsed + quick >= health.interval {
                wait = health.interval.saturating_sub(elapsed);
                continue 'attempts;
            }
            if stop_on_interrupt && crate::remote::site::interrupted() {
                last = "interrupted (Ctrl-C or SIGTERM)".into();
                break 'attempts;
            }
            tokio::time::sleep(quick).await;
            quick = (quick * 2).min(health.interval);
        }
    }
    Err(Failed {
        url: url.to_string(),
        attempts,
        last,
    })
}

/// What a status usually means, where it says more than its number.
fn why_status(status: u16, url: &str, hosts_var: Option<&str>) -> String {
    if status != 400 {
        return String::new();
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    };
    match hosts_var {
        Some(var) => format!(
            " (Django answers 400 to a host name it does not allow: ALLOWED_HOSTS reads `{var}`; set it to allow `{host}` under `[env]`, then `gantry setup ENV`, which restarts the app)"
        ),
        None => format!(
            " (Django answers 400 to a host name it does not allow: add `{host}` to ALLOWED_HOSTS in the settings, or read it from a variable set under `[env]`, then deploy again)"
        ),
    }
}

/// The first wait between quick tries while nothing listens.
const QUICK: std::time::Duration = std::time::Duration::from_millis(10);

/// One attempt: passes, or says why not.
async fn once(
    health: &Health,
    url: &str,
    want: Option<&str>,
    from: From<'_>,
) -> Result<(), NoAnswer> {
    let answer = async {
        match from {
            From::Here => get(url, health.timeout, health.ca.as_deref()).await,
            From::Host(site) => get_on(site, url, health.timeout).await,
        }
    };
    match tokio::time::timeout(health.timeout + std::time::Duration::from_secs(1), answer).await {
        Err(_) => Err(format!(
            "no answer within {}",
            crate::base::time::human(health.timeout)
        )
        .into()),
        Ok(Err(e)) => Err(e),
        Ok(Ok((status, answer))) => {
            if status != health.status {
                Err(NoAnswer {
                    starting: status == 502,
                    why: format!(
                        "status {status}, expected {}{}",
                        health.status,
                        why_status(status, url, health.hosts_var.as_deref())
                    ),
                })
            } else if want.is_some_and(|w| !answer.contains(w)) {
                Err(format!(
                    "status {status}, but the body does not contain `{}`",
                    want.unwrap_or_default()
                )
                .into())
            } else {
                Ok(())
            }
        }
    }
}

/// One GET made on the host, with curl, or Python when curl is missing.
/// Prints the body, then the status on a line of its own.
async fn get_on(
    site: &crate::remote::site::Site,
    url: &str,
    timeout: std::time::Duration,
) -> Result<(u16, String), NoAnswer> {
    let secs = timeout.as_secs().max(1);
    let script = format!(
        "u={url}
if command -v curl >/dev/null 2>&1; then curl -sS -m {secs} -w '\n%{{http_code}}' \"$u\"
         elif command -v python3 >/dev/null 2>&1; then python3 -c {py} \"$u\" {secs}
         else echo 'neither curl nor python3 is on the host' >&2; exit 2; fi",
        url = crate::base::shell::quote(url),
        py = crate::base::shell::quote(PY_GET),
    );
    let out = site
        .conn
        .run(&script, None)
        .await
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(out
            .stderr
            .trim()
            .lines()
            .last()
            .unwrap_or("the request failed")
            .to_string()
            .into());
    }
    let (answer, status) = out
        .stdout
        .rsplit_once('\n')
        .unwrap_or(("", out.stdout.as_str()));
    let status = status
        .trim()
        .parse::<u16>()
        .map_err(|_| "the answer is not HTTP".to_string())?;
    if status == 0 {
        return Err(String::from("no answer").into());
    }
    Ok((status, answer.to_string()))
}

/// The Python fallback of `get_on`: body, then the status.
pub const PY_GET: &str = r#"import sys, urllib.request, urllib.error
headers = {}
if len(sys.argv) > 4 and sys.argv[3]:
    headers = {"Host": sys.argv[3], "X-Forwarded-Proto": sys.argv[4]}
try:
    r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=headers), timeout=float(sys.argv[2]))
    code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
sys.stdout.write(body.decode(errors="replace") + "\n" + str(code))
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_400_names_allowed_hosts() {
        insta::assert_snapshot!(why_status(400, "http://web1:8000/health", Some("DJANGO_ALLOWED_HOSTS")), @" (Django answers 400 to a host name it does not allow: ALLOWED_HOSTS reads `DJANGO_ALLOWED_HOSTS`; set it to allow `web1` under `[env]`, then `gantry setup ENV`, which restarts the app)");
        insta::assert_snapshot!(why_status(400, "http://web1:8000/health", None), @" (Django answers 400 to a host name it does not allow: add `web1` to ALLOWED_HOSTS in the settings, or read it from a variable set under `[env]`, then deploy again)");
        assert_eq!(why_status(500, "http://web1:8000/health", None), "");
    }
    use std::time::Duration;

    /// The wait between retries in these tests.
    const TICK: Duration = Duration::from_millis(10);
    use crate::config::Template;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn serve_once(listener: &TcpListener, answer: &'static str) {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await.unwrap();
        s.write_all(answer.as_bytes()).await.unwrap();
    }

    /// A test that stops connecting fails within seconds, never hangs.
    async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("the check and its server finished within 20s")
    }

    fn health(body: Option<&str>, retries: u32) -> Health {
        Health {
            url: Template::literal("unused"),
            status: 200,
            body: body.map(Template::literal),
            timeout: Duration::from_secs(2),
            retries,
            interval: TICK,
            on_host: false,
            ca: None,
            hosts_var: None,
        }
    }

    /// Checks with `h` a server that gives `first`, then a good answer.
    async fn after(first: &'static str, h: &Health) -> Result<(), Failed> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let server = async {
            serve_once(&listener, first).await;
            serve_once(&listener, "HTTP/1.0 200 OK\r\n\r\ncommit abc").await;
        };
        let (result, ()) =
            bounded(async { tokio::join!(check(h, &url, Some("abc")), server) }).await;
        result
    }

    #[tokio::test]
    async fn passes_on_status_and_body_after_a_bad_answer() {
        let h = health(Some("abc"), 3);
        assert_eq!(after("HTTP/1.0 503 Busy\r\n\r\nwait", &h).await, Ok(()));
    }

    /// A port nothing listens on (yet).
    async fn closed_port() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn an_app_that_starts_listening_within_the_interval_passes_the_first_attempt() {
        let addr = closed_port().await;
        let url = format!("http://{addr}/health");
        // The app takes a moment to start: the first tries are refused.
        let app = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let listener = TcpListener::bind(addr).await.unwrap();
            serve_once(&listener, "HTTP/1.0 200 OK\r\n\r\ncommit abc").await;
        };
        // One attempt only, and a long interval: the refused tries within
        // it are made again at once, not an interval later.
        let h = Health {
            interval: Duration::from_secs(10),
            ..health(Some("abc"), 0)
        };
        let (result, ()) = bounded(async { tokio::join!(check(&h, &url, Some("abc")), app) }).await;
        assert_eq!(result, Ok(()));
    }

    #[tokio::test]
    async fn a_proxy_that_cannot_reach_the_app_yet_is_asked_again_within_the_interval() {
        // One attempt only, and a long interval.
        let h = Health {
            interval: Duration::from_secs(10),
            ..health(Some("abc"), 0)
        };
        assert_eq!(after("HTTP/1.0 502 Bad Gateway\r\n\r\n", &h).await, Ok(()));
    }

    #[tokio::test]
    async fn refused_tries_count_one_attempt_per_interval() {
        let addr = closed_port().await;
        let url = format!("http://{addr}/");
        let h = Health {
            interval: Duration::from_millis(100),
            ..health(None, 2)
        };
        let failed = bounded(check(&h, &url, None)).await.unwrap_err();
        assert_eq!(failed.attempts, 3);
        assert!(
            failed
                .last
                .starts_with(&format!("cannot connect to {addr}")),
            "{}",
            failed.last
        );
    }

    #[tokio::test]
    async fn fails_with_the_last_reason() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = async {
            serve_once(&listener, "HTTP/1.0 200 OK\r\n\r\nother").await;
            serve_once(&listener, "HTTP/1.0 200 OK\r\n\r\nother").await;
        };
        let h = health(Some("abc"), 1);
        let (result, ()) =
            bounded(async { tokio::join!(check(&h, &url, Some("abc")), server) }).await;
        let failed = result.unwrap_err();
        assert_eq!(failed.attempts, 2);
        assert_eq!(
            failed.last,
            "status 200, but the body does not contain `abc`"
        );
    }
}
