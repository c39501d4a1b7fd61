//! The `gantry.toml` that `init` writes for a Django app, from what the
//! app and its settings said (`Plan`); where neither could tell, the
//! file says what to check, in a comment next to the key.

use std::path::Path;

use super::ask::{in_repo, Answer};
use super::settings::{debug_off, Read};
use super::{DatabaseGuess, Django};

/// Everything `init` found out about a Django app.
pub struct Plan {
    pub d: Django,
    /// The settings module for servers.
    pub module: String,
    /// manage.py's default, when `module` is a production module beside it.
    pub instead_of: Option<String>,
    pub db: DatabaseGuess,
    pub allowed: Read,
    pub debug: Read,
    pub secret: Read,
    /// What the app answered, when it could be asked here.
    pub answer: Option<Answer>,
    /// gunicorn is in the requirements or installed.
    pub gunicorn: bool,
    /// uwsgi is, instead.
    pub uwsgi: bool,
}

impl Plan {
    /// The variables `init` gives the app, with stand-ins for the
    /// servers' values: what it is asked with.
    pub fn stand_in_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(name) = self.allowed.var() {
            env.push((name.to_string(), super::ask::DOMAIN.to_string()));
        }
        if let Some(name) = self.debug.var() {
            env.push((name.to_string(), debug_off(&self.debug).to_string()));
        }
        if let Some(name) = self.secret.var() {
            env.push((name.to_string(), super::ask::SECRET.to_string()));
        }
        env
    }

    /// The answer given with the servers' settings and environment.
    fn asked(&self) -> Option<&Answer> {
        self.answer.as_ref().filter(|a| a.with_env)
    }
}

/// Where the app keeps a folder, as `[vars]` and `deploy.shared` see it.
struct Folder {
    /// The `[vars]` line's value.
    value: String,
    /// Its comment.
    comment: String,
    /// The `deploy.shared` entry, for a folder inside the repository.
    shared: Option<String>,
}

/// `STATIC_ROOT`: built into each release (collectstatic).
fn static_folder(repo: &Path, plan: &Plan) -> Folder {
    let answered = plan.answer.as_ref().map(|a| a.static_root.as_str());
    match answered.filter(|r| !r.is_empty()) {
        Some(root) => match in_repo(repo, root) {
            Some(rel) => Folder {
                value: format!("{{current}}/{rel}"),
                comment: "STATIC_ROOT: collectstatic fills it in each release".into(),
                shared: None,
            },
            None => Folder {
                value: root.to_string(),
                comment: "STATIC_ROOT, outside the release".into(),
                shared: None,
            },
        },
        None => Folder {
            value: format!("{{current}}/{}", under_root(&plan.d, "static")),
            comment: if answered.is_some() {
                "STATIC_ROOT is not set: collectstatic needs it; set it to BASE_DIR / \"static\""
                    .into()
            } else {
                "check: your STATIC_ROOT (the app could not be asked here)".into()
            },
            shared: None,
        },
    }
}

/// `MEDIA_ROOT`: uploads, kept across releases.
fn media_folder(repo: &Path, plan: &Plan) -> Folder {
    let answered = plan.answer.as_ref().map(|a| a.media_root.as_str());
    match answered.filter(|r| !r.is_empty()) {
        Some(root) => match in_repo(repo, root) {
            Some(rel) => Folder {
                value: format!("{{shared}}/{rel}"),
                comment: "MEDIA_ROOT: uploads, kept across releases (deploy.shared)".into(),
                shared: Some(format!("{rel}/")),
            },
            None => Folder {
                value: root.to_string(),
                comment: "MEDIA_ROOT, outside the release: kept as it is".into(),
                shared: None,
            },
        },
        None if answered.is_some() => Folder {
            value: format!("{{shared}}/{}", under_root(&plan.d, "media")),
            comment: "MEDIA_ROOT is not set: uploads would land in the release and go with it; set it, and keep it in deploy.shared".into(),
            shared: None,
        },
        None => {
            let rel = under_root(&plan.d, "media");
            Folder {
                value: format!("{{shared}}/{rel}"),
                comment: "check: your MEDIA_ROOT (the app could not be asked here)".into(),
                shared: Some(format!("{rel}/")),
            }
        }
    }
}

/// `name` in the app's folder, relative to the repository.
fn under_root(d: &Django, name: &str) -> String {
    if d.root.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", d.root)
    }
}

/// A URL prefix nginx can serve from a folder (`/static/`), or empty.
fn url_prefix(url: Option<&str>, default: &str) -> String {
    match url {
        None => default.to_string(),
        Some(u) if u.starts_with('/') && u.len() > 1 => {
            if u.ends_with('/') {
                u.to_string()
            } else {
                format!("{u}/")
            }
        }
        // A CDN's URL, `/` or unset: nginx serves nothing for it.
        Some(_) => String::new(),
    }
}

/// `[env]`'s lines for the settings module, `ALLOWED_HOSTS` and `DEBUG`.
fn env_lines(plan: &Plan) -> String {
    let mut out = format!("DJANGO_SETTINGS_MODULE = \"{}\"", plan.module);
    if let Some(default) = &plan.instead_of {
        out.push_str(&format!(
            "   # for servers; manage.py's default is {default}"
        ));
    }
    out.push('\n');
    let asked = plan.asked();
    let nothing_read = plan.allowed == Read::Unknown && plan.debug == Read::Unknown;
    match &plan.allowed {
        Read::Env { name, .. } => {
            let note = match asked {
                Some(a) if !a.allowed => "check: the app did not allow the domain with it",
                _ => "ALLOWED_HOSTS reads it",
            };
            out.push_str(&format!("{name} = \"{{domain}}\"   # {note}\n"));
        }
        Read::Fixed { file } => out.push_str(&format!(
            "# ALLOWED_HOSTS is written in {file}, not read from a variable: add each\n# environment's domain there (Django answers 400 to any other).\n"
        )),
        Read::Unknown if nothing_read => out.push_str(
            "DJANGO_ALLOWED_HOST = \"{domain}\"   # check: the settings must read this name for ALLOWED_HOSTS\n",
        ),
        Read::Unknown => out.push_str(
            "# ALLOWED_HOSTS is not set in the settings: set it to each environment's domain.\n",
        ),
    }
    match &plan.debug {
        Read::Env { name, .. } => {
            let note = match asked {
                Some(a) if a.debug => "check: the app still runs with DEBUG = True with it",
                Some(_) => "turns DEBUG off (asked of the app)",
                None => "check that this turns DEBUG off",
            };
            out.push_str(&format!("{name} = \"{}\"   # {note}\n", debug_off(&plan.debug)));
        }
        Read::Fixed { file } if asked.is_some_and(|a| a.debug) => out.push_str(&format!(
            "# DEBUG = True is written in {file}: servers must not run with it.\n"
        )),
        Read::Unknown if nothing_read => out.push_str(
            "DJANGO_DEBUG_FALSE = \"y\"   # check: the settings must read this name to turn DEBUG off\n",
        ),
        _ => {}
    }
    out
}

/// `[secrets]`' line for `SECRET_KEY`.
fn secret_lines(plan: &Plan) -> String {
    match &plan.secret {
        Read::Env { name, .. } => {
            format!("{name} = {{ generate = true }}   # made once on each server, kept\n")
        }
        Read::Fixed { file } => format!(
            "# SECRET_KEY is written in {file}: read it from a variable instead\n# (os.environ[\"DJANGO_SECRET_KEY\"]) and uncomment this:\n# DJANGO_SECRET_KEY = {{ generate = true }}\n"
        ),
        Read::Unknown => "DJANGO_SECRET_KEY = { generate = true }   # made once on each server, kept; check: the settings must read this name\n".into(),
    }
}

/// Django's `[deploy.handover]`: a gunicorn per release, on two ports.
const HANDOVER: &str = r#"
# Zero downtime: each release's gunicorn starts beside the serving one (an
# instance of the template unit `gantry setup` writes, per port), is checked
# there, then nginx's traffic moves to it and the old one drains and stops
# (docs/handover.md). Another site on this server needs two other ports.
# Without it: `restart = "sudo systemctl restart gunicorn-{domain}"` under [deploy].
[deploy.handover]
ports = ["8001", "8002"]
start = "sudo -n systemctl enable --now gunicorn-{domain}@$GANTRY_PORT"
stop = "sudo -n systemctl disable --now gunicorn-{domain}@$GANTRY_PORT"
"#;

/// The comment over `[setup]`'s systemd unit when gunicorn is missing.
fn server_note(plan: &Plan) -> &'static str {
    match (plan.gunicorn, plan.uwsgi) {
        (true, _) => "",
        (false, true) => "# gunicorn is not in the requirements (uwsgi is): this unit runs gunicorn.\n# Add gunicorn to requirements.txt, or give the unit a template of your own\n# that runs uwsgi: systemd = { name = \"uwsgi-{domain}\", template = \"deploy/uwsgi.service\" }\n",
        (false, false) => "# gunicorn is not in the requirements: add it to requirements.txt (this unit\n# runs .venv/bin/gunicorn).\n",
    }
}

/// `[verify]`: the app's functional tests when it has a `functional_tests`
/// module beside `manage.py` (run with the repository's `.venv`, when
/// there is one); otherwise a smoke check of the home page, and how to add
/// the tests.
fn verify_section(repo: &Path, d: &Django, manage: &str) -> String {
    let dir = repo.join(&d.root);
    if dir.join("functional_tests").is_dir() || dir.join("functional_tests.py").is_file() {
        return format!(
            "# The functional tests, run from this machine against staging (with the\n\
             # repository's .venv when there is one).\n\
             [verify]\ncommand = \"python {manage} test functional_tests\"\n\
             env = {{ STAGING_SERVER = \"{{domain}}\" }}\n"
        );
    }
    format!(
        "# No `functional_tests` module next to manage.py: a smoke check that the home\n\
         # page answers HTML. With the book's functional tests, use instead:\n\
         #   command = \"python {manage} test functional_tests\"\n\
         #   env = {{ STAGING_SERVER = \"{{domain}}\" }}\n\
         [verify]\ncommand = '''{SMOKE} {{domain}}'''\n"
    )
}

/// The smoke check's command: the home page must answer HTML.
const SMOKE: &str = "python3 -c \"import sys, urllib.request; b = urllib.request.urlopen('http://' + sys.argv[1] + '/', timeout=10).read().decode(errors='replace').lower(); sys.exit(0 if '<html' in b or '<!doctype' in b else 'the home page is not HTML')\"";

pub fn django_config(repo: &Path, plan: &Plan) -> String {
    let d = &plan.d;
    let project = plan.module.split('.').next().unwrap_or("app").to_string();
    let name = if project.is_empty() {
        super::repo_name(repo)
    } else {
        project.clone()
    };
    let wsgi = plan
        .answer
        .as_ref()
        .map(|a| a.wsgi.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| format!("{project}.wsgi"));
    let root_line = if d.root.is_empty() {
        String::new()
    } else {
        format!(
            "root = \"{}\"            # the app's folder; commands run there\n",
            d.root
        )
    };
    let manage = if d.root.is_empty() {
        "manage.py".to_string()
    } else {
        format!("{}/manage.py", d.root)
    };
    let (static_dir, media) = (static_folder(repo, plan), media_folder(repo, plan));
    let urls = plan.answer.as_ref();
    let static_url = url_prefix(urls.map(|a| a.static_url.as_str()), "/static/");
    let media_url = match urls {
        // MEDIA_ROOT unset: Django's MEDIA_URL `/` would shadow the app.
        Some(a) if a.media_root.is_empty() => String::new(),
        _ => url_prefix(urls.map(|a| a.media_url.as_str()), "/media/"),
    };
    let shared = plan
        .db
        .shared
        .iter()
        .chain(media.shared.as_ref())
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let (db_source, db_table) = (&plan.db.source, &plan.db.table);
    let verify = verify_section(repo, d, &manage);
    let requirements = if d.requirements {
        ""
    } else {
        "# No requirements.txt was found: the preset's build installs from it.\n"
    };
    let env = env_lines(plan);
    let secrets = secret_lines(plan);
    let server = server_note(plan);
    let (static_value, static_comment) = (&static_dir.value, &static_dir.comment);
    let (media_value, media_comment) = (&media.value, &media.comment);
    format!(
        r#"# gantry.toml for the Django app `{name}`, written by `gantry init`.
# Set the hosts and domains below, then: `gantry check`, `gantry setup staging`,
# `gantry release`. Reference: Gantry's docs/config.md.
{requirements}
[app]
name = "{name}"
preset = "django"   # build: .venv + requirements.txt + collectstatic; migrate; pending check
{root_line}
# The nginx site serves {{static_url}} from {{static}} and {{media_url}} from {{media}}.
[vars]
wsgi = "{wsgi}"   # gunicorn serves {{wsgi}}:application
static = "{static_value}"   # {static_comment}
static_url = "{static_url}"
media = "{media_value}"   # {media_comment}
media_url = "{media_url}"

[deploy]
path = "/home/{{user}}/sites/{{domain}}"
keep_releases = 5
# Kept across releases; paths are relative to the release's root, not
# `app.root`.
shared = [{shared}]
logs = "sudo journalctl -u 'gunicorn-{{domain}}@*' -n 20 --no-pager"   # shown when a health check fails
# The app in the foreground on a port of its own: a rollback that takes
# migrations back first starts the older release this way on a copy of the data.
serve = ".venv/bin/gunicorn {{wsgi}}:application --bind 127.0.0.1:$GANTRY_PORT"
health = {{ url = "http://{{domain}}/", status = 200, timeout = "5s", retries = 20, interval = "500ms" }}
{HANDOVER}
# Backed up before migrations, restored if they fail, rehearsed on a copy
# before each deploy. Every deploy asks the app which database it opens
# and stops if it is not this one.
{db_source}
[database]
{db_table}

# Written to the shared .env (mode 0600) by `gantry setup`; every command and
# the gunicorn service read it.
[env]
{env}
[secrets]
{secrets}
[setup]
sudo = true
{server}systemd = {{ name = "gunicorn-{{domain}}" }}   # gunicorn-{{domain}}@.service: gunicorn on 127.0.0.1:PORT
nginx = {{ name = "{{domain}}" }}              # static and media files, the rest proxied to the upstream file

{verify}
[environments.staging]
hosts = ["deploy@staging.example.com"]
vars = {{ domain = "staging.example.com" }}

[environments.live]
hosts = ["deploy@example.com"]
vars = {{ domain = "example.com" }}
requires = "staging"   # only commits verified on staging go live
"#
    )
}
