//! What setup does to each item of a host (the layout, the env file, the
//! systemd unit, the nginx site), as the host-side scripts answer it.

use serde::Serialize;

use crate::error::HostProblem;
use crate::remote::site::Site;

/// How one item of one host came out.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Item {
    pub what: String,
    pub state: State,
    /// Lines of a diff for `--dry-run` and `updated`.
    pub detail: Vec<String>,
}

/// What setup did to an item, or (`--dry-run`) would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) enum State {
    #[serde(rename = "unchanged")]
    Unchanged,
    #[serde(rename = "created")]
    Created,
    #[serde(rename = "updated")]
    Updated,
    #[serde(rename = "would create")]
    WouldCreate,
    #[serde(rename = "would update")]
    WouldUpdate,
}

impl State {
    const ALL: [State; 5] = [
        State::Unchanged,
        State::Created,
        State::Updated,
        State::WouldCreate,
        State::WouldUpdate,
    ];

    pub fn word(self) -> &'static str {
        match self {
            State::Unchanged => "unchanged",
            State::Created => "created",
            State::Updated => "updated",
            State::WouldCreate => "would create",
            State::WouldUpdate => "would update",
        }
    }

    /// Reads the first line a host-side script printed.
    fn parse(line: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.word() == line.trim())
    }

    pub fn changed(self) -> bool {
        matches!(
            self,
            State::Created | State::Updated | State::WouldCreate | State::WouldUpdate
        )
    }

    /// The mark in front of the item in the report.
    pub fn mark(self) -> &'static str {
        match self {
            State::Unchanged => "=",
            State::Created | State::WouldCreate => "+",
            State::Updated | State::WouldUpdate => "~",
        }
    }
}

/// The state a host-side script printed on its first line, and the lines
/// after it; or the first line, when it is not a state.
pub(super) fn answer(stdout: &str) -> Result<(State, Vec<String>), String> {
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or("");
    match State::parse(first) {
        Some(state) => Ok((state, lines.map(str::to_string).collect())),
        None => Err(first.to_string()),
    }
}

/// A host-side script answered something setup does not know.
pub(super) fn unexpected(site: &Site, step: &str, line: &str) -> HostProblem {
    let detail = format!("unexpected answer from the host: `{line}`");
    site.problem(step, None, None, &detail)
}
