//! The local git repository: which commit to deploy, whether the remote has
//! it, and the `git archive` stream that is uploaded to the hosts (so
//! servers need no git credentials).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// A resolved commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
}

impl Commit {
    pub fn short(&self) -> &str {
        &self.sha[..self.sha.len().min(8)]
    }
}

/// The repository that holds the config file.
pub struct Repo {
    dir: PathBuf,
}

impl Repo {
    pub fn at(dir: &Path) -> Repo {
        Repo {
            dir: dir.to_path_buf(),
        }
    }

    fn git(&self, args: &[&str]) -> Result<String, Error> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| Error::Git {
                command: format!("git {}", args.join(" ")),
                message: format!("cannot run git: {e}"),
            })?;
        if !out.status.success() {
            return Err(Error::Git {
                command: format!("git {}", args.join(" ")),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Resolves a revision (default `HEAD`) to a commit.
    pub fn resolve(&self, rev: &str) -> Result<Commit, Error> {
        if rev.starts_with('-') {
            return Err(Error::Usage(format!("`{rev}` is not a revision")));
        }
        let spec = format!("{rev}^{{commit}}");
        let sha = self
            .git(&["rev-parse", "--verify", "--quiet", &spec])
            .map_err(|_| {
                Error::Usage(format!("`{rev}` is not a commit in {}", self.dir.display()))
            })?;
        let subject = self.git(&["log", "-1", "--format=%s", &sha])?;
        Ok(Commit { sha, subject })
    }

    /// Fails unless `remote` has a branch or tag that contains the commit.
    /// Asks the remote itself (`git ls-remote`), not the possibly stale
    /// remote-tracking branches.
    pub fn ensure_on_remote(&self, commit: &Commit, remote: &str) -> Result<(), Error> {
        let listing = self.git(&["ls-remote", "--heads", "--tags", remote])?;
        for line in listing.lines() {
            let Some((sha, _)) = line.split_once('\t') else {
                continue;
            };
            if sha == commit.sha {
                return Ok(());
            }
            let known = Command::new("git")
                .arg("-C")
                .arg(&self.dir)
                .args(["merge-base", "--is-ancestor", &commit.sha, sha])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if known {
                return Ok(());
            }
        }
        Err(Error::NotOnRemote {
            commit: commit.clone(),
            remote: remote.to_string(),
        })
    }

    /// The commit's tree as a tar stream.
    pub fn archive(&self, commit: &Commit) -> Result<Vec<u8>, Error> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["archive", "--format=tar", &commit.sha])
            .output()
            .map_err(|e| Error::Git {
                command: "git archive".into(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::Git {
                command: format!("git archive --format=tar {}", commit.sha),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }
}
