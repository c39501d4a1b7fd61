//! `gantry lock` and `gantry unlock`: hold an environment on purpose, or
//! clear a lock a killed deploy left.

use crate::cli::output::Printer;
use crate::config::Config;
use crate::error::{Error, HostProblem};
use crate::model::history::{Action, Outcome, Record};
use crate::model::lock::LockInfo;
use crate::remote::site::{self, each_host};
use crate::remote::{locking, release};

pub async fn lock(
    config: &Config,
    env_name: &str,
    reason: Option<String>,
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let info = LockInfo::new(&format!("gantry lock {env_name}"), reason.clone(), true);
    let sites = locking::connect_locked(config, env, &info, printer).await?;
    for s in &sites {
        let mut record = Record::new(Action::Lock, env_name, s.name(), Outcome::Ok);
        record.message = reason.clone();
        s.record(printer, &record).await;
    }
    site::close(sites).await;
    printer.finish_hosts();
    printer.headline(&format!(
        "`{env_name}` is locked; `gantry unlock {env_name}` lets deploys run again"
    ));
    Ok(())
}

pub async fn unlock(config: &Config, env_name: &str, printer: &Printer) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    let sites = site::connect(config, env, printer).await?;
    let results = each_host(&sites, |s| async move {
        let out = s
            .step(
                printer,
                "unlock",
                None,
                &release::force_unlock_script(&s.layout),
                None,
            )
            .await?;
        let holder: Option<LockInfo> = serde_json::from_str(out.stdout.trim()).ok();
        let was_locked = !out.stdout.trim().is_empty();
        if was_locked {
            let mut record = Record::new(Action::Unlock, env_name, s.name(), Outcome::Ok);
            record.message = Some(match &holder {
                Some(h) => format!("cleared lock {}", h.describe()),
                None => "cleared a lock with no record of its holder".to_string(),
            });
            s.record(printer, &record).await;
        }
        Ok::<_, HostProblem>((was_locked, holder))
    })
    .await;
    printer.finish_hosts();
    let mut problems = Vec::new();
    for (s, result) in sites.iter().zip(results) {
        match result {
            Ok((false, _)) => printer.result(&format!("{}: was not locked", s.name())),
            Ok((true, Some(h))) => {
                printer.result(&format!("{}: cleared lock {}", s.name(), h.describe()))
            }
            Ok((true, None)) => printer.result(&format!(
                "{}: cleared a lock with no record of its holder",
                s.name()
            )),
            Err(p) => problems.push(p),
        }
    }
    site::close(sites).await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Hosts {
            what: "unlock".into(),
            problems,
        })
    }
}
