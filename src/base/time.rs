//! UTC timestamps without a date library: release names, history records and
//! lock files all use UTC so that hosts and people in other zones agree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
}

impl Utc {
    pub fn now() -> Utc {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Utc {
            millisecond: since.subsec_millis(),
            ..Utc::from_unix(since.as_secs() as i64)
        }
    }

    /// Converts seconds since the epoch (Howard Hinnant's civil-from-days).
    pub fn from_unix(secs: i64) -> Utc {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millisecond: 0,
        }
    }

    /// `2026-11-26T04:15:10Z`
    pub fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `20261126T041510.042Z`: sorts as text in time order (two deploys
    /// in one second included), safe in paths.
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

/// Parses `"30s"`, `"500ms"`, `"2m"`, `"1h"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

/// `1.2s`, `340ms`, `2m05s`: for people reading a summary.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// A random share of `upto` (from the clock's nanoseconds): spreads out
/// retries that would otherwise come back together.
pub fn jitter(upto: std::time::Duration) -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    upto.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_known_instants() {
        assert_eq!(Utc::from_unix(0).iso(), "1970-01-01T00:00:00Z");
        assert_eq!(Utc::from_unix(951_782_400).iso(), "2000-02-29T00:00:00Z");
        assert_eq!(Utc::from_unix(1_795_666_510).iso(), "2026-11-26T04:15:10Z");
        assert_eq!(
            Utc::from_unix(1_795_666_510).compact(),
            "20261126T041510.000Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3d"), None);
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(age(Duration::from_secs(1)), "1 second");
        assert_eq!(age(Duration::from_secs(3 * 3600)), "3 hours");
        assert_eq!(age(Duration::from_secs(2 * 86_400 + 5)), "2 days");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
    }
}

/// The strftime subset tag patterns use: `%F %Y %m %d %H %M %S %T %%`.
pub fn strftime(pattern: &str, t: &Utc) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('F') => out.push_str(&format!("{:04}-{:02}-{:02}", t.year, t.month, t.day)),
            Some('Y') => out.push_str(&format!("{:04}", t.year)),
            Some('m') => out.push_str(&format!("{:02}", t.month)),
            Some('d') => out.push_str(&format!("{:02}", t.day)),
            Some('H') => out.push_str(&format!("{:02}", t.hour)),
            Some('M') => out.push_str(&format!("{:02}", t.minute)),
            Some('S') => out.push_str(&format!("{:02}", t.second)),
            Some('T') => out.push_str(&format!("{:02}{:02}{:02}", t.hour, t.minute, t.second)),
            Some('%') => out.push('%'),
            Some(other) => {
                return Err(format!(
                    "`%{other}` is not supported in tag names (use %F %Y %m %d %H %M %S %T)"
                ))
            }
            None => return Err("a tag pattern cannot end with `%`".into()),
        }
    }
    Ok(out)
}

/// A size for people: `512 B`, `3.4 KB`, `50.0 MB`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n < 1000 => format!("{n} B"),
        n if n < 1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        n if n < 1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n => format!("{:.1} GB", n as f64 / 1e9),
    }
}

/// How `status` and `log` show a recorded time (ISO UTC in the records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// In this machine's time zone, with the zone's offset and name.
    Local,
    /// As recorded, in UTC (`--utc`).
    Utc,
}

/// `40 seconds`, `12 minutes`, `5 hours`, `3 days`: how old something is,
/// in the largest whole unit.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        0..120 => (s, "second"),
        120..7200 => (s / 60, "minute"),
        7200..172_800 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// How long ago the instant a name starts with (`20261126T041510.042Z…`,
/// as release names and backups do) was.
pub fn since_compact(name: &str) -> Option<Duration> {
    let c = name.get(..15)?;
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &c[..4],
        &c[4..6],
        &c[6..8],
        &c[9..11],
        &c[11..13],
        &c[13..15]
    );
    let then = iso.parse::<jiff::Timestamp>().ok()?;
    let secs = jiff::Timestamp::now().as_second() - then.as_second();
    u64::try_from(secs).ok().map(Duration::from_secs)
}

/// `iso` (`2026-11-26T04:15:10Z`) as `shown`: `2026-11-26 05:15:10 +01:00
/// CET` in local time. Text that is not a timestamp is left as it is.
pub fn show(iso: &str, shown: Shown) -> String {
    let Ok(ts) = iso.parse::<jiff::Timestamp>() else {
        return iso.to_string();
    };
    let zone = match shown {
        Shown::Utc => jiff::tz::TimeZone::UTC,
        Shown::Local => jiff::tz::TimeZone::system(),
    };
    ts.to_zoned_datetime(zone)
        .strftime("%Y-%m-%d %H:%M:%S %:z %Z")
        .to_string()
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    #[test]
    fn recorded_times_show_in_utc_or_with_the_local_zone() {
        assert_eq!(
            show("2026-11-26T04:15:10Z", Shown::Utc),
            "2026-11-26 04:15:10 +00:00 UTC"
        );
        // A zone is named and its offset applied, whatever this machine's is.
        let local = show("2026-11-26T04:15:10Z", Shown::Local);
        assert!(local.starts_with("2026-11-2"), "{local}");
        assert_eq!(local.split(' ').count(), 4, "{local}");
        assert_eq!(show("not a time", Shown::Local), "not a time");
    }
}
