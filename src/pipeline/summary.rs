//! The closing summary of a deploy, promote or rollback: a line per host,
//! or hosts grouped by outcome from ten hosts on; and the same as JSON.

use crate::cli::output::Printer;
use crate::pipeline::deploy::{HostSummary, Summary};

/// From this many hosts on, the closing summary groups hosts by outcome
/// instead of a line each.
const GROUP_FROM: usize = 10;

/// The closing summary for many hosts: one line per group of hosts that
/// went from the same release, then the spread of times and bytes.
fn grouped(summary: &Summary) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<Option<&str>, Vec<&str>> = Default::default();
    for h in &summary.per_host {
        groups.entry(h.before.as_deref()).or_default().push(&h.host);
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
            summary.release,
            shown.join(", ")
        ));
    }
    let mut times: Vec<f64> = summary.per_host.iter().filter_map(|h| h.prepared).collect();
    times.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let human = |s: f64| crate::base::time::human(std::time::Duration::from_secs_f64(s));
        lines.push(format!(
            "prepared in {} to {} (median {})",
            human(*first),
            human(*last),
            human(times[times.len() / 2])
        ));
    }
    let sent: u64 = summary.uploaded.values().sum();
    if sent > 0 {
        lines.push(format!("{} sent in all", crate::base::time::bytes(sent)));
    }
    lines
}

pub fn report(summary: &Summary, verb: &str, printer: &Printer) {
    printer.finish_hosts();
    if summary.noop {
        return;
    }
    printer.headline(&format!(
        "{verb} {} to {}: release {} on {} host{} in {}",
        &summary.commit[..summary.commit.len().min(8)],
        summary.env,
        summary.release,
        summary.hosts,
        if summary.hosts == 1 { "" } else { "s" },
        crate::base::time::human(std::time::Duration::from_secs_f64(summary.seconds)),
    ));
    if summary.per_host.len() > GROUP_FROM {
        printer.summary("What is live now:", &grouped(summary));
        return;
    }
    let lines: Vec<String> = summary
        .per_host
        .iter()
        .map(
            |HostSummary {
                 host,
                 before,
                 prepared,
             }| {
                let mut line = format!("{host}: serving {}", summary.release);
                match before {
                    Some(b) => line.push_str(&format!(" (was {b})")),
                    None => line.push_str(" (its first release)"),
                }
                if let Some(secs) = prepared {
                    line.push_str(&format!(
                        ", prepared in {}",
                        crate::base::time::human(std::time::Duration::from_secs_f64(*secs))
                    ));
                }
                if let Some(bytes) = summary.uploaded.get(host) {
                    line.push_str(&format!(", {} sent", crate::base::time::bytes(*bytes)));
                }
                line
            },
        )
        .collect();
    printer.summary("What is live now:", &lines);
}

/// A deploy, promote or rollback as one JSON document (`--json`).
pub fn report_json(summary: &Summary, action: &str, tags: &[String], printer: &Printer) {
    if !printer.json_mode() {
        return;
    }
    printer.json(&summary_json(summary, action, tags));
}

/// What `report_json` prints, for the release's document too.
pub fn summary_json(summary: &Summary, action: &str, tags: &[String]) -> serde_json::Value {
    serde_json::json!({
        "action": action,
        "env": summary.env,
        "commit": summary.commit,
        "release": summary.release,
        "seconds": summary.seconds,
        "rehearsal": summary.rehearsal.record(),
        "noop": summary.noop,
        "tags": tags,
        "hosts": summary.per_host.iter().map(|HostSummary { host, before, prepared }| serde_json::json!({
            "host": host,
            "serving": summary.release,
            "previous": before,
            "prepared_seconds": prepared,
            "uploaded_bytes": summary.uploaded.get(host),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            uploaded: (0..100).map(|i| (format!("web{i:03}"), 1000)).collect(),
            per_host,
        };
        assert_eq!(
            grouped(&summary),
            [
                "3 hosts: serving r2 (their first release): web097, web098, web099",
                "97 hosts: serving r2 (was r1): web000, web001, web002, and 94 more",
                "prepared in 1.0s to 2.0s (median 1.5s)",
                "100.0 KB sent in all",
            ]
        );
    }
}
