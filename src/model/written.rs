//! What the running app wrote inside a release, named the way a user keeps
//! it across releases: the top folder git did not ship (`src/media/`), or
//! the file itself where it sits among shipped ones (`src/db.sqlite3`).
//! `gantry check` warns with these, since they go when the release is
//! pruned.

use std::collections::{BTreeMap, BTreeSet};

/// `written` (paths relative to the release, `./` allowed) grouped by what
/// to keep in `deploy.shared`, each with how many files it holds;
/// `shipped` is every file git shipped in the release.
pub fn to_keep(written: &[String], shipped: &[String]) -> Vec<(String, usize)> {
    let files: BTreeSet<&str> = shipped.iter().map(String::as_str).collect();
    let mut folders: BTreeSet<&str> = BTreeSet::new();
    for f in &files {
        let mut path = *f;
        while let Some((parent, _)) = path.rsplit_once('/') {
            folders.insert(parent);
            path = parent;
        }
    }
    let mut kept: BTreeMap<String, usize> = BTreeMap::new();
    for w in written {
        let w = w.strip_prefix("./").unwrap_or(w);
        let parts: Vec<&str> = w.split('/').collect();
        // The first folder on the way down that git did not ship.
        let unshipped = (1..parts.len())
            .map(|n| parts[..n].join("/"))
            .find(|dir| !folders.contains(dir.as_str()));
        let name = match unshipped {
            Some(dir) => format!("{dir}/"),
            None => w.to_string(),
        };
        *kept.entry(name).or_default() += 1;
    }
    kept.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_the_top_unshipped_folder_or_the_file() {
        let shipped = strings(&["src/manage.py", "src/shop/settings.py", "src/logs/.keep"]);
        let written = strings(&[
            "./src/media/uploads/a.png",
            "./src/media/b.png",
            "./src/db.sqlite3",
            "./src/logs/app.log",
            "./src/shop/settings.py",
        ]);
        assert_eq!(
            to_keep(&written, &shipped),
            [
                ("src/db.sqlite3".to_string(), 1),
                ("src/logs/app.log".to_string(), 1),
                ("src/media/".to_string(), 2),
                ("src/shop/settings.py".to_string(), 1),
            ]
        );
    }
}
