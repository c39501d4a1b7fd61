//! Holding the app's writes while migrations run (`--maintenance`,
//! `database.maintenance`): the maintenance file on every host makes the
//! nginx site `gantry setup` writes answer non-GET requests with 503 and
//! `Retry-After`, from just before the backup until the deploy is done
//! (every health check passed) or put back — so that even a restore, the
//! last resort, has no write to lose.

use std::sync::atomic::Ordering;

use crate::config::Maintenance;
use crate::error::HostProblem;
use crate::remote::release;
use crate::remote::site::each_host;

use super::Run;

impl Run<'_> {
    /// Holds writes on every host, when this deploy is to: always, or
    /// when only the backup could put it back (as far as the rehearsal
    /// could tell).
    pub(super) async fn hold_writes(&self) -> Result<(), HostProblem> {
        let hold = match self.maintenance {
            Maintenance::Never => false,
            Maintenance::Always => true,
            Maintenance::Irreversible => self.account().only_the_backup != Some(false),
        };
        if !hold {
            return Ok(());
        }
        self.holding.store(true, Ordering::SeqCst);
        let results = each_host(self.sites, |site| async move {
            let script = release::hold_writes_script(&site.layout);
            site.step(
                self.printer,
                "hold writes (maintenance)",
                None,
                &script,
                None,
            )
            .await
            .map(|_| ())
        })
        .await;
        results.into_iter().collect()
    }

    /// Lets writes through again on every host, if they were held.
    pub(super) async fn release_writes(&self) {
        if !self.holding.swap(false, Ordering::SeqCst) {
            return;
        }
        each_host(self.sites, |site| async move {
            let script = release::release_writes_script(&site.layout);
            if let Err(e) = site
                .step_always(self.printer, "let writes through", None, &script, None)
                .await
            {
                self.printer.warn(crate::error::Warning::WritesStillHeld {
                    host: site.name().to_string(),
                    file: release::maintenance_file(&site.layout),
                    cause: e.to_string(),
                });
            }
        })
        .await;
    }
}
