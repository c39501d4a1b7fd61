//! Errors about the user's `gantry.toml`: the file, line, column and key,
//! the source under the bad part drawn by `annotate-snippets` (tabs, wide
//! characters and spans over several lines come out right), and a hint.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key such as `environments.live.hosts[1]`; empty when the
    /// problem is the file's syntax before any key.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
    /// 1-based line and column of the start of the problem.
    pub line: usize,
    pub column: usize,
    /// The file's text and the bytes the problem covers, when it has a place.
    pub place: Option<Box<(String, Range<usize>)>>,
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
            place: None,
        };
        if let Some(span) = span {
            let mut start = span.start.min(source.len());
            while !source.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = span.end.clamp(start, source.len());
            while !source.is_char_boundary(end) {
                end += 1;
            }
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            error.line = source[..start].matches('\n').count() + 1;
            error.column = source[line_start..start].chars().count() + 1;
            error.place = Some(Box::new((source.to_string(), start..end)));
        }
        error
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> ConfigError {
        self.hint = Some(hint.into());
        self
    }

    /// The first line of the message, with the key.
    fn title(&self) -> String {
        if self.key.is_empty() {
            self.message.clone()
        } else {
            format!("{} (key `{}`)", self.message, self.key)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = self.title();
        let path = self.file.display().to_string();
        let Some(place) = &self.place else {
            write!(f, "{title}\n  --> {path}")?;
            if let Some(hint) = &self.hint {
                write!(f, "\n  = help: {hint}")?;
            }
            return Ok(());
        };
        let (source, span) = place.as_ref();
        // An empty span (a missing key at the end) still points somewhere.
        let span = if span.is_empty() && span.start > 0 && span.start == source.len() {
            span.start - 1..span.start
        } else {
            span.clone()
        };
        let snippet = Snippet::source(source.as_str())
            .path(path.as_str())
            .annotation(AnnotationKind::Primary.span(span));
        let mut group = Level::ERROR.primary_title(title.as_str()).element(snippet);
        if let Some(hint) = &self.hint {
            group = group.element(Level::HELP.message(hint.as_str()));
        }
        let rendered = Renderer::plain().render(&[group]);
        // The printer says `error:` itself.
        let rendered = rendered.strip_prefix("error: ").unwrap_or(&rendered);
        write!(f, "{}", rendered.trim_end())
    }
}

/// The dotted key at byte `offset` of a TOML document, read from the
/// parsed document, with `[i]` for array items: where serde's error
/// points. When the document does not parse, the last table header before
/// `offset`.
pub fn key_at(source: &str, offset: usize) -> String {
    let Ok(doc) = toml::de::DeTable::parse(source) else {
        return header_before(source, offset);
    };
    let mut path = Vec::new();
    if in_table(doc.get_ref(), offset, &mut path) {
        path.join(".").replace(".[", "[")
    } else {
        header_before(source, offset)
    }
}

/// Finds `offset` under `table`, pushing the keys (and `[i]`) on the way.
fn in_table(table: &toml::de::DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        if key.span().contains(&offset) || in_value(value, offset, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn in_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    offset: usize,
    path: &mut Vec<String>,
) -> bool {
    match value.get_ref() {
        toml::de::DeValue::Table(t) => in_table(t, offset, path) || value.span().contains(&offset),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                if in_value(item, offset, path) {
                    return true;
                }
                path.pop();
            }
            value.span().contains(&offset)
        }
        _ => value.span().contains(&offset),
    }
}

/// The last `[table]` header before `offset`, for a document that does not
/// parse.
fn header_before(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    source[..offset]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(src: &str, at: &str, len: usize) -> ConfigError {
        let start = src.find(at).unwrap();
        ConfigError::at(
            "gantry.toml".into(),
            src,
            Some(start..start + len),
            "deploy.path",
            "unknown placeholder `{nope}`",
        )
        .with_hint("known placeholders: env, host")
    }

    #[test]
    fn draws_the_line_with_a_caret_under_the_span() {
        let e = error("[deploy]\npath = \"/srv/{nope}\"\n", "{nope}", 6);
        insta::assert_snapshot!(e.to_string(), @r#"
        unknown placeholder `{nope}` (key `deploy.path`)
         --> gantry.toml:2:14
          |
        2 | path = "/srv/{nope}"
          |              ^^^^^^
          |
          = help: known placeholders: env, host
        "#);
    }

    #[test]
    fn a_tab_before_the_span_keeps_the_caret_under_it() {
        let e = error("[deploy]\n\tpath = \"/srv/{nope}\"\n", "{nope}", 6);
        insta::assert_snapshot!(e.to_string(), @r#"
        unknown placeholder `{nope}` (key `deploy.path`)
         --> gantry.toml:2:15
          |
        2 |     path = "/srv/{nope}"
          |                  ^^^^^^
          |
          = help: known placeholders: env, host
        "#);
    }

    #[test]
    fn a_span_over_several_lines_is_drawn_whole() {
        let src = "[deploy]\nbuild = [\n  \"make\",\n  42,\n]\n";
        let len = src.rfind(']').unwrap() + 1 - src.find("[\n").unwrap();
        let e = error(src, "[\n", len);
        insta::assert_snapshot!(e.to_string(), @r#"
        unknown placeholder `{nope}` (key `deploy.path`)
         --> gantry.toml:2:9
          |
        2 |   build = [
          |  _________^
        3 | |   "make",
        4 | |   42,
        5 | | ]
          | |_^
          |
          = help: known placeholders: env, host
        "#);
    }

    #[test]
    fn finds_keys_in_tables_arrays_and_inline_tables() {
        let src = "[app]\nname = \"x\"\n\n[environments.live]\nhosts = [\"a\", { address = \"b\", vars = { x = 1 } }]\n";
        assert_eq!(key_at(src, src.find("\"x\"").unwrap()), "app.name");
        assert_eq!(
            key_at(src, src.find("\"a\"").unwrap()),
            "environments.live.hosts[0]"
        );
        assert_eq!(
            key_at(src, src.find("\"b\"").unwrap()),
            "environments.live.hosts[1].address"
        );
        assert_eq!(
            key_at(src, src.find("x = 1").unwrap()),
            "environments.live.hosts[1].vars.x"
        );
        assert_eq!(key_at(src, src.find("live").unwrap()), "environments.live");
        assert_eq!(key_at("[deploy]\npath = ", 15), "deploy");
    }
}
