//! Errors about the user's `gantry.toml`: the file, line, column and key,
//! the offending line with a caret under the bad part, and a hint.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key such as `environments.live.hosts`; empty when the
    /// problem is the file's syntax before any key.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
    /// 1-based line and column of the start of the problem.
    pub line: usize,
    pub column: usize,
    /// The source line and the caret range inside it.
    pub snippet: Option<Box<(String, Range<usize>)>>,
}

impl ConfigError {
    /// Locates `span` (byte offsets) inside `source`.
    pub fn at(
        file: PathBuf,
        source: &str,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let mut error = ConfigError {
            file,
            key: key.into(),
            message: message.into(),
            hint: None,
            line: 0,
            column: 0,
            snippet: None,
        };
        if let Some(span) = span {
            let mut start = span.start.min(source.len());
            while !source.is_char_boundary(start) {
                start -= 1;
            }
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = source[start..]
                .find('\n')
                .map_or(source.len(), |i| start + i);
            let line_text = &source[line_start..line_end];
            let mut end = span.end.clamp(start, line_end);
            while !source.is_char_boundary(end) {
                end += 1;
            }
            error.line = source[..start].matches('\n').count() + 1;
            error.column = source[line_start..start].chars().count() + 1;
            let caret_start = source[line_start..start].chars().count();
            let caret_len = source[start..end].chars().count().max(1);
            error.snippet = Some(Box::new((
                line_text.to_string(),
                caret_start..caret_start + caret_len,
            )));
        }
        error
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> ConfigError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            writeln!(f, "{}", self.message)?;
        } else {
            writeln!(f, "{} (key `{}`)", self.message, self.key)?;
        }
        if self.line == 0 {
            write!(f, "  --> {}", self.file.display())?;
        } else {
            write!(
                f,
                "  --> {}:{}:{}",
                self.file.display(),
                self.line,
                self.column
            )?;
        }
        if let Some(snippet) = &self.snippet {
            let (text, caret) = snippet.as_ref();
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            write!(
                f,
                "\n{pad} |\n{number} | {text}\n{pad} | {}{}",
                " ".repeat(caret.start),
                "^".repeat(caret.len())
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

/// The dotted key in force at byte `offset` of a TOML document: the last
/// table header before it, plus the key on its line when there is one.
/// Good enough for pointing a person at the right place; the span does the
/// precise work.
pub fn key_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let mut table = String::new();
    let mut line_start = 0;
    for line in source[..offset].split_inclusive('\n') {
        let trimmed = line.trim();
        if line_start + line.len() <= offset && trimmed.starts_with('[') {
            table = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
        }
        line_start += line.len();
    }
    let this_line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let this_line = source[this_line_start..]
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    if this_line.starts_with('[') {
        return this_line
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
    }
    let key = this_line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.contains(' '));
    match (table.is_empty(), key) {
        (_, None) => table,
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_caret() {
        let src = "[deploy]\npath = \"/srv/{nope}\"\n";
        let start = src.find("{nope}").unwrap();
        let e = ConfigError::at(
            "gantry.toml".into(),
            src,
            Some(start..start + 6),
            "deploy.path",
            "unknown placeholder `{nope}`",
        )
        .with_hint("known placeholders: env, host");
        assert_eq!(
            e.to_string(),
            "unknown placeholder `{nope}` (key `deploy.path`)\n  --> gantry.toml:2:14\n  |\n2 | path = \"/srv/{nope}\"\n  |              ^^^^^^\n  = help: known placeholders: env, host"
        );
    }

    #[test]
    fn finds_keys() {
        let src = "[app]\nname = \"x\"\n\n[environments.live]\nhosts = [\"a\"]\n";
        assert_eq!(key_at(src, src.find("\"x\"").unwrap()), "app.name");
        assert_eq!(
            key_at(src, src.find("[\"a\"]").unwrap()),
            "environments.live.hosts"
        );
        assert_eq!(key_at(src, src.find("live").unwrap()), "environments.live");
    }
}
