//! The variables `setup`'s templates see on a host.

use std::collections::BTreeMap;

use crate::config::{Config, HostSpec};
use crate::remote::handover;
use crate::remote::release::{self, Layout};

/// The variables a template sees on a host: the host's own, the layout's,
/// and the defaults of the built-in templates (each overridable in
/// `[vars]`).
pub fn context(config: &Config, host: &HostSpec, layout: &Layout) -> BTreeMap<String, String> {
    let mut c: BTreeMap<String, String> = release::run_vars(host, layout, None, None);
    let current = layout.current();
    let shared = layout.shared();
    // The app's folder in a release, and the gunicorn that serves it: next
    // to `{python}` when set, else the release's `.venv`.
    let in_release = |release: &str| match &config.app.root {
        Some(root) => format!("{release}/{root}"),
        None => release.to_string(),
    };
    let gunicorn_for = |workdir: &str| {
        c.get("python")
            .and_then(|p| {
                p.strip_suffix("/python")
                    .map(|bin| format!("{bin}/gunicorn"))
            })
            .unwrap_or_else(|| format!("{workdir}/.venv/bin/gunicorn"))
    };
    let workdir = in_release(&current);
    let gunicorn = gunicorn_for(&workdir);
    let socket = format!("{shared}/gunicorn.sock");
    let handover = config.deploy.handover.as_ref();
    // With a handover, nginx proxies to an upstream block that includes
    // the file the handover rewrites; without, straight to the socket.
    let upstream = match handover {
        Some(_) => format!("{}_{}", config.app.name, c.get("env").map_or("", |e| e))
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
            .collect(),
        None => format!("unix:{socket}"),
    };
    let handover_upstream = handover.map_or(String::new(), |h| h.upstream.render(&c));
    let drain = handover.map_or(10, |h| h.drain.as_secs_f64().ceil() as u64);
    // The per-port unit of a handover runs the release Gantry names in
    // `.gantry/handover/PORT.env`.
    let release_workdir = in_release("${GANTRY_RELEASE}");
    let release_gunicorn = gunicorn_for(&release_workdir);
    let defaults = [
        ("workdir", workdir.clone()),
        ("env_file", format!("{shared}/{}", config.setup.env_file)),
        ("gunicorn", gunicorn),
        ("socket", socket.clone()),
        ("upstream", upstream),
        ("handover_upstream", handover_upstream),
        ("release_file", handover::release_file(layout, "%i")),
        ("release_workdir", release_workdir),
        ("release_gunicorn", release_gunicorn),
        ("drain", drain.to_string()),
        ("stop_timeout", (drain + 10).to_string()),
        ("wsgi", format!("{}.wsgi", config.app.name)),
        ("listen", "80".into()),
        ("domain", c.get("host").cloned().unwrap_or_default()),
        ("static", format!("{workdir}/static")),
        ("static_url", "/static/".into()),
        ("media", format!("{shared}/media")),
        ("media_url", "/media/".into()),
        ("web_user", "www-data".into()),
    ];
    for (k, v) in defaults {
        c.entry(k.to_string()).or_insert(v);
    }
    c
}
