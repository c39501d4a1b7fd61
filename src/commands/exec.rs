//! `gantry exec`: one command on every host of an environment, in the
//! current release, its output streamed.

use serde::Serialize;

use crate::base::shell;
use crate::cli::output::Printer;
use crate::config::Config;
use crate::error::Error;
use crate::remote::release;
use crate::remote::site::{self, each};

pub async fn exec(
    config: &Config,
    env_name: &str,
    role: Option<&str>,
    command: &[String],
    printer: &Printer,
) -> Result<(), Error> {
    let mut env = config.environment(env_name)?.clone();
    if let Some(role) = role {
        env.hosts.retain(|h| h.has_role(role));
        if env.hosts.is_empty() {
            return Err(Error::NoHostWithRole {
                env: env.name,
                role: role.to_string(),
            });
        }
    }
    let env = &env;
    let sites = site::connect(config, env, printer).await?;
    let line = shell::join(command);
    let results = each(&sites, env.parallel, |s| {
        let vars = release::run_vars(&s.spec, &s.layout, None, None);
        let db_env = crate::data::database::Db::new(&env.database, &vars, "")
            .map(|db| db.app_env(&db.location))
            .unwrap_or_default();
        let script = release::command_script(config, &vars, &s.layout.current(), &line, &db_env);
        let line = &line;
        async move {
            // Each line is shown as it comes, stdout and stderr apart;
            // with --json they are kept for the document.
            let show = |stream: crate::remote::host::Stream, text: &str| {
                printer.host_output(s.name(), stream, text)
            };
            let lines: Option<crate::remote::host::Lines<'_>> =
                (!printer.json_mode()).then_some(&show);
            s.step_with(printer, "exec", Some(line), &script, None, lines)
                .await
        }
    })
    .await;
    printer.finish_hosts();
    let mut problems = Vec::new();
    let mut hosts_json = Vec::new();
    for (s, result) in sites.iter().zip(results) {
        match result {
            Ok(out) => hosts_json.push(Ran {
                host: s.name().to_string(),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            }),
            Err(p) => problems.push(p),
        }
    }
    site::close(sites).await;
    if problems.is_empty() {
        if printer.json_mode() {
            printer.json(&ExecReport {
                action: "exec",
                env: &env.name,
                command: &line,
                hosts: hosts_json,
            });
        }
        Ok(())
    } else {
        Err(Error::Hosts {
            what: format!("`{line}`"),
            problems,
        })
    }
}

/// `exec --json` (the text went out line by line as it came).
#[derive(Serialize)]
struct ExecReport<'a> {
    action: &'static str,
    env: &'a str,
    command: &'a str,
    hosts: Vec<Ran>,
}

/// What the command printed on one host.
#[derive(Serialize)]
struct Ran {
    host: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}
