//! The releases a site keeps: listing them (for `rollback`), and pruning
//! the old ones after a deploy, on the host in the same script that
//! records the deploy.

use crate::base::shell::quote;
use crate::remote::release::Layout;

/// Lists releases, one per line: `complete NAME SHA` or `partial NAME`,
/// then `current NAME`.
pub fn list_script(layout: &Layout) -> String {
    format!(
        "cd {releases} 2>/dev/null || exit 0\n\
         for d in */; do\n  d=${{d%/}}\n  [ -d \"$d\" ] || continue\n\
         if [ -f \"$d/REVISION\" ]; then echo \"complete $d $(cat \"$d/REVISION\")\"; else echo \"partial $d\"; fi\ndone\n\
         t=$(readlink {current} 2>/dev/null) && echo \"current ${{t##*/}}\"\ntrue",
        releases = quote(&layout.releases()),
        current = quote(&layout.current()),
    )
}

/// One release as `list_script` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub commit: Option<String>,
}

/// Parses `list_script` output: the releases in time order and the name
/// `current` points at.
pub fn parse_list(out: &str) -> (Vec<Listed>, Option<String>) {
    let mut releases = Vec::new();
    let mut current = None;
    for line in out.lines() {
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("complete"), Some(name), sha) => releases.push(Listed {
                name: name.into(),
                commit: sha.map(str::to_string),
            }),
            (Some("partial"), Some(name), _) => releases.push(Listed {
                name: name.into(),
                commit: None,
            }),
            (Some("current"), Some(name), _) => current = Some(name.to_string()),
            _ => {}
        }
    }
    releases.sort_by(|a, b| a.name.cmp(&b.name));
    (releases, current)
}

/// Deletes old releases: keeps the newest `keep` complete ones, never the
/// one `current` points at nor `protect` (the release served before this
/// deploy), and drops partial ones (no `REVISION`) left by interrupted
/// deploys. Release names never hold spaces or shell characters; the
/// script checks, and leaves alone any that does.
pub fn prune_script(layout: &Layout, keep: usize, protect: Option<&str>) -> String {
    format!(
        r#"cd {releases} 2>/dev/null || exit 0
cur=$(readlink {current} 2>/dev/null); cur=${{cur##*/}}
protect={protect}
plain() {{ case "$1" in *[!A-Za-z0-9._-]*|'') return 1 ;; esac; }}
n=0
for d in */; do d=${{d%/}}; [ -f "$d/REVISION" ] && n=$((n + 1)); done
cut=$((n - {keep}))
for d in */; do
  d=${{d%/}}
  if [ -f "$d/REVISION" ]; then
    cut=$((cut - 1))
    [ $cut -ge 0 ] || continue
  fi
  plain "$d" || continue
  [ "$d" = "$cur" ] && continue
  [ "$d" = "$protect" ] && continue
  rm -rf -- "$d"
done
true"#,
        releases = quote(&layout.releases()),
        current = quote(&layout.current()),
        protect = quote(protect.unwrap_or("")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes a site with these releases (`true`: complete), `current` at
    /// `current`, prunes it for real with `sh`, and returns what is left.
    fn prune(
        releases: &[(&str, bool)],
        current: &str,
        protect: Option<&str>,
        keep: usize,
    ) -> Vec<String> {
        let dir = std::env::temp_dir().join(format!(
            "gantry-prune-{}-{keep}-{}",
            std::process::id(),
            protect.unwrap_or("-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let layout = Layout::new(dir.to_str().unwrap());
        for (name, complete) in releases {
            let path = std::path::PathBuf::from(layout.release(name));
            std::fs::create_dir_all(path.join("app")).unwrap();
            if *complete {
                std::fs::write(path.join("REVISION"), "abc").unwrap();
            }
        }
        std::os::unix::fs::symlink(layout.release(current), layout.current()).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(prune_script(&layout, keep, protect))
            .status()
            .unwrap();
        assert!(status.success());
        let mut left: Vec<String> = std::fs::read_dir(layout.releases())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        std::fs::remove_dir_all(&dir).unwrap();
        left
    }

    #[test]
    fn pruning_keeps_the_newest_the_current_and_the_previous_release() {
        let releases = [
            ("1", true),
            ("2", true),
            ("3", false),
            ("4", true),
            ("5", true),
        ];
        assert_eq!(prune(&releases, "5", Some("4"), 2), ["4", "5"]);
        assert_eq!(prune(&releases, "5", Some("1"), 2), ["1", "4", "5"]);
        assert_eq!(prune(&releases, "5", None, 10), ["1", "2", "4", "5"]);
        // `current` is kept even when it is not among the newest.
        assert_eq!(prune(&releases, "2", None, 1), ["2", "5"]);
    }

    #[test]
    fn a_listing_reads_complete_and_partial_releases_and_current() {
        let (releases, current) =
            parse_list("complete b sha2\npartial c\ncomplete a sha1\ncurrent b\n");
        let names: Vec<&str> = releases.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(releases[2].commit, None);
        assert_eq!(current.as_deref(), Some("b"));
    }
}
