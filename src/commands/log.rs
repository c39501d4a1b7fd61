//! `gantry log`: the history of each host of an environment, merged in
//! time order.

use crate::base::shell;
use crate::cli::output::Printer;
use crate::config::Config;
use crate::error::Error;
use crate::model::history;
use crate::remote::site::{self, each};

pub async fn log(
    config: &Config,
    env_name: &str,
    limit: usize,
    shown: crate::base::time::Shown,
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let sites = site::connect(config, env, printer).await?;
    let results = each(&sites, 32, |site| async move {
        let script = format!(
            "cat {} 2>/dev/null; true",
            shell::quote(&site.layout.history())
        );
        site.step(printer, "read history", None, &script, None)
            .await
    })
    .await;
    site::close(sites).await;
    printer.finish_hosts();
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(out) => records.extend(history::parse(&out.stdout)),
            Err(p) => problems.push(p),
        }
    }
    records.sort_by(|a, b| a.time.cmp(&b.time).then(a.host.cmp(&b.host)));
    let start = records.len().saturating_sub(limit);
    let records = &records[start..];
    if printer.json_mode() {
        printer.json(&serde_json::to_value(records).expect("records serialize"));
    } else if records.is_empty() {
        printer.result(&format!("no history for `{env_name}` yet"));
    } else {
        let mut text = String::new();
        for r in records {
            text.push_str(&format!(
                "{}  {}  {} {}  {}  {}  by {}",
                crate::base::time::show(&r.time, shown),
                r.host,
                r.action,
                r.outcome,
                r.commit.as_deref().map_or("-", |c| &c[..c.len().min(8)]),
                r.release.as_deref().unwrap_or("-"),
                r.by
            ));
            if let Some(m) = &r.message {
                text.push_str(&format!("  ({m})"));
            }
            text.push('\n');
        }
        printer.result(text.trim_end());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Hosts {
            what: "reading history".into(),
            problems,
        })
    }
}
