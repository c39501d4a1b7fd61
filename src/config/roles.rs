//! Roles (`[roles.NAME]`, a host's `roles`) and hooks (`[hooks]`).

use super::{Config, Template};

/// The role every host has unless it says otherwise: the web app, whose
/// restart, health check, handover and balancer are `[deploy]`'s.
pub const WEB: &str = "web";

/// `[roles.NAME]`: a kind of host besides the web app (a worker, a cron
/// host).
#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    /// Restarts the role's process after the switch, gracefully (let the
    /// job in hand finish).
    pub restart: Option<Template>,
    /// A command that exits 0 when the role's process is healthy.
    pub check: Option<Template>,
    /// Stops the role's process when a first deploy fails.
    pub stop: Option<Template>,
}

/// Where in a deploy or a rollback a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Before anything is locked or changed (this machine).
    BeforeDeploy,
    /// Every host built the release; nothing migrated nor switched.
    AfterPrepare,
    /// On each host, just before its activation.
    BeforeSwitch,
    /// On each host, once it passed its health check.
    AfterSwitch,
    /// The deploy is done and recorded (this machine).
    AfterDeploy,
    /// The deploy failed; every host was put back (this machine).
    OnFailure,
    /// A rollback ended (this machine).
    AfterRollback,
}

impl Point {
    /// The key in `[hooks]`.
    pub fn key(self) -> &'static str {
        match self {
            Point::BeforeDeploy => "before_deploy",
            Point::AfterPrepare => "after_prepare",
            Point::BeforeSwitch => "before_switch",
            Point::AfterSwitch => "after_switch",
            Point::AfterDeploy => "after_deploy",
            Point::OnFailure => "on_failure",
            Point::AfterRollback => "after_rollback",
        }
    }

    /// Whether the point may run on the hosts of a role.
    pub fn on_hosts(self) -> bool {
        matches!(
            self,
            Point::AfterPrepare | Point::BeforeSwitch | Point::AfterSwitch
        )
    }

    /// Whether a failure there stops (or puts back) the deploy, unless the
    /// hook is advisory.
    pub fn stops(self) -> bool {
        matches!(
            self,
            Point::BeforeDeploy | Point::AfterPrepare | Point::BeforeSwitch | Point::AfterSwitch
        )
    }
}

/// `[hooks] POINT`: a command, on this machine or on the hosts of a role.
#[derive(Debug, Clone)]
pub struct Hook {
    pub point: Point,
    pub run: Template,
    /// The role whose hosts run it; `None`: this machine.
    pub on: Option<String>,
    /// A failure is reported and the deploy goes on.
    pub advisory: bool,
}

impl Config {
    /// The hook at `point`, if any.
    pub fn hook(&self, point: Point) -> Option<&Hook> {
        self.hooks.iter().find(|h| h.point == point)
    }
}
