//! `[database]` as the rest of Gantry sees it.

use super::Template;

/// The environment's database: backed up before migrations, restored when
/// they fail, and copied for rehearsals.
#[derive(Debug, Clone)]
pub struct Database {
    pub engine: Engine,
    /// The variable through which the app receives the database's location
    /// (`DB_PATH`, `DATABASE_URL`); Gantry sets it for every command, and
    /// points it at the copy during a rehearsal.
    pub env_var: Option<String>,
    pub keep_backups: usize,
    /// Exits non-zero when migrations are pending (`manage.py migrate
    /// --check`); without it, migrations always count as pending.
    pub check: Option<Template>,
    /// Reverses the migrations a failed deploy applied, run in the new
    /// release with `GANTRY_MIGRATIONS` (newest first, space-separated);
    /// the Django preset reverses without it (`manage.py migrate APP
    /// PREVIOUS`).
    pub reverse: Option<Template>,
    /// When a deploy holds the app's writes while migrations run.
    pub maintenance: Maintenance,
    /// Prints the pending migrations' SQL for the checks (`data::checks`);
    /// the Django preset asks the app without it.
    pub sql: Option<Template>,
    /// What the checks' findings do.
    pub checks: Checks,
    /// Migrations whose findings were looked at: not reported again.
    pub reviewed: Vec<String>,
}

/// What the checks of the migrations' SQL do with what they find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checks {
    /// Warn, and go on.
    #[default]
    Warn,
    /// Refuse the deploy before anything migrates.
    Strict,
    /// Do not look.
    Off,
}

/// When a deploy holds the app's writes while its migrations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Maintenance {
    /// Only with `--maintenance`.
    #[default]
    Never,
    /// Whenever migrations are pending.
    Always,
    /// When the rehearsal found that only the backup could put the deploy
    /// back (or there was no rehearsal to tell).
    Irreversible,
}

#[derive(Debug, Clone)]
pub enum Engine {
    None,
    /// The database file on the migrate host.
    Sqlite {
        path: Template,
    },
    /// `postgresql://user@host:port/name`, reached from the migrate host.
    Postgres {
        url: Template,
    },
}

impl Database {
    pub fn none() -> Database {
        Database {
            engine: Engine::None,
            env_var: None,
            keep_backups: 5,
            check: None,
            reverse: None,
            maintenance: Maintenance::Never,
            sql: None,
            checks: Checks::Warn,
            reviewed: Vec::new(),
        }
    }
}
