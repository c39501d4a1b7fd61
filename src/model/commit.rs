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
}
