//! `[roles.NAME]`: the kinds of host besides the web app, each with the
//! commands its hosts run after the switch; and `[hooks]`, which may run
//! on the hosts of a role.

use std::collections::BTreeMap;

use super::super::raw::{RawHook, RawHooks, RawRole, S};
use super::super::*;
use super::{Loader, Templates};

impl Loader<'_> {
    /// The roles in the order the file lists them.
    pub(super) fn roles(
        &self,
        raw: &BTreeMap<String, S<RawRole>>,
        templates: &mut Templates,
    ) -> Result<Vec<Role>, ConfigError> {
        let mut listed: Vec<(&String, &S<RawRole>)> = raw.iter().collect();
        listed.sort_by_key(|(_, r)| r.span().start);
        let mut roles = Vec::new();
        for (name, r) in listed {
            let prefix = format!("roles.{name}");
            if name == WEB {
                return Err(self
                    .error(r.span(), &prefix, "`web` is the web app: its restart, health check and handover are `[deploy]`'s")
                    .with_hint("set `restart`, `health` and `handover` under `[deploy]`, and name other roles (`[roles.worker]`)"));
            }
            self.plain_name(name, "role", r.span(), &prefix)?;
            let r = r.get_ref();
            let mut optional = |value: &Option<S<String>>, key: &str| match value {
                Some(v) => {
                    let key = format!("{prefix}.{key}");
                    let t = self.template(v, &key)?;
                    templates.push((key, v.clone(), t.clone()));
                    Ok::<_, ConfigError>(Some(t))
                }
                None => Ok(None),
            };
            roles.push(Role {
                name: name.clone(),
                restart: optional(&r.restart, "restart")?,
                check: optional(&r.check, "check")?,
                stop: optional(&r.stop, "stop")?,
            });
        }
        Ok(roles)
    }

    /// `[hooks]`: each point's command; `on` names a known role, and only
    /// where a point runs on hosts.
    pub(super) fn hooks(
        &self,
        raw: Option<&S<RawHooks>>,
        roles: &[Role],
        templates: &mut Templates,
    ) -> Result<Vec<Hook>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let r = raw.get_ref();
        let points = [
            (Point::BeforeDeploy, &r.before_deploy),
            (Point::AfterPrepare, &r.after_prepare),
            (Point::BeforeSwitch, &r.before_switch),
            (Point::AfterSwitch, &r.after_switch),
            (Point::AfterDeploy, &r.after_deploy),
            (Point::OnFailure, &r.on_failure),
            (Point::AfterRollback, &r.after_rollback),
        ];
        let mut hooks = Vec::new();
        for (point, value) in points {
            let Some(value) = value else { continue };
            let key = format!("hooks.{}", point.key());
            let span = value.span();
            let (run, on, advisory) = match value.get_ref() {
                RawHook::Command(c) => (c.clone(), None, false),
                RawHook::Table(t) => (t.run.clone(), t.on.clone(), t.advisory),
            };
            if let Some(role) = &on {
                if !point.on_hosts() {
                    return Err(self
                        .error(span.clone(), &format!("{key}.on"), format!("`{}` runs on this machine only", point.key()))
                        .with_hint("leave `on` out; `after_prepare`, `before_switch` and `after_switch` can run on the hosts of a role"));
                }
                if role != WEB && !roles.iter().any(|r| &r.name == role) {
                    return Err(self.error(
                        span.clone(),
                        &format!("{key}.on"),
                        format!("`{role}` is not a role"),
                    ));
                }
            }
            let run = S::new(span, run);
            let t = self.template(&run, &key)?;
            templates.push((key, run, t.clone()));
            hooks.push(Hook {
                point,
                run: t,
                on,
                advisory,
            });
        }
        Ok(hooks)
    }
}
