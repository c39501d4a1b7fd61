//! The local git repository: which commit to deploy, whether the remote has
//! it, and the `git archive` stream that is uploaded to the hosts (so
//! servers need no git credentials).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::base::limits::output_when_free;
use crate::error::{Error, GitCause};

pub use crate::model::commit::Commit;

/// The files that changed between a host's last upload and a commit.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The commit the host already has the source of.
    pub base: String,
    /// A gzipped tar of the added and modified files (empty when none).
    pub archive: Vec<u8>,
    pub changed: usize,
    pub deleted: Vec<String>,
}

/// The repository that holds the config file.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
}

impl Repo {
    pub fn at(dir: &Path) -> Repo {
        Repo {
            dir: dir.to_path_buf(),
        }
    }

    pub fn git(&self, args: &[&str]) -> Result<String, Error> {
        self.run(args, false)
    }

    /// Runs a git command that makes commits (notes, annotated tags): when
    /// the user has no git identity, Gantry signs as itself.
    pub fn git_as_gantry(&self, args: &[&str]) -> Result<String, Error> {
        self.run(args, true)
    }

    fn run(&self, args: &[&str], need_identity: bool) -> Result<String, Error> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir);
        if need_identity && self.git_plain(&["config", "user.email"]).is_none() {
            cmd.args([
                "-c",
                "user.name=Gantry",
                "-c",
                "user.email=gantry@localhost",
            ]);
        }
        let out = output_when_free(cmd.args(args)).map_err(|e| Error::Git {
            command: format!("git {}", args.join(" ")),
            cause: GitCause::Spawn(e),
        })?;
        if !out.status.success() {
            return Err(Error::Git {
                command: format!("git {}", args.join(" ")),
                cause: GitCause::Failed {
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                },
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    fn git_plain(&self, args: &[&str]) -> Option<String> {
        output_when_free(Command::new("git").arg("-C").arg(&self.dir).args(args))
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Fails unless the folder is in a git repository that git will read.
    /// Only git's own "not a git repository" says there is none (asked in
    /// English, whatever the user's locale): any other failure (a
    /// repository another user owns, git that cannot start for want of a
    /// descriptor) is told as git said it.
    fn ensure_repository(&self) -> Result<(), Error> {
        let args = ["rev-parse", "--git-dir"];
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir).args(args).env("LC_ALL", "C");
        let command = format!("git {}", args.join(" "));
        let out = output_when_free(&mut cmd).map_err(|e| Error::Git {
            command: command.clone(),
            cause: GitCause::Spawn(e),
        })?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        match (
            out.status.success(),
            stderr.contains("not a git repository"),
        ) {
            (true, _) => Ok(()),
            (false, true) => Err(Error::NotARepository {
                dir: self.dir.clone(),
            }),
            (false, false) => Err(Error::Git {
                command,
                cause: GitCause::Failed { stderr },
            }),
        }
    }

    /// Fails when tracked files have uncommitted changes.
    pub fn ensure_clean(&self) -> Result<(), Error> {
        let status = self.git(&["status", "--porcelain", "--untracked-files=no"])?;
        if status.trim().is_empty() {
            return Ok(());
        }
        Err(Error::DirtyTree {
            changes: status.lines().map(str::to_string).collect(),
        })
    }

    /// Pushes HEAD's branch to the remote.
    pub fn push_head(&self, remote: &str) -> Result<(), Error> {
        self.git(&["push", "-q", remote, "HEAD"]).map(|_| ())
    }

    /// How many commits `to` has that `from` lacks.
    pub fn count_between(&self, from: &str, to: &str) -> Option<usize> {
        self.git_plain(&["rev-list", "--count", &format!("{from}..{to}")])
            .and_then(|n| n.parse().ok())
    }

    /// Resolves a revision (default `HEAD`) to a commit.
    pub fn resolve(&self, rev: &str) -> Result<Commit, Error> {
        if rev.starts_with('-') {
            return Err(Error::NotARevision {
                rev: rev.to_string(),
            });
        }
        self.ensure_repository()?;
        let spec = format!("{rev}^{{commit}}");
        let sha = self
            .git(&["rev-parse", "--verify", "--quiet", &spec])
            .map_err(|_| Error::UnknownCommit {
                rev: rev.to_string(),
                dir: self.dir.clone(),
            })?;
        let subject = self.git(&["log", "-1", "--format=%s", &sha])?;
        Ok(Commit { sha, subject })
    }

    /// Fails unless `remote` has a branch or tag that contains the commit.
    /// Asks the remote itself (`git ls-remote`), not the possibly stale
    /// remote-tracking branches.
    pub fn ensure_on_remote(&self, commit: &Commit, remote: &str) -> Result<(), Error> {
        let refs = self.remote_refs(remote)?;
        self.on_remote(commit, remote, &refs)
    }

    /// Every ref of `remote` with its sha, as `git ls-remote` lists them.
    pub fn remote_refs(&self, remote: &str) -> Result<Vec<(String, String)>, Error> {
        let listing = self.git(&["ls-remote", remote])?;
        Ok(listing
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(sha, name)| (sha.to_string(), name.to_string()))
            .collect())
    }

    /// `ensure_on_remote`, from a listing of the remote's refs.
    pub fn on_remote(
        &self,
        commit: &Commit,
        remote: &str,
        refs: &[(String, String)],
    ) -> Result<(), Error> {
        let branches_and_tags = refs
            .iter()
            .filter(|(_, name)| name.starts_with("refs/heads/") || name.starts_with("refs/tags/"));
        for (sha, _) in branches_and_tags {
            if *sha == commit.sha {
                return Ok(());
            }
            let known = output_when_free(Command::new("git").arg("-C").arg(&self.dir).args([
                "merge-base",
                "--is-ancestor",
                &commit.sha,
                sha,
            ]))
            .map(|o| o.status.success())
            .unwrap_or(false);
            if known {
                return Ok(());
            }
        }
        Err(Error::NotOnRemote {
            commit: commit.clone(),
            remote: remote.to_string(),
            in_release: false,
        })
    }

    /// What changed from `base` to `commit` (without Gantry's config), as a
    /// gzipped tar of the added and modified entries and a list of deleted
    /// ones; `None` when `base` is not in this repository or too much
    /// changed for a delta to pay. Computed from the two archives
    /// (`archive` is the commit's), entry by entry: path, type, mode,
    /// content, link.
    pub fn delta(
        &self,
        base: &str,
        commit: &Commit,
        archive: &[u8],
    ) -> Result<Option<Delta>, Error> {
        if self
            .git(&["cat-file", "-e", &format!("{base}^{{commit}}")])
            .is_err()
        {
            return Ok(None);
        }
        // The archives, not the trees: what `export-subst`, `export-ignore`
        // and `.gitattributes` make of the files is what the host has.
        let old = self.archive(&Commit {
            sha: base.to_string(),
            ..commit.clone()
        })?;
        let (Some(old), Some(new)) = (super::tar::entries(&old), super::tar::entries(archive))
        else {
            return Ok(None);
        };
        let mut changed = Vec::new();
        for (path, entry) in &new {
            match old.get(path) {
                // A folder that became a file or the other way round: the
                // whole archive.
                Some(was) if was.is_dir() != entry.is_dir() => return Ok(None),
                Some(was) if was == entry => {}
                _ if entry.is_dir() => {}
                _ => changed.push(path.clone()),
            }
        }
        let deleted: Vec<String> = old
            .iter()
            .filter(|(path, entry)| !entry.is_dir() && !new.contains_key(*path))
            .map(|(path, _)| path.clone())
            .collect();
        if changed.len() > 2000 {
            return Ok(None);
        }
        let archive = if changed.is_empty() {
            Vec::new()
        } else {
            let mut args = vec![
                "archive".to_string(),
                "--format=tar.gz".into(),
                commit.sha.clone(),
                "--".into(),
            ];
            args.extend(changed.iter().map(|p| format!(":(literal){p}")));
            self.archive_with(&args)?
        };
        Ok(Some(Delta {
            base: base.to_string(),
            archive,
            changed: changed.len(),
            deleted,
        }))
    }

    /// The commit's tree as a tar stream, without Gantry's own config
    /// (the hosts never need it).
    pub fn archive(&self, commit: &Commit) -> Result<Vec<u8>, Error> {
        let exclude = format!(":(exclude){}", crate::config::FILE_NAME);
        self.archive_with(&[
            "archive".into(),
            "--format=tar".into(),
            commit.sha.clone(),
            "--".into(),
            ".".into(),
            exclude,
        ])
    }

    /// Runs `git ARGS` (an archive) and returns what it printed.
    fn archive_with(&self, args: &[String]) -> Result<Vec<u8>, Error> {
        let shown = || args.iter().take(3).cloned().collect::<Vec<_>>().join(" ");
        let out = output_when_free(Command::new("git").arg("-C").arg(&self.dir).args(args))
            .map_err(|e| Error::Git {
                command: format!("git {}", shown()),
                cause: GitCause::Spawn(e),
            })?;
        if !out.status.success() {
            return Err(Error::Git {
                command: format!("git {}", shown()),
                cause: GitCause::Failed {
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                },
            });
        }
        Ok(out.stdout)
    }
}
