//! The layout on a host (Capistrano's, which users already know) and the
//! shell scripts that change it. Every script is built here, from quoted
//! paths, so `plan` can print exactly what `deploy` runs.
//!
//! ```text
//! <path>/releases/<UTC time>-<short sha>/   one folder per deploy; REVISION marks it complete
//! <path>/shared/                            survives releases
//! <path>/current -> releases/<...>          switched atomically (symlink + rename)
//! <path>/.gantry/lock/info                  who holds the deploy lock
//! <path>/.gantry/history.jsonl              a JSON line per deploy, rollback, lock, unlock
//! ```

use crate::base::shell::quote;
use crate::config::{Config, HostSpec, SharedPath, Vars};
use crate::ledger::git::Commit;

/// One step as it will run on a host: what `plan` prints, what `deploy` runs.
#[derive(Debug, Clone)]
pub struct Planned {
    pub name: String,
    /// The user's command, for error reports.
    pub shown: Option<String>,
    pub script: String,
    /// The step reads the release archive on stdin.
    pub upload: bool,
    /// One of Gantry's own short scripts (upload, link shared, finish):
    /// in a batch it runs in a subshell, starting no `sh` of its own (and
    /// so is not named on a command line for `status`, as a build is).
    pub inline: bool,
}

/// Paths of one site on one host.
#[derive(Debug, Clone)]
pub struct Layout {
    pub path: String,
    /// `releases`, or `.gantry/rehearsals` for a rehearsal's scratch release.
    releases_dir: &'static str,
    /// `shared`, or `.gantry/rehearsals/shared`: a rehearsal's scratch
    /// release never links to the real shared files.
    shared_dir: &'static str,
}

impl Layout {
    pub fn new(path: &str) -> Layout {
        Layout {
            path: path.trim_end_matches('/').to_string(),
            releases_dir: "releases",
            shared_dir: "shared",
        }
    }
    /// The same site, with releases made in the rehearsal scratch area.
    pub fn rehearsal(path: &str) -> Layout {
        Layout {
            releases_dir: ".gantry/rehearsals",
            shared_dir: ".gantry/rehearsals/shared",
            ..Layout::new(path)
        }
    }
    pub fn releases(&self) -> String {
        format!("{}/{}", self.path, self.releases_dir)
    }
    pub fn release(&self, name: &str) -> String {
        format!("{}/{name}", self.releases())
    }
    pub fn backups(&self) -> String {
        format!("{}/.gantry/backups", self.path)
    }
    pub fn rehearsals(&self) -> String {
        format!("{}/.gantry/rehearsals", self.path)
    }
    pub fn shared(&self) -> String {
        format!("{}/{}", self.path, self.shared_dir)
    }
    pub fn current(&self) -> String {
        format!("{}/current", self.path)
    }
    pub fn gantry(&self) -> String {
        format!("{}/.gantry", self.path)
    }
    pub fn lock(&self) -> String {
        format!("{}/.gantry/lock", self.path)
    }
    pub fn history(&self) -> String {
        format!("{}/.gantry/history.jsonl", self.path)
    }
}

/// The name of a new release: sorts in time order, says which commit.
pub fn release_name(commit: &Commit) -> String {
    format!(
        "{}-{}",
        crate::base::time::Utc::now().compact(),
        commit.short()
    )
}

/// Takes the lock: prints `acquired`, or `held` and the holder's record.
pub fn lock_script(layout: &Layout, info_json: &str) -> String {
    let lock = quote(&layout.lock());
    format!(
        "{{ [ -d {gantry} ] && [ -d {releases} ] && [ -d {shared} ]; }} || mkdir -p {gantry} {releases} {shared} || exit 1\n\
         if mkdir {lock} 2>/dev/null; then\n  printf '%s\\n' {info} > {lock}/info || {{ rm -rf {lock}; printf 'cannot write %s/info: is the disk full?\\n' {lock} >&2; exit 1; }}\n  echo acquired\n\
         else\n  echo held\n  cat {lock}/info 2>/dev/null\nfi",
        gantry = quote(&layout.gantry()),
        releases = quote(&layout.releases()),
        shared = quote(&layout.shared()),
        info = quote(info_json),
    )
}

/// Releases the lock, but only if `token` still holds it (the holder's
/// record is one JSON line, as `serde_json` writes it).
pub fn unlock_script(layout: &Layout, token: &str) -> String {
    if_held(layout, token, &format!("rm -rf {}", quote(&layout.lock())))
}

/// `then`, but only if `token` still holds the lock.
pub fn if_held(layout: &Layout, token: &str, then: &str) -> String {
    format!(
        "{read}\ncase $l in *{token}*) {then} ;; esac",
        read = read_line("l", &format!("{}/info", layout.lock())),
        token = quote(&format!("\"token\":\"{token}\""))
    )
}

/// Shell lines that set `var` to the first line of `file`, or to nothing
/// when there is no such file: the shell's `read`, no program started.
pub fn read_line(var: &str, file: &str) -> String {
    format!("{var}=\n{{ read -r {var} < {}; }} 2>/dev/null", quote(file))
}

/// Removes the lock whoever holds it, printing the holder's record first.
pub fn force_unlock_script(layout: &Layout) -> String {
    let lock = quote(&layout.lock());
    format!(
        "if [ -d {lock} ]; then cat {lock}/info 2>/dev/null; echo; rm -rf {lock}; fi; {}",
        release_writes_script(layout)
    )
}

/// The file whose presence makes the nginx site `gantry setup` writes
/// answer non-GET requests with 503 (`--maintenance`).
pub fn maintenance_file(layout: &Layout) -> String {
    format!("{}/maintenance", layout.gantry())
}

/// Holds the app's writes: the maintenance file, naming since when.
pub fn hold_writes_script(layout: &Layout) -> String {
    let file = quote(&maintenance_file(layout));
    format!("date -u +%Y-%m-%dT%H:%M:%SZ > {file}.tmp && mv -f {file}.tmp {file}")
}

/// Lets writes through again.
pub fn release_writes_script(layout: &Layout) -> String {
    format!("rm -f {}", quote(&maintenance_file(layout)))
}

/// Unpacks the archive on stdin into a new release folder. A folder of
/// that name without `REVISION` was left by an interrupted deploy and is
/// replaced; a complete one is never touched. An archive that does not
/// unpack whole stops the script there (what follows, keeping the source,
/// must never see a partial tree).
pub fn upload_script(layout: &Layout, release: &str) -> String {
    let dir = quote(&layout.release(release));
    format!(
        "{}\nrm -rf {dir}\nmkdir {dir} && tar -x -f - -C {dir} || exit 1",
        refuse_existing(layout, release)
    )
}

/// How an upload ends when it finds a complete release of the same name
/// (another deploy's): that folder is not this run's to remove. Any other
/// failed upload may have left a part of this run's release.
pub const EXISTS: i32 = 75;

/// An upload's first line: stops (`EXISTS`) at a complete release of the
/// same name.
pub fn refuse_existing(layout: &Layout, release: &str) -> String {
    format!(
        "if [ -f {dir}/REVISION ]; then echo 'release {name} already exists here; deploy again in a second' >&2; exit {EXISTS}; fi",
        dir = quote(&layout.release(release)),
        name = release.replace('\'', "")
    )
}

/// Links the shared files and folders into the release. A path missing
/// from `shared/` is seeded from the release's copy when it has one.
pub fn link_shared_script(layout: &Layout, release: &str, shared: &[SharedPath]) -> String {
    let mut script = String::from("set -e\n");
    for item in shared {
        let target = format!("{}/{}", layout.shared(), item.path);
        let link = format!("{}/{}", layout.release(release), item.path);
        let parent = |p: &str| p.rsplit_once('/').map_or(".", |(d, _)| d).to_string();
        let (t, l) = (quote(&target), quote(&link));
        // Tests first: on a redeploy the folders are there, and a test
        // starts no program.
        let (a, b) = (quote(&parent(&target)), quote(&parent(&link)));
        script.push_str(&format!(
            "[ -d {a} ] && [ -d {b} ] || mkdir -p {a} {b}\nif [ ! -e {t} ] && [ -e {l} ] && [ ! -L {l} ]; then mv {l} {t}; fi\n",
        ));
        if item.dir {
            script.push_str(&format!("[ -d {t} ] || mkdir -p {t}\n"));
        }
        script.push_str(&format!(
            "if [ -e {l} ] || [ -L {l} ]; then rm -rf {l}; fi\nln -s {t} {l}\n"
        ));
    }
    script
}

/// Fills a rehearsal's scratch `shared/` from the real one, with copies
/// only: shared folders are created empty, shared files (and the env file)
/// are copied, and the SQLite database (`database`) is left to the backup
/// API. In the env file's copy, the database variable points at the copy,
/// so an app that reads the file itself finds the copy too.
pub fn isolate_shared_script(
    real: &Layout,
    scratch: &Layout,
    shared: &[SharedPath],
    env_file: &str,
    db_var: Option<(&str, &str)>,
    database: Option<&str>,
) -> String {
    let mut script = format!("set -e\nmkdir -p {}\n", quote(&scratch.shared()));
    let parent = |p: &str| p.rsplit_once('/').map_or(".", |(d, _)| d).to_string();
    let mut files: Vec<&str> = Vec::new();
    for item in shared {
        let to = format!("{}/{}", scratch.shared(), item.path);
        if item.dir {
            script.push_str(&format!("mkdir -p {}\n", quote(&to)));
        } else {
            files.push(&item.path);
        }
    }
    if !files.contains(&env_file) {
        files.push(env_file);
    }
    for path in files {
        let from = format!("{}/{}", real.shared(), path);
        let to = format!("{}/{}", scratch.shared(), path);
        if Some(from.as_str()) == database {
            continue;
        }
        let copy = match (path == env_file, db_var) {
            (true, Some((var, location))) => format!(
                "{{ grep -v -e {a} -e {b} {f} || true; printf '%s=%s\\n' {var} {value}; }} > {t}\nchmod 600 {t}",
                a = quote(&format!("^{var}=")),
                b = quote(&format!("^export {var}=")),
                f = quote(&from),
                t = quote(&to),
                value = quote(&quote(location)),
            ),
            _ => format!("cp -p {} {}", quote(&from), quote(&to)),
        };
        script.push_str(&format!(
            "if [ -f {f} ]; then mkdir -p {p}; {copy}; fi\n",
            f = quote(&from),
            p = quote(&parent(&to)),
        ));
    }
    script
}

/// Copies a complete release for a rehearsal: hard links (nothing is
/// written to the files in place; Python replaces its caches by rename),
/// or a plain copy where links cannot be made.
pub fn clone_release_script(from: &str, to: &str) -> String {
    format!(
        "rm -rf {to}\ncp -al {from} {to} 2>/dev/null || {{ rm -rf {to}; cp -a {from} {to}; }}",
        from = quote(from),
        to = quote(to)
    )
}

/// The variables a command sees, as `export` lines, then `cd` into `dir`.
/// `extra` comes last, so it wins: the database's location.
pub fn command_script(
    config: &Config,
    vars: &Vars,
    dir: &str,
    command: &str,
    extra: &[(String, String)],
) -> String {
    let mut script = String::new();
    let builtin = [
        ("GANTRY_ENV", "env"),
        ("GANTRY_HOST", "host"),
        ("GANTRY_PATH", "path"),
        ("GANTRY_RELEASE", "release"),
        ("GANTRY_SHARED", "shared"),
        ("GANTRY_COMMIT", "commit"),
    ];
    for (name, var) in builtin {
        if let Some(value) = vars.get(var) {
            script.push_str(&format!("export {name}={}\n", quote(value)));
        }
    }
    script.push_str(&env_file_prelude(config, vars));
    for (name, template) in &config.deploy.env {
        script.push_str(&format!(
            "export {name}={}\n",
            quote(&template.render(vars))
        ));
    }
    for (name, value) in extra {
        script.push_str(&format!("export {name}={}\n", quote(value)));
    }
    let dir = match &config.app.root {
        Some(root) => format!("{dir}/{root}"),
        None => dir.to_string(),
    };
    script.push_str(&format!("cd {} || exit 1\n{command}", quote(&dir)));
    script
}

/// Shell lines that read the shared env file into the environment, when
/// there is one: secrets reach commands this way, never on a command line.
pub fn env_file_prelude(config: &Config, vars: &Vars) -> String {
    match (config.setup.has_env_file(), vars.get("shared")) {
        (true, Some(shared)) => {
            let file = quote(&format!("{shared}/{}", config.setup.env_file));
            format!("set -a\n[ -f {file} ] && . {file}\nset +a\n")
        }
        _ => String::new(),
    }
}

/// Marks a release complete: the last step of preparing it.
pub fn finish_script(layout: &Layout, release: &str, commit: &str) -> String {
    format!(
        "printf '%s\\n' {} > {}/REVISION",
        quote(commit),
        quote(&layout.release(release))
    )
}

/// Points `current` at a release atomically: a new symlink under a
/// temporary name, renamed over the old one.
pub fn switch_script(layout: &Layout, release: &str) -> String {
    let tmp = format!("{}/.current-{release}", layout.path);
    format!(
        "ln -sfn {target} {tmp} && mv -T {tmp} {current}",
        current = quote(&layout.current()),
        target = quote(&format!("releases/{release}")),
        tmp = quote(&tmp),
    )
}

/// Puts `current` back where it was: at `previous`, or removed when the
/// site had no release before.
pub fn switch_back_script(layout: &Layout, previous: Option<&str>) -> String {
    match previous {
        Some(name) => switch_script(layout, name),
        None => format!("rm -f {}", quote(&layout.current())),
    }
}

/// Removes a release that did not go live, unless `current` points at it:
/// a host that could not be switched back runs it.
pub fn discard_script(layout: &Layout, release: &str) -> String {
    format!(
        "t=$(readlink {current} 2>/dev/null); [ \"${{t##*/}}\" = {name} ] || rm -rf {dir}",
        current = quote(&layout.current()),
        name = quote(release),
        dir = quote(&layout.release(release))
    )
}

/// Appends a line to the host's history.
pub fn history_script(layout: &Layout, line: &str) -> String {
    format!(
        "{{ [ -d {g} ] || mkdir -p {g}; }} && printf '%s\\n' {line} >> {h}",
        g = quote(&layout.gantry()),
        line = quote(line),
        h = quote(&layout.history())
    )
}

/// Variables available while a deploy runs, on top of the host's own.
pub fn run_vars(
    host: &HostSpec,
    layout: &Layout,
    release: Option<&str>,
    commit: Option<&str>,
) -> Vars {
    let mut vars = host.vars.clone();
    vars.insert("path".into(), layout.path.clone());
    vars.insert("shared".into(), layout.shared());
    vars.insert("current".into(), layout.current());
    vars.insert(
        "release".into(),
        release.map_or_else(|| layout.current(), |r| layout.release(r)),
    );
    vars.insert("commit".into(), commit.unwrap_or("").to_string());
    // `[vars]` values may name other variables (`{current}/staticfiles`).
    crate::config::expanded(&vars)
}

/// Runs `script` with the real `sh`, `stdin` on its stdin: did it succeed?
#[cfg(test)]
pub(crate) fn sh(script: &str, stdin: &[u8]) -> bool {
    sh_code(script, stdin) == Some(0)
}

/// Runs `script` with `sh`, feeding it `stdin`; its exit status.
#[cfg(test)]
pub(crate) fn sh_code(script: &str, stdin: &[u8]) -> Option<i32> {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // A script that refuses exits without reading: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait().unwrap().code()
}

/// A fresh folder under the system's temporary one, and a site there.
#[cfg(test)]
pub(crate) fn scratch(name: &str) -> (std::path::PathBuf, Layout) {
    let dir = std::env::temp_dir().join(format!("gantry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let layout = Layout::new(dir.to_str().unwrap());
    (dir, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_replaces_partial_releases_and_never_complete_ones() {
        let (dir, layout) = scratch("upload");
        std::fs::create_dir_all(dir.join("releases/r1")).unwrap();
        std::fs::write(dir.join("releases/r1/REVISION"), "abc\n").unwrap();
        std::fs::write(dir.join("releases/r1/app.py"), "live").unwrap();
        std::fs::create_dir_all(dir.join("releases/r2")).unwrap();
        std::fs::write(dir.join("releases/r2/stale"), "half").unwrap();
        let tar = std::process::Command::new("tar")
            .args(["-c", "-f", "-", "-C", "/etc", "hostname"])
            .output()
            .unwrap()
            .stdout;

        // Another deploy's complete release: refused, and said so apart
        // from a failed upload (whose part of a release is this run's).
        assert_eq!(sh_code(&upload_script(&layout, "r1"), &tar), Some(EXISTS));
        assert_ne!(
            sh_code(&upload_script(&layout, "r3"), b"not a tar"),
            Some(EXISTS)
        );
        assert_ne!(
            sh_code(&upload_script(&layout, "r3"), b"not a tar"),
            Some(0)
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("releases/r1/app.py")).unwrap(),
            "live"
        );
        assert!(sh(&upload_script(&layout, "r2"), &tar));
        assert!(!dir.join("releases/r2/stale").exists());
        assert!(dir.join("releases/r2/hostname").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn discard_never_removes_the_release_current_points_at() {
        let (dir, layout) = scratch("discard");
        for r in ["r1", "r2"] {
            std::fs::create_dir_all(dir.join("releases").join(r)).unwrap();
        }
        std::os::unix::fs::symlink("releases/r1", dir.join("current")).unwrap();
        assert!(sh(&discard_script(&layout, "r1"), b""));
        assert!(dir.join("releases/r1").exists());
        assert!(sh(&discard_script(&layout, "r2"), b""));
        assert!(!dir.join("releases/r2").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unlock_removes_only_this_runs_lock() {
        let (dir, layout) = scratch("unlock");
        std::fs::create_dir_all(dir.join(".gantry/lock")).unwrap();
        std::fs::write(
            dir.join(".gantry/lock/info"),
            "{\"pid\":1,\"token\":\"1-2-3\"}\n",
        )
        .unwrap();
        assert!(sh(&unlock_script(&layout, "1-2"), b""));
        assert!(dir.join(".gantry/lock").exists());
        assert!(sh(&unlock_script(&layout, "1-2-3"), b""));
        assert!(!dir.join(".gantry/lock").exists());
        // No lock at all: nothing to do, and no error.
        assert!(sh(&unlock_script(&layout, "1-2-3"), b""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
