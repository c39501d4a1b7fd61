//! Shell quoting: every value that Gantry puts into a command line goes
//! through [`quote`], so that config values reach the remote shell literally.

/// Quotes `s` as one POSIX shell word.
///
/// Words made only of characters that no shell treats specially are left
/// as they are (so plans stay readable); everything else is wrapped in
/// single quotes, with embedded single quotes written as `'\''`.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b'+' | b':' | b',' | b'@' | b'%' | b'='
                )
        })
        && !s.starts_with('=');
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Joins arguments into one command line, quoting each.
pub fn join<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when `name` can be used as a shell variable name.
pub fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Runs a script with this machine's `sh` and returns what it printed (for
/// the unit tests of the scripts Gantry builds).
#[cfg(test)]
pub fn run_for_test(script: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn echo_through_sh(value: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(value)))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(quote("/srv/app/releases/1"), "/srv/app/releases/1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn hostile_values_survive_a_real_shell() {
        for value in [
            "a b",
            "it's",
            "$(touch /tmp/gantry-pwned)",
            "`id`",
            "a; rm -rf /",
            "line1\nline2",
            "\"double\" 'single'",
            "*",
            "~root",
            "-n",
            "back\\slash",
        ] {
            assert_eq!(echo_through_sh(value), value, "value {value:?}");
        }
    }

    #[test]
    fn var_names() {
        assert!(is_var_name("STAGING_SERVER"));
        assert!(is_var_name("_x1"));
        assert!(!is_var_name("1x"));
        assert!(!is_var_name("A-B"));
        assert!(!is_var_name(""));
    }
}
