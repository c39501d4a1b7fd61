//! Which host names the ssh_config may single out: its `Host` patterns
//! other than `*`. A host that none of them matches gets the same answer
//! from `ssh -G` as any other such host, its name aside, so a fleet of
//! such hosts costs one `ssh -G` instead of one per host.

use std::path::{Path, PathBuf};

/// How deep `Include`s may nest (OpenSSH's own limit).
const MAX_DEPTH: usize = 16;

/// The `Host` patterns (without `!`) of the files ssh reads: `config`
/// alone when given (`ssh -F`), else `~/.ssh/config` and
/// `/etc/ssh/ssh_config`. `None` when any host may be special in a way a
/// pattern does not show: a `Match` block, `CanonicalizeHostname`, or an
/// `Include` this cannot follow.
pub fn host_patterns(config: Option<&Path>) -> Option<Vec<String>> {
    let mut patterns = Vec::new();
    // A relative `Include` is in ~/.ssh from a user's file (`-F`'s too),
    // in /etc/ssh from the system's.
    let user_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh"));
    match config {
        Some(file) => scan(file, user_dir.as_deref()?, 0, &mut patterns)?,
        None => {
            if let Some(dir) = &user_dir {
                scan(&dir.join("config"), dir, 0, &mut patterns)?;
            }
            let dir = Path::new("/etc/ssh");
            scan(&dir.join("ssh_config"), dir, 0, &mut patterns)?;
        }
    }
    Some(patterns)
}

/// Whether `host` matches one of `patterns` (`*` and `?` wildcards, case
/// folded, as ssh compares host names).
pub fn matches_any(host: &str, patterns: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    patterns
        .iter()
        .any(|p| glob(p.to_ascii_lowercase().as_bytes(), host.as_bytes()))
}

/// Reads one file's keywords into `patterns`; a missing file says
/// nothing. `dir` is where relative `Include`s are looked for.
fn scan(file: &Path, dir: &Path, depth: usize, patterns: &mut Vec<String>) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return if file.exists() { None } else { Some(()) };
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = line
            .split_once(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or((line, ""));
        let args = rest
            .trim_start_matches(|c: char| c.is_whitespace() || c == '=')
            .split_whitespace()
            .map(|a| a.trim_matches('"'));
        match keyword.to_ascii_lowercase().as_str() {
            "match" => return None,
            "canonicalizehostname" if !args.clone().all(|a| a.eq_ignore_ascii_case("no")) => {
                return None
            }
            "host" => patterns.extend(
                args.map(|a| a.trim_start_matches('!'))
                    .filter(|a| *a != "*")
                    .map(str::to_string),
            ),
            "include" => {
                for included in args {
                    for path in expand(included, dir)? {
                        scan(&path, dir, depth + 1, patterns)?;
                    }
                }
            }
            _ => {}
        }
    }
    Some(())
}

/// The files an `Include` names: a wildcard only in the last part of the
/// path (`ssh_config.d/*.conf`); `None` for anything else this cannot
/// follow (`~user`, `%` tokens, wildcards in folders).
fn expand(include: &str, dir: &Path) -> Option<Vec<PathBuf>> {
    if include.contains('%') || include.starts_with("~") && !include.starts_with("~/") {
        return None;
    }
    let path = match include.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var_os("HOME")?).join(rest),
        None => dir.join(include),
    };
    let name = path.file_name()?.to_str()?.to_string();
    let folder = path.parent()?.to_path_buf();
    if folder.to_str()?.contains(['*', '?']) {
        return None;
    }
    if !name.contains(['*', '?']) {
        return Some(vec![path]);
    }
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Some(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| glob(name.as_bytes(), n.as_bytes()))
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    Some(files)
}

/// `*` any run of characters, `?` any one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_includes_and_match_gives_up() {
        let dir = std::env::temp_dir().join(format!("gantry-sshscan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let main = dir.join("ssh_config");
        std::fs::write(
            &main,
            format!("# fleet\nInclude {}/conf.d/*.conf\nHost *\n  User deploy\nHost bastion !web-9 db?\n  Port 2222\n", dir.display()),
        )
        .unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "Host=web-*.eu\n").unwrap();
        std::fs::write(dir.join("conf.d/b.txt"), "Match all\n").unwrap();
        let patterns = host_patterns(Some(&main)).unwrap();
        assert_eq!(patterns, ["web-*.eu", "bastion", "web-9", "db?"]);
        assert!(matches_any("WEB-1.eu", &patterns));
        assert!(matches_any("db1", &patterns));
        assert!(!matches_any("db10", &patterns));
        assert!(!matches_any("10.0.0.7", &patterns));
        // A `Match` anywhere: any host may be special.
        std::fs::write(dir.join("conf.d/c.conf"), "Match host 10.*\n  User x\n").unwrap();
        assert_eq!(host_patterns(Some(&main)), None);
        std::fs::write(dir.join("conf.d/c.conf"), "CanonicalizeHostname yes\n").unwrap();
        assert_eq!(host_patterns(Some(&main)), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
