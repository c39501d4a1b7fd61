//! The prepare phase: on every host in parallel, upload the release (only
//! what changed when the host keeps an earlier upload's source), link the
//! shared paths and build. Nothing that serves changes.

use std::time::Instant;

use crate::data::steps::REUSED_MARK;
use crate::error::HostProblem;
use crate::ledger::git::Commit;
use crate::remote::release::{self, Planned};
use crate::remote::site::{each, Site};

use super::{Prepared, Run};

/// What preparing did on one host.
struct OnHost {
    seconds: f64,
    uploaded: u64,
}

impl Run<'_> {
    /// Prepares `release` on every host; the problems of the hosts where it
    /// failed, if any did.
    pub(super) async fn prepare(
        &self,
        commit: &Commit,
        release: &str,
        archive: &[u8],
    ) -> Result<Prepared, Vec<HostProblem>> {
        let results = each(self.sites, self.env.parallel, |site| {
            self.prepare_one(site, commit, release, archive)
        })
        .await;
        let mut done = Prepared::default();
        let mut problems = Vec::new();
        for (site, result) in self.sites.iter().zip(results) {
            match result {
                Ok(on_host) => {
                    done.seconds
                        .insert(site.name().to_string(), on_host.seconds);
                    done.uploaded
                        .insert(site.name().to_string(), on_host.uploaded);
                }
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(done)
        } else {
            Err(problems)
        }
    }

    async fn prepare_one(
        &self,
        site: &Site,
        commit: &Commit,
        release: &str,
        archive: &[u8],
    ) -> Result<OnHost, HostProblem> {
        let started = Instant::now();
        let steps = self.steps(site, release, &commit.sha);
        let mut uploaded = 0;
        for step in steps.prepare() {
            if step.upload {
                uploaded = self
                    .upload(site, release, &commit.sha, &step, archive)
                    .await?;
                self.created
                    .lock()
                    .expect("created lock")
                    .insert(site.name().to_string());
                continue;
            }
            let shown = step.shown.as_deref();
            let out = site
                .step(self.printer, &step.name, shown, &step.script, None)
                .await?;
            if out.stdout.contains(REUSED_MARK) {
                self.printer.host(
                    site.name(),
                    &format!("{} skipped: inputs unchanged, outputs reused", step.name),
                );
            }
        }
        Ok(OnHost {
            seconds: started.elapsed().as_secs_f64(),
            uploaded,
        })
    }

    /// Uploads the release: only what changed when the host keeps the
    /// source of an earlier upload, else (or if that fails) the whole
    /// archive. Returns the bytes sent.
    async fn upload(
        &self,
        site: &Site,
        release: &str,
        commit: &str,
        full: &Planned,
        archive: &[u8],
    ) -> Result<u64, HostProblem> {
        let delta = site
            .source_commit
            .as_ref()
            .and_then(|base| self.deltas.get(base));
        if let Some(delta) = delta {
            let script = format!(
                "{}\n{}",
                release::upload_delta_script(
                    &site.layout,
                    release,
                    &delta.base,
                    &delta.deleted,
                    !delta.archive.is_empty(),
                ),
                release::keep_source_script(&site.layout, release, commit)
            );
            let stdin = (!delta.archive.is_empty()).then_some(delta.archive.as_slice());
            let name = format!(
                "upload {} changed, {} deleted",
                delta.changed,
                delta.deleted.len()
            );
            match site.step(self.printer, &name, None, &script, stdin).await {
                Ok(_) => return Ok(delta.archive.len() as u64),
                Err(p) if p.unreachable => return Err(p),
                Err(p) => self.printer.warn(&format!(
                    "{}: the delta upload failed ({}); sending the whole archive",
                    site.name(),
                    p.detail.lines().last().unwrap_or("")
                )),
            }
        }
        site.step(self.printer, &full.name, None, &full.script, Some(archive))
            .await?;
        Ok(archive.len() as u64)
    }
}
