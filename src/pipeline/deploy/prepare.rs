//! The prepare phase: on every host in parallel, upload the release (only
//! what changed when the host keeps an earlier upload's source), link the
//! shared paths and build. Nothing that serves changes.

use std::time::Instant;

use tokio::sync::watch;

use crate::data::steps::REUSED_MARK;
use crate::error::{HostProblem, Warning};
use crate::ledger::git::{Commit, Delta};
use crate::remote::release::{self, Planned};
use crate::remote::site::{each, Site};
use crate::remote::source;

use super::{Prepared, Run};

/// What preparing did on one host.
pub(super) struct OnHost {
    seconds: f64,
    uploaded: u64,
}

/// A host's prepare, done or failed, when the start of the deploy already
/// ran it (`start`); `None` for a host it left to this phase.
pub(super) type Early = Option<Result<OnHost, HostProblem>>;

impl Run<'_> {
    /// Prepares `release` on every host that `early` did not; the problems
    /// of the hosts where it failed, if any did.
    pub(super) async fn prepare(
        &self,
        commit: &Commit,
        release: &str,
        archive: &[u8],
        early: Vec<Early>,
    ) -> Result<Prepared, Vec<HostProblem>> {
        let mut early = early;
        early.resize_with(self.sites.len(), || None);
        let left: Vec<usize> = (0..early.len()).filter(|&i| early[i].is_none()).collect();
        let now = each(&left, self.env.parallel, |&i| {
            self.prepare_one(&self.sites[i], commit, release, archive, None)
        })
        .await;
        for (i, result) in left.into_iter().zip(now) {
            early[i] = Some(result);
        }
        let mut done = Prepared::default();
        let mut problems = Vec::new();
        for (site, result) in self.sites.iter().zip(early.into_iter().flatten()) {
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

    /// Prepares the release on one host in one channel: upload (only what
    /// changed when the host keeps the last upload's source), link shared,
    /// build, finish. A delta that fails to apply falls back to the whole
    /// archive. Once `stop` turns true (or on an interrupt), no other step
    /// starts.
    pub(super) async fn prepare_one(
        &self,
        site: &Site,
        commit: &Commit,
        release: &str,
        archive: &[u8],
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<OnHost, HostProblem> {
        let started = Instant::now();
        let token = &self.info.token;
        let steps = self.steps(site, release, &commit.sha).prepare();
        let delta = match &site.source_commit {
            Some(base) => {
                self.deltas
                    .from(&self.config.dir, base, commit, archive)
                    .await
            }
            None => None,
        };
        let mut sent = archive.len();
        let mut outputs = None;
        if let Some(delta) = &delta {
            let (planned, lists) = with_delta(&steps, site, release, &commit.sha, delta);
            let stdin = match &lists {
                Some(both) => Some(both.as_slice()),
                None => (!delta.archive.is_empty()).then_some(delta.archive.as_slice()),
            };
            match site.batch(self.printer, &planned, stdin, token, stop).await {
                Ok(out) => {
                    sent = stdin.map_or(0, <[u8]>::len);
                    outputs = Some(out);
                }
                Err(p)
                    if p.unreachable || !planned.iter().any(|s| s.upload && s.name == p.step) =>
                {
                    return Err(self.made_here(site, &planned, p));
                }
                Err(p) => self.printer.warn(Warning::DeltaFailed {
                    host: site.name().to_string(),
                    cause: p.detail.lines().last().unwrap_or("").to_string(),
                }),
            }
        }
        let outputs = match outputs {
            Some(outputs) => outputs,
            None => site
                .batch(self.printer, &steps, Some(archive), token, stop)
                .await
                .map_err(|p| self.made_here(site, &steps, p))?,
        };
        self.created
            .lock()
            .expect("created lock")
            .insert(site.name().to_string());
        for (step, out) in steps.iter().zip(&outputs) {
            if out.contains(REUSED_MARK) {
                self.printer.host(
                    site.name(),
                    &format!("{} skipped: inputs unchanged, outputs reused", step.name),
                );
            }
        }
        Ok(OnHost {
            seconds: started.elapsed().as_secs_f64(),
            uploaded: sent as u64,
        })
    }

    /// A failed batch: when the upload had begun (a failed one too, unless
    /// it found another deploy's release of that name or the host was
    /// lost), the new release folder, whole or in part, is this run's, to
    /// remove.
    fn made_here(&self, site: &Site, steps: &[Planned], problem: HostProblem) -> HostProblem {
        let upload = steps.iter().position(|s| s.upload);
        let failed = steps.iter().position(|s| s.name == problem.step);
        let made = match (upload, failed) {
            (Some(u), Some(f)) if f > u => true,
            (Some(u), Some(f)) if f == u => {
                !problem.unreachable && problem.code != Some(release::EXISTS)
            }
            _ => false,
        };
        if made {
            self.created
                .lock()
                .expect("created lock")
                .insert(site.name().to_string());
        }
        problem
    }
}

/// The prepare steps with the upload replaced by a delta's: the host's
/// pristine source brought to the new commit in place (the base of the
/// next delta), then copied into the new release; and what goes on stdin
/// (long deletion lists, then the delta's archive).
fn with_delta(
    steps: &[Planned],
    site: &Site,
    release: &str,
    commit: &str,
    delta: &Delta,
) -> (Vec<Planned>, Option<Vec<u8>>) {
    let upload = source::upload_delta_script(
        &site.layout,
        release,
        &delta.base,
        commit,
        &delta.deleted,
        !delta.archive.is_empty(),
    );
    let planned = steps
        .iter()
        .map(|step| {
            if !step.upload {
                return step.clone();
            }
            Planned {
                name: format!(
                    "upload {} changed, {} deleted",
                    delta.changed,
                    delta.deleted.len()
                ),
                shown: None,
                script: upload.script.clone(),
                upload: true,
                inline: true,
            }
        })
        .collect();
    let stdin = upload.lists.map(|mut lists| {
        lists.extend_from_slice(&delta.archive);
        lists
    });
    (planned, stdin)
}
