//! The closing report of a deploy, promote or rollback: one `Report`,
//! which `--json` prints as it is and the text draws its lines from (a
//! line per host, or hosts grouped by outcome from ten hosts on).

use std::time::Duration;

use serde::Serialize;

use crate::base::time::{bytes, human};
use crate::cli::output::Printer;
use crate::model::history::Rehearsed;
use crate::pipeline::deploy::Summary;

/// From this many hosts on, the closing summary groups hosts by outcome
/// instead of a line each.
const GROUP_FROM: usize = 10;

/// What a deploy, promote or rollback did.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub action: &'a str,
    pub env: &'a str,
    pub commit: &'a str,
    pub release: &'a str,
    pub seconds: f64,
    pub rehearsal: Option<Rehearsed>,
    /// Every host already served the commit: nothing was done.
    pub noop: bool,
    pub tags: &'a [String],
    pub hosts: Vec<HostReport<'a>>,
    /// What the checks of the migrations' SQL found.
    pub findings: &'a [crate::model::commit::Finding],
}

/// One host in a report.
#[derive(Debug, Serialize)]
pub struct HostReport<'a> {
    pub host: &'a str,
    pub serving: &'a str,
    pub previous: Option<&'a str>,
    pub prepared_seconds: Option<f64>,
    pub uploaded_bytes: Option<u64>,
}

impl<'a> Report<'a> {
    pub fn new(summary: &'a Summary, action: &'a str, tags: &'a [String]) -> Report<'a> {
        Report {
            action,
            env: &summary.env,
            commit: &summary.commit,
            release: &summary.release,
            seconds: summary.seconds,
            rehearsal: summary.rehearsal.record(),
            noop: summary.noop,
            tags,
            findings: &summary.findings,
            hosts: summary
                .per_host
                .iter()
                .map(|h| HostReport {
                    host: &h.host,
                    serving: &summary.release,
                    previous: h.before.as_deref(),
                    prepared_seconds: h.prepared,
                    uploaded_bytes: summary.uploaded.get(&h.host).copied(),
                })
                .collect(),
        }
    }

    /// A line per host.
    fn lines(&self) -> Vec<String> {
        let line = |h: &HostReport| {
            let mut line = format!("{}: serving {}", h.host, h.serving);
            match h.previous {
                Some(b) => line.push_str(&format!(" (was {b})")),
                None => line.push_str(" (its first release)"),
            }
            if let Some(secs) = h.prepared_seconds {
                line.push_str(&format!(
                    ", prepared in {}",
                    human(Duration::from_secs_f64(secs))
                ));
            }
            if let Some(sent) = h.uploaded_bytes {
                line.push_str(&format!(", {} sent", bytes(sent)));
            }
            line
        };
        self.hosts.iter().map(line).collect()
    }

    /// The lines for many hosts: one per group of hosts that went from the
    /// same release, then the spread of times and bytes.
    fn grouped(&self) -> Vec<String> {
        let mut groups: std::collections::BTreeMap<Option<&str>, Vec<&str>> = Default::default();
        for h in &self.hosts {
            groups.entry(h.previous).or_default().push(h.host);
        }
        let mut lines = Vec::new();
        for (before, hosts) in groups {
            let from = before.map_or("their first release".to_string(), |b| format!("was {b}"));
            let shown: Vec<&str> = hosts.iter().take(3).copied().collect();
            let more = if hosts.len() > shown.len() {
                format!(", and {} more", hosts.len() - shown.len())
            } else {
                String::new()
            };
            lines.push(format!(
                "{} hosts: serving {} ({from}): {}{more}",
                hosts.len(),
                self.release,
                shown.join(", ")
            ));
        }
        let mut times: Vec<f64> = self
            .hosts
            .iter()
            .filter_map(|h| h.prepared_seconds)
            .collect();
        times.sort_by(f64::total_cmp);
        if let (Some(first), Some(last)) = (times.first(), times.last()) {
            let human = |s: f64| human(Duration::from_secs_f64(s));
            lines.push(format!(
                "prepared in {} to {} (median {})",
                human(*first),
                human(*last),
                human(times[times.len() / 2])
            ));
        }
        let sent: u64 = self.hosts.iter().filter_map(|h| h.uploaded_bytes).sum();
        if sent > 0 {
            lines.push(format!("{} sent in all", bytes(sent)));
        }
        lines
    }
}

/// The text report, headed by `verb` (`Deployed`, `Promoted`, `Rolled back`).
pub fn report(summary: &Summary, verb: &str, printer: &Printer) {
    printer.finish_hosts();
    if summary.noop {
        return;
    }
    let r = Report::new(summary, "", &[]);
    printer.headline(&format!(
        "{verb} {} to {}: release {} on {} host{} in {}",
        &r.commit[..r.commit.len().min(8)],
        r.env,
        r.release,
        r.hosts.len(),
        if r.hosts.len() == 1 { "" } else { "s" },
        human(Duration::from_secs_f64(r.seconds)),
    ));
    let lines = if r.hosts.len() > GROUP_FROM {
        r.grouped()
    } else {
        r.lines()
    };
    printer.summary("What is live now:", &lines);
}

/// A deploy, promote or rollback as one JSON document (`--json`).
pub fn report_json(summary: &Summary, action: &str, tags: &[String], printer: &Printer) {
    if printer.json_mode() {
        printer.json(&Report::new(summary, action, tags));
    }
}

/// What `report_json` prints, for the release's document too.
pub fn summary_json(summary: &Summary, action: &str, tags: &[String]) -> serde_json::Value {
    serde_json::to_value(Report::new(summary, action, tags)).expect("a report serializes")
}

/// The release's line for an environment whose deploy failed.
pub fn failed_line(env: &str, e: &crate::error::Error) -> String {
    use crate::error::Error;
    match e {
        Error::RehearsalFailed(_) | Error::CopyNotUsed(_) => {
            format!("✗ {env}: the migrations fail on a copy of its data; it was not touched")
        }
        Error::BreaksTheServingRelease { .. } => {
            format!("✗ {env}: its migrations break the release it serves while both would serve; it was not touched")
        }
        Error::WrongDatabase(_) => {
            format!("✗ {env}: the app does not use the database in gantry.toml; it was not touched")
        }
        _ => format!("✗ {env}: deploy failed; it still serves what it served"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::deploy::HostSummary;

    #[test]
    fn many_hosts_are_summed_up_by_group() {
        let per_host = (0..100)
            .map(|i| {
                let before = if i < 97 { Some("r1".to_string()) } else { None };
                HostSummary {
                    host: format!("web{i:03}"),
                    before,
                    prepared: Some(1.0 + f64::from(i) / 100.0),
                }
            })
            .collect();
        let summary = Summary {
            env: "live".into(),
            release: "r2".into(),
            commit: "abc".into(),
            hosts: 100,
            seconds: 9.0,
            rehearsal: crate::pipeline::deploy::Rehearsal::NotNeeded,
            noop: false,
            forced: false,
            uploaded: (0..100).map(|i| (format!("web{i:03}"), 1000)).collect(),
            per_host,
            findings: Vec::new(),
            migrations: Vec::new(),
            hooks: Vec::new(),
        };
        assert_eq!(
            Report::new(&summary, "deploy", &[]).grouped(),
            [
                "3 hosts: serving r2 (their first release): web097, web098, web099",
                "97 hosts: serving r2 (was r1): web000, web001, web002, and 94 more",
                "prepared in 1.0s to 2.0s (median 1.5s)",
                "100.0 KB sent in all",
            ]
        );
    }
}

#[cfg(test)]
mod failed_line_tests {
    use super::failed_line;
    use crate::error::Error;

    #[test]
    fn a_release_says_why_an_environment_was_not_touched() {
        let breaks = Error::BreaksTheServingRelease {
            env: "live".into(),
            how: "a handover",
            breaks: Vec::new(),
        };
        let lines = [
            failed_line("live", &breaks),
            failed_line("live", &Error::RestoreDeclined),
        ];
        insta::assert_snapshot!(lines.join("\n"), @r"
        ✗ live: its migrations break the release it serves while both would serve; it was not touched
        ✗ live: deploy failed; it still serves what it served
        ");
    }
}
