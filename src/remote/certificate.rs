//! The few fields of an X.509 certificate the health checks need, read
//! from its DER: issuer and subject (to tell a self-signed one) and the
//! dates it is valid between.

pub struct Fields<'a> {
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    pub not_before: i64,
    pub not_after: i64,
}

/// One TLV: its tag, its content, and what follows it.
fn tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

pub fn fields(cert: &[u8]) -> Option<Fields<'_>> {
    let (_, certificate, _) = tlv(cert)?;
    let (_, tbs, _) = tlv(certificate)?;
    let mut rest = tbs;
    // [0] version, when there.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    let (_, _serial, rest) = tlv(rest)?;
    let (_, _algorithm, rest) = tlv(rest)?;
    let (issuer_start, rest_after_issuer) = (rest, tlv(rest)?.2);
    let issuer = &issuer_start[..issuer_start.len() - rest_after_issuer.len()];
    let (_, validity, rest) = tlv(rest_after_issuer)?;
    let subject = &rest[..rest.len() - tlv(rest)?.2.len()];
    let (t1, before, after) = tlv(validity)?;
    let (t2, after, _) = tlv(after)?;
    Some(Fields {
        issuer,
        subject,
        not_before: time(t1, before)?,
        not_after: time(t2, after)?,
    })
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), in
/// seconds since 1970.
fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i16 = text.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        0x18 => (text.get(..4)?.parse().ok()?, &text[4..]),
        _ => return None,
    };
    let two = |i: usize| -> Option<i8> { rest.get(i..i + 2)?.parse().ok() };
    let at =
        jiff::civil::DateTime::new(year, two(0)?, two(2)?, two(4)?, two(6)?, two(8)?, 0).ok()?;
    Some(jiff::tz::TimeZone::UTC.to_timestamp(at).ok()?.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dates_and_tells_a_self_signed_certificate() {
        let dir = std::env::temp_dir().join(format!("gantry-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("openssl {args}")])
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        openssl(
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=ca",
        );
        openssl("req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=leaf");
        openssl(
            "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 3",
        );
        let der = |name: &str| openssl(&format!("x509 -in {name}.pem -outform DER"));
        let (ca, leaf) = (der("ca"), der("leaf"));
        let ca = fields(&ca).expect("the CA's fields");
        assert_eq!(ca.issuer, ca.subject, "self-signed");
        assert_eq!(ca.not_after - ca.not_before, 30 * 86_400);
        let leaf = fields(&leaf).expect("the leaf's fields");
        assert_ne!(leaf.issuer, leaf.subject);
        assert_eq!(leaf.issuer, ca.subject);
        assert_eq!(leaf.not_after - leaf.not_before, 3 * 86_400);
        assert!(fields(b"\x30\x03\x02\x01").is_none(), "cut short");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
