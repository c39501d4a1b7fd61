//! Placeholders in config values: `{name}` is replaced by a variable,
//! `{{` and `}}` stand for literal braces. Templates are parsed and their
//! names checked when the config is loaded; they are rendered per host at
//! run time, where shell commands get every substituted value quoted.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::base::shell;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    /// A placeholder and its byte range inside the source string.
    Var(String, Range<usize>),
}

/// A parsed config string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// What went wrong parsing a template; the range is inside the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub range: Range<usize>,
}

/// Values available to a template.
pub type Vars = BTreeMap<String, String>;

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    lit.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    lit.push('}');
                    i += 2;
                }
                b'{' => {
                    let Some(len) = source[i + 1..].find('}') else {
                        return Err(TemplateError {
                            message: "unclosed `{` (write `{{` for a literal brace)".into(),
                            range: i..source.len(),
                        });
                    };
                    let name = &source[i + 1..i + 1 + len];
                    let valid = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !valid {
                        return Err(TemplateError {
                            message: format!(
                                "`{{{name}}}` is not a placeholder name (write `{{{{` for a literal brace)"
                            ),
                            range: i..i + len + 2,
                        });
                    }
                    if !lit.is_empty() {
                        segments.push(Segment::Lit(std::mem::take(&mut lit)));
                    }
                    segments.push(Segment::Var(name.to_string(), i..i + len + 2));
                    i += len + 2;
                }
                b'}' => {
                    return Err(TemplateError {
                        message: "unmatched `}` (write `}}` for a literal brace)".into(),
                        range: i..i + 1,
                    });
                }
                _ => {
                    let ch = source[i..].chars().next().expect("in bounds");
                    lit.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Template {
            source: source.to_string(),
            segments,
        })
    }

    /// A template with no placeholders.
    pub fn literal(text: &str) -> Template {
        Template {
            source: text.replace('{', "{{").replace('}', "}}"),
            segments: vec![Segment::Lit(text.to_string())],
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first placeholder whose name `known` rejects, with its range.
    pub fn unknown_name(&self, known: impl Fn(&str) -> bool) -> Option<(&str, Range<usize>)> {
        self.segments.iter().find_map(|s| match s {
            Segment::Var(name, range) if !known(name) => Some((name.as_str(), range.clone())),
            _ => None,
        })
    }

    /// Renders with values as they are (paths, URLs).
    pub fn render(&self, vars: &Vars) -> String {
        self.render_with(vars, |v| v.to_string())
    }

    /// Renders a shell command: every substituted value becomes one quoted
    /// shell word, so nothing in a variable can change the command's shape.
    pub fn render_shell(&self, vars: &Vars) -> String {
        self.render_with(vars, shell::quote)
    }

    fn render_with(&self, vars: &Vars, f: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Lit(text) => out.push_str(text),
                // Names are checked at load; a missing one renders empty
                // rather than panicking in the middle of a deploy.
                Segment::Var(name, _) => out.push_str(&f(vars.get(name).map_or("", |v| v))),
            }
        }
        out
    }
}

/// Whether `name` is a placeholder Gantry fills in itself (its value is
/// never a template).
fn built_in(name: &str) -> bool {
    super::LOAD_NAMES.contains(&name) || super::RUN_NAMES.contains(&name)
}

/// `vars` with the placeholders inside the values of `[vars]` filled in
/// (`static = "{current}/staticfiles"`), each value from the others,
/// once every name is known (at run time). A value that does not parse,
/// or names itself, is left as written: the load refused both already
/// (`check_values`).
pub fn expanded(vars: &Vars) -> Vars {
    let mut out = Vars::new();
    for name in vars.keys() {
        let value = resolve(vars, name, &mut Vec::new()).unwrap_or_else(|_| vars[name].clone());
        out.insert(name.clone(), value);
    }
    out
}

/// Why a variable's value cannot be filled in: a name it refers to that
/// nothing defines, or a chain back to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarError {
    Unknown { name: String, range: Range<usize> },
    Cycle { chain: Vec<String> },
}

/// Checks that every user variable's value can be filled in from `vars`
/// and the names known only at run time; the first that cannot, with why.
pub fn check_values(vars: &Vars) -> Result<(), (String, VarError)> {
    for name in vars.keys().filter(|n| !built_in(n)) {
        let Ok(t) = Template::parse(&vars[name]) else {
            continue;
        };
        let known = |n: &str| vars.contains_key(n) || super::RUN_NAMES.contains(&n);
        if let Some((unknown, range)) = t.unknown_name(known) {
            let name = name.clone();
            let unknown = unknown.to_string();
            return Err((
                name,
                VarError::Unknown {
                    name: unknown,
                    range,
                },
            ));
        }
        let mut with_run = vars.clone();
        for run in super::RUN_NAMES {
            with_run.entry(run.to_string()).or_default();
        }
        if let Err(chain) = resolve(&with_run, name, &mut Vec::new()) {
            return Err((name.clone(), VarError::Cycle { chain }));
        }
    }
    Ok(())
}

/// The value of `name` with its placeholders filled in, recursively;
/// `Err` with the chain when it refers back to itself.
fn resolve(vars: &Vars, name: &str, seen: &mut Vec<String>) -> Result<String, Vec<String>> {
    let raw = vars.get(name).map_or("", String::as_str);
    if built_in(name) || !raw.contains('{') && !raw.contains('}') {
        return Ok(raw.to_string());
    }
    if seen.iter().any(|s| s == name) {
        let mut chain = seen.clone();
        chain.push(name.to_string());
        return Err(chain);
    }
    let Ok(t) = Template::parse(raw) else {
        return Ok(raw.to_string());
    };
    seen.push(name.to_string());
    let mut out = String::new();
    for segment in &t.segments {
        match segment {
            Segment::Lit(text) => out.push_str(text),
            Segment::Var(sub, _) => out.push_str(&resolve(vars, sub, seen)?),
        }
    }
    seen.pop();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_vars_are_filled_in_from_each_other() {
        let v = vars(&[
            ("current", "/srv/app/current"),
            ("static", "{current}/staticfiles"),
            ("media", "{static}/../media {{raw}}"),
        ]);
        let e = expanded(&v);
        assert_eq!(e["static"], "/srv/app/current/staticfiles");
        assert_eq!(e["media"], "/srv/app/current/staticfiles/../media {raw}");
        assert_eq!(check_values(&v), Ok(()));
        let unknown = vars(&[("static", "{nosuch}/x")]);
        assert_eq!(
            check_values(&unknown),
            Err((
                "static".into(),
                VarError::Unknown {
                    name: "nosuch".into(),
                    range: 0..8
                }
            ))
        );
        let cycle = vars(&[("a", "{b}"), ("b", "x{a}")]);
        assert_eq!(
            check_values(&cycle),
            Err((
                "a".into(),
                VarError::Cycle {
                    chain: vec!["a".into(), "b".into(), "a".into()]
                }
            ))
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_plain_and_shell() {
        let t = Template::parse("cd {release} && echo {msg} {{literal}}").unwrap();
        let v = vars(&[("release", "/srv/a b"), ("msg", "$(id)")]);
        assert_eq!(t.render(&v), "cd /srv/a b && echo $(id) {literal}");
        assert_eq!(
            t.render_shell(&v),
            "cd '/srv/a b' && echo '$(id)' {literal}"
        );
    }

    #[test]
    fn reports_bad_syntax_with_ranges() {
        let e = Template::parse("a {b").unwrap_err();
        assert_eq!(e.range, 2..4);
        let e = Template::parse("a {b c}").unwrap_err();
        assert_eq!(e.range, 2..7);
        let e = Template::parse("a }").unwrap_err();
        assert_eq!(e.range, 2..3);
    }

    #[test]
    fn finds_unknown_names() {
        let t = Template::parse("{env}-{domian}").unwrap();
        let unknown = t.unknown_name(|n| n == "env");
        assert_eq!(unknown, Some(("domian", 6..14)));
    }

    #[test]
    fn literal_round_trips() {
        let t = Template::literal("a {b}");
        assert_eq!(t.render(&Vars::new()), "a {b}");
        assert_eq!(Template::parse(t.source()).unwrap(), t);
    }
}
