//! What a deploy or a rollback did: the summary the closing lines, the
//! ledger and `--json` are drawn from.

use std::collections::BTreeMap;

use crate::model::history::Rehearsed;

/// What a successful deploy or rollback did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub env: String,
    pub release: String,
    pub commit: String,
    pub hosts: usize,
    pub seconds: f64,
    /// What became of the rehearsal of this deploy's migrations.
    pub rehearsal: Rehearsal,
    /// Every host already served the commit: nothing was done.
    pub noop: bool,
    /// The deploy went past a gate (`--force`).
    pub forced: bool,
    /// Bytes of source sent to each host (only what changed, when the host
    /// kept the last upload's source).
    pub uploaded: BTreeMap<String, u64>,
    /// Each host, what it served before, and how long preparing took there.
    pub per_host: Vec<HostSummary>,
    /// What the checks of the migrations' SQL found (`data::checks`).
    pub findings: Vec<crate::model::commit::Finding>,
    /// The migrations applied when the release went live (for the ledger).
    pub migrations: Vec<String>,
    /// The hooks that ran, each `POINT: ok` or `POINT: failed (advisory)`
    /// (for the ledger).
    pub hooks: Vec<String>,
}

/// One host's line in a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSummary {
    pub host: String,
    /// The release it served before, if any.
    pub before: Option<String>,
    /// Seconds it took to prepare the release (not for a rollback or no-op).
    pub prepared: Option<f64>,
}

/// The rehearsal of a deploy's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Rehearsal {
    /// No database, no migrate command, or nothing pending.
    #[default]
    NotNeeded,
    /// Passed on a copy of the data, in this many seconds.
    Passed(f64),
    /// Skipped with `--no-rehearse` while migrations were pending.
    Skipped,
}

impl Rehearsal {
    /// How the history and the ledger record it.
    pub fn record(self) -> Option<Rehearsed> {
        match self {
            Rehearsal::NotNeeded => None,
            Rehearsal::Passed(_) => Some(Rehearsed::Passed),
            Rehearsal::Skipped => Some(Rehearsed::Skipped),
        }
    }
}
