//! Every config error, word for word: the file, line, column and key, the
//! line with a caret, and a hint. Exit code 2, and nothing is touched.

use crate::harness::Test;

const BASE: &str =
    "[deploy]\npath = \"/srv/{app}\"\n\n[environments.staging]\nhosts = [\"local\"]\n";

/// Runs `gantry --config gantry.toml ARGS` on `config`: it must exit 2
/// with nothing on stdout; returns what it printed on stderr.
fn check(config: &str, args: &[&str]) -> String {
    let t = Test::new().start();
    t.write_config(config);
    let mut all = vec!["--config", "gantry.toml"];
    all.extend_from_slice(args);
    let run = t.gantry(&all);
    run.code(2);
    assert_eq!(run.stdout, "");
    run.stderr
}

#[test]
fn config_error_syntax() {
    insta::assert_snapshot!(check("[deploy\npath = \"/srv/app\"\n",
        &["plan", "staging"]), @r"
            error: unclosed table, expected `]` (key `deploy`)
             --> gantry.toml:1:8
              |
            1 | [deploy
              |        ^
            ");
}

#[test]
fn config_error_unknown_key() {
    insta::assert_snapshot!(check("[deploy]\npath = \"/srv/app\"\nbulid = [\"make\"]\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"]), @r#"
            error: unknown field `bulid`, expected one of `path`, `keep_releases`, `parallel`, `batch`, `shared`, `build`, `migrate`, `restart`, `logs`, `stop`, `serve`, `env`, `health`, `handover`, `balancer` (key `deploy.bulid`)
             --> gantry.toml:3:1
              |
            3 | bulid = ["make"]
              | ^^^^^
              |
              = help: did you mean `build`?
            "#);
}

#[test]
fn config_error_bad_host() {
    insta::assert_snapshot!(check("[deploy]\npath = \"/srv/app\"\n\n[environments.live]\nhosts = [\"deploy@web1.example.com\", \"deploy@web 2\"]\n",
        &["plan", "live"]), @r#"
            error: bad host `deploy@web 2`: `web 2` is not a valid host name (key `environments.live.hosts`)
             --> gantry.toml:5:37
              |
            5 | hosts = ["deploy@web1.example.com", "deploy@web 2"]
              |                                     ^^^^^^^^^^^^^^
              |
              = help: write `local`, `host`, `user@host` or `user@host:port` (names from ~/.ssh/config work too)
            "#);
}

#[test]
fn config_error_unknown_placeholder() {
    insta::assert_snapshot!(check("[vars]\ndomain = \"example.com\"\n\n[deploy]\npath = \"/srv/{domain}\"\nrestart = \"sudo systemctl restart gunicorn-{domian}\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"]), @r#"
            error: unknown placeholder `{domian}` (key `deploy.restart`)
             --> gantry.toml:6:44
              |
            6 | restart = "sudo systemctl restart gunicorn-{domian}"
              |                                            ^^^^^^^^
              |
              = help: known placeholders here: {app} {commit} {current} {domain} {env} {host} {path} {port} {release} {shared} {user}; define others under `[vars]` (write `{{` for a literal brace)
            "#);
}

#[test]
fn config_error_missing_environment() {
    insta::assert_snapshot!(check(BASE, &["deploy", "prod"]), @r"
        error: there is no environment `prod` (key `environments.prod`)
          --> gantry.toml
          = help: environments in this file: staging
        ");
}

#[test]
fn config_error_bad_duration() {
    insta::assert_snapshot!(check("[deploy]\npath = \"/srv/app\"\nhealth = { url = \"http://127.0.0.1/\", timeout = \"30 seconds\" }\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"]), @r#"
            error: `30 seconds` is not a duration (key `deploy.health.timeout`)
             --> gantry.toml:3:49
              |
            3 | health = { url = "http://127.0.0.1/", timeout = "30 seconds" }
              |                                                 ^^^^^^^^^^^^
              |
              = help: write a number and a unit: `500ms`, `30s`, `2m`
            "#);
}

#[test]
fn config_error_runtime_placeholder_in_path() {
    insta::assert_snapshot!(check("[deploy]\npath = \"/srv/{release}\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"]), @r#"
            error: unknown placeholder `{release}` (key `deploy.path`)
             --> gantry.toml:2:14
              |
            2 | path = "/srv/{release}"
              |              ^^^^^^^^^
              |
              = help: `{release}` is only known while a deploy runs, so `deploy.path` cannot use it
            "#);
}

#[test]
fn config_error_duration_out_of_range() {
    insta::assert_snapshot!(check("[deploy]\npath = \"/srv/app\"\nhealth = { url = \"http://127.0.0.1/\", timeout = \"18446744073709551615s\" }\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"]), @r#"
            error: `18446744073709551615s` is out of range: deploy.health.timeout is from 100ms to 10m00s (key `deploy.health.timeout`)
             --> gantry.toml:3:49
              |
            3 | health = { url = "http://127.0.0.1/", timeout = "18446744073709551615s" }
              |                                                 ^^^^^^^^^^^^^^^^^^^^^^^
            "#);
}

#[test]
fn config_error_nul_in_a_var() {
    insta::assert_snapshot!(check("[vars]\nx = \"a\\u0000b\"\n\n[deploy]\npath = \"/srv/app\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"]), @r#"
            error: a NUL character (`\u0000`) cannot be part of a value (key `vars.x`)
             --> gantry.toml:2:5
              |
            2 | x = "a\u0000b"
              |     ^^^^^^^^^^
              |
              = help: remove it; no command, path or file can carry it
            "#);
}

#[test]
fn config_error_missing_deploy_points_at_the_file_end() {
    insta::assert_snapshot!(check("[app]\nname = \"x\"\n",
        &["plan", "staging"]), @r#"
            error: missing table `[deploy]` (key `deploy`)
             --> gantry.toml:2:11
              |
            2 | name = "x"
              |           ^
              |
              = help: add `[deploy]` with at least `path = "/srv/{app}"`
            "#);
}

#[test]
fn config_error_not_utf8() {
    let t = Test::new().start();
    std::fs::write(
        t.repo.join("gantry.toml"),
        b"[deploy]\npath = \"/srv/\xff\"\n",
    )
    .unwrap();
    let run = t.gantry(&["--config", "gantry.toml", "plan", "staging"]);
    run.code(2);
    insta::assert_snapshot!(run.stderr, @r#"
        error: the config file is not UTF-8 text
         --> gantry.toml:2:14
          |
        2 | path = "/srv/�"
          |              ^
          |
          = help: save it as UTF-8
        "#);
}

#[test]
fn config_error_newline_in_an_env_file_value() {
    insta::assert_snapshot!(check("[deploy]\npath = \"/srv/app\"\n\n[env]\nGREETING = \"hello\\nworld\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["setup", "staging", "--dry-run"]), @r#"
            error: a value of the `.env` file must be a single line (key `env.GREETING`)
             --> gantry.toml:5:12
              |
            5 | GREETING = "hello\nworld"
              |            ^^^^^^^^^^^^^^
              |
              = help: systemd's EnvironmentFile and `gantry setup` read one variable per line
            "#);
}

#[test]
fn config_error_unknown_name_inside_a_var() {
    let config = format!("[vars]\nstatic = \"{{current}}/{{nosuch}}\"\n\n{BASE}");
    insta::assert_snapshot!(check(&config, &["plan", "staging"]), @r#"
    error: unknown placeholder `{nosuch}` (key `vars.static`)
     --> gantry.toml:2:21
      |
    2 | static = "{current}/{nosuch}"
      |                     ^^^^^^^^
      |
      = help: known placeholders here: {app} {commit} {current} {env} {host} {path} {port} {release} {shared} {static} {user}; define others under `[vars]` (write `{{` for a literal brace)
    "#);
}

#[test]
fn config_error_var_that_refers_to_itself() {
    let config = format!("[vars]\na = \"{{b}}/x\"\nb = \"{{a}}\"\n\n{BASE}");
    insta::assert_snapshot!(check(&config, &["plan", "staging"]), @r#"
    error: `a` refers to itself: a → b → a (key `vars.a`)
     --> gantry.toml:2:5
      |
    2 | a = "{b}/x"
      |     ^^^^^^^
    "#);
}

#[test]
fn config_error_unknown_maintenance() {
    let config = format!("{BASE}\n[database]\nmaintenance = \"sometimes\"\n");
    insta::assert_snapshot!(check(&config, &["plan", "staging"]), @r#"
    error: unknown maintenance `sometimes` (key `database.maintenance`)
     --> gantry.toml:8:15
      |
    8 | maintenance = "sometimes"
      |               ^^^^^^^^^^^
      |
      = help: use `true`, `false` or `"irreversible"` (hold writes only when the rehearsal finds that only the backup could put the deploy back)
    "#);
}

#[test]
fn config_error_unknown_checks_setting() {
    insta::assert_snapshot!(check("[deploy]\npath = \"/srv/app\"\n\n[database]\nengine = \"sqlite\"\npath = \"{shared}/db.sqlite3\"\nchecks = \"sometimes\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"]), @r#"
            error: unknown checks setting `sometimes` (key `database.checks`)
             --> gantry.toml:7:10
              |
            7 | checks = "sometimes"
              |          ^^^^^^^^^^^
              |
              = help: use `warn` (the default), `strict` (refuse the deploy) or `off`
            "#);
}
