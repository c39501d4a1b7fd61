//! `gantry plan ENV --rollback`: what a rollback would do, read from the
//! hosts without taking the lock or changing anything: the release each
//! host goes back to, and what happens to the schema (`rollback_schema`).

use serde::Serialize;

use crate::cli::output::Printer;
use crate::config::Config;
use crate::data::reversal::Back;
use crate::error::Error;
use crate::model::lock::LockInfo;
use crate::remote::{inspect, site};

use super::{Options, Run};

/// What a rollback would do: what `--json` prints, and the text is drawn from.
#[derive(Serialize)]
struct RollbackPlan {
    action: &'static str,
    env: String,
    hosts: Vec<HostMove>,
    /// `nothing`, `keep`, `reverse`, `refuse`, or `unknown` (no database
    /// or no record of the release's schema).
    schema: &'static str,
    migrations: Vec<String>,
    /// Why the schema cannot go back (`refuse`).
    why: Option<String>,
    /// The reversal, as people read it (`reverse`).
    reversal: Option<String>,
}

#[derive(Serialize)]
struct HostMove {
    host: String,
    from: Option<String>,
    to: String,
}

pub async fn plan_rollback(
    config: &Config,
    env_name: &str,
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let info = LockInfo::new(&format!("gantry plan {} --rollback", env.name), None, false);
    let options = Options::rollback(&info.command);
    let mut sites = site::connect(config, env, printer).await?;
    // What each host serves, read as the lock would (it is not taken).
    let read = site::each_host(&sites, |s| async move {
        let script = inspect::status_script(&s.layout);
        s.step(printer, "read current", None, &script, None)
            .await
            .map(|out| inspect::parse_status(&out.stdout))
    })
    .await;
    for (s, status) in sites.iter_mut().zip(read) {
        if let Ok(status) = status {
            s.serving = status.release;
            s.serving_commit = status.commit;
        }
    }
    let run = Run::new(config, env, printer, &sites, &options, &info);
    let result = async {
        let targets = run.targets().await?;
        let target = &targets[env.migrate_host].name;
        let decision = run.schema_decision(target).await?;
        let mut plan = RollbackPlan {
            action: "plan-rollback",
            env: env.name.clone(),
            hosts: sites
                .iter()
                .zip(&targets)
                .map(|(s, t)| HostMove {
                    host: s.name().to_string(),
                    from: s.serving.clone(),
                    to: t.name.clone(),
                })
                .collect(),
            schema: "unknown",
            migrations: Vec::new(),
            why: None,
            reversal: None,
        };
        if let Some(d) = &decision {
            (plan.schema, plan.migrations) = match d.back.clone() {
                Back::Nothing => ("nothing", Vec::new()),
                Back::Keep { applied } => ("keep", applied),
                Back::Reverse { applied } => {
                    plan.reversal = run.reversal_shown(d, &applied);
                    ("reverse", applied)
                }
                Back::Cannot { applied, why } => {
                    plan.why = Some(why);
                    ("refuse", applied)
                }
            };
        }
        Ok::<_, Error>(plan)
    }
    .await;
    site::close(sites).await;
    printer.finish_hosts();
    let plan = result?;
    if printer.json_mode() {
        printer.json(&plan);
    } else {
        printer.result(&plan.text());
    }
    Ok(())
}

impl RollbackPlan {
    fn text(&self) -> String {
        let mut text = format!("Plan: roll back {}\n", self.env);
        for h in &self.hosts {
            text.push_str(&format!(
                "  {}: {} -> {}\n",
                h.host,
                h.from.as_deref().unwrap_or("nothing"),
                h.to
            ));
        }
        let migrations = self.migrations.join(", ");
        let schema = match self.schema {
            "nothing" => "nothing was migrated since that release went live: only the code goes back".to_string(),
            "keep" => format!("kept: {migrations} only add what that release never reads"),
            "reverse" => format!(
                "reversed, once rehearsed on a copy and backed up: {migrations} ({})",
                self.reversal.as_deref().unwrap_or("no reversal can be written")
            ),
            "refuse" => format!(
                "refused: {migrations} cannot be taken back ({}); `--code-only` or `--restore-backup BACKUP`",
                self.why.as_deref().unwrap_or("")
            ),
            _ => "not compared (no database, or no record of that release's schema): only the code goes back".to_string(),
        };
        text.push_str(&format!("  schema: {schema}\n"));
        text
    }
}
