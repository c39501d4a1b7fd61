//! One HTTP(S) GET from this machine, for health checks: through ureq and
//! rustls, with Mozilla's roots or `health.ca` for a private CA. Redirects
//! are followed within the same site (`http://` to `https://` included),
//! at most five.

/// Why one GET got no answer.
pub struct NoAnswer {
    /// The app is not up yet: the connection was refused (nothing listens
    /// on the port), or a proxy in front of it said 502 Bad Gateway (it
    /// could not reach it).
    pub starting: bool,
    pub why: String,
}

impl std::convert::From<String> for NoAnswer {
    fn from(why: String) -> NoAnswer {
        NoAnswer {
            starting: false,
            why,
        }
    }
}

/// How many redirects a check follows.
const MAX_REDIRECTS: usize = 5;

/// One GET from this machine: the status code and the body (at most 1 MiB),
/// following redirects within the same host. `ca` is a PEM file of
/// authorities to trust instead of the bundled web roots.
pub async fn get(
    url: &str,
    timeout: std::time::Duration,
    ca: Option<&std::path::Path>,
) -> Result<(u16, String), NoAnswer> {
    let url = url.to_string();
    let ca = ca.map(std::path::Path::to_path_buf);
    tokio::task::spawn_blocking(move || get_blocking(&url, timeout, ca.as_deref()))
        .await
        .map_err(|e| format!("the check could not run: {e}"))?
}

fn agent(
    timeout: std::time::Duration,
    ca: Option<&std::path::Path>,
) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(path) = ca {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        tls = tls.root_certs(RootCerts::Specific(std::sync::Arc::new(certs)));
    }
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent("gantry")
        .tls_config(tls.build())
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

fn get_blocking(
    url: &str,
    timeout: std::time::Duration,
    ca: Option<&std::path::Path>,
) -> Result<(u16, String), NoAnswer> {
    let agent = agent(timeout, ca)?;
    let first: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let site = first.host().unwrap_or("").to_string();
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let mut response = agent
            .get(&current)
            .call()
            .map_err(|e| NoAnswer {
                starting: matches!(&e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused),
                why: describe(&e, &current),
            })?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            if let Some(location) = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
            {
                let next = resolve(&current, location)?;
                let host = next
                    .parse::<ureq::http::Uri>()
                    .ok()
                    .and_then(|u| u.host().map(str::to_string))
                    .unwrap_or_default();
                if host != site {
                    return Err(format!(
                        "status {status}: it redirects to another site ({next}); check that URL instead"
                    )
                    .into());
                }
                current = next;
                continue;
            }
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        return Ok((status, body));
    }
    Err(format!("more than {MAX_REDIRECTS} redirects").into())
}

/// A redirect's `Location`, made absolute against `base`.
fn resolve(base: &str, location: &str) -> Result<String, String> {
    if location.contains("://") {
        return Ok(location.to_string());
    }
    let uri: ureq::http::Uri = base.parse().map_err(|e| format!("{e}"))?;
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    if location.starts_with('/') {
        Ok(format!("{scheme}://{authority}{location}"))
    } else {
        let path = uri.path();
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        Ok(format!("{scheme}://{authority}{dir}/{location}"))
    }
}

/// A failed request in words; TLS failures say which check failed.
fn describe(e: &ureq::Error, url: &str) -> String {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let host = url
        .parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_default();
    let tls = if lower.contains("expired") {
        Some("the site's certificate has expired".to_string())
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        Some(format!("the site's certificate is not valid for `{host}`"))
    } else if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        Some("the site's certificate is not signed by an authority this machine trusts (for a private CA, set `deploy.health.ca`)".to_string())
    } else {
        None
    };
    match (tls, e) {
        (Some(reason), _) => format!("TLS: {reason} ({text})"),
        (None, ureq::Error::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!(
                "cannot connect to {}: {io}",
                url.split('/').nth(2).unwrap_or(url)
            )
        }
        (None, ureq::Error::ConnectionFailed) | (None, ureq::Error::Io(_)) => {
            format!(
                "cannot connect to {}: {text}",
                url.split('/').nth(2).unwrap_or(url)
            )
        }
        (None, _) => text,
    }
}
