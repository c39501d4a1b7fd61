//! Rendering the systemd unit and nginx site templates (minijinja, strict
//! about unknown variables): `setup` renders them for each host, and the
//! loader renders them once with stand-in values to report a bad template
//! with its file and line before anything runs.

use std::collections::BTreeMap;

use minijinja::{Environment as Jinja, UndefinedBehavior};

use super::HostSpec;

/// Renders a template with strict undefined variables.
pub fn render(template: &str, context: &BTreeMap<String, String>) -> Result<String, String> {
    let mut jinja = Jinja::new();
    jinja.set_undefined_behavior(UndefinedBehavior::Strict);
    let values =
        minijinja::Value::from_pairs(context.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    jinja
        .render_str(template, values)
        .map(|mut text| {
            // Files end with a newline, as the template does.
            if template.ends_with('\n') && !text.ends_with('\n') {
                text.push('\n');
            }
            text
        })
        .map_err(|e| {
            let mut text = e.to_string();
            if let Some(line) = e.line() {
                text.push_str(&format!(" (template line {line})"));
            }
            text
        })
}

/// A context with every name a host will have, for checking templates
/// when the config is loaded.
pub fn context_for_check(host: &HostSpec) -> BTreeMap<String, String> {
    let mut c: BTreeMap<String, String> = host.vars.clone();
    for k in [
        "path",
        "release",
        "shared",
        "current",
        "commit",
        "workdir",
        "env_file",
        "gunicorn",
        "socket",
        "upstream",
        "wsgi",
        "listen",
        "domain",
        "static",
        "static_url",
        "media",
        "media_url",
        "web_user",
        "handover_upstream",
        "release_file",
        "release_workdir",
        "release_gunicorn",
        "drain",
        "stop_timeout",
    ] {
        c.entry(k.to_string()).or_insert_with(|| format!("/{k}"));
    }
    c
}
