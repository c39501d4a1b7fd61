//! `gantry setup ENV`: makes a fresh server ready, idempotently. On every
//! host: the release layout; the shared `.env` built from `[env]` and
//! `[secrets]` (mode 0600, generated secrets made once and kept, never
//! overwritten without `--force`); and the systemd unit and nginx site
//! rendered from templates (built-in for the Django preset, or the user's
//! own, with strict undefined variables), installed with `sudo` where
//! configured, then reloaded. A second run reports every item unchanged;
//! `--dry-run` shows what it would change.

use std::collections::BTreeMap;

use crate::base::shell::quote;
use crate::cli::output::Printer;
use crate::config::{render, Config, Environment, SecretSource, Service};
use crate::error::{Error, HostProblem};
use crate::model::lock::LockInfo;
use crate::remote::locking;
use crate::remote::site::{self, each, each_host, Site};

/// What the install script says of a file whose last reload failed.
const PENDING: &str = "reload pending: the last one did not succeed; reloading again";

/// The marker a generated secret's line carries up to the host, where the
/// existing value is kept or a new one made.
const GENERATE: &str = "@@GANTRY_GENERATE@@";

mod context;
mod items;
mod report;

use items::{answer, unexpected, Item, State};
use report::{Report, SetupReport};

pub use context::context;

pub struct Options {
    pub force: bool,
    pub dry_run: bool,
}

pub async fn setup(
    config: &Config,
    env_name: &str,
    options: &Options,
    printer: &Printer,
) -> Result<(), Error> {
    let env = config.environment(env_name)?;
    // Secrets from this machine must be there before any host is touched.
    missing_secrets(config)?;
    printer.headline(&format!(
        "{} {} ({} host{})",
        if options.dry_run {
            "Checking what setup would change on"
        } else {
            "Setting up"
        },
        env.name,
        env.hosts.len(),
        if env.hosts.len() == 1 { "" } else { "s" }
    ));
    let results = every_host(config, env, options, printer).await?;
    let mut problems = Vec::new();
    let mut report = Report::default();
    for (spec, result) in env.hosts.iter().zip(results) {
        match result {
            Ok(items) => report.add(&spec.name, items),
            Err(mut p) => {
                report.fail(&spec.name, &p.step);
                if config.setup.sudo && p.code == Some(127) && p.output.contains("sudo: not found")
                {
                    p.detail.push_str(&format!(
                        "\n`sudo` is not installed on {}, and `setup.sudo = true` asks for it: install it, or set `sudo = false` with a user that may write {}",
                        spec.name,
                        "the unit's and the site's folders"
                    ));
                }
                problems.push(p);
            }
        }
    }
    printer.result(&report.close(options.dry_run));
    if !problems.is_empty() {
        return Err(Error::Hosts {
            what: format!("setup of `{env_name}`"),
            problems,
        });
    }
    if printer.json_mode() {
        printer.json(&SetupReport {
            action: "setup",
            env: &env.name,
            dry_run: options.dry_run,
            changed: report.changed,
            unchanged: report.unchanged,
            hosts: &report.hosts,
        });
    }
    Ok(())
}

/// The secrets `[secrets]` reads on this machine that are not there.
fn missing_secrets(config: &Config) -> Result<(), Error> {
    let missing: Vec<String> = config
        .setup
        .secrets
        .iter()
        .filter(|s| s.value.is_none() && s.source != SecretSource::Generate)
        .map(|s| match &s.source {
            SecretSource::Env(var) => format!("{}: set the environment variable `{var}`", s.name),
            SecretSource::File(path) => format!("{}: create the file `{}`", s.name, path.display()),
            SecretSource::Generate => unreachable!("filtered"),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingSecrets { missing })
    }
}

/// Sets up every host of `env` (under its lock, unless a dry run), in the
/// order of the config.
async fn every_host(
    config: &Config,
    env: &Environment,
    options: &Options,
    printer: &Printer,
) -> Result<Vec<Result<Vec<Item>, HostProblem>>, Error> {
    let mut sites = site::connect(config, env, printer).await?;
    // The layout is looked at before the lock, which creates it.
    let layouts = each_host(&sites, |s| async move {
        let script = format!(
            "p={}\nif [ -d \"$p/releases\" ] && [ -d \"$p/shared\" ] && [ -d \"$p/.gantry\" ]; then echo present; else echo missing; fi",
            quote(&s.layout.path)
        );
        s.step(printer, "layout", None, &script, None)
            .await
            .map(|o| o.stdout.trim() == "present")
    })
    .await;
    let info = LockInfo::new(&format!("gantry setup {}", env.name), None, false);
    if !options.dry_run {
        sites = locking::lock(sites, &env.name, &info, printer).await?;
    }
    let indexes: Vec<usize> = (0..sites.len()).collect();
    let (sites_ref, layouts_ref) = (&sites, &layouts);
    let results = each(&indexes, env.parallel, |&i| async move {
        let present = layouts_ref[i].clone()?;
        host(config, env, &sites_ref[i], present, options, printer).await
    })
    .await;
    if !options.dry_run {
        locking::unlock(&sites, &info, printer).await;
    }
    site::close(sites).await;
    printer.finish_hosts();
    Ok(results)
}

async fn host(
    config: &Config,
    env: &Environment,
    site: &Site,
    layout_present: bool,
    options: &Options,
    printer: &Printer,
) -> Result<Vec<Item>, HostProblem> {
    let layout = &site.layout;
    let mut items = Vec::new();
    let dry = if options.dry_run { "1" } else { "0" };

    // The release layout: taking the lock made it, when it was missing.
    let state = match (layout_present, options.dry_run) {
        (true, _) => State::Unchanged,
        (false, true) => State::WouldCreate,
        (false, false) => State::Created,
    };
    items.push(Item {
        what: format!("layout {}", layout.path),
        state,
        detail: Vec::new(),
    });

    // The env file, with the secrets on stdin, never on a command line.
    if config.setup.has_env_file() {
        let mut text = String::new();
        for (_, line) in crate::data::env_file::lines(config, env, &site.spec, layout) {
            text.push_str(&line);
            text.push('\n');
        }
        for secret in &config.setup.secrets {
            match &secret.value {
                Some(v) => text.push_str(&format!("{}={}\n", secret.name, quote(v))),
                None => text.push_str(&format!("{}={GENERATE}\n", secret.name)),
            }
        }
        let file = format!("{}/{}", layout.shared(), config.setup.env_file);
        let force = if options.force { "1" } else { "0" };
        let out = site
            .step(
                printer,
                "env file",
                None,
                &env_file_script(&file, dry, force),
                Some(text.as_bytes()),
            )
            .await?;
        let (state, mut detail) =
            answer(&out.stdout).map_err(|l| unexpected(site, "env file", &l))?;
        // The app reads its environment when it starts: a changed file
        // reaches it only through a restart.
        if state == State::Updated && !options.dry_run {
            if let Some(release) = restart_serving(config, env, site, printer).await? {
                detail.push(format!("the app was restarted ({release}) to read it"));
            }
        }
        items.push(Item {
            what: format!("{file} (mode 0600)"),
            state,
            detail,
        });
    }

    // The upstream file a handover rewrites, which the nginx site
    // includes: it must be there before nginx reads the site.
    if let Some(h) = &config.deploy.handover {
        let vars = crate::remote::release::run_vars(&site.spec, layout, None, None);
        let file = h.upstream.render(&vars);
        let line = crate::remote::handover::upstream_line(&h.ports[0].render(&vars));
        let script = format!(
            "f={f}
if [ -f \"$f\" ]; then echo unchanged
elif [ {dry} = 1 ]; then echo 'would create'
             else mkdir -p \"$(dirname \"$f\")\" && printf '%s' {line} > \"$f\" && echo created; fi",
            f = quote(&file),
            line = quote(&line),
        );
        let out = site
            .step(printer, "upstream file", None, &script, None)
            .await?;
        let (state, detail) =
            answer(&out.stdout).map_err(|l| unexpected(site, "upstream file", &l))?;
        items.push(Item {
            what: format!("upstream file {file} (a handover rewrites it)"),
            state,
            detail,
        });
    }

    // The systemd unit and the nginx site.
    let context = context(config, &site.spec, layout);
    for service in &config.setup.services {
        items.push(install(config, env, site, service, &context, options, printer).await?);
    }
    Ok(items)
}

async fn install(
    config: &Config,
    env: &Environment,
    site: &Site,
    service: &Service,
    context: &BTreeMap<String, String>,
    options: &Options,
    printer: &Printer,
) -> Result<Item, HostProblem> {
    let name = service.name.render(context);
    let mut context = context.clone();
    context.insert("unit".into(), name.clone());
    let text = render(&service.template, &context).map_err(|e| {
        site.problem(
            service.kind.label(),
            None,
            None,
            &format!("the template `{}` does not render: {e}", service.origin),
        )
    })?;
    let dir = service.dir.render(&context);
    let target = format!("{dir}/{}", service.kind.file_name(&name));
    let sudo = if config.setup.sudo { "sudo -n " } else { "" };
    let dry = if options.dry_run { "1" } else { "0" };
    // A reload that has not succeeded yet is remembered on the host (in
    // the site's `.gantry/`, never beside the installed file), so that
    // the next setup reloads even when the file is unchanged.
    let pending = format!(
        "{}/reload-pending/{}",
        site.layout.gantry(),
        service.kind.file_name(&name)
    );
    let script = format!(
        "set -e\nt={target}\ntmp=$(mktemp)\ncat > \"$tmp\"\n\
         if [ -f \"$t\" ] && cmp -s \"$tmp\" \"$t\"; then rm -f \"$tmp\"; echo unchanged; if [ -e {pending} ]; then echo {pending_mark}; fi; exit 0; fi\n\
         if [ {dry} = 1 ]; then if [ -f \"$t\" ]; then echo 'would update'; diff -u \"$t\" \"$tmp\" | tail -n +3 || true; else echo 'would create'; fi; rm -f \"$tmp\"; exit 0; fi\n\
         state=created; [ -f \"$t\" ] && state=updated\n\
         {sudo}mkdir -p {dir}\n{sudo}install -m 0644 \"$tmp\" \"$t\"\nrm -f \"$tmp\"\n\
         {mark}echo $state",
        target = quote(&target),
        dir = quote(&dir),
        pending = quote(&pending),
        pending_mark = quote(PENDING),
        mark = if service.reload.is_some() {
            format!("mkdir -p \"$(dirname {p})\" && touch {p}\n", p = quote(&pending))
        } else {
            String::new()
        },
    );
    let label = service.kind.label();
    let out = site
        .step(printer, label, None, &script, Some(text.as_bytes()))
        .await?;
    let (state, detail) = answer(&out.stdout).map_err(|l| unexpected(site, label, &l))?;
    let item = Item {
        what: format!("{label} {target} (template: {})", service.origin),
        state,
        detail,
    };
    let retry = item.detail.iter().any(|l| l == PENDING);
    if matches!(item.state, State::Created | State::Updated) || retry {
        if let Some(reload) = &service.reload {
            let command = reload.render_shell(&context);
            let script = format!(
                "export GANTRY_UNIT={}\nexport GANTRY_ENV={}\n{sudo}sh -c {} && rm -f {}",
                quote(&service.kind.file_name(&name)),
                quote(&env.name),
                quote(&command),
                quote(&pending)
            );
            site.step(
                printer,
                &format!("reload {label}"),
                Some(&command),
                &script,
                None,
            )
            .await?;
        }
    }
    Ok(item)
}

/// Restarts the release `current` points at on `site`, if there is one
/// and a restart command (with a handover, hands it over to itself on the
/// other port: no request is refused); returns the release restarted.
async fn restart_serving(
    config: &Config,
    env: &Environment,
    site: &Site,
    printer: &Printer,
) -> Result<Option<String>, HostProblem> {
    if config.deploy.restart.is_none() && config.deploy.handover.is_none() {
        return Ok(None);
    }
    let script = format!(
        "t=$(readlink {} 2>/dev/null) && echo \"${{t##*/}}\" || true",
        quote(&site.layout.current())
    );
    let out = site
        .step(printer, "where current points", None, &script, None)
        .await?;
    let release = out.stdout.trim().to_string();
    if release.is_empty() {
        return Ok(None);
    }
    if let Some(h) = &config.deploy.handover {
        // The same release, started beside itself: it takes the traffic
        // with the new environment, the old process drains.
        let scripts = crate::data::handover::scripts(
            config,
            env,
            (&site.spec, &site.layout),
            h,
            (&release, ""),
            Some(&release),
        );
        let activation = crate::remote::activation::Activation {
            layout: &site.layout,
            release: &release,
            put_back: None,
            restart: None,
            check: None,
            check_back: None,
            handover: Some((scripts, Some(&release))),
        };
        let out = site
            .step(printer, "handover", None, &activation.run_script(), None)
            .await?;
        if let crate::remote::activation::Verdict::Failed {
            step, code, detail, ..
        } = crate::remote::activation::parse(&out.stdout)
        {
            let mut p = site.problem(
                &format!("handover to read the env file: {step}"),
                None,
                code,
                &detail,
            );
            p.output = detail;
            return Err(p);
        }
    } else if let Some(restart) = &config.deploy.restart {
        let steps =
            crate::data::steps::Steps::new(config, env, &site.spec, &site.layout, &release, "");
        site.run(printer, &steps.command("restart", restart, true), None)
            .await?;
    }
    let started = crate::remote::activation::env_started_file(&site.layout);
    site.step(
        printer,
        "record the restart",
        None,
        &format!(": > {}", quote(&started)),
        None,
    )
    .await?;
    Ok(Some(release))
}

/// Merges the wanted env file (stdin) with the one on the host: generated
/// secrets keep the value they have, or get a new random one; then the file
/// is created, left alone, or (with force) replaced. Prints the state, then
/// the names of the keys that differ (never their values).
fn env_file_script(file: &str, dry: &str, force: &str) -> String {
    format!(
        r#"set -e
umask 077
f={file}
[ {dry} = 1 ] || mkdir -p "$(dirname "$f")"
if [ -d "$(dirname "$f")" ]; then new=$(mktemp "$f.XXXXXX"); else new=$(mktemp); fi
trap 'rm -f "$new"' EXIT
while IFS= read -r line; do
  case "$line" in
    *={GENERATE})
      key=${{line%%=*}}
      old=$(grep -m 1 "^$key=" "$f" 2>/dev/null || true)
      if [ -n "$old" ]; then printf '%s\n' "$old"
      else printf '%s=%s\n' "$key" "$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-64)"; fi ;;
    *) printf '%s\n' "$line" ;;
  esac
done > "$new"
# Lines the host has for names the config does not give are kept, unless
# --force.
ours=$(sed 's/=.*//' "$new")
if [ -f "$f" ] && [ {force} != 1 ]; then
  while IFS= read -r line; do
    case "$line" in *=*) ;; *) continue ;; esac
    grep -q "^${{line%%=*}}=" "$new" || printf '%s\n' "$line" >> "$new"
  done < "$f"
fi
if [ -f "$f" ] && cmp -s "$new" "$f"; then echo unchanged; exit 0; fi
keys() {{ sed 's/=.*//' "$1" | sort; }}
changes() {{
  [ -f "$f" ] || return 0
  for k in $(keys "$new"); do
    a=$(grep -m 1 "^$k=" "$f" || true); b=$(grep -m 1 "^$k=" "$new")
    if [ -z "$a" ]; then echo "+ $k"; elif [ "$a" != "$b" ]; then echo "~ $k (value changed)"; fi
  done
  for k in $(keys "$f"); do grep -q "^$k=" "$new" || echo "- $k"; done
  if [ {force} != 1 ]; then
    for k in $(keys "$f"); do printf '%s\n' "$ours" | grep -qx "$k" || echo "= $k (not in the config: kept; --force removes it)"; done
  fi
}}
if [ {dry} = 1 ]; then
  if [ -f "$f" ]; then echo 'would update'; changes; else echo 'would create'; fi
  exit 0
fi
state=created; [ -f "$f" ] && state=updated
what=$(changes)
chmod 600 "$new"
mv -f "$new" "$f"
trap - EXIT
echo $state
[ -z "$what" ] || printf '%s\n' "$what""#,
        file = quote(file),
    )
}
