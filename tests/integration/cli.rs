//! The command line itself: exit codes documented in `--help`, the version.

use crate::harness::Test;

#[test]
fn help_documents_the_exit_codes() {
    let t = Test::new("help_documents_the_exit_codes").start();
    let run = t.gantry(&["--help"]);
    run.success()
        .stdout_has("Exit codes:\n  0  success\n  1  failed on a host; every host was left serving what it served before\n  2  bad config or usage; nothing was touched\n  3  a host could not be reached\n  4  the environment is locked by another deploy (see `gantry unlock`)\n  5  another error on this machine (git, files)");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let t = Test::new("version_names_the_commit_it_was_built_from").start();
    let run = t.gantry(&["--version"]);
    run.success();
    assert!(
        run.stdout
            .starts_with(concat!("gantry ", env!("CARGO_PKG_VERSION"), " (")),
        "{}",
        run.stdout
    );
}

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let t = Test::new("init_writes_a_config_that_loads_and_refuses_to_overwrite").start();
    std::fs::remove_file(t.repo.join("gantry.toml")).ok();
    t.gantry(&["init"]).success();
    t.gantry(&["plan", "staging"])
        .success()
        .stdout_has("Nothing was run.");
    t.gantry(&["init"])
        .code(2)
        .stderr_has("already exists; pass `--force`");
    t.gantry(&["init", "--force"]).success();
}
