//! A resolved commit: the value every layer passes around, kept apart from
//! `git` (which runs git) so that errors can name a commit without
//! depending on the module that makes them.

/// A resolved commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
}

impl Commit {
    pub fn short(&self) -> &str {
        &self.sha[..self.sha.len().min(8)]
    }
}

/// What a rehearsal found: the migrations' outcome on a copy of an
/// environment's data (here, beside `Commit`, so that `error` can carry it
/// without depending on the rehearsal itself).
#[derive(Debug, Clone)]
pub struct Report {
    pub env: String,
    pub commit: Commit,
    pub host: String,
    /// Whether there were migrations to run.
    pub pending: bool,
    pub seconds: f64,
    /// The migration that failed, when one did.
    pub migration: Option<String>,
    /// The end of the migration's output.
    pub output: String,
    pub violation: Option<crate::model::violation::Violation>,
    /// The rows that violate it, one line per group or row.
    pub rows: Vec<String>,
    /// What putting the deploy back would do to the database, tried on
    /// the copy once the migrations passed there.
    pub put_back: Option<Foreseen>,
    /// What in the migrated schema stops the release serving now, in
    /// words (empty when they only add what it never writes).
    pub breaks: Vec<String>,
    /// What the checks of the migrations' SQL found (`data::checks`).
    pub findings: Vec<Finding>,
}

/// A pending migration's statement that locks or rewrites a table, breaks
/// the release still serving, or cannot be reversed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub migration: String,
    pub statement: String,
    /// `locks`, `rewrites`, `breaks` or `irreversible`.
    pub rule: String,
    /// What it does, in words.
    pub what: String,
    /// The safe way to get the same change.
    pub instead: String,
}

/// What putting a deploy back would do to its database, as the rehearsal
/// found it on the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Foreseen {
    /// The migrations only add: the new schema would be kept.
    Keep,
    /// They would be reversed (it was done on the copy), removing this.
    Reverse { removes: Vec<String> },
    /// Only the backup could put it back, for this reason.
    Restore { why: String },
}

impl Foreseen {
    /// One line for the rehearsal's report.
    pub fn describe(&self) -> String {
        match self {
            Foreseen::Keep => "if this deploy is put back, its new schema is kept (the migrations only add what the serving release never writes)".into(),
            Foreseen::Reverse { removes } if removes.is_empty() => {
                "if this deploy is put back, its migrations are reversed (done on the copy too: it works)".into()
            }
            Foreseen::Reverse { removes } => format!(
                "if this deploy is put back, its migrations are reversed (done on the copy too: it works), removing {}",
                removes.join(", ")
            ),
            Foreseen::Restore { why } => format!(
                "if this deploy is put back, only the backup can do it ({why}): writes made meanwhile would be in the saved copy, not the database; deploy with `--maintenance` to hold them"
            ),
        }
    }
}
