//! What a host says about its site, each in one script: its status (what
//! `current` is, its commit, the lock, the last history line, steps still
//! running) for `status` and `verify`, and whether it has what a deploy
//! needs, for `check`.

use crate::base::shell::quote;
use crate::remote::release::Layout;

/// The status of a site in one script: what `current` is, its commit, the
/// lock, and the last history line.
pub fn status_script(layout: &Layout) -> String {
    format!(
        "cd {path} 2>/dev/null || {{ echo missing; exit 0; }}\n\
         t=$(readlink current 2>/dev/null) && echo \"current ${{t##*/}}\"\n\
         [ -f current/REVISION ] && echo \"commit $(cat current/REVISION)\"\n\
         [ -d .gantry/lock ] && echo \"lock $(cat .gantry/lock/info 2>/dev/null)\"\n\
         [ -f .gantry/history.jsonl ] && echo \"last $(tail -n 1 .gantry/history.jsonl)\"\n\
         [ -f .gantry/activated ] && echo \"activated $(cat .gantry/activated)\"\n\
         if [ -d .gantry/activation ] && [ ! -f .gantry/activation/verdict ]; then echo \"activating $(cat .gantry/activation/phase 2>/dev/null)\"; fi\n\
         pgrep -f -- {pattern} 2>/dev/null | while read -r p; do [ \"$p\" = $$ ] || [ \"$p\" = $PPID ] || [ \"$(cut -d' ' -f4 /proc/$p/stat 2>/dev/null)\" = $$ ] || echo \"running $p $(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | sed -n '1s/^.*: gantry-step [^ ]* //p' | cut -c1-60)\"; done\ntrue",
        path = quote(&layout.path),
        // A pattern that does not match itself.
        pattern = quote(&format!(": gantry-ste[p] {}", regex_escape(&quote(&layout.path)))),
    )
}

/// `text` as a literal in a `pgrep` (extended) regular expression.
fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One site's state, as `status_script` reports it.
#[derive(Debug, Default, Clone)]
pub struct SiteStatus {
    /// The release `current` points at.
    pub release: Option<String>,
    pub commit: Option<String>,
    pub lock: Option<crate::model::lock::LockInfo>,
    pub last: Option<crate::model::history::Record>,
    /// The release the last activation that ran to the end restarted.
    pub activated: Option<String>,
    /// An activation is running (its phase), or died without a verdict.
    pub activating: Option<String>,
    /// Steps Gantry started that are still running: pid and step.
    pub running: Vec<String>,
    /// The site's folder does not exist.
    pub missing: bool,
}

impl SiteStatus {
    /// When `current` points at a release that no finished activation
    /// restarted: the app may still be serving another one.
    pub fn mismatch(&self) -> Option<String> {
        let current = self.release.as_deref()?;
        if let Some(phase) = &self.activating {
            return Some(format!(
                "an activation stopped at `{}`: `current` points at {current}, which may not be what the app serves",
                if phase.is_empty() { "start" } else { phase }
            ));
        }
        match self.activated.as_deref() {
            Some(activated) if activated != current => Some(format!(
                "`current` points at {current}, but the last restart was of {activated}"
            )),
            _ => None,
        }
    }
}

pub fn parse_status(out: &str) -> SiteStatus {
    let mut state = SiteStatus::default();
    for line in out.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "missing" => state.missing = true,
            "current" => state.release = Some(rest.to_string()),
            "commit" => state.commit = Some(rest.to_string()),
            "lock" => state.lock = serde_json::from_str(rest).ok(),
            "last" => state.last = serde_json::from_str(rest).ok(),
            "activated" => state.activated = Some(rest.to_string()),
            "activating" => state.activating = Some(rest.to_string()),
            "running" => state.running.push(rest.to_string()),
            _ => {}
        }
    }
    state
}

/// What a host needs: the tools the scripts use, and a writable site path.
/// `extra` names more tools this host needs (the database's, on the
/// migrate host).
pub fn check_script(layout: &Layout, extra: &[&str]) -> String {
    format!(
        "missing=''\nfor t in sh tar mkdir ln mv readlink rm grep tail {extra}; do command -v $t >/dev/null 2>&1 || missing=\"$missing $t\"; done\n\
         [ -z \"$missing\" ] || {{ echo \"missing tools:$missing\"; exit 1; }}\n\
         mv --help 2>&1 | grep -q -- '-T' || {{ echo 'mv does not support -T (GNU coreutils needed for the atomic switch)'; exit 1; }}\n\
         mkdir -p {path} 2>/dev/null || {{ echo 'cannot create {shown}'; exit 1; }}\n\
         [ -w {path} ] || {{ echo 'cannot write to {shown}'; exit 1; }}\necho ok",
        path = quote(&layout.path),
        shown = layout.path.replace('\'', ""),
        extra = extra.join(" "),
    )
}

/// The files in the release `current` points at that are newer than its
/// `REVISION` (written last when it was built): what the running app wrote
/// there. Python's bytecode caches are left out; shared links are not
/// followed. Prints `commit SHA`, then the paths (at most 500).
pub fn written_script(layout: &Layout) -> String {
    format!(
        "cd -P {current} 2>/dev/null && [ -f REVISION ] || exit 0\n\
         echo \"commit $(cat REVISION)\"\n\
         find . -newer REVISION -type f ! -path '*/__pycache__/*' ! -name '*.pyc' 2>/dev/null | head -n 500\ntrue",
        current = quote(&layout.current()),
    )
}
