//! A load balancer Gantry does not run (`[deploy.balancer]`): around every
//! activation of a host, its `leave` command runs on this machine, then the
//! host is given `drain` to finish the requests it took; once the new
//! release passed its health check, `join` puts it back. The commands get
//! the host's variables (`{host}`, `{env}`, `[vars]`) quoted, and
//! `GANTRY_HOST` and `GANTRY_ENV` in their environment. The commands run
//! one at a time, whatever the hosts do at once: a script that edits one
//! file (or reloads one balancer) needs no lock of its own.

use crate::cli::output::Printer;
use crate::config::Vars;
use crate::config::{Balancer, Config};
use crate::error::HostProblem;
use crate::remote::local;
use crate::remote::site::Site;

/// Which of the two commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Leave,
    Join,
}

impl Move {
    /// The step's name in progress lines and reports.
    pub fn step(self) -> &'static str {
        match self {
            Move::Leave => "leave the balancer",
            Move::Join => "join the balancer",
        }
    }
}

/// Held while a command runs (not while a host drains).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `balancer`'s `leave` (then waits its drain) or `join` for `site`.
pub async fn run(
    config: &Config,
    balancer: &Balancer,
    site: &Site,
    vars: &Vars,
    what: Move,
    printer: &Printer,
) -> Result<(), HostProblem> {
    let template = match what {
        Move::Leave => &balancer.leave,
        Move::Join => &balancer.join,
    };
    let command = template.render_shell(vars);
    let one = ONE_AT_A_TIME.lock().await;
    printer.host(site.name(), &format!("{}: {command}", what.step()));
    let env = [
        ("GANTRY_HOST", vars.get("host")),
        ("GANTRY_ENV", vars.get("env")),
    ]
    .map(|(k, v)| (k.to_string(), v.cloned().unwrap_or_default()));
    let out = local::run(&command, &config.dir, &env).await;
    drop(one);
    if let Err(f) = out {
        let mut p = site.problem(what.step(), Some(&command), f.code, &f.detail);
        p.output = f.detail;
        return Err(p);
    }
    if what == Move::Leave && !balancer.drain.is_zero() {
        printer.host(
            site.name(),
            &format!(
                "draining for {}s: requests it took finish",
                balancer.drain.as_secs_f64()
            ),
        );
        tokio::time::sleep(balancer.drain).await;
    }
    Ok(())
}
