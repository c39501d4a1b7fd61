//! Host addresses as written in the config: `local`, `host`, `user@host`,
//! `user@host:port`, `[v6]:port`.

use super::Target;

/// Parses `local`, `host`, `user@host`, `user@host:port`, `[v6]:port`.
pub fn parse_target(address: &str) -> Result<Target, String> {
    if address == "local" {
        return Ok(Target::Local);
    }
    let (user, rest) = match address.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, address),
    };
    if let Some(u) = user {
        if u.is_empty()
            || u.starts_with('-')
            || !u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!("`{u}` is not a valid user name"));
        }
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("unclosed `[` in an IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected `:port` after `]`")?),
        };
        (h, port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    if host.starts_with('-')
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(format!("`{host}` is not a valid host name"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a port number"))?,
        ),
    };
    Ok(Target::Ssh {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(parse_target("local"), Ok(Target::Local));
        assert_eq!(
            parse_target("deploy@web1.example.com:2222"),
            Ok(Target::Ssh {
                user: Some("deploy".into()),
                host: "web1.example.com".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            parse_target("web1"),
            Ok(Target::Ssh {
                user: None,
                host: "web1".into(),
                port: None
            })
        );
        assert_eq!(
            parse_target("[::1]:22"),
            Ok(Target::Ssh {
                user: None,
                host: "::1".into(),
                port: Some(22)
            })
        );
        assert!(parse_target("-oProxyCommand=x").is_err());
        assert!(parse_target("a b").is_err());
        assert!(parse_target("host:99999").is_err());
        assert!(parse_target("@host").is_err());
        assert!(parse_target("user@").is_err());
    }
}
