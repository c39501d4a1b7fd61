//! `[roles.NAME]`: the kinds of host besides the web app, each with the
//! commands its hosts run after the switch.

use std::collections::BTreeMap;

use super::super::raw::{RawRole, S};
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
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(self.error(
                    r.span(),
                    &prefix,
                    format!("`{name}` is not a valid role name (letters, digits, `-`, `_`)"),
                ));
            }
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
}
