//! Progress for many hosts at once: past `MANY` hosts, one line (or one
//! spinner) counts the hosts at each step — `[300 hosts] 212 upload, 88
//! connect` — instead of a line or a spinner per host, which at 1,000
//! hosts is thousands of lines, or spinners for the first screenful only.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// More hosts than this are shown as counts.
pub const MANY: usize = 20;

/// How often the count line is printed, at most, when not on a terminal.
const EVERY: Duration = Duration::from_secs(1);

/// The hosts of one run and the step each is at.
#[derive(Default)]
pub struct Fleet {
    hosts: usize,
    at: HashMap<String, String>,
    printed: Option<(Instant, String)>,
}

impl Fleet {
    pub fn new(hosts: usize) -> Fleet {
        Fleet {
            hosts,
            ..Fleet::default()
        }
    }

    /// Records that `host` is at the step `text` says; returns the count
    /// line, when it is time to show it (`always`: on a terminal, where it
    /// replaces itself).
    pub fn step(&mut self, host: &str, text: &str, always: bool) -> Option<String> {
        self.at
            .insert(host.to_string(), step_name(text).to_string());
        let line = self.line();
        let due = match &self.printed {
            None => true,
            Some((when, last)) => *last != line && (always || when.elapsed() >= EVERY),
        };
        if !due {
            return None;
        }
        self.printed = Some((Instant::now(), line.clone()));
        Some(line)
    }

    /// The last count line, if it was not printed yet; the steps are then
    /// forgotten (the next phase starts afresh).
    pub fn finish(&mut self) -> Option<String> {
        if self.at.is_empty() {
            return None;
        }
        let line = self.line();
        let fresh = self.printed.as_ref().is_none_or(|(_, last)| *last != line);
        self.at.clear();
        self.printed = None;
        fresh.then_some(line)
    }

    /// `[300 hosts] 212 upload, 88 connect`: the steps with the most hosts
    /// first, five at most.
    fn line(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for step in self.at.values() {
            *counts.entry(step).or_default() += 1;
        }
        let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut parts: Vec<String> = counts
            .iter()
            .take(5)
            .map(|(step, n)| format!("{n} {step}"))
            .collect();
        if counts.len() > 5 {
            parts.push(format!("{} more steps", counts.len() - 5));
        }
        format!("[{} hosts] {}", self.hosts, parts.join(", "))
    }
}

/// A step's name without what differs from host to host: a URL, a
/// command (`leave the balancer: CMD`).
fn step_name(text: &str) -> &str {
    let end = [text.find(": "), text.find(" http")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    text[..end].trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_counted_by_step_and_the_line_is_not_repeated() {
        let mut fleet = Fleet::new(3);
        assert_eq!(
            fleet.step("a", "connect", false).as_deref(),
            Some("[3 hosts] 1 connect")
        );
        // Too soon after the last line, when not on a terminal.
        assert_eq!(fleet.step("b", "connect", false), None);
        assert_eq!(
            fleet
                .step("c", "health check http://10.0.0.3/health", true)
                .as_deref(),
            Some("[3 hosts] 2 connect, 1 health check")
        );
        assert_eq!(
            fleet
                .step("a", "leave the balancer: ./lb leave a", true)
                .as_deref(),
            Some("[3 hosts] 1 connect, 1 health check, 1 leave the balancer")
        );
        assert_eq!(fleet.finish(), None);
        assert_eq!(fleet.finish(), None);
        fleet.step("a", "lock", false);
        fleet.step("b", "lock", false);
        assert_eq!(fleet.finish().as_deref(), Some("[3 hosts] 2 lock"));
    }
}
