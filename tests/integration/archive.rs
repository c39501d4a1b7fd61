//! What a deploy ships is exactly `git archive` of the commit: after every
//! deploy of a sequence of commits that change what is exported without
//! changing (only) the files' contents — `export-subst`, `export-ignore`, a
//! `.gitattributes` change, a mode change, a symlink, a rename, deletions
//! that empty folders — the host's release and its pristine source equal a
//! fresh `git archive` of the commit, path, type, mode and content, with
//! delta uploads on.

use std::path::Path;
use std::process::Command;

use crate::harness::{git, Test};

/// Every path under `dir` with its type, mode and content (a file's hash,
/// a link's target), sorted; Gantry's own `REVISION`, the app's data and
/// Python's caches left out.
fn listing(dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "find . -mindepth 1 ! -name REVISION ! -path './data' ! -path './data/*' ! -path '*/__pycache__*' \
             -printf '%y %m %p -> %l\\n' | sort; \
             find . -type f ! -name REVISION ! -path './data/*' ! -path '*/__pycache__/*' -exec sha256sum {} + | sort",
        )
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deploys HEAD; the bytes sent to the host.
fn deploy(t: &Test) -> u64 {
    let run = t.gantry(&["deploy", "staging", "--json"]);
    run.success();
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    value["hosts"][0]["uploaded_bytes"].as_u64().unwrap()
}

#[test]
fn every_release_equals_git_archive_of_its_commit_after_any_sequence_of_deltas() {
    let mut t = Test::new().hosts(1).start();
    t.configure(&[("staging", &[0])]);
    // Enough that a whole archive is told apart from a delta.
    let filler: String = (0..4000).map(|i| format!("line {i} of filler\n")).collect();
    t.commit(
        "Filler and folders",
        &[
            ("filler.txt", filler.as_str()),
            ("old/deep/a.txt", "a\n"),
            ("old/deep/b.txt", "b\n"),
            ("old/keep.txt", "kept\n"),
            ("notes.txt", "notes\n"),
            ("tool.sh", "#!/bin/sh\necho tool\n"),
            ("private.txt", "not for servers\n"),
        ],
    );
    let whole = deploy(&t);
    let repo = t.repo.clone();
    let set_mode = |path: &str, mode: u32| {
        std::fs::set_permissions(
            repo.join(path),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap();
    };
    type Change<'a> = Box<dyn Fn() + 'a>;
    let steps: Vec<(&str, Change)> = vec![
        (
            "export-subst and export-ignore",
            Box::new(|| {
                std::fs::write(
                    repo.join(".gitattributes"),
                    "version.txt export-subst\nprivate.txt export-ignore\n",
                )
                .unwrap();
                std::fs::write(repo.join("version.txt"), "commit $Format:%H$\n").unwrap();
            }),
        ),
        // Only another file changes: version.txt's export does.
        (
            "another file",
            Box::new(|| std::fs::write(repo.join("notes.txt"), "notes, again\n").unwrap()),
        ),
        ("a mode change", Box::new(|| set_mode("tool.sh", 0o755))),
        (
            "a symlink",
            Box::new(|| std::os::unix::fs::symlink("notes.txt", repo.join("link")).unwrap()),
        ),
        (
            "a rename",
            Box::new(|| {
                std::fs::create_dir_all(repo.join("docs")).unwrap();
                std::fs::rename(repo.join("notes.txt"), repo.join("docs/notes.txt")).unwrap();
            }),
        ),
        (
            "deletions that empty folders",
            Box::new(|| std::fs::remove_dir_all(repo.join("old/deep")).unwrap()),
        ),
        // The file is the same; what is exported is not.
        (
            "a .gitattributes change",
            Box::new(|| {
                std::fs::write(repo.join(".gitattributes"), "version.txt export-subst\n").unwrap();
            }),
        ),
        (
            "the mode back, a file made a link",
            Box::new(|| {
                set_mode("tool.sh", 0o644);
                std::fs::remove_file(repo.join("old/keep.txt")).unwrap();
                std::os::unix::fs::symlink("../filler.txt", repo.join("old/keep.txt")).unwrap();
            }),
        ),
    ];
    for (n, (what, change)) in steps.iter().enumerate() {
        change();
        git(&t.repo, &["add", "-A"]);
        let sha = t.commit(what, &[]);
        let sent = deploy(&t);
        assert!(
            sent < whole / 2,
            "{what}: a delta ({sent} bytes; whole {whole})"
        );
        let fresh = listing(&t.fresh_archive(&format!("fresh-{n}")));
        let site = t.site("staging", 0);
        assert_eq!(
            listing(&site.join(".gantry/source/tree")),
            fresh,
            "{what}: the source"
        );
        assert_eq!(listing(&site.join("current")), fresh, "{what}: the release");
        let version = std::fs::read_to_string(site.join("current/version.txt")).unwrap();
        assert_eq!(version, format!("commit {sha}\n"), "{what}");
    }
}
