//! The host's own record: one JSON line per deploy, rollback, lock and
//! unlock, appended to `<path>/.gantry/history.jsonl` on every host.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a record or a ledger event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deploy,
    Rollback,
    Verify,
    Lock,
    Unlock,
    Restore,
    /// Written by a newer Gantry: kept, shown as `other`.
    #[serde(other)]
    Other,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A deploy, rollback, lock or restore that was done.
    Ok,
    Failed,
    /// A verification that passed.
    Passed,
    #[serde(other)]
    Other,
}

/// What became of a deploy's migrations' rehearsal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rehearsed {
    Passed,
    /// `--no-rehearse` while migrations were pending.
    Skipped,
    #[serde(other)]
    Other,
}

/// The word serde writes for a value of these enums.
fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&word(self))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&word(self))
    }
}

/// One line of a host's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub time: String,
    pub action: Action,
    pub env: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// `user@machine`.
    pub by: String,
    pub outcome: Outcome,
    /// The deploy went past a gate with `--force`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// The rehearsal of the deploy's migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<Rehearsed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Record {
    pub fn new(action: Action, env: &str, host: &str, outcome: Outcome) -> Record {
        Record {
            time: crate::base::time::Utc::now().iso(),
            action,
            env: env.into(),
            host: host.into(),
            commit: None,
            release: None,
            previous: None,
            by: crate::model::lock::who(),
            outcome,
            forced: false,
            rehearsal: None,
            message: None,
        }
    }

    /// The JSON line, with any known secret masked.
    pub fn to_line(&self) -> String {
        crate::base::secrets::mask(&serde_json::to_string(self).expect("a record serializes"))
    }
}

/// Parses a history file, skipping lines that are not records (a line cut
/// short by a lost connection must not hide the rest).
pub fn parse(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
