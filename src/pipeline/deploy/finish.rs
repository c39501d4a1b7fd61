//! The finish phase: the deploy recorded in every host's history and old
//! releases pruned. Or, when a phase failed, `abandon`: the new release
//! removed where this run made it, the failure recorded, and the error
//! built with what every host serves now.

use crate::error::{Error, Failure, HostProblem, Warning};
use crate::ledger::git::Commit;
use crate::model::history::{Action, Outcome, Record};
use crate::remote::site::{self, each_host};
use crate::remote::{prune, release};

use super::{Rehearsal, Run};

impl Run<'_> {
    /// Records the deploy on every host, prunes old releases there and
    /// gives back the lock, in one script; a failure only warns (and the
    /// frame then unlocks the host on its own).
    pub(super) async fn finish(&self, commit: &Commit, release: &str, rehearsal: Rehearsal) {
        each_host(self.sites, |site| async move {
            let mut record = Record::new(Action::Deploy, &self.env.name, site.name(), Outcome::Ok);
            record.forced = self.forced;
            record.rehearsal = rehearsal.record();
            record.commit = Some(commit.sha.clone());
            record.release = Some(release.to_string());
            record.previous = site.serving.clone();
            // On the migrate host, the database as this release went live:
            // what a rollback to it compares with.
            let migrate_host = self.sites[self.env.migrate_host].name() == site.name();
            let schema = crate::data::reversal::database(self.config, self.env, site, release)
                .filter(|_| migrate_host)
                .map(|db| crate::data::reversal::record_script(&db, &site.layout, release))
                .unwrap_or_default();
            let script = site.then_unlock(
                // Pruning runs even when the record could not be written;
                // either failing fails the step.
                &format!(
                    "rc=0\n{schema}\n{} || rc=$?\n( {}\n) || rc=$?\nexit $rc",
                    release::history_script(&site.layout, &record.to_line()),
                    prune::prune_script(
                        &site.layout,
                        self.config.deploy.keep_releases,
                        site.serving.as_deref()
                    )
                ),
                &self.info.token,
            );
            let p = self.printer;
            match site
                .step_always(p, "record, prune, unlock", None, &script, None)
                .await
            {
                Ok(out) => {
                    site.note_released(&out.stdout);
                    if migrate_host {
                        self.account().applied = crate::data::reversal::applied(&out.stdout);
                    }
                }
                Err(e) => {
                    site.note_released(&e.output);
                    p.warn(Warning::NotRecordedOnHost {
                        cause: e.to_string(),
                    });
                }
            }
            self.printer
                .host(site.name(), &format!("serving {release}"));
        })
        .await;
    }

    /// Removes the new release everywhere, records the failure, and builds
    /// the error with what every host serves now.
    pub(super) async fn abandon(
        &self,
        commit: &Commit,
        release: &str,
        problems: Vec<HostProblem>,
        mut recovery: Vec<HostProblem>,
    ) -> Error {
        self.release_writes().await;
        let problems_ref = &problems;
        let rehearsal = self.account().rehearsal;
        let created = self.created.lock().expect("created lock").clone();
        let created = &created;
        let discarded = each_host(self.sites, |site| async move {
            let problems = problems_ref;
            let result = if created.contains(site.name()) {
                site.step_always(
                    self.printer,
                    "discard release",
                    None,
                    &release::discard_script(&site.layout, release),
                    None,
                )
                .await
                .map(|_| ())
            } else {
                Ok(())
            };
            let mut record =
                Record::new(Action::Deploy, &self.env.name, site.name(), Outcome::Failed);
            record.commit = Some(commit.sha.clone());
            record.release = Some(release.to_string());
            record.previous = site.serving.clone();
            record.rehearsal = rehearsal.record();
            record.message = Some(match problems.iter().find(|p| p.host == site.name()) {
                Some(p) => format!("{} failed here; old release kept", p.step),
                None => "failed on another host; old release kept".to_string(),
            });
            site.record(self.printer, &record).await;
            result
        })
        .await;
        recovery.extend(
            discarded
                .into_iter()
                .filter_map(Result::err)
                .filter(|p| p.unreachable),
        );
        let mut account = self.account();
        Error::Failed(Box::new(Failure {
            action: "deploy".into(),
            env: self.env.name.clone(),
            problems,
            serving: self.serving(),
            recovery,
            notes: std::mem::take(&mut account.notes),
            constraint: account.constraint.take(),
            interrupted: site::interrupted(),
            stuck: account.stuck.clone(),
        }))
    }

    pub(super) fn serving(&self) -> Vec<(String, String)> {
        self.sites
            .iter()
            .map(|s| {
                (
                    s.name().to_string(),
                    s.serving
                        .clone()
                        .unwrap_or_else(|| crate::error::NO_RELEASE.to_string()),
                )
            })
            .collect()
    }
}
