//! The command line, as clap parses it. Only this file knows the syntax.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cli::exit::ExitStatus;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("GANTRY_COMMIT"), ")");

/// Deploy a git commit to your servers over SSH: atomic releases,
/// rollback, locks, parallel and rolling deploys.
#[derive(Debug, Parser)]
#[command(name = "gantry", version = VERSION, after_help = ExitStatus::HELP)]
pub struct Cli {
    /// The config file (default: `gantry.toml` here or in a folder above).
    #[arg(long, global = true, value_name = "PATH", env = "GANTRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print the output of every command run on the hosts.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Machine-readable output (for `plan`, `status`, `log`).
    #[arg(long, global = true)]
    pub json: bool,
    /// When another deploy holds the lock, wait this long for it
    /// (`30s`, `5m`) instead of failing.
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        value_parser = parse_lock_wait,
        env = "GANTRY_LOCK_WAIT"
    )]
    pub lock_wait: Option<std::time::Duration>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a `gantry.toml` for the app in this repository (a Django app
    /// is recognised by its `manage.py`).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// Write the config for this kind of app.
        #[arg(long, value_parser = ["django"])]
        preset: Option<String>,
    },
    /// Validate the config, connect to the hosts and check what they need.
    Check {
        /// Only this environment.
        env: Option<String>,
    },
    /// Make an environment's servers ready: the layout, the shared `.env`
    /// with its secrets, the systemd unit and the nginx site. Safe to run
    /// again: it changes only what differs.
    Setup {
        env: String,
        /// Replace a `.env` that differs from the config (generated
        /// secrets keep their values).
        #[arg(long)]
        force: bool,
        /// Show what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print exactly what a deploy would run, host by host; run nothing.
    Plan {
        env: String,
        /// The commit to deploy.
        #[arg(default_value = "HEAD")]
        rev: String,
        /// What a rollback would do instead (reads the hosts, changes nothing).
        #[arg(long)]
        rollback: bool,
    },
    /// Deploy a commit that is on the remote (default: HEAD).
    Deploy {
        env: String,
        #[arg(default_value = "HEAD")]
        rev: String,
        /// Deploy even though the commit is not verified where this
        /// environment's `requires` says; the record says so.
        #[arg(long)]
        force: bool,
        /// Run pending migrations without rehearsing them on a copy of the
        /// data first; the record says so.
        #[arg(long)]
        no_rehearse: bool,
        /// Deploy even when every host already serves the commit.
        #[arg(long)]
        redeploy: bool,
        /// Hold the app's writes while migrations run: the nginx site that
        /// `gantry setup` writes answers non-GET requests with 503 and
        /// `Retry-After` until the deploy is done or put back.
        #[arg(long)]
        maintenance: bool,
        /// Run migrations that break the release still serving even though
        /// both releases serve at once (a handover, a rolling deploy).
        #[arg(long)]
        allow_incompatible: bool,
    },
    /// Run the health checks and the functional tests against an
    /// environment, and record the result against the commit it runs.
    Verify {
        env: String,
        /// Only the health checks, not the functional tests.
        #[arg(long)]
        health_only: bool,
    },
    /// Deploy to TO exactly the commit verified on FROM.
    Promote {
        from: String,
        to: String,
        /// Promote even if FROM's commit is not verified.
        #[arg(long)]
        force: bool,
        /// Run pending migrations without rehearsing them first.
        #[arg(long)]
        no_rehearse: bool,
    },
    /// The whole procedure for HEAD: pushed? → staging → verify → live →
    /// health checks → tags, along the `requires` chain.
    Release {
        /// Push HEAD to the remote first.
        #[arg(long)]
        push: bool,
        /// The environment the release ends at (default: the end of the
        /// only `requires` chain).
        #[arg(long, value_name = "ENV")]
        to: Option<String>,
    },
    /// Run a commit's migrations on a copy of an environment's database,
    /// and report; the real database is not touched.
    Rehearse {
        env: String,
        #[arg(default_value = "HEAD")]
        rev: String,
    },
    /// List the database backups taken before migrations.
    Backups { env: String },
    /// Put a database backup back (asks first, unless `--yes`).
    Restore {
        env: String,
        /// A name from `gantry backups ENV`.
        backup: String,
        #[arg(long)]
        yes: bool,
    },
    /// Switch every host back to the release before the current one, and
    /// the schema with it (migrations applied since are reversed, after a
    /// rehearsal on a copy, or the rollback is refused).
    Rollback {
        env: String,
        /// Only the code: leave the schema as the release being left made it.
        #[arg(long, conflicts_with = "restore_backup")]
        code_only: bool,
        /// The code, then the database put back from this backup (from
        /// `gantry backups ENV`): every write made since it is lost.
        #[arg(long, value_name = "BACKUP")]
        restore_backup: Option<String>,
        /// Do not ask before restoring the backup.
        #[arg(long, requires = "restore_backup")]
        yes: bool,
    },
    /// What is live where.
    Status {
        /// Only this environment.
        env: Option<String>,
        /// Times in UTC rather than this machine's time zone.
        #[arg(long)]
        utc: bool,
    },
    /// The history of deploys, rollbacks and locks of an environment.
    Log {
        env: String,
        /// How many entries to show, newest last.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// Times in UTC rather than this machine's time zone.
        #[arg(long)]
        utc: bool,
    },
    /// Hold deploys to an environment until `gantry unlock`.
    Lock {
        env: String,
        /// Why, for whoever meets the lock.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Clear an environment's lock (for example a stale one), recording who
    /// cleared it.
    Unlock { env: String },
    /// Run a command on every host of an environment, in `current`.
    Exec {
        env: String,
        /// Only on the hosts of this role (`web`, or a `[roles.NAME]`).
        #[arg(long)]
        role: Option<String>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run the whole procedure on the bundled example app, with local
    /// staging and live targets in a scratch folder: no server needed.
    Demo {
        /// Leave the apps running afterwards.
        #[arg(long)]
        keep: bool,
        /// Stop the apps a `--keep` demo left running.
        #[arg(long, conflicts_with = "keep")]
        stop: bool,
        /// The scratch folder (default: `$TMPDIR/gantry-demo`).
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff): `gantry man > gantry.1`, or
    /// `gantry man | man -l -`.
    Man,
    /// Print the JSON Schema of `gantry.toml`, for editors:
    /// `gantry schema > gantry.schema.json`, then `#:schema
    /// ./gantry.schema.json` at the top of `gantry.toml`.
    Schema,
}

impl Command {
    /// Commands that only read: their output is the answer, so the steps
    /// they run are not listed.
    pub fn hides_steps(&self) -> bool {
        matches!(
            self,
            Command::Status { .. }
                | Command::Log { .. }
                | Command::Exec { .. }
                | Command::Unlock { .. }
                | Command::Check { .. }
                | Command::Backups { .. }
        )
    }
}

/// `--lock-wait`: a duration of at most a day.
fn parse_lock_wait(text: &str) -> Result<std::time::Duration, String> {
    match crate::base::time::parse_duration(text) {
        Some(d) if d <= std::time::Duration::from_secs(86_400) => Ok(d),
        Some(_) => Err("at most a day (`24h`)".into()),
        None => Err("write a number and a unit: `30s`, `5m`".into()),
    }
}
