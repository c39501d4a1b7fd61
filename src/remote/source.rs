//! The pristine source a host keeps of its last upload
//! (`.gantry/source/tree`, never built in, and `COMMIT`): the base a
//! delta upload is applied to.

use crate::base::shell::quote;
use crate::remote::release::{read_line, refuse_existing, Layout};

/// Deletion lists longer than this, quoted, go on stdin ahead of the
/// archive instead of in the script: the script is one argument to the
/// remote shell, at most 128 KiB on Linux.
const INLINE_LISTS: usize = 32 * 1024;

/// The upload of a delta: its script, and the bytes that go on stdin ahead
/// of the archive (the deletion lists, when they are too long for the
/// script).
pub struct DeltaUpload {
    pub script: String,
    pub lists: Option<Vec<u8>>,
}

/// Makes a new release from the pristine source of the host's last upload
/// (`.gantry/source/`, never built in) and a delta: the source is brought
/// to the new commit in place (the deleted files removed, the changed ones
/// unpacked from the gzipped tar on stdin; its `COMMIT` is emptied while
/// that happens, so an interrupted update is never taken for a base), then
/// copied into the new release. Fails (and the deploy falls back to a full
/// upload) when the source is not the delta's base.
pub fn upload_delta_script(
    layout: &Layout,
    release: &str,
    base: &str,
    commit: &str,
    deleted: &[String],
    has_archive: bool,
) -> DeltaUpload {
    let dir = quote(&layout.release(release));
    let source = source_dir(layout);
    let tree = format!("{source}/tree");
    let stamp = quote(&format!("{source}/COMMIT"));
    let mut script = format!(
        "{refuse}\n\
         {read}\n\
         [ \"$c\" = {base} ] || {{ echo 'the source of the last upload is not here' >&2; exit 1; }}\n\
         : > {stamp} || exit 1\n",
        refuse = refuse_existing(layout, release),
        read = read_line("c", &format!("{source}/COMMIT")),
        base = quote(base),
    );
    let files: Vec<&str> = deleted.iter().map(String::as_str).collect();
    // git keeps no empty folders: a folder the deletions emptied goes too
    // (deepest first; one that still holds something stays).
    let mut folders: Vec<&str> = files
        .iter()
        .flat_map(|p| p.match_indices('/').map(move |(i, _)| &p[..i]))
        .collect();
    folders.sort_by_key(|f| std::cmp::Reverse((f.matches('/').count(), *f)));
    folders.dedup();
    // The paths under the source tree, quoted, as one list of words.
    let words = |paths: &[&str]| -> String {
        let quoted: Vec<String> = paths
            .iter()
            .map(|p| quote(&format!("{tree}/{p}")))
            .collect();
        quoted.join(" ")
    };
    let (files_words, folders_words) = (words(&files), words(&folders));
    let mut lists = None;
    if files_words.len() + folders_words.len() > INLINE_LISTS {
        let (script_part, bytes) = lists_on_stdin(&source, &tree, &files, &folders);
        script.push_str(&script_part);
        lists = Some(bytes);
    } else {
        if !files.is_empty() {
            script.push_str(&format!("rm -f -- {files_words} || exit 1\n"));
        }
        if !folders.is_empty() {
            script.push_str(&format!("rmdir -- {folders_words} 2>/dev/null\n"));
        }
    }
    if has_archive {
        script.push_str(&format!("tar -x -z -f - -C {} || exit 1\n", quote(&tree)));
    }
    script.push_str(&format!(
        "printf '%s\\n' {commit} > {stamp} || exit 1\n\
         if [ -e {dir} ]; then rm -rf {dir} || exit 1; fi\n\
         cp -a {tree} {dir}",
        commit = quote(commit),
        tree = quote(&tree),
    ));
    DeltaUpload { script, lists }
}

/// The deletions read from stdin: a line with the byte counts of the two
/// lists, then the deleted files and the folders to remove, each path
/// ended by a NUL. Returns the script's part and the bytes to send.
fn lists_on_stdin(source: &str, tree: &str, files: &[&str], folders: &[&str]) -> (String, Vec<u8>) {
    let nul_ended = |paths: &[&str]| -> Vec<u8> {
        paths
            .iter()
            .flat_map(|p| p.bytes().chain(std::iter::once(0)))
            .collect()
    };
    let (files, folders) = (nul_ended(files), nul_ended(folders));
    let mut bytes = format!("{} {}\n", files.len(), folders.len()).into_bytes();
    bytes.extend(&files);
    bytes.extend(&folders);
    // `dd … iflag=fullblock` reads exactly that many bytes, leaving the
    // archive on stdin for `tar`.
    let take = |n: &str, file: &str| {
        format!(
            "{{ [ \"${n}\" -eq 0 ] || dd bs=\"${n}\" count=1 iflag=fullblock 2>/dev/null; }} > {file} || exit 1\n\
             [ \"$(wc -c < {file})\" -eq \"${n}\" ] || {{ echo 'the list of deletions did not arrive whole' >&2; exit 1; }}\n"
        )
    };
    let (f, g) = (
        quote(&format!("{source}/deleted.list")),
        quote(&format!("{source}/emptied.list")),
    );
    let script = format!(
        "read -r n1 n2 || exit 1\n{}{}\
         (cd {t} && xargs -0 rm -f -- < {f}) || exit 1\n\
         (cd {t} && xargs -0 rmdir -- < {g}) 2>/dev/null\n\
         rm -f {f} {g}\n",
        take("n1", &f),
        take("n2", &g),
        t = quote(tree),
    );
    (script, bytes)
}

/// Where a host keeps the pristine source of its last upload.
pub fn source_dir(layout: &Layout) -> String {
    format!("{}/source", layout.gantry())
}

/// Keeps a pristine copy of the release just uploaded (before any build
/// runs in it), the base of the next upload's delta.
pub fn keep_source_script(layout: &Layout, release: &str, commit: &str) -> String {
    let source = source_dir(layout);
    let tmp = quote(&format!("{source}.tmp"));
    format!(
        "rm -rf {tmp} && mkdir -p {tmp} && cp -a {dir} {tmp}/tree && printf '%s\\n' {commit} > {tmp}/COMMIT && rm -rf {source} && mv {tmp} {source}",
        dir = quote(&layout.release(release)),
        commit = quote(commit),
        source = quote(&source),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::release::{scratch, sh};

    /// What the host's `COMMIT` says: the base of the next delta.
    fn source_commit(dir: &std::path::Path) -> String {
        std::fs::read_to_string(dir.join(".gantry/source/COMMIT")).unwrap()
    }

    #[test]
    fn a_delta_removes_the_folders_its_deletions_emptied() {
        let (dir, layout) = scratch("delta");
        let tree = dir.join(".gantry/source/tree");
        for file in ["a/b/c.txt", "a/keep.txt", "x/y/z.txt", "top.txt"] {
            std::fs::create_dir_all(tree.join(file).parent().unwrap()).unwrap();
            std::fs::write(tree.join(file), file).unwrap();
        }
        std::fs::write(dir.join(".gantry/source/COMMIT"), "base\n").unwrap();
        std::fs::create_dir_all(dir.join("releases")).unwrap();
        let deleted = ["a/b/c.txt".to_string(), "x/y/z.txt".to_string()];
        // No archive after the deletions: the script's status is theirs.
        let script = upload_delta_script(&layout, "r1", "base", "next", &deleted, false).script;
        assert!(sh(&script, b""));
        let release = dir.join("releases/r1");
        assert!(!release.join("a/b").exists());
        assert!(!release.join("x").exists());
        assert!(release.join("a/keep.txt").exists());
        assert!(release.join("top.txt").exists());
        // The source was brought to the new commit too, the next base.
        assert!(!tree.join("a/b").exists());
        assert!(tree.join("a/keep.txt").exists());
        assert_eq!(source_commit(&dir), "next\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_archive_that_does_not_unpack_whole_is_never_kept_as_the_source() {
        let (dir, layout) = scratch("upload-cut");
        std::fs::create_dir_all(dir.join("releases")).unwrap();
        let tar = std::process::Command::new("tar")
            .args(["-c", "-f", "-", "-C", "/etc", "hostname", "passwd"])
            .output()
            .unwrap()
            .stdout;
        // Cut in the second file's data (after two headers and the first
        // file's one block): tar fails on it.
        let cut = &tar[..4 * 512];
        let script = format!(
            "{}\n{}",
            crate::remote::release::upload_script(&layout, "r1"),
            keep_source_script(&layout, "r1", "abc")
        );
        assert!(!sh(&script, cut));
        assert!(!dir.join(".gantry/source/COMMIT").exists());
        assert!(sh(&script, &tar));
        assert!(dir.join(".gantry/source/tree/passwd").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_long_list_of_deletions_goes_on_stdin_ahead_of_the_archive() {
        let (dir, layout) = scratch("delta-long");
        let tree = dir.join(".gantry/source/tree");
        // 3,000 deleted files in 30 folders, a file kept beside them, and
        // one that changes (in the archive after the lists).
        let mut deleted = Vec::new();
        for d in 0..30 {
            let folder = tree.join(format!("vendor/package-number-{d:02}/lib"));
            std::fs::create_dir_all(&folder).unwrap();
            for f in 0..100 {
                let path = format!("vendor/package-number-{d:02}/lib/module {f:03} -x.py");
                std::fs::write(tree.join(&path), "old").unwrap();
                deleted.push(path);
            }
        }
        std::fs::write(tree.join("vendor/README"), "kept").unwrap();
        std::fs::write(tree.join("app.py"), "v1").unwrap();
        std::fs::write(dir.join(".gantry/source/COMMIT"), "base\n").unwrap();
        std::fs::create_dir_all(dir.join("releases")).unwrap();
        let changed = dir.join("changed");
        std::fs::create_dir_all(&changed).unwrap();
        std::fs::write(changed.join("app.py"), "v2").unwrap();
        let archive = std::process::Command::new("tar")
            .args(["-c", "-z", "-f", "-", "-C"])
            .arg(&changed)
            .arg("app.py")
            .output()
            .unwrap()
            .stdout;

        let upload = upload_delta_script(&layout, "r1", "base", "next", &deleted, true);
        assert!(upload.script.len() < 8 * 1024, "{}", upload.script.len());
        let mut stdin = upload.lists.expect("the lists go on stdin");
        // Cut short, the lists are refused and the source is not a base.
        assert!(!sh(&upload.script, &stdin[..stdin.len() / 2]));
        assert!(tree.join("vendor/package-number-00").exists());
        assert_eq!(source_commit(&dir), "");
        std::fs::write(dir.join(".gantry/source/COMMIT"), "base\n").unwrap();

        stdin.extend(&archive);
        assert!(sh(&upload.script, &stdin));
        let release = dir.join("releases/r1");
        assert!(!release.join("vendor/package-number-00").exists());
        assert_eq!(
            std::fs::read_to_string(release.join("vendor/README")).unwrap(),
            "kept"
        );
        assert_eq!(
            std::fs::read_to_string(release.join("app.py")).unwrap(),
            "v2"
        );
        assert!(!dir.join(".gantry/source/deleted.list").exists());
        assert_eq!(source_commit(&dir), "next\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_delta_on_another_base_changes_nothing() {
        let (dir, layout) = scratch("delta-base");
        let tree = dir.join(".gantry/source/tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("app.py"), "v1").unwrap();
        std::fs::write(dir.join(".gantry/source/COMMIT"), "other\n").unwrap();
        std::fs::create_dir_all(dir.join("releases")).unwrap();
        let deleted = ["app.py".to_string()];
        let script = upload_delta_script(&layout, "r1", "base", "next", &deleted, false).script;
        assert!(!sh(&script, b""));
        assert!(tree.join("app.py").exists());
        assert!(!dir.join("releases/r1").exists());
        assert_eq!(source_commit(&dir), "other\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
