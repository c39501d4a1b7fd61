//! What `init` reads from the settings' text, before asking the app: the
//! module to run on servers (a `production` module beside manage.py's
//! default), and the variables the settings read for `ALLOWED_HOSTS`,
//! `DEBUG` and `SECRET_KEY` (`os.environ`, `os.getenv`, django-environ's
//! `env(...)`, python-decouple's `config(...)`).

use std::path::{Path, PathBuf};

use super::Django;

/// Modules that mean "for servers", looked for beside manage.py's default.
const PRODUCTION: [&str; 5] = [
    "production",
    "prod",
    "settings_production",
    "settings_prod",
    "production_settings",
];

/// The settings module to run on servers: manage.py's default, or a
/// production module beside it (then `Some` of the default, to say so).
pub fn server_module(repo: &Path, d: &Django) -> (String, Option<String>) {
    let default = d.settings.clone();
    let (package, last) = default.rsplit_once('.').unwrap_or(("", &default));
    if PRODUCTION.contains(&last) {
        return (default, None);
    }
    for name in PRODUCTION {
        let module = if package.is_empty() {
            name.to_string()
        } else {
            format!("{package}.{name}")
        };
        if module_file(repo, d, &module).is_some() {
            return (module, Some(default));
        }
    }
    (default, None)
}

/// `a/b/c.py`, or `a/b/c/__init__.py` for a package.
fn module_file(repo: &Path, d: &Django, module: &str) -> Option<PathBuf> {
    let base = repo.join(&d.root).join(module.replace('.', "/"));
    [base.with_extension("py"), base.join("__init__.py")]
        .into_iter()
        .find(|p| p.is_file())
}

/// One settings file: its path (relative to the repository) and text.
pub struct File {
    pub path: String,
    pub text: String,
}

/// The settings' files, the server module's first: with it every file of
/// its package (`base.py`, …), or the files beside it named `*settings*`.
pub fn files(repo: &Path, d: &Django, module: &str) -> Vec<File> {
    let Some(main) = module_file(repo, d, module) else {
        return Vec::new();
    };
    let Some(dir) = main.parent() else {
        return Vec::new();
    };
    let in_package = dir.file_name().is_some_and(|n| n == "settings")
        || main.file_name().is_some_and(|n| n == "__init__.py");
    let mut others: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p != &main && p.extension().is_some_and(|e| e == "py"))
                .filter(|p| {
                    in_package
                        || p.file_name()
                            .is_some_and(|n| n.to_string_lossy().contains("settings"))
                })
                .collect()
        })
        .unwrap_or_default();
    others.sort();
    std::iter::once(main)
        .chain(others)
        .map(|p| File {
            path: p
                .strip_prefix(repo)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned(),
            text: std::fs::read_to_string(&p).unwrap_or_default(),
        })
        .collect()
}

/// How the settings get one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// From this environment variable; `line` is where.
    Env { name: String, line: String },
    /// Written in this file, no variable.
    Fixed { file: String },
    /// Not found in the files.
    Unknown,
}

impl Read {
    pub fn var(&self) -> Option<&str> {
        match self {
            Read::Env { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// How `setting` (`ALLOWED_HOSTS`) gets its value: the variables on the
/// lines that assign it (the server module's first), else any variable
/// whose name holds `hint` (`ALLOWED_HOST`), else the file assigning it.
pub fn reads(files: &[File], setting: &str, hint: &str) -> Read {
    let assigns = |l: &str| {
        let l = l.trim_start();
        l.strip_prefix(setting)
            .is_some_and(|rest| rest.trim_start().starts_with('=') || rest.starts_with(" +="))
    };
    for f in files {
        for line in f.text.lines().filter(|l| assigns(l)) {
            if let Some(name) = env_names(line).into_iter().next() {
                return Read::Env {
                    name,
                    line: line.trim().to_string(),
                };
            }
        }
    }
    for f in files {
        for line in f.text.lines() {
            if let Some(name) = env_names(line).into_iter().find(|n| n.contains(hint)) {
                return Read::Env {
                    name,
                    line: line.trim().to_string(),
                };
            }
        }
    }
    files
        .iter()
        .find(|f| f.text.lines().any(assigns))
        .map_or(Read::Unknown, |f| Read::Fixed {
            file: f.path.clone(),
        })
}

/// The environment variables a line of Python reads.
pub fn env_names(line: &str) -> Vec<String> {
    const READERS: [&str; 9] = [
        "environ.get(",
        "environ[",
        "getenv(",
        "env(",
        "env.str(",
        "env.bool(",
        "env.list(",
        "env.int(",
        "config(",
    ];
    let mut names = Vec::new();
    for reader in READERS {
        for (at, _) in line.match_indices(reader) {
            let rest = line[at + reader.len()..].trim_start();
            let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            let name: String = rest[1..].chars().take_while(|c| *c != quote).collect();
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    // `"NAME" in os.environ`
    for (at, _) in line.match_indices(" in os.environ") {
        let before = line[..at].trim_end();
        let Some(quote) = before.chars().last().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let inner = &before[..before.len() - 1];
        let Some(start) = inner.rfind(quote) else {
            continue;
        };
        let name = inner[start + 1..].to_string();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The value that turns `DEBUG` off through `read`: the book's
/// `DJANGO_DEBUG_FALSE` is set to anything, a number is parsed by `int()`,
/// anything else is compared with or parsed as a boolean.
pub fn debug_off(read: &Read) -> &'static str {
    match read {
        Read::Env { name, .. } if name.contains("FALSE") => "y",
        Read::Env { line, .. } if line.contains("int(") => "0",
        _ => "False",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> File {
        File {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn finds_the_variable_each_setting_reads() {
        let files = [
            file(
                "s/production.py",
                "from .base import *\nDEBUG = os.environ.get('DJANGO_DEBUG', 'False') == 'True'\nALLOWED_HOSTS = os.environ[\"DJANGO_ALLOWED_HOSTS\"].split(\",\")\n",
            ),
            file(
                "s/base.py",
                "SECRET_KEY = env(\"APP_SECRET\")\nALLOWED_HOSTS = []\nSTATIC_URL = config('CDN', default='/static/')\n",
            ),
        ];
        assert_eq!(
            reads(&files, "ALLOWED_HOSTS", "ALLOWED_HOST").var(),
            Some("DJANGO_ALLOWED_HOSTS")
        );
        assert_eq!(
            reads(&files, "SECRET_KEY", "SECRET_KEY").var(),
            Some("APP_SECRET")
        );
        let debug = reads(&files, "DEBUG", "DEBUG");
        assert_eq!(debug.var(), Some("DJANGO_DEBUG"));
        assert_eq!(debug_off(&debug), "False");
        assert_eq!(
            env_names("X = os.getenv( 'A_B' ) or config(\"C\")"),
            ["A_B", "C"]
        );
    }

    #[test]
    fn the_books_names_and_fixed_values() {
        let files = [file(
            "superlists/settings.py",
            "if \"DJANGO_DEBUG_FALSE\" in os.environ:\n    DEBUG = False\n    ALLOWED_HOSTS = [\"example.com\"]\n",
        )];
        assert_eq!(
            reads(&files, "ALLOWED_HOSTS", "ALLOWED_HOST"),
            Read::Fixed {
                file: "superlists/settings.py".into()
            }
        );
        assert_eq!(reads(&files, "SECRET_KEY", "SECRET_KEY"), Read::Unknown);
        // The book: `if "DJANGO_DEBUG_FALSE" in os.environ:`.
        let book = [file(
            "s.py",
            "if \"DJANGO_DEBUG_FALSE\" in os.environ:\n    DEBUG = False\nelse:\n    DEBUG = True\n",
        )];
        let debug = reads(&book, "DEBUG", "DEBUG");
        assert_eq!(debug.var(), Some("DJANGO_DEBUG_FALSE"));
        assert_eq!(debug_off(&debug), "y");
    }
}
