//! Progress for many hosts at once: past `MANY` hosts, one line (or one
//! spinner) per phase counts the hosts at each step, those done and those
//! failed, and names the slowest — `[300 hosts] 212 upload, 80 done, 8
//! connect; slowest web042 (upload, 12 s)` — instead of a line or a spinner
//! per host, which at 1,000 hosts is thousands of lines, or spinners for
//! the first screenful only. A host that fails is also named on a line of
//! its own as it fails.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// More hosts than this are shown as counts.
pub const MANY: usize = 20;

/// How often the count line is printed, at most, when not on a terminal.
const EVERY: Duration = Duration::from_secs(1);

/// A step that has lasted this long names its host as the slowest.
const SLOW: Duration = Duration::from_secs(5);

/// Where one host is in the phase.
enum At {
    /// At a step, since then.
    Step(String, Instant),
    /// Its last step ended well: it waits for the others, or is done.
    Done,
    Failed,
}

/// The hosts of one run and where each is.
#[derive(Default)]
pub struct Fleet {
    hosts: usize,
    at: HashMap<String, At>,
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
        let now = Instant::now();
        self.set(host, At::Step(step_name(text).to_string(), now));
        self.due(always, now)
    }

    /// Records that `host`'s step ended, well or not; returns the count
    /// line when it is time to show it, as `step` does.
    pub fn ended(&mut self, host: &str, ok: bool, always: bool) -> Option<String> {
        self.set(host, if ok { At::Done } else { At::Failed });
        self.due(always, Instant::now())
    }

    /// A host that failed stays counted as failed for the rest of the
    /// phase (the steps that put it back are not its progress).
    fn set(&mut self, host: &str, at: At) {
        if !matches!(self.at.get(host), Some(At::Failed)) {
            self.at.insert(host.to_string(), at);
        }
    }

    fn due(&mut self, always: bool, now: Instant) -> Option<String> {
        let line = self.line(now);
        let due = match &self.printed {
            None => true,
            Some((when, last)) => *last != line && (always || now - *when >= EVERY),
        };
        if !due {
            return None;
        }
        self.printed = Some((now, line.clone()));
        Some(line)
    }

    /// The last count line, if it was not printed yet; the steps are then
    /// forgotten (the next phase starts afresh).
    pub fn finish(&mut self) -> Option<String> {
        if self.at.is_empty() {
            return None;
        }
        let line = self.line(Instant::now());
        let fresh = self.printed.as_ref().is_none_or(|(_, last)| *last != line);
        self.at.clear();
        self.printed = None;
        fresh.then_some(line)
    }

    /// `[300 hosts] 212 upload, 8 connect, 80 done; slowest web042
    /// (upload, 12 s)`: the steps with the most hosts first, five at most,
    /// then the hosts done and failed, then the host longest at its step
    /// when that is `SLOW` or more.
    fn line(&self, now: Instant) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut done, mut failed) = (0, 0);
        let mut slowest: Option<(&str, &str, Instant)> = None;
        for (host, at) in &self.at {
            match at {
                At::Step(step, since) => {
                    *counts.entry(step).or_default() += 1;
                    if slowest.is_none_or(|(h, _, s)| (*since, host.as_str()) < (s, h)) {
                        slowest = Some((host, step, *since));
                    }
                }
                At::Done => done += 1,
                At::Failed => failed += 1,
            }
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
        for (n, what) in [(done, "done"), (failed, "failed")] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let mut line = format!("[{} hosts] {}", self.hosts, parts.join(", "));
        if let Some((host, step, since)) = slowest {
            let took = now.saturating_duration_since(since);
            if took >= SLOW {
                line.push_str(&format!("; slowest {host} ({step}, {} s)", took.as_secs()));
            }
        }
        line
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

    #[test]
    fn hosts_done_and_failed_are_counted_and_the_slowest_is_named() {
        let mut fleet = Fleet::new(30);
        let now = Instant::now();
        let then = now.checked_sub(Duration::from_secs(12)).unwrap();
        for i in 0..26 {
            fleet.step(&format!("web{i:03}"), "upload", false);
        }
        fleet.step("web026", "build", false);
        fleet.ended("web001", true, false);
        fleet.ended("web002", true, false);
        fleet.ended("web003", false, false);
        // Nobody at a step for long: no slowest.
        assert_eq!(
            fleet.line(now),
            "[30 hosts] 23 upload, 1 build, 2 done, 1 failed"
        );
        fleet
            .at
            .insert("web007".into(), At::Step("upload".into(), then));
        assert_eq!(
            fleet.line(now),
            "[30 hosts] 23 upload, 1 build, 2 done, 1 failed; slowest web007 (upload, 12 s)"
        );
        assert_eq!(
            fleet.ended("web007", false, true).as_deref(),
            Some("[30 hosts] 22 upload, 1 build, 2 done, 2 failed")
        );
        // Putting a failed host back is not its progress.
        fleet.step("web003", "discard the release", true);
        fleet.ended("web003", true, true);
        assert_eq!(
            fleet.line(Instant::now()),
            "[30 hosts] 22 upload, 1 build, 2 done, 2 failed"
        );
    }
}
