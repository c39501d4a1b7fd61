//! The one place errors are worded: a message (what failed, where), then
//! its hints (`= help: …`, what to do).

use std::fmt::{self, Formatter, Result};

use super::host_lists::{write_problems, write_serving};
use super::{
    CopyNotUsed, Error, Failure, GitCause, HeldLock, HostProblem, KeyProblem, WrongDatabase,
};
use crate::model::commit::{Commit, Report};

impl fmt::Display for Error {
    fn fmt(&self, f: &mut Formatter<'_>) -> Result {
        self.message(f)?;
        // A config error draws its own hint under the snippet.
        if let Error::Config(_) = self {
            return Ok(());
        }
        for hint in self.hints() {
            write!(f, "\n  = help: {hint}")?;
        }
        Ok(())
    }
}

impl Error {
    /// What went wrong, without the hints.
    fn message(&self, f: &mut Formatter<'_>) -> Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::NoConfig { start } => write!(
                f,
                "no `gantry.toml` in `{}` or any folder above it",
                start.display()
            ),
            Error::DirtyTree { changes } => dirty_tree(f, changes),
            Error::NotARevision { rev } => write!(f, "`{rev}` is not a revision"),
            Error::NotARepository { dir } => write!(
                f,
                "`{}` is not in a git repository; Gantry deploys commits",
                dir.display()
            ),
            Error::UnknownCommit { rev, dir } => {
                write!(f, "`{rev}` is not a commit in {}", dir.display())
            }
            Error::TagPattern { pattern, reason } => {
                write!(f, "the tag pattern `{pattern}` cannot be used: {reason}")
            }
            Error::NotABackup { env, backup } => write!(
                f,
                "`{backup}` is not a backup name; `gantry backups {env}` lists them"
            ),
            Error::RestoreNotConfirmed { env, backup } => write!(
                f,
                "restoring replaces `{env}`'s database with the backup `{backup}`; pass `--yes` to confirm"
            ),
            Error::RestoreDeclined => write!(f, "not restored"),
            Error::NoDatabase { env } => write!(f, "`{env}` has no database configured"),
            Error::NothingToRehearse => write!(
                f,
                "there is nothing to rehearse: `deploy.migrate` is not set"
            ),
            Error::HookFailed { hook, detail } => write!(
                f,
                "the `{hook}` hook failed, and nothing was changed: {detail}"
            ),
            Error::NoHostWithRole { env, role } => write!(
                f,
                "no host of `{env}` has the role `{role}`: a host's roles are its `roles = [...]` in gantry.toml (`web` when it names none)"
            ),
            Error::NotADemo { dir } => {
                write!(f, "`{}` is not a Gantry demo folder", dir.display())
            }
            Error::DemoFolderTaken { dir } => write!(
                f,
                "`{}` exists and is not a Gantry demo folder; pass `--dir` with a new folder",
                dir.display()
            ),
            Error::AlreadyExists { path } => write!(
                f,
                "`{}` already exists; pass `--force` to overwrite it",
                path.display()
            ),
            Error::MissingSecrets { missing } => {
                write!(f, "secrets are missing on this machine; nothing was changed:")?;
                missing.iter().try_for_each(|m| write!(f, "\n  {m}"))
            }
            Error::ReleaseEndUnclear { ends } => write!(
                f,
                "the config has several environments a release could end at ({}); say which with `--to ENV`",
                ends.join(", ")
            ),
            Error::Git { command, cause } => match cause {
                GitCause::Spawn(e) => write!(f, "`{command}` failed: cannot run git: {e}"),
                GitCause::Failed { stderr } => write!(f, "`{command}` failed: {stderr}"),
            },
            Error::NotOnRemote { commit, remote, .. } => write!(
                f,
                "commit {} ({}) is not on the remote `{remote}`",
                commit.short(),
                commit.subject
            ),
            Error::Io { path, source } => write!(f, "`{}`: {source}", path.display()),
            Error::Unreachable { env, problems } => {
                let n = problems.len();
                match problems.iter().all(|p| !p.unreachable) {
                    true => write!(f, "could not connect to {n} of the hosts of `{env}`: this machine could not start what a connection needs; nothing was changed")?,
                    false => write!(f, "cannot reach {n} of the hosts of `{env}`; nothing was changed")?,
                }
                write_problems(f, problems)
            }
            Error::Locked { env, held } => locked(f, env, held),
            Error::Failed(failure) => failed(f, failure),
            Error::VerifyFailed { env, commit, reasons } => verify_failed(f, env, commit, reasons),
            Error::NotVerified { env, required, commit, last_verified } => not_verified(f, env, required, commit, last_verified.as_deref()),
            Error::RehearsalFailed(r) => rehearsal_failed(f, r),
            Error::WrongDatabase(w) => wrong_database(f, w),
            Error::CopyNotUsed(c) => copy_not_used(f, c),
            Error::BreaksTheServingRelease { env, how, breaks } => {
                write!(f, "the migrations rehearsed for `{env}` break the release it serves, which keeps serving beside the new one during {how}; nothing was migrated")?;
                breaks.iter().try_for_each(|b| write!(f, "\n  {b}"))
            }
            Error::MigrationChecks { env, migrations } => write!(
                f,
                "the checks of `{env}`'s pending migrations found, in {}, what `[database] checks = \"strict\"` refuses (each is in a warning above); nothing was migrated",
                migrations.join(", ")
            ),
            Error::RollbackNeedsTheSchema(r) => {
                let (env, release) = (&r.env, &r.release);
                write!(f, "the rollback of `{env}` to {release} was refused, and nothing changed: {} applied since {release} went live cannot be taken back ({})", r.migrations.join(", "), r.why)
            }
            Error::RealDatabaseChanged(r) => {
                write!(f, "the real database of `{}` changed while its rehearsal ran ({} on {})", r.env, r.database, r.host)?;
                r.changes.iter().try_for_each(|c| write!(f, "\n  {c}"))
            }
            Error::ReleaseStopped { tree, cause } => {
                write!(f, "{cause}\n\nthe release stopped:")?;
                tree.iter().try_for_each(|line| write!(f, "\n  {line}"))
            }
            Error::Hosts { what, problems } => {
                write!(f, "{what} failed on {} host{}", problems.len(), plural(problems.len()))?;
                write_problems(f, problems)
            }
        }
    }

    /// What to do about it, one hint per line.
    pub fn hints(&self) -> Vec<String> {
        let hint = |s: &str| vec![s.to_string()];
        match self {
            Error::Config(e) => e.hint.iter().cloned().collect(),
            Error::ReleaseStopped { .. } => vec![],
            Error::NoConfig { .. } => hint("run `gantry init` to write one, or pass `--config PATH`"),
            Error::DirtyTree { .. } => hint("commit or stash them first: a release deploys exactly what is committed"),
            Error::NotARepository { .. } => hint("keep `gantry.toml` at the root of the app's repository"),
            Error::NoDatabase { env } => vec![format!("set `[database]` (or `[environments.{env}.database]`) with `engine = \"sqlite\"` or `\"postgres\"`")],
            Error::ReleaseEndUnclear { .. } => hint("or chain them with `requires = \"…\"`"),
            Error::NotOnRemote { remote, in_release: true, .. } => vec![format!("push it (`git push {remote} HEAD`), or run `gantry release --push`")],
            Error::NotOnRemote { remote, .. } => vec![format!("push it first (`git push {remote} HEAD`); Gantry only deploys commits the whole team can see")],
            Error::Unreachable { problems, .. } => match key_help(problems) {
                Some(help) => hint(help),
                None if problems.iter().all(|p| !p.unreachable) => hint("raise the limit the reason names on this machine (open files: the hard limit, `ulimit -Hn`, set by `nofile` in /etc/security/limits.conf or `LimitNOFILE=` for a service) and deploy again; docs/fleets.md says how much a fleet needs"),
                None => hint("check that `ssh HOST` works from this machine"),
            },
            Error::Locked { env, held } => {
                if held.iter().any(|h| h.info.as_ref().is_none_or(|i| i.is_stale())) {
                    vec![format!("the process that took the lock is gone; if no deploy is running, clear it with `gantry unlock {env}`")]
                } else {
                    vec![format!("wait for that deploy to finish, or if you are sure none is running, `gantry unlock {env}`")]
                }
            }
            Error::Failed(failure) => vec![failed_hint(failure)],
            Error::VerifyFailed { env, .. } => vec![format!("the failure is recorded against the commit; fix it, deploy again and re-run `gantry verify {env}`")],
            Error::NotVerified { required, .. } => vec![format!("deploy it to `{required}` and run `gantry verify {required}` (or `gantry release`); or pass `--force`, and the record will say the gate was forced")],
            Error::RehearsalFailed(r) => match r.violation {
                Some(_) => hint("write a data migration that merges or fixes these rows before the constraint is added, then release again"),
                None => vec![format!("fix the migration and rehearse again with `gantry rehearse {}`", r.env)],
            },
            Error::WrongDatabase(w) => {
                let var = w.env_var.as_deref().unwrap_or("DB_PATH");
                vec![format!("make the settings read the database from {var} (`\"NAME\": os.environ[\"{var}\"]`, or DATABASE_URL for PostgreSQL), or point `[database]` at what the app uses; a SQLite file must be kept in `deploy.shared`")]
            }
            Error::CopyNotUsed(c) => {
                let var = c.env_var.as_deref().unwrap_or("DB_PATH");
                vec![format!("the app must open its database from {var}, or keep its SQLite file in `deploy.shared` and point `database.path` at it under {{shared}}; then rehearse again")]
            }
            Error::BreaksTheServingRelease { .. } => vec![
                "deploy it in two steps: first a release whose migrations only add (a new table, a nullable column or one with a default) and whose code works with both schemas, then one that drops, renames or constrains".into(),
                "or run it anyway with `--allow-incompatible` (requests the old release serves meanwhile may fail)".into(),
            ],
            Error::MigrationChecks { .. } => vec![
                "make each change the safe way its warning says, or, once you have looked at a migration, list it in `[database] reviewed`".into(),
            ],
            Error::RollbackNeedsTheSchema(r) => {
                let (env, backup) = (&r.env, &r.backup);
                let mut help = vec![format!("`gantry rollback {env} --code-only` switches the code back and leaves the schema as it is (the old code then runs on the new schema)")];
                if let Some((b, age)) = backup {
                    help.push(format!("or `gantry rollback {env} --restore-backup {b}`: the code back, and the database put back from the backup taken before those migrations, {age} ago (every write made since is lost)"));
                }
                help
            }
            Error::RealDatabaseChanged(r) => vec![format!("the rehearsal reached the real database: check the app's settings for a database it opens by a fixed path outside `deploy.shared`; `gantry backups {}` lists the backups taken before earlier migrations", r.env)],
            Error::Hosts { problems, .. } => key_help(problems).map(hint).unwrap_or_default(),
            Error::NotARevision { .. }
            | Error::UnknownCommit { .. }
            | Error::TagPattern { .. }
            | Error::NotABackup { .. }
            | Error::RestoreNotConfirmed { .. }
            | Error::RestoreDeclined
            | Error::NothingToRehearse
            | Error::NoHostWithRole { .. }
            | Error::HookFailed { .. }
            | Error::NotADemo { .. }
            | Error::DemoFolderTaken { .. }
            | Error::AlreadyExists { .. }
            | Error::MissingSecrets { .. }
            | Error::Git { .. }
            | Error::Io { .. } => vec![],
        }
    }
}

fn dirty_tree(f: &mut Formatter<'_>, changes: &[String]) -> Result {
    write!(f, "the work tree has uncommitted changes:")?;
    changes.iter().try_for_each(|c| write!(f, "\n    {c}"))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn locked(f: &mut Formatter<'_>, env: &str, held: &[HeldLock]) -> Result {
    write!(f, "`{env}` is locked; nothing was changed")?;
    for h in held {
        match &h.info {
            Some(info) => write!(f, "\n  {}: {}", h.host, info.describe())?,
            None => write!(f, "\n  {}: held, with no record of who holds it", h.host)?,
        }
    }
    Ok(())
}

fn verify_failed(f: &mut Formatter<'_>, env: &str, commit: &str, reasons: &[String]) -> Result {
    write!(
        f,
        "verification of `{env}` (commit {}) failed",
        &commit[..commit.len().min(8)]
    )?;
    reasons
        .iter()
        .try_for_each(|r| write!(f, "\n  {}", r.replace('\n', "\n    ")))
}

fn not_verified(
    f: &mut Formatter<'_>,
    env: &str,
    required: &str,
    commit: &Commit,
    last_verified: Option<&(Commit, String)>,
) -> Result {
    write!(f, "commit {} ({}) has not been verified on `{required}`, which `{env}` requires; nothing was changed", commit.short(), commit.subject)?;
    match last_verified {
        Some((c, when)) => write!(
            f,
            "\n  the last commit verified on `{required}` is {} ({}), {when}",
            c.short(),
            c.subject
        ),
        None => write!(f, "\n  no commit has been verified on `{required}` yet"),
    }
}

fn rehearsal_failed(f: &mut Formatter<'_>, r: &Report) -> Result {
    write!(
        f,
        "the migrations of {} ({}) fail on a copy of `{}`'s data; `{}` was not touched",
        r.commit.short(),
        r.commit.subject,
        r.env,
        r.env
    )?;
    if let Some(m) = &r.migration {
        let took = crate::base::time::human(std::time::Duration::from_secs_f64(r.seconds));
        write!(
            f,
            "\n  migration: {m} (failed after {took} on the copy, on {})",
            r.host
        )?;
    }
    match &r.violation {
        Some(v) => {
            write!(f, "\n  constraint: {}", v.describe())?;
            write_rows(f, &r.rows)
        }
        None => {
            write!(f, "\n  output:")?;
            r.output.lines().try_for_each(|l| write!(f, "\n    {l}"))
        }
    }
}

fn wrong_database(f: &mut Formatter<'_>, w: &WrongDatabase) -> Result {
    let given = match &w.env_var {
        Some(v) => format!(", given to the app as {v}"),
        None => String::new(),
    };
    if w.rehearsal {
        write!(f, "the app did not use the database Gantry copied for the rehearsal of `{}`; nothing was migrated, `{}` was not touched", w.env, w.env)?;
        write!(f, "\n  the copy:     {}{given}", w.expected)?;
    } else {
        write!(
            f,
            "the app on `{}` does not use the database in gantry.toml; nothing was migrated",
            w.env
        )?;
        write!(f, "\n  gantry.toml:  {} (`[database]`{given})", w.expected)?;
    }
    write!(
        f,
        "\n  the app uses: {} (Django's DATABASES[\"default\"], asked on {})",
        w.app, w.host
    )
}

fn copy_not_used(f: &mut Formatter<'_>, c: &CopyNotUsed) -> Result {
    write!(f, "the app did not use the database Gantry copied: the migrations of `{}`'s rehearsal ran, but the copy did not change; `{}` was not touched", c.env, c.env)?;
    let given = c
        .env_var
        .as_ref()
        .map(|v| format!(" (given to the app as {v})"))
        .unwrap_or_default();
    write!(f, "\n  looked for: a change in the copy {}{given} after the migrate command, which `{}` said had migrations pending", c.copy, c.check)?;
    write!(f, "\n  on: {}", c.host)
}

/// A deploy or rollback that failed: what failed, what happened to the
/// database, and what every host serves now.
fn failed(f: &mut Formatter<'_>, failure: &Failure) -> Result {
    let Failure {
        action,
        env,
        problems,
        serving,
        recovery,
        notes,
        constraint,
        interrupted,
        stuck,
    } = failure;
    if *interrupted {
        write!(f, "{action} to `{env}` was interrupted (Ctrl-C or SIGTERM)")?;
    } else {
        write!(
            f,
            "{action} to `{env}` failed on {} host{}",
            problems.len(),
            plural(problems.len())
        )?;
    }
    write_problems(f, problems)?;
    if let Some((what, rows)) = constraint {
        write!(f, "\n  constraint: {what}")?;
        write_rows(f, rows)?;
    }
    notes.iter().try_for_each(|n| write!(f, "\n  {n}"))?;
    if !stuck.is_empty() {
        write!(
            f,
            "\n  these hosts could not be put back and run the new release:"
        )?;
        stuck
            .iter()
            .try_for_each(|(host, release)| write!(f, "\n    {host}: {release}"))?;
    }
    if recovery.is_empty() && stuck.is_empty() {
        write!(f, "\n  every host was left serving what it served before:")?;
    } else {
        if !recovery.is_empty() {
            write!(
                f,
                "\n  putting hosts back also failed; these hosts need a person:"
            )?;
            recovery.iter().try_for_each(|p| write!(f, "\n  {p}"))?;
        }
        write!(f, "\n  what each host serves now:")?;
    }
    let serving: Vec<(&str, String)> = serving
        .iter()
        .map(
            |(host, release)| match stuck.iter().find(|(h, _)| h == host) {
                Some((_, new)) => (
                    host.as_str(),
                    format!("{new} (the new release: it could not be put back)"),
                ),
                None => (host.as_str(), release.clone()),
            },
        )
        .collect();
    write_serving(f, &serving)
}

fn failed_hint(failure: &Failure) -> String {
    let Failure {
        action,
        env,
        recovery,
        interrupted,
        stuck,
        ..
    } = failure;
    if !stuck.is_empty() {
        format!("when the hosts above can be reached, check them with `gantry status {env}`, clear the lock with `gantry unlock {env}`, and deploy again (the commit you want everywhere)")
    } else if recovery.iter().any(|p| p.unreachable) {
        format!("a host that could not be reached still holds the lock; when it is back, check it with `gantry status {env}`, clear the lock with `gantry unlock {env}` and run the {action} again (leftover releases are removed by the next deploy)")
    } else if *interrupted {
        format!("run the {action} again when you want it")
    } else {
        format!("fix the cause above and run the {action} again")
    }
}

/// What to do about a host key OpenSSH refused: a changed key is not
/// something to paper over with `ssh-keyscan`.
fn key_help(problems: &[HostProblem]) -> Option<&'static str> {
    if problems.iter().any(|p| p.key == Some(KeyProblem::Changed)) {
        Some("a changed key is what a machine in the middle looks like (or a server that was reinstalled): ask the server's owner for its new fingerprint (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console); only if it matches, remove the old key with `ssh-keygen -R HOST` (`-R '[HOST]:PORT'` for another port) and connect once with `ssh` to record the new one")
    } else if problems.iter().any(|p| p.key == Some(KeyProblem::Unknown)) {
        Some("Gantry never accepts an unknown key, whatever your ssh_config says: get the server's fingerprint from its owner (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console), connect once with `ssh HOST` and compare before answering yes (or add a checked line to `ssh.known_hosts`)")
    } else {
        None
    }
}

/// The rows that violate a constraint, under it.
fn write_rows(f: &mut Formatter<'_>, rows: &[String]) -> Result {
    if rows.is_empty() {
        return write!(f, "\n  (the violating rows could not be read)");
    }
    write!(f, "\n  rows that violate it:")?;
    rows.iter().try_for_each(|row| write!(f, "\n    {row}"))
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut Formatter<'_>) -> Result {
        write!(f, "{}: {} failed", self.host, self.step)?;
        if let Some(code) = self.code {
            write!(f, " (exit status {code})")?;
        }
        if let Some(command) = &self.command {
            let command = command.trim().replace('\n', "\n             ");
            write!(f, "\n    command: {command}")?;
        }
        if !self.detail.trim().is_empty() {
            let label = if self.command.is_some() && !self.unreachable {
                "output"
            } else {
                "reason"
            };
            write!(f, "\n    {label}:")?;
            self.detail
                .trim_end()
                .lines()
                .try_for_each(|l| write!(f, "\n      {l}"))?;
        }
        Ok(())
    }
}
