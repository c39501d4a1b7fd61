//! The ledger in the git remote, where the whole team sees it: one git note
//! per deployed commit in `refs/notes/gantry` (a JSON line per deploy and
//! verification), and the release tags (`LIVE`, `DEPLOYED-%F/%H%M`, or
//! `v1`, `v2`, …). Notes and tags are pushed right after they are written.

pub mod git;
pub mod tar;

use serde::{Deserialize, Serialize};

use crate::base::time::Utc;
use crate::config::Tags;
use crate::error::Error;
use crate::ledger::git::{Commit, Repo};
use crate::model::history::{Action, Outcome, Rehearsed};

/// The notes ref Gantry keeps its ledger in.
pub const NOTES_REF: &str = "refs/notes/gantry";

/// One line of a commit's note.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub event: Action,
    pub env: String,
    pub time: String,
    /// `user@machine`.
    pub by: String,
    /// `ok` for a deploy; `passed` or `failed` for a verification.
    pub outcome: Outcome,
    /// The deploy went past a gate with `--force`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// The rehearsal of the deploy's migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<Rehearsed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What was checked, or what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The migrations applied when the release went live (a deploy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<String>,
    /// The hooks that ran (`POINT: ok`, `POINT: failed (advisory)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<String>,
}

impl Event {
    pub fn new(event: Action, env: &str, outcome: Outcome) -> Event {
        Event {
            event,
            env: env.into(),
            time: Utc::now().iso(),
            by: crate::model::lock::who(),
            outcome,
            forced: false,
            rehearsal: None,
            release: None,
            hosts: Vec::new(),
            tags: Vec::new(),
            detail: None,
            migrations: Vec::new(),
            hooks: Vec::new(),
        }
    }
}

/// Fetches the remote's ledger over the local one. The local notes ref is
/// only ever ahead of the remote between a write and its push.
pub fn sync(repo: &Repo, remote: &str) -> Result<(), Error> {
    let has = repo.git(&["ls-remote", remote, NOTES_REF])?;
    let refs: Vec<(String, String)> = has
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, name)| (sha.to_string(), name.to_string()))
        .collect();
    sync_with(repo, remote, &refs)
}

/// `sync`, from a listing of the remote's refs: nothing to fetch when the
/// remote has no ledger, or the same one as here.
pub fn sync_with(repo: &Repo, remote: &str, refs: &[(String, String)]) -> Result<(), Error> {
    let Some((theirs, _)) = refs.iter().find(|(_, name)| name == NOTES_REF) else {
        return Ok(());
    };
    let ours = repo.git(&["rev-parse", "--verify", "-q", NOTES_REF]).ok();
    if ours.as_deref() == Some(theirs.as_str()) {
        return Ok(());
    }
    let refspec = format!("+{NOTES_REF}:{NOTES_REF}");
    // Gantry's own fetch starts no `git maintenance` in the user's repo.
    repo.git(&[
        "-c",
        "maintenance.auto=false",
        "-c",
        "gc.auto=0",
        "fetch",
        "-q",
        remote,
        &refspec,
    ])?;
    Ok(())
}

/// The events recorded for a commit, oldest first.
pub fn events(repo: &Repo, commit: &str) -> Vec<Event> {
    let Ok(note) = repo.git(&["notes", "--ref", NOTES_REF, "show", commit]) else {
        return Vec::new();
    };
    note.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// Whether this machine's ledger records `env` going live with `commit`
/// (a deploy or a rollback to it that was done). A hint: the hosts may
/// have moved on since.
pub fn went_live(repo: &Repo, env: &str, commit: &str) -> bool {
    events(repo, commit).iter().any(|e| {
        e.env == env
            && e.outcome == Outcome::Ok
            && matches!(e.event, Action::Deploy | Action::Rollback)
    })
}

/// The last passed verification of `env` among `events`.
pub fn verified<'a>(events: &'a [Event], env: &str) -> Option<&'a Event> {
    events
        .iter()
        .rev()
        .find(|e| e.event == Action::Verify && e.env == env)
        .filter(|e| e.outcome == Outcome::Passed)
}

/// The newest passed verification of `env` among all noted commits, with
/// its commit's sha.
pub fn last_verified(repo: &Repo, env: &str) -> Option<(String, Event)> {
    let listing = repo.git(&["notes", "--ref", NOTES_REF, "list"]).ok()?;
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|sha| {
            let events = events(repo, sha);
            verified(&events, env)
                .cloned()
                .map(|e| (sha.to_string(), e))
        })
        .max_by(|a, b| a.1.time.cmp(&b.1.time))
}

/// Appends an event to the commit's note and pushes the ledger. The notes
/// were fetched before the deploy; when someone pushed since, the push is
/// refused, and the ledger is fetched again and the event appended anew.
pub fn record(repo: &Repo, remote: &str, commit: &str, event: &Event) -> Result<(), Error> {
    let line = crate::base::secrets::mask(&serde_json::to_string(event).expect("events serialize"));
    let mut last = None;
    for attempt in 0..3 {
        if attempt > 0 {
            sync(repo, remote)?;
        }
        repo.git_as_gantry(&["notes", "--ref", NOTES_REF, "append", "-m", &line, commit])?;
        match repo.git(&["push", "-q", remote, NOTES_REF]) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("three attempts were made"))
}

/// Creates and pushes the tags of a deploy; returns their names.
pub fn tag(
    repo: &Repo,
    remote: &str,
    commit: &Commit,
    tags: &Tags,
    message: &str,
) -> Result<Vec<String>, Error> {
    let now = Utc::now();
    let message = &crate::base::secrets::mask(message);
    match tags {
        Tags::None => Ok(Vec::new()),
        Tags::Dated { moving, history } => {
            let mut names = Vec::new();
            let mut refspecs = Vec::new();
            if let Some(pattern) = history {
                let base = crate::base::time::strftime(pattern, &now).map_err(|reason| {
                    Error::TagPattern {
                        pattern: pattern.clone(),
                        reason,
                    }
                })?;
                let taken = remote_tags(repo, remote)?;
                let mut name = base.clone();
                let mut n = 2;
                // Two deploys in the same minute get `-2`, `-3`, …
                while taken.contains(&name)
                    || repo
                        .git(&["rev-parse", "-q", "--verify", &format!("refs/tags/{name}")])
                        .is_ok()
                {
                    name = format!("{base}-{n}");
                    n += 1;
                }
                repo.git_as_gantry(&["tag", "-a", &name, "-m", message, &commit.sha])?;
                refspecs.push(format!("refs/tags/{name}:refs/tags/{name}"));
                names.push(name);
            }
            if let Some(name) = moving {
                refspecs.push(moving_tag(repo, commit, name, message)?);
                names.push(name.clone());
            }
            if !refspecs.is_empty() {
                let mut args = vec!["push", "-q", remote];
                args.extend(refspecs.iter().map(String::as_str));
                repo.git(&args)?;
            }
            Ok(names)
        }
        Tags::Version { prefix } => {
            let mut highest = 0u64;
            let local = repo.git(&["tag", "-l", &format!("{prefix}*")])?;
            let remote_names = remote_tags(repo, remote)?;
            for name in local.lines().map(str::to_string).chain(remote_names) {
                if let Some(n) = name
                    .strip_prefix(prefix.as_str())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    highest = highest.max(n);
                }
            }
            let name = format!("{prefix}{}", highest + 1);
            repo.git_as_gantry(&["tag", "-a", &name, "-m", message, &commit.sha])?;
            // No `+`: a version tag is never moved, so never forced.
            repo.git(&[
                "push",
                "-q",
                remote,
                &format!("refs/tags/{name}:refs/tags/{name}"),
            ])?;
            Ok(vec![name])
        }
    }
}

/// Points the moving tag `name` at `commit` locally; returns the refspec
/// that force-pushes this one tag.
fn moving_tag(repo: &Repo, commit: &Commit, name: &str, message: &str) -> Result<String, Error> {
    repo.git_as_gantry(&["tag", "-f", "-a", name, "-m", message, &commit.sha])?;
    Ok(format!("+refs/tags/{name}:refs/tags/{name}"))
}

/// After a rollback: moves the environment's moving tag (if it has one)
/// to the commit it serves again, and pushes it. Returns the tag moved.
pub fn move_back(
    repo: &Repo,
    remote: &str,
    commit: &Commit,
    tags: &Tags,
    message: &str,
) -> Result<Option<String>, Error> {
    let Tags::Dated {
        moving: Some(name), ..
    } = tags
    else {
        return Ok(None);
    };
    let refspec = moving_tag(repo, commit, name, &crate::base::secrets::mask(message))?;
    repo.git(&["push", "-q", remote, &refspec])?;
    Ok(Some(name.clone()))
}

/// The remote's tags, by the commit they point at (annotated tags peeled).
pub fn remote_tags_by_commit(
    repo: &Repo,
    remote: &str,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, Error> {
    let listing = repo.git(&["ls-remote", "--tags", remote])?;
    let mut direct = std::collections::BTreeMap::new();
    let mut peeled = std::collections::BTreeMap::new();
    for (sha, r) in listing.lines().filter_map(|l| l.split_once('\t')) {
        let name = r.trim_start_matches("refs/tags/");
        match name.strip_suffix("^{}") {
            Some(name) => peeled.insert(name.to_string(), sha.to_string()),
            None => direct.insert(name.to_string(), sha.to_string()),
        };
    }
    let mut by_commit: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, sha) in direct {
        let commit = peeled.get(&name).cloned().unwrap_or(sha);
        by_commit.entry(commit).or_default().push(name);
    }
    Ok(by_commit)
}

/// Whether the tag `name` is one of an environment's `tags`.
pub fn belongs(tags: &Tags, name: &str) -> bool {
    match tags {
        Tags::None => false,
        Tags::Dated { moving, history } => {
            moving.as_deref() == Some(name)
                || history.as_deref().is_some_and(|h| {
                    let fixed = h.split('%').next().unwrap_or("");
                    !fixed.is_empty() && name.starts_with(fixed)
                })
        }
        Tags::Version { prefix } => name
            .strip_prefix(prefix.as_str())
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
    }
}

/// The tag names on the remote.
fn remote_tags(repo: &Repo, remote: &str) -> Result<Vec<String>, Error> {
    let listing = repo.git(&["ls-remote", "--tags", remote])?;
    Ok(listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(_, r)| {
            r.trim_start_matches("refs/tags/")
                .trim_end_matches("^{}")
                .to_string()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_tag_patterns() {
        let t = Utc::from_unix(1_795_666_510);
        assert_eq!(
            crate::base::time::strftime("DEPLOYED-%F/%H%M", &t).unwrap(),
            "DEPLOYED-2026-11-26/0415"
        );
        assert_eq!(
            crate::base::time::strftime("r%Y%m%d-%T-100%%", &t).unwrap(),
            "r20261126-041510-100%"
        );
        assert!(crate::base::time::strftime("x-%Q", &t).is_err());
        assert!(crate::config::valid_tag_name("DEPLOYED-2026-11-26/0415"));
        assert!(!crate::config::valid_tag_name("bad name"));
        assert!(!crate::config::valid_tag_name("a..b"));
        assert!(!crate::config::valid_tag_name("-x"));
    }

    #[test]
    fn verified_needs_the_last_verification_to_pass() {
        let mut passed = Event::new(Action::Verify, "staging", Outcome::Passed);
        let failed = Event::new(Action::Verify, "staging", Outcome::Failed);
        let deploy = Event::new(Action::Deploy, "staging", Outcome::Ok);
        let events = vec![deploy.clone(), passed.clone()];
        assert_eq!(verified(&events, "staging"), Some(&passed));
        assert_eq!(verified(&events, "live"), None);
        let events = vec![passed.clone(), failed];
        assert_eq!(verified(&events, "staging"), None);
        passed.forced = true;
        let line = serde_json::to_string(&passed).unwrap();
        assert!(line.contains("\"forced\":true"));
    }
}
