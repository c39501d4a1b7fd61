//! Checks shared by every key: templates, variables, numbers in range,
//! durations, words and relative paths; and the wording of what is wrong
//! with them.

use std::ops::Range;
use std::time::Duration;

use super::super::raw::{RawVars, S};
use super::super::*;
use super::Loader;
use crate::base::time::parse_duration;

impl Loader<'_> {
    /// Where something missing would go: the end of the file.
    pub(super) fn end(&self) -> Range<usize> {
        let end = self.source.trim_end().len();
        end..end
    }

    pub(super) fn no_environments(&self) -> ConfigError {
        ConfigError::at(
            self.file.to_path_buf(),
            self.source,
            Some(self.end()),
            "environments",
            "no environments are defined",
        )
        .with_hint("add `[environments.staging]` with `hosts = [\"user@host\"]` (or `[\"local\"]`)")
    }

    pub(super) fn unknown_placeholder(
        &self,
        value: &S<String>,
        key: &str,
        name: &str,
        range: Range<usize>,
        vars: &Vars,
        runtime: bool,
    ) -> ConfigError {
        let span = self.inner_span(value, range);
        let mut known: Vec<&str> = vars.keys().map(String::as_str).collect();
        if runtime {
            known.extend(RUN_NAMES);
        }
        known.sort_unstable();
        let mut error = self.error(span, key, format!("unknown placeholder `{{{name}}}`"));
        error = error.with_hint(format!(
            "known placeholders here: {}; define others under `[vars]` (write `{{{{` for a literal brace)",
            known.iter().map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(" ")
        ));
        if !runtime && RUN_NAMES.contains(&name) {
            error = error.with_hint(format!(
                "`{{{name}}}` is only known while a deploy runs, so `deploy.path` cannot use it"
            ));
        }
        error
    }

    /// Maps a range inside a string value to a span in the file: exact when
    /// the value is written as a simple string on one line, the whole value
    /// otherwise.
    pub(super) fn inner_span(&self, value: &S<String>, range: Range<usize>) -> Range<usize> {
        let span = value.span();
        let text = &self.source[span.clone()];
        let quoted =
            text.len() == value.get_ref().len() + 2 && text[1..text.len() - 1] == *value.get_ref();
        if quoted {
            span.start + 1 + range.start..span.start + 1 + range.end
        } else {
            span
        }
    }

    /// A table of environment variables whose values are templates:
    /// (name, key, raw value, template).
    #[allow(clippy::type_complexity)]
    pub(super) fn env_table(
        &self,
        raw: &RawVars,
        prefix: &str,
    ) -> Result<Vec<(String, String, S<String>, Template)>, ConfigError> {
        raw.iter()
            .map(|(name, value)| {
                let key = format!("{prefix}.{name}");
                if !crate::base::shell::is_var_name(name) {
                    return Err(self.error(
                        value.span(),
                        &key,
                        format!("`{name}` is not a valid environment variable name"),
                    ));
                }
                let t = self.template(value, &key)?;
                Ok((name.clone(), key, value.clone(), t))
            })
            .collect()
    }

    /// A NUL cannot reach a shell or a file name: refused where it stands.
    pub(super) fn no_nul(&self, value: &S<String>, key: &str) -> Result<(), ConfigError> {
        if value.get_ref().contains('\0') {
            return Err(self
                .error(
                    value.span(),
                    key,
                    "a NUL character (`\\u0000`) cannot be part of a value",
                )
                .with_hint("remove it; no command, path or file can carry it"));
        }
        Ok(())
    }

    pub(super) fn template(&self, value: &S<String>, key: &str) -> Result<Template, ConfigError> {
        self.no_nul(value, key)?;
        Template::parse(value.get_ref()).map_err(|e| {
            let span = self.inner_span(value, e.range);
            self.error(span, key, e.message)
        })
    }

    pub(super) fn vars(&self, raw: &RawVars, key: &str) -> Result<Vars, ConfigError> {
        let mut vars = Vars::new();
        for (name, value) in raw {
            if LOAD_NAMES.contains(&name.as_str()) || RUN_NAMES.contains(&name.as_str()) {
                return Err(self.error(
                    value.span(),
                    &format!("{key}.{name}"),
                    format!("`{name}` is a built-in placeholder and cannot be redefined"),
                ));
            }
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                || name.is_empty()
            {
                return Err(self.error(
                    value.span(),
                    &format!("{key}.{name}"),
                    format!("`{name}` is not a valid variable name (letters, digits, `_`, `-`)"),
                ));
            }
            // A value may name other variables: its syntax is checked here,
            // its names once every level is known (`check_values`).
            self.template(value, &format!("{key}.{name}"))?;
            vars.insert(name.clone(), value.get_ref().clone());
        }
        Ok(vars)
    }

    pub(super) fn positive(&self, value: &S<i64>, key: &str, min: i64) -> Result<i64, ConfigError> {
        self.bounded(value, key, min, 100_000)
    }

    pub(super) fn bounded(
        &self,
        value: &S<i64>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let v = *value.get_ref();
        if v < min || v > max {
            return Err(self.error(
                value.span(),
                key,
                format!("must be a whole number from {min} to {max}, not {v}"),
            ));
        }
        Ok(v)
    }

    /// A duration within `range` (inclusive): no config can make a deploy
    /// wait for ever or overflow a clock.
    pub(super) fn duration(
        &self,
        value: &S<String>,
        key: &str,
        range: (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        let d = parse_duration(value.get_ref()).ok_or_else(|| {
            self.error(
                value.span(),
                key,
                format!("`{}` is not a duration", value.get_ref()),
            )
            .with_hint("write a number and a unit: `500ms`, `30s`, `2m`")
        })?;
        let (min, max) = range;
        if d < min || d > max {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "`{}` is out of range: {key} is from {} to {}",
                    value.get_ref(),
                    crate::base::time::human(min),
                    crate::base::time::human(max)
                ),
            ));
        }
        Ok(d)
    }

    pub(super) fn check_word(&self, value: &S<String>, key: &str) -> Result<(), ConfigError> {
        let v = value.get_ref();
        if v.is_empty()
            || v.starts_with('-')
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "`{v}` may only use letters, digits, `-`, `_` and `.`, and not start with `-`"
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn relative_path(
        &self,
        value: &S<String>,
        key: &str,
    ) -> Result<String, ConfigError> {
        let v = value.get_ref().trim_end_matches('/');
        let bad = v.is_empty()
            || v.starts_with('/')
            || v.split('/')
                .any(|part| part.is_empty() || part == ".." || part == ".")
            || v.contains('\n');
        if bad {
            return Err(self.error(
                value.span(),
                key,
                format!(
                    "`{}` must be a relative path inside the release, without `..`",
                    value.get_ref()
                ),
            ));
        }
        Ok(v.to_string())
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest
/// known key, when one is close.
pub(crate) fn did_you_mean(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let candidates = expected.split('`').skip(1).step_by(2);
    let (best, distance) = candidates
        .map(|c| (c, strsim::levenshtein(unknown, c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= 2.max(unknown.len() / 3)).then(|| format!("did you mean `{best}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn suggests_close_keys() {
        assert_eq!(
            did_you_mean("unknown field `bulid`, expected one of `path`, `build`"),
            Some("did you mean `build`?".to_string())
        );
        assert_eq!(
            did_you_mean("unknown field `zzzzzz`, expected one of `path`, `build`"),
            None
        );
    }
}
