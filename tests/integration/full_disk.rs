//! Full disks on real hosts: a small `tmpfs` mounted on a host's site and
//! filled but for a little room, where the upload, the lock, the
//! rehearsal's copy and the backup each fail. Each must change nothing,
//! leave no part of what it wrote, and say what failed; the backup and the
//! rehearsal are tried on the example app, on the usual Django layout and
//! (the backup) against PostgreSQL.

use std::path::Path;

use crate::harness::{sqlite, Test};
use crate::migrations::{self, Engine};
use crate::real_apps;

/// Host `i` of `env` still points at the release `before`, and no part of
/// the release of commit `bad` is left there.
fn still_on(t: &Test, (env, i): (&str, usize), before: &Option<String>, bad: &str, stderr: &str) {
    assert_eq!(&t.current(env, i), before, "{stderr}");
    assert!(
        !t.releases(env, i).iter().any(|r| r.ends_with(&bad[..8])),
        "no part of the new release is left\n{stderr}"
    );
}

/// A tmpfs of `size` mounted on `dir` while it lives.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs on {}", dir.display());
        SmallDisk(dir.to_path_buf())
    }

    /// Fills the disk but for `room` bytes.
    fn fill_but(&self, room: u64) -> std::path::PathBuf {
        use std::io::Write;
        let ballast = self.0.join("ballast");
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(room)).unwrap();
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_on_a_host_changes_nothing_and_the_deploy_after_room_is_made_is_whole() {
    let mut t = Test::new().hosts(1).start();
    let disk = SmallDisk::mount(&t.site("staging", 0), "16m");
    let good = t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    let before = t.current("staging", 0);
    let ballast = disk.fill_but(256 * 1024);

    // Two megabytes that do not compress, where a quarter of one is free.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: String = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:02x}", x as u8)
        })
        .collect();
    let bad = t.commit("A big file", &[("data.txt", &big)]);
    let out = t.command(&["deploy", "staging"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("every host was left serving what it served before"),
        "{stderr}"
    );
    still_on(&t, ("staging", 0), &before, &bad, &stderr);
    let (_, body) = t.get("staging", 0, "/health").unwrap();
    assert_eq!(body.trim(), format!("ok {good}"), "{stderr}");
    assert!(
        !t.site("staging", 0).join(".gantry/lock").exists(),
        "the lock is given back\n{stderr}"
    );

    // With room again, the same commit deploys whole.
    std::fs::remove_file(ballast).unwrap();
    t.gantry(&["deploy", "staging"]).success();
    let (_, body) = t.get("staging", 0, "/health").unwrap();
    assert_eq!(body.trim(), format!("ok {bad}"));
    let sent = std::fs::read_to_string(t.site("staging", 0).join("current/data.txt")).unwrap();
    assert!(sent == big, "the big file arrived whole");
    drop(disk);
}

/// The bytes free on the file system of `dir`.
fn room(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap().trim().parse().unwrap()
}

/// What a deploy stopped by a full disk was run with, and where it stops.
struct Stop<'a> {
    args: &'a [&'a str],
    /// The step that fails, and what the tool that failed says.
    step: &'a str,
    said: &'a str,
}

/// Runs `stop.args` against host `i` of `env`, whose site is on a disk too
/// full for the step: the deploy fails there and leaves the host on its
/// release with no part of the new one (commit `bad`), the database as
/// `snapshot` reads it, and the disk's room as it was (no copy, no backup:
/// only the history's new line).
fn stopped_by_a_full_disk(
    t: &Test,
    (env, i): (&str, usize),
    bad: &str,
    stop: Stop,
    snapshot: impl Fn() -> Vec<u8>,
) {
    let site = t.site(env, i);
    let data = snapshot();
    let free = room(&site);
    let before = t.current(env, i);
    let out = t.command(stop.args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} failed", stop.step)),
        "{stderr}"
    );
    assert!(stderr.contains(stop.said), "{stderr}");
    assert!(snapshot() == data, "the database is as it was\n{stderr}");
    still_on(t, (env, i), &before, bad, &stderr);
    assert!(
        room(&site) + 256 * 1024 > free,
        "{} bytes free before, {} after\n{stderr}",
        free,
        room(&site)
    );
}

/// SQLite's words for a write that found no room.
const SQLITE_FULL: &str = "database or disk is full";

/// Six megabytes of live data, three free, and a commit with a migration,
/// deployed with `args`: it stops at `step` and changes nothing.
fn too_full_for(args: &[&str], step: &str) {
    let mut t = Test::new().hosts(1).start();
    let disk = SmallDisk::mount(&t.site("staging", 0), "32m");
    t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    let db = t.site("staging", 0).join("shared/data/app.sqlite3");
    fill_sqlite(&db, "items (text)", "hex(randomblob(1000))");
    let _ballast = disk.fill_but(3 * 1024 * 1024);
    let bad = t.commit(
        "A column",
        &[(
            "migrations/0002_note.sql",
            "ALTER TABLE items ADD COLUMN note TEXT;\n",
        )],
    );
    let stop = Stop {
        args,
        step,
        said: SQLITE_FULL,
    };
    stopped_by_a_full_disk(&t, ("staging", 0), &bad, stop, || {
        std::fs::read(&db).unwrap()
    });
}

/// Adds 3000 rows of `values` to `table (columns)` of the SQLite file `db`.
fn fill_sqlite(db: &Path, table: &str, values: &str) {
    let rows = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
         INSERT INTO {table} SELECT {values} FROM n;"
    );
    sqlite(db, &rows);
}

#[test]
fn a_disk_too_full_for_the_rehearsal_leaves_the_database_and_the_disk_as_they_were() {
    too_full_for(&["deploy", "staging"], "copy the database");
}

#[test]
fn a_disk_too_full_for_the_backup_leaves_the_database_and_the_disk_as_they_were() {
    too_full_for(
        &["deploy", "staging", "--no-rehearse"],
        "back up the database",
    );
}

/// Wired the usual way (`tests/fixtures/django-usual`: the app in `src/`,
/// its settings naming a fixed SQLite file kept through `deploy.shared`),
/// live on a full disk is stopped at the backup and at the rehearsal's copy.
#[test]
fn the_usual_django_app_on_a_full_disk_keeps_its_database_and_its_release() {
    let mut t = Test::new().hosts(2).django_usual().start();
    let disk = SmallDisk::mount(&t.site("live", 1), "48m");
    let config = real_apps::usual_config(
        &mut t,
        real_apps::KEPT_IN_SHARED,
        real_apps::SQLITE_IN_SHARED,
    );
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["release"]).success();
    let db = real_apps::live_db(&t);
    sqlite(&db, "INSERT INTO lists_list DEFAULT VALUES;");
    fill_sqlite(
        &db,
        "lists_item (text, list_id)",
        "hex(randomblob(1000)), (SELECT max(id) FROM lists_list)",
    );
    let _ballast = disk.fill_but(3 * 1024 * 1024);
    let bad = real_apps::commit_stage(&t, "2-dedupe", "Merge duplicate items first");
    t.gantry(&["deploy", "staging"]).success();
    t.gantry(&["verify", "staging"]).success();
    for (args, step) in [
        (
            &["deploy", "live", "--no-rehearse"][..],
            "back up the database",
        ),
        (&["deploy", "live"][..], "copy the database"),
    ] {
        let stop = Stop {
            args,
            step,
            said: SQLITE_FULL,
        };
        stopped_by_a_full_disk(&t, ("live", 1), &bad, stop, || std::fs::read(&db).unwrap());
    }
}

/// PostgreSQL's dump, written on the migrate host before it migrates,
/// finds no room there: no part of it is left and live's rows are as they
/// were (the rehearsal, on the server's own disk, passes first).
#[test]
fn a_postgres_backup_on_a_full_disk_leaves_no_part_of_it() {
    let mut t = migrations::start(Engine::Postgres);
    let disk = SmallDisk::mount(&t.site("live", 1), "48m");
    let config = migrations::config(&mut t, Engine::Postgres, None);
    t.write_config(&config);
    t.commit("Add config", &[]);
    t.gantry(&["release"]).success();
    // About ten megabytes of text that compresses to half: the dump needs
    // more than the two free.
    t.postgres.as_ref().unwrap().sql(
        "live",
        "INSERT INTO lists_list DEFAULT VALUES; \
         INSERT INTO lists_item (text, list_id) \
         SELECT (SELECT string_agg(md5(random()::text || g || k), '') \
                 FROM generate_series(1, 60) k), l \
         FROM generate_series(1, 5000) g, (SELECT max(id) l FROM lists_list) m",
    );
    let _ballast = disk.fill_but(2 * 1024 * 1024);
    let bad = migrations::commit_stage(&t, "2-dedupe", "Merge duplicate items first");
    let stop = Stop {
        args: &["release"],
        step: "back up the database",
        said: "No space left on device",
    };
    stopped_by_a_full_disk(&t, ("live", 1), &bad, stop, || {
        migrations::snapshot(&t, Engine::Postgres)
    });
}

#[test]
fn a_disk_too_full_for_the_lock_leaves_no_lock() {
    let mut t = Test::new().hosts(1).start();
    let disk = SmallDisk::mount(&t.site("staging", 0), "16m");
    t.configure(&[("staging", &[0])]);
    t.gantry(&["deploy", "staging"]).success();
    let before = t.current("staging", 0);
    t.commit("Second", &[("NEWS", "second\n")]);
    let ballast = disk.fill_but(0);
    let out = t.command(&["deploy", "staging"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(".gantry/lock/info: is the disk full?"),
        "{stderr}"
    );
    assert_eq!(t.current("staging", 0), before, "{stderr}");
    assert!(
        !t.site("staging", 0).join(".gantry/lock").exists(),
        "no lock without its record is left\n{stderr}"
    );
    // With room again, the next deploy is not held by anything.
    std::fs::remove_file(ballast).unwrap();
    t.gantry(&["deploy", "staging"]).success();
}
