//! The host's own record: one JSON line per deploy, rollback, lock and
//! unlock, appended to `<path>/.gantry/history.jsonl` on every host.

use serde::{Deserialize, Serialize};

/// One line of a host's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub time: String,
    /// `deploy`, `rollback`, `verify`, `lock` or `unlock`.
    pub action: String,
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
    /// `ok`, `failed`, `passed`.
    pub outcome: String,
    /// The deploy went past a gate with `--force`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// The rehearsal of the deploy's migrations: `passed` or `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Record {
    pub fn new(action: &str, env: &str, host: &str, outcome: &str) -> Record {
        Record {
            time: crate::base::time::Utc::now().iso(),
            action: action.into(),
            env: env.into(),
            host: host.into(),
            commit: None,
            release: None,
            previous: None,
            by: crate::model::lock::who(),
            outcome: outcome.into(),
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
