//! The one printer. Results (plans, status, logs, `--json`) go to stdout;
//! progress and errors go to stderr. On a terminal each host gets a spinner
//! with its current step and elapsed time; otherwise plain lines with a
//! `[host]` prefix, easy to grep. `-q` keeps only results and errors, `-v`
//! adds every command's output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anstyle::{AnsiColor, Style};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::fleet::{self, Fleet};

/// Which of a command's outputs a line came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Printer {
    verbosity: Verbosity,
    json: bool,
    color: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Per-host step lines; read-only commands turn them off.
    steps: AtomicBool,
    /// Under GitHub Actions (`GITHUB_ACTIONS=true`): each host's lines are
    /// kept and printed in a collapsible group when the hosts are done,
    /// and errors also become error annotations.
    github: bool,
    grouped: Mutex<std::collections::BTreeMap<String, Vec<String>>>,
    /// Past `fleet::MANY` hosts: one count line instead of a line per host.
    fleet: Mutex<Option<Fleet>>,
}

impl Printer {
    pub fn new(verbosity: Verbosity, json: bool) -> Printer {
        let tty = std::io::stderr().is_terminal();
        // NO_COLOR, CLICOLOR, CLICOLOR_FORCE, TERM=dumb and whether stderr
        // is a terminal, as anstream reads them.
        let color =
            anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
        let multi = (tty && verbosity != Verbosity::Quiet && !json)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Printer {
            verbosity,
            json,
            color,
            multi,
            bars: Mutex::new(HashMap::new()),
            steps: AtomicBool::new(true),
            github: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") && !tty,
            grouped: Mutex::default(),
            fleet: Mutex::default(),
        }
    }

    /// The run works on `n` hosts: past `fleet::MANY`, its progress is
    /// counts of hosts per step (per-host lines stay with `-v`, and under
    /// GitHub Actions, whose groups fold them).
    pub fn hosts(&self, n: usize) {
        let many = n > fleet::MANY && self.verbosity == Verbosity::Normal && !self.github;
        *self.fleet.lock().expect("printer lock") = many.then(|| Fleet::new(n));
    }

    /// Keeps a host's line for its group; false when not grouping.
    fn group(&self, host: &str, line: &str) -> bool {
        if !self.github {
            return false;
        }
        self.grouped
            .lock()
            .expect("printer lock")
            .entry(host.to_string())
            .or_default()
            .push(crate::base::secrets::mask(&printable(line)));
        true
    }

    /// Shows per-host steps only with `-v`: for commands whose result is
    /// the point (status, log, exec), not their progress.
    pub fn hide_steps(&self) {
        if self.verbosity < Verbosity::Verbose {
            self.steps.store(false, Ordering::Relaxed);
        }
    }

    pub fn json_mode(&self) -> bool {
        self.json
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// A result line on stdout; none with `--json`, where stdout holds one
    /// document.
    pub fn result(&self, text: &str) {
        if self.json {
            return;
        }
        let text = crate::base::secrets::mask(&printable(text));
        self.suspend(|| println!("{text}"));
    }

    /// A JSON document on stdout.
    /// A command's report as one JSON document on stdout (`--json`).
    pub fn json<T: serde::Serialize + ?Sized>(&self, value: &T) {
        let text = serde_json::to_string_pretty(value).expect("reports serialize");
        println!("{}", crate::base::secrets::mask(&text));
    }

    /// A headline on stderr: `==> Deploying 1a2b3c4d to staging`.
    pub fn headline(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal && !self.json {
            let arrow = self.paint("==>", AnsiColor::Blue);
            self.line(&format!("{arrow} {}", printable(text)));
        }
    }

    /// Lines of a summary on stderr, under a headline.
    pub fn summary(&self, title: &str, lines: &[String]) {
        if self.verbosity >= Verbosity::Normal && !self.json {
            self.headline(title);
            self.line(
                &lines
                    .iter()
                    .map(|l| format!("    {}", printable(l)))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
    }

    /// Asks a question on the terminal and reads the answer.
    pub fn ask(&self, question: &str) -> String {
        self.suspend(|| eprint!("{question}"));
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        answer
    }

    /// A host's step has started or ended.
    pub fn host(&self, host: &str, text: &str) {
        if self.verbosity < Verbosity::Normal || self.json || !self.steps.load(Ordering::Relaxed) {
            return;
        }
        if let Some(fleet) = self.fleet.lock().expect("printer lock").as_mut() {
            if let Some(line) = fleet.step(host, text, self.multi.is_some()) {
                self.show_count(&line);
            }
            return;
        }
        self.spinner_or_line(host, text);
    }

    /// A host's step has ended, well or not. Past `fleet::MANY` hosts the
    /// count line says so, and a failure is named on a line of its own
    /// (with fewer hosts, each has its line or spinner already).
    pub fn host_ended(&self, host: &str, step: &str, ok: bool) {
        if self.verbosity < Verbosity::Normal || self.json || !self.steps.load(Ordering::Relaxed) {
            return;
        }
        let line = match self.fleet.lock().expect("printer lock").as_mut() {
            Some(fleet) => fleet.ended(host, ok, self.multi.is_some()),
            None => return,
        };
        if !ok {
            self.line(&printable(&format!("[{host}] {step} failed")));
        }
        if let Some(line) = line {
            self.show_count(&line);
        }
    }

    /// The count line of many hosts: one spinner, or a line.
    fn show_count(&self, line: &str) {
        match &self.multi {
            Some(_) => self.spinner_or_line("", line),
            None => eprintln!("{}", crate::base::secrets::mask(&printable(line))),
        }
    }

    /// A host's step: its spinner's message, or a `[host]` line.
    fn spinner_or_line(&self, host: &str, text: &str) {
        if let Some(multi) = &self.multi {
            let mut bars = self.bars.lock().expect("printer lock");
            let bar = bars.entry(host.to_string()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}",
                    )
                    .expect("valid template"),
                );
                bar.set_prefix(host.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(crate::base::secrets::mask(&printable(text)));
        } else if !self.group(host, text) {
            eprintln!("[{host}] {}", crate::base::secrets::mask(&printable(text)));
        }
    }

    /// Output of a command, shown with `-v`.
    pub fn detail(&self, host: &str, text: &str) {
        if self.verbosity < Verbosity::Verbose || text.trim().is_empty() {
            return;
        }
        let mut block = String::new();
        if self.github {
            for line in text.trim_end().lines() {
                self.group(host, &format!("  {line}"));
            }
            return;
        }
        for line in text.trim_end().lines() {
            block.push_str(&format!("[{host}]   {}\n", printable(line)));
        }
        self.line(block.trim_end());
    }

    /// A line a command printed on a host, as `exec` streams it: its
    /// stdout to stdout, its stderr to stderr, each prefixed by the host.
    pub fn host_output(&self, host: &str, stream: Stream, text: &str) {
        let line = crate::base::secrets::mask(&printable(&format!("[{host}] {text}")));
        self.suspend(|| match stream {
            Stream::Out => println!("{line}"),
            Stream::Err => eprintln!("{line}"),
        });
    }

    /// Ends every host's spinner, leaving its last message on screen.
    pub fn finish_hosts(&self) {
        let last = self
            .fleet
            .lock()
            .expect("printer lock")
            .as_mut()
            .and_then(Fleet::finish);
        if let Some(line) = last {
            self.show_count(&line);
        }
        let mut bars = self.bars.lock().expect("printer lock");
        for (_, bar) in bars.drain() {
            bar.finish();
        }
        let groups = std::mem::take(&mut *self.grouped.lock().expect("printer lock"));
        for (host, lines) in groups {
            eprintln!("::group::{host}");
            for line in lines {
                eprintln!("{line}");
            }
            eprintln!("::endgroup::");
        }
    }

    /// `warning: …`; the wordings are `error::Warning`'s.
    pub fn warn(&self, text: impl std::fmt::Display) {
        if self.verbosity >= Verbosity::Normal {
            let label = self.paint("warning:", AnsiColor::Yellow);
            self.line(&format!("{label} {}", printable(&text.to_string())));
        }
    }

    pub fn error(&self, text: &str) {
        self.finish_hosts();
        let label = self.paint("error:", AnsiColor::Red);
        self.line(&format!("{label} {}", printable(text)));
        if self.github {
            // One annotation, its lines escaped as the runner wants them.
            let escaped = crate::base::secrets::mask(&printable(text))
                .replace('%', "%25")
                .replace('\r', "%0D")
                .replace('\n', "%0A");
            self.line(&format!("::error title=gantry::{escaped}"));
        }
    }

    fn line(&self, text: &str) {
        let text = crate::base::secrets::mask(text);
        // With spinners on screen, a line is printed above them, never
        // over them.
        self.suspend(|| eprintln!("{text}"));
    }

    fn suspend(&self, f: impl FnOnce()) {
        match &self.multi {
            Some(multi) => multi.suspend(f),
            None => f(),
        }
    }

    fn paint(&self, text: &str, color: AnsiColor) -> String {
        if self.color {
            let style = Style::new().bold().fg_color(Some(color.into()));
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }
}

/// Text as it may reach a terminal: control characters (escape sequences
/// in a lock reason, a host's output) are shown as `\x1b`, never obeyed;
/// line breaks and tabs stay.
pub fn printable(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                format!("\\x{:02x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        assert_eq!(
            super::printable("deploy \u{1b}[2J\u{1b}]0;owned\u{7}\nnext\tline"),
            "deploy \\x1b[2J\\x1b]0;owned\\x07\nnext\tline"
        );
        assert_eq!(super::printable("plain"), "plain");
    }
}
