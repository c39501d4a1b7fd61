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

/// An agent for one check: TLS through `tls` (the web's roots, or
/// `health.ca`), its refusals left in `slot`.
fn agent(
    timeout: std::time::Duration,
    ca: Option<&std::path::Path>,
    slot: super::tls::Slot,
) -> Result<ureq::Agent, String> {
    let certs = match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            let certs: Vec<rustls_pki_types::CertificateDer<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => {
                        Some(rustls_pki_types::CertificateDer::from(c.der().to_vec()))
                    }
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!("{} holds no PEM certificate", path.display()));
            }
            Some(certs)
        }
        None => None,
    };
    let connector = super::tls::connector(certs.as_deref(), slot)?;
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent("gantry")
        .build();
    Ok(ureq::Agent::with_parts(
        config,
        connector,
        ureq::unversioned::resolver::DefaultResolver::default(),
    ))
}

fn get_blocking(
    url: &str,
    timeout: std::time::Duration,
    ca: Option<&std::path::Path>,
) -> Result<(u16, String), NoAnswer> {
    let slot = super::tls::Slot::default();
    let agent = agent(timeout, ca, slot.clone())?;
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
                why: describe(&e, &current, &slot),
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

/// A failed request in words: a refused certificate as the verifier
/// worded it, never a library's own text for it.
fn describe(e: &ureq::Error, url: &str, slot: &super::tls::Slot) -> String {
    let site = url.split('/').nth(2).unwrap_or(url);
    if let Some(refusal) = slot.lock().ok().and_then(|s| s.clone()) {
        return format!("TLS: {refusal}");
    }
    let handshake =
        || format!("TLS: the handshake with {site} failed (does it speak HTTPS on that port?)");
    match e {
        ureq::Error::Io(io) if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => handshake(),
        ureq::Error::Io(io) => format!("cannot connect to {site}: {}", io_words(io)),
        ureq::Error::ConnectionFailed => format!("cannot connect to {site}"),
        ureq::Error::HostNotFound => format!("`{site}` does not resolve to an address"),
        ureq::Error::Timeout(_) => format!("{site} did not answer in time"),
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) => handshake(),
        ureq::Error::Protocol(_) => format!("{site} did not answer in HTTP"),
        _ => format!("the request to {site} failed"),
    }
}

/// An I/O error in words: the system's message.
fn io_words(io: &std::io::Error) -> String {
    match io.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "timed out".into(),
        _ => io.to_string(),
    }
}
