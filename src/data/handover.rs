//! What a handover runs on a host (`[deploy.handover]`), rendered for one
//! release: its app's start, check and stop on either port, the old
//! release's stop, the upstream file's lines and the proxy's reload. Used
//! by every activation and by `setup` when the env file changed.

use crate::config::{Config, Environment, Handover, Health, HostSpec, Template};
use crate::data::steps::Steps;
use crate::remote::activation;
use crate::remote::handover::{self, Scripts};
use crate::remote::release::{self, Layout};

/// The handover of `release` (at `commit`, which may be unknown: empty)
/// on `site`; `old`: the release serving before, whose app is stopped
/// after the drain.
pub fn scripts(
    config: &Config,
    env: &Environment,
    (spec, layout): (&HostSpec, &Layout),
    h: &Handover,
    (release, commit): (&str, &str),
    old: Option<&str>,
) -> Scripts {
    let vars = release::run_vars(spec, layout, Some(release), Some(commit));
    let ports = [h.ports[0].render(&vars), h.ports[1].render(&vars)];
    let on = |i: usize| vec![("GANTRY_PORT".to_string(), ports[i].clone())];
    let both = |steps: &Steps, t: &Template| {
        [steps.command_with(t, &on(0)), steps.command_with(t, &on(1))]
    };
    let steps = Steps::new(config, env, spec, layout, release, commit);
    let health = config.deploy.health.as_ref();
    let fallback = Health::plain();
    let check = |i: usize| {
        let url = format!("http://127.0.0.1:{}{}", ports[i], h.check);
        let body = health
            .and_then(|c| c.body.as_ref())
            .map(|b| b.render(&vars));
        let from = health.map(|c| c.url.render(&vars));
        activation::host_check_script(
            health.unwrap_or(&fallback),
            &url,
            body.as_deref(),
            from.as_deref(),
        )
    };
    Scripts {
        start: both(&steps, &h.start),
        check: [check(0), check(1)],
        stop_new: both(&steps, &h.stop),
        stop_old: old.map(|o| both(&Steps::new(config, env, spec, layout, o, ""), &h.stop)),
        lines: [
            handover::upstream_line(&ports[0]),
            handover::upstream_line(&ports[1]),
        ],
        ports: ports.clone(),
        upstream: h.upstream.render(&vars),
        reload: release::command_script(
            config,
            &vars,
            &layout.path,
            &h.reload.render_shell(&vars),
            &[],
        ),
        drain: h.drain.as_secs_f64(),
    }
}
