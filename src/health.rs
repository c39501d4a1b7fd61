//! Health checks: an HTTP GET from this machine to the URL in the config,
//! retried until the app answers with the expected status (and body text),
//! or the retries run out. Plain HTTP/1.0 over a TCP stream, so no client
//! library and no chunked encoding.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Health;

/// The outcome of the last attempt, for the error report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub url: String,
    pub attempts: u32,
    pub last: String,
}

/// Where a check's request is made from.
#[derive(Clone, Copy)]
pub enum From<'a> {
    /// This machine.
    Here,
    /// The host itself (`on = "host"`), for apps that only listen there.
    Host(&'a crate::site::Site),
}

/// Checks `url` until it answers `health.status` (with `body` in the
/// answer, when given) or `health.retries` more attempts fail. From this
/// machine, or from `site` when the check is configured `on = "host"`.
/// `stop_on_interrupt` gives up as soon as the run is interrupted.
pub async fn check_from(
    health: &Health,
    url: &str,
    body: Option<&str>,
    site: &crate::site::Site,
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
    for attempt in 0..attempts {
        if attempt > 0 {
            // An interrupted deploy stops checking the new release and
            // puts it back; checks made while putting back go on.
            if stop_on_interrupt && crate::site::interrupted() {
                last = "interrupted (Ctrl-C or SIGTERM)".into();
                break;
            }
            tokio::time::sleep(health.interval).await;
        }
        let answer = async {
            match from {
                From::Here => get(url).await,
                From::Host(site) => get_on(site, url, health.timeout).await,
            }
        };
        match tokio::time::timeout(health.timeout + std::time::Duration::from_secs(1), answer).await
        {
            Err(_) => last = format!("no answer within {}", crate::time::human(health.timeout)),
            Ok(Err(e)) => last = e,
            Ok(Ok((status, answer))) => {
                if status != health.status {
                    last = format!("status {status}, expected {}", health.status);
                } else if let Some(want) = want {
                    if answer.contains(want) {
                        return Ok(());
                    }
                    last = format!("status {status}, but the body does not contain `{want}`");
                } else {
                    return Ok(());
                }
            }
        }
    }
    Err(Failed {
        url: url.to_string(),
        attempts,
        last,
    })
}

/// One GET made on the host, with curl, or Python when curl is missing.
/// Prints the body, then the status on a line of its own.
async fn get_on(
    site: &crate::site::Site,
    url: &str,
    timeout: std::time::Duration,
) -> Result<(u16, String), String> {
    let secs = timeout.as_secs().max(1);
    let script = format!(
        "u={url}
if command -v curl >/dev/null 2>&1; then curl -sS -m {secs} -w '\n%{{http_code}}' \"$u\"
         elif command -v python3 >/dev/null 2>&1; then python3 -c {py} \"$u\" {secs}
         else echo 'neither curl nor python3 is on the host' >&2; exit 2; fi",
        url = crate::shell::quote(url),
        py = crate::shell::quote(PY_GET),
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
            .to_string());
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
        return Err("no answer".into());
    }
    Ok((status, answer.to_string()))
}

/// The Python fallback of `get_on`: body, then the status.
pub const PY_GET: &str = r#"import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))
    code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
sys.stdout.write(body.decode(errors="replace") + "\n" + str(code))
"#;

/// One GET: the status code and the body (at most 1 MiB).
pub async fn get(url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: gantry\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "the answer is not HTTP".to_string())?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The wait between retries in these tests.
    const TICK: Duration = Duration::from_millis(10);
    use crate::config::Template;
    use tokio::net::TcpListener;

    async fn serve_once(listener: &TcpListener, answer: &'static str) {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await.unwrap();
        s.write_all(answer.as_bytes()).await.unwrap();
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
        }
    }

    #[tokio::test]
    async fn passes_on_status_and_body_after_a_bad_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let server = async {
            serve_once(&listener, "HTTP/1.0 503 Busy\r\n\r\nwait").await;
            serve_once(&listener, "HTTP/1.0 200 OK\r\n\r\ncommit abc").await;
        };
        let h = health(Some("abc"), 3);
        let (result, ()) = tokio::join!(check(&h, &url, Some("abc")), server);
        assert_eq!(result, Ok(()));
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
        let (result, ()) = tokio::join!(check(&h, &url, Some("abc")), server);
        let failed = result.unwrap_err();
        assert_eq!(failed.attempts, 2);
        assert_eq!(
            failed.last,
            "status 200, but the body does not contain `abc`"
        );
    }
}
