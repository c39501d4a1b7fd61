//! The report of a setup: the text, and the same as `--json`.

use serde::Serialize;

use super::items::{Item, State};

/// The report of a setup: a line per item under each host, and counts.
#[derive(Default)]
pub(super) struct Report {
    pub text: String,
    pub changed: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Items that failed (one per host that stopped on one).
    pub failed: usize,
    pub hosts: Vec<HostItems>,
}

/// One host's items, for `--json`.
#[derive(Serialize)]
pub(super) struct HostItems {
    host: String,
    items: Vec<Item>,
}

/// `setup --json`.
#[derive(Serialize)]
pub(super) struct SetupReport<'a> {
    pub action: &'static str,
    pub env: &'a str,
    pub dry_run: bool,
    pub changed: usize,
    pub unchanged: usize,
    pub hosts: &'a [HostItems],
}

impl Report {
    pub(super) fn add(&mut self, host: &str, items: Vec<Item>) {
        self.text.push_str(&format!("{host}\n"));
        for item in &items {
            if item.state.changed() {
                self.changed += 1;
            }
            if item.state == State::Created {
                self.created += 1;
            } else if item.state == State::Updated {
                self.updated += 1;
            } else if item.state == State::Unchanged {
                self.unchanged += 1;
            }
            let (mark, what, state) = (item.state.mark(), &item.what, item.state.word());
            self.text.push_str(&format!("  {mark} {what}: {state}\n"));
            for line in &item.detail {
                self.text.push_str(&format!("      {line}\n"));
            }
        }
        self.hosts.push(HostItems {
            host: host.to_string(),
            items,
        });
    }

    /// A host that stopped on the item `what`.
    pub(super) fn fail(&mut self, host: &str, what: &str) {
        self.text.push_str(&format!("{host}\n  ✗ {what}: failed\n"));
        self.failed += 1;
    }

    /// The report's text, with its closing count.
    pub(super) fn close(&self, dry_run: bool) -> String {
        let mut text = self.text.clone();
        let (changed, unchanged) = (self.changed, self.unchanged);
        let s = if changed == 1 { "" } else { "s" };
        text.push_str(&match (dry_run, changed, self.failed) {
            (true, 0, 0) => format!("nothing to change ({unchanged} items unchanged)"),
            (true, n, 0) => format!("{n} item{s} would change; nothing was changed"),
            (false, 0, 0) => {
                format!("everything was already set up: {unchanged} items unchanged")
            }
            (false, n, 0) => format!(
                "{n} item{s} changed ({} created, {} updated), {unchanged} unchanged",
                self.created, self.updated
            ),
            (_, _, failed) => format!(
                "{} created, {} updated, {unchanged} unchanged, {failed} failed",
                self.created, self.updated
            ),
        });
        text
    }
}
