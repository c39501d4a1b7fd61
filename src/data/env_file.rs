//! The shared env file as the config describes it (`[env]`, and the
//! database's variable), line by line: `setup` writes these lines (then the
//! secrets'), and a deploy compares them with the host's file before
//! anything runs, so a config change that never reached the app is said.
//! When the file changed after the app last started (`.gantry/env-started`,
//! touched by every restart that went through), a deploy of the commit
//! already served deploys again so the app reads it.

use crate::base::shell::quote;
use crate::config::{Config, Environment, HostSpec};
use crate::remote::release::{self, Layout};

/// `(name, line)` for each plain value, as the file holds it.
pub fn lines(
    config: &Config,
    env: &Environment,
    spec: &HostSpec,
    layout: &Layout,
) -> Vec<(String, String)> {
    let vars = release::run_vars(spec, layout, None, None);
    let mut out: Vec<(String, String)> = config
        .setup
        .env
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                format!("{name}={}", quote(&value.render(&vars))),
            )
        })
        .collect();
    // The app reads its database from the same variable the migrate
    // command sees.
    if let Some(db) = crate::data::database::Db::new(&env.database, &vars, "") {
        for (name, value) in db.app_env(&db.location) {
            out.push((name.clone(), format!("{name}={}", quote(&value))));
        }
    }
    out
}

/// Prints `changed` when the file is newer than the app's last start,
/// `missing` without a file, and `differs NAME` for each line of `lines`
/// the file does not hold. Shell builtins only.
pub fn compare_script(file: &str, started: &str, lines: &[(String, String)]) -> String {
    let mut s = format!(
        "f={f}\n[ -f {s} ] && [ \"$f\" -nt {s} ] && echo changed\n[ -f \"$f\" ] || {{ echo missing; exit 0; }}\n",
        f = quote(file),
        s = quote(started),
    );
    let marks: Vec<String> = (0..lines.len()).map(|i| format!("m{i}")).collect();
    s.push_str(&format!(
        "{}\n",
        marks
            .iter()
            .map(|m| format!("{m}="))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    s.push_str("while IFS= read -r l || [ -n \"$l\" ]; do\n  case \"$l\" in\n");
    for (m, (_, line)) in marks.iter().zip(lines) {
        s.push_str(&format!("    {}) {m}=1 ;;\n", quote(line)));
    }
    s.push_str("  esac\ndone < \"$f\"\n");
    for (m, (name, _)) in marks.iter().zip(lines) {
        s.push_str(&format!(
            "[ -n \"${m}\" ] || echo {}\n",
            quote(&format!("differs {name}"))
        ));
    }
    s.push_str("true");
    s
}

/// What `compare_script` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Compared {
    /// The file changed after the app last started.
    pub changed: bool,
    pub missing: bool,
    /// Names whose line the file does not hold (a value that differs, or
    /// no line).
    pub differs: Vec<String>,
}

pub fn parse(out: &str) -> Compared {
    let mut c = Compared::default();
    for line in out.lines() {
        match line.split_once(' ') {
            Some(("differs", name)) => c.differs.push(name.to_string()),
            _ if line == "changed" => c.changed = true,
            _ if line == "missing" => c.missing = true,
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_lines_the_file_lacks_and_says_when_it_is_newer() {
        let dir = std::env::temp_dir().join(format!("gantry-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".env");
        let started = dir.join("env-started");
        let lines = vec![
            ("A".to_string(), format!("A={}", quote("one two"))),
            ("B".to_string(), "B=2".to_string()),
            ("C".to_string(), "C=it's".to_string()),
        ];
        let run = || {
            let script = compare_script(
                &file.display().to_string(),
                &started.display().to_string(),
                &lines,
            );
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert!(out.status.success());
            parse(&String::from_utf8_lossy(&out.stdout))
        };
        assert!(run().missing);
        std::fs::write(
            &file,
            format!("A={}\nB=3\nC=it's\nSECRET=x", quote("one two")),
        )
        .unwrap();
        assert_eq!(
            run(),
            Compared {
                differs: vec!["B".into()],
                ..Compared::default()
            }
        );
        // Started after the file was written: not changed; then written again.
        std::fs::write(&started, "").unwrap();
        assert!(!run().changed);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(run().changed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
