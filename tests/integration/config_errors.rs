//! Every config error, word for word: the file, line, column and key, the
//! line with a caret, and a hint. Exit code 2, and nothing is touched.

use crate::harness::Test;

const BASE: &str =
    "[deploy]\npath = \"/srv/{app}\"\n\n[environments.staging]\nhosts = [\"local\"]\n";

fn check(name: &str, config: &str, args: &[&str], expected: &str) {
    let t = Test::new(name).start();
    t.write_config(config);
    let mut all = vec!["--config", "gantry.toml"];
    all.extend_from_slice(args);
    let run = t.gantry(&all);
    run.code(2);
    assert_eq!(run.stderr, expected, "\n--- actual stderr\n{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn config_error_syntax() {
    check(
        "config_error_syntax",
        "[deploy\npath = \"/srv/app\"\n",
        &["plan", "staging"],
        "error: unclosed table, expected `]` (key `deploy`)\n  --> gantry.toml:1:8\n  |\n1 | [deploy\n  |        ^\n",
    );
}

#[test]
fn config_error_unknown_key() {
    check(
        "config_error_unknown_key",
        "[deploy]\npath = \"/srv/app\"\nbulid = [\"make\"]\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"],
        "error: unknown field `bulid`, expected one of `path`, `keep_releases`, `parallel`, `batch`, `shared`, `build`, `migrate`, `restart`, `env`, `health` (key `deploy.bulid`)\n  --> gantry.toml:3:1\n  |\n3 | bulid = [\"make\"]\n  | ^^^^^\n  = help: did you mean `build`?\n",
    );
}

#[test]
fn config_error_bad_host() {
    check(
        "config_error_bad_host",
        "[deploy]\npath = \"/srv/app\"\n\n[environments.live]\nhosts = [\"deploy@web1.example.com\", \"deploy@web 2\"]\n",
        &["plan", "live"],
        "error: bad host `deploy@web 2`: `web 2` is not a valid host name (key `environments.live.hosts`)\n  --> gantry.toml:5:37\n  |\n5 | hosts = [\"deploy@web1.example.com\", \"deploy@web 2\"]\n  |                                     ^^^^^^^^^^^^^^\n  = help: write `local`, `host`, `user@host` or `user@host:port` (names from ~/.ssh/config work too)\n",
    );
}

#[test]
fn config_error_unknown_placeholder() {
    check(
        "config_error_unknown_placeholder",
        "[vars]\ndomain = \"example.com\"\n\n[deploy]\npath = \"/srv/{domain}\"\nrestart = \"sudo systemctl restart gunicorn-{domian}\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"],
        "error: unknown placeholder `{domian}` (key `deploy.restart`)\n  --> gantry.toml:6:44\n  |\n6 | restart = \"sudo systemctl restart gunicorn-{domian}\"\n  |                                            ^^^^^^^^\n  = help: known placeholders here: {app} {commit} {current} {domain} {env} {host} {path} {port} {release} {shared} {user}; define others under `[vars]` (write `{{` for a literal brace)\n",
    );
}

#[test]
fn config_error_missing_environment() {
    check("config_error_missing_environment", BASE, &["deploy", "prod"], "error: there is no environment `prod` (key `environments.prod`)\n  --> gantry.toml\n  = help: environments in this file: staging\n");
}

#[test]
fn config_error_bad_duration() {
    check(
        "config_error_bad_duration",
        "[deploy]\npath = \"/srv/app\"\nhealth = { url = \"http://127.0.0.1/\", timeout = \"30 seconds\" }\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"],
        "error: `30 seconds` is not a duration (key `deploy.health.timeout`)\n  --> gantry.toml:3:49\n  |\n3 | health = { url = \"http://127.0.0.1/\", timeout = \"30 seconds\" }\n  |                                                 ^^^^^^^^^^^^\n  = help: write a number and a unit: `500ms`, `30s`, `2m`\n",
    );
}

#[test]
fn config_error_runtime_placeholder_in_path() {
    check(
        "config_error_runtime_placeholder_in_path",
        "[deploy]\npath = \"/srv/{release}\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"],
        "error: unknown placeholder `{release}` (key `deploy.path`)\n  --> gantry.toml:2:14\n  |\n2 | path = \"/srv/{release}\"\n  |              ^^^^^^^^^\n  = help: `{release}` is only known while a deploy runs, so `deploy.path` cannot use it\n",
    );
}

#[test]
fn config_error_duration_out_of_range() {
    check(
        "config_error_duration_out_of_range",
        "[deploy]\npath = \"/srv/app\"\nhealth = { url = \"http://127.0.0.1/\", timeout = \"18446744073709551615s\" }\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"],
        "error: `18446744073709551615s` is out of range: deploy.health.timeout is from 100ms to 10m00s (key `deploy.health.timeout`)\n  --> gantry.toml:3:49\n  |\n3 | health = { url = \"http://127.0.0.1/\", timeout = \"18446744073709551615s\" }\n  |                                                 ^^^^^^^^^^^^^^^^^^^^^^^\n",
    );
}

#[test]
fn config_error_nul_in_a_var() {
    check(
        "config_error_nul_in_a_var",
        "[vars]\nx = \"a\\u0000b\"\n\n[deploy]\npath = \"/srv/app\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["plan", "staging"],
        "error: a NUL character (`\\u0000`) cannot be part of a value (key `vars.x`)\n  --> gantry.toml:2:5\n  |\n2 | x = \"a\\u0000b\"\n  |     ^^^^^^^^^^\n  = help: remove it; no command, path or file can carry it\n",
    );
}

#[test]
fn config_error_missing_deploy_points_at_the_file_end() {
    check(
        "config_error_missing_deploy_points_at_the_file_end",
        "[app]\nname = \"x\"\n",
        &["plan", "staging"],
        "error: missing table `[deploy]` (key `deploy`)\n  --> gantry.toml:2:11\n  |\n2 | name = \"x\"\n  |           ^\n  = help: add `[deploy]` with at least `path = \"/srv/{app}\"`\n",
    );
}

#[test]
fn config_error_not_utf8() {
    let t = Test::new("config_error_not_utf8").start();
    std::fs::write(
        t.repo.join("gantry.toml"),
        b"[deploy]\npath = \"/srv/\xff\"\n",
    )
    .unwrap();
    let run = t.gantry(&["--config", "gantry.toml", "plan", "staging"]);
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: the config file is not UTF-8 text\n  --> gantry.toml:2:14\n  |\n2 | path = \"/srv/\u{FFFD}\"\n  |              ^\n  = help: save it as UTF-8\n"
    );
}

#[test]
fn config_error_newline_in_an_env_file_value() {
    check(
        "config_error_newline_in_an_env_file_value",
        "[deploy]\npath = \"/srv/app\"\n\n[env]\nGREETING = \"hello\\nworld\"\n\n[environments.staging]\nhosts = [\"local\"]\n",
        &["setup", "staging", "--dry-run"],
        "error: a value of the `.env` file must be a single line (key `env.GREETING`)\n  --> gantry.toml:5:12\n  |\n5 | GREETING = \"hello\\nworld\"\n  |            ^^^^^^^^^^^^^^\n  = help: systemd's EnvironmentFile and `gantry setup` read one variable per line\n",
    );
}
