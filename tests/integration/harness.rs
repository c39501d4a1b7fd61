//! The integration harness: each test gets a folder named after it under
//! `/tmp/gantry-it/`, real `sshd` hosts on loopback ports with throw-away
//! keys and a private `ssh_config`/`known_hosts`, a real git repository of
//! the example app with a bare `origin`, and the real `gantry` binary.
//! Everything the test started is stopped when the `Test` is dropped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const GANTRY: &str = env!("CARGO_BIN_EXE_gantry");
const SSHD: &str = "/usr/sbin/sshd";

/// Builds a test world.
pub struct TestBuilder {
    name: String,
    hosts: usize,
    isolated: usize,
    django: bool,
    usual: bool,
    split: bool,
    postgres: bool,
    /// Commands the hosts' PATH leaves out.
    without: Vec<String>,
}

impl TestBuilder {
    /// The hosts' sessions get a PATH without these commands (a host
    /// without `curl`, say).
    pub fn hosts_without(mut self, commands: &[&str]) -> TestBuilder {
        self.without = commands.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Starts `n` sshd hosts.
    pub fn hosts(mut self, n: usize) -> TestBuilder {
        self.hosts = n;
        self
    }

    /// Also starts `n` sshd hosts each in a network namespace of its own,
    /// reached over a veth pair, so that a test can cut one off.
    pub fn isolated_hosts(mut self, n: usize) -> TestBuilder {
        self.isolated = n;
        self
    }

    /// The repo holds the example Django app instead of the plain one.
    pub fn django(mut self) -> TestBuilder {
        self.django = true;
        self
    }

    /// The repo holds the example Django app wired the usual way
    /// (`tests/fixtures/django-usual`): the app in `src/`, requirements at
    /// the root, a fixed SQLite path in the settings.
    pub fn django_usual(mut self) -> TestBuilder {
        self.django = true;
        self.usual = true;
        self
    }

    /// The repo holds the example Django app wired like open-source apps
    /// (`tests/fixtures/django-split`): settings split into base, dev and
    /// production, `STATIC_ROOT` and `MEDIA_ROOT` in sub-folders, an upload
    /// view, no functional tests.
    pub fn django_split(mut self) -> TestBuilder {
        self.django = true;
        self.split = true;
        self
    }

    /// Starts a private PostgreSQL server for the test.
    pub fn postgres(mut self) -> TestBuilder {
        self.postgres = true;
        self
    }

    pub fn start(self) -> Test {
        let dir = PathBuf::from("/tmp/gantry-it").join(&self.name);
        kill_matching(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut test = Test {
            dir: dir.clone(),
            hosts: Vec::new(),
            app_ports: BTreeMap::new(),
            repo: dir.join("repo"),
            postgres: None,
        };
        if self.postgres {
            test.postgres = Some(Postgres::start(&dir));
        }
        if self.hosts + self.isolated > 0 {
            test.make_client_key();
            let path = (!self.without.is_empty()).then(|| host_bin(&dir, &self.without));
            for i in 0..self.hosts {
                let host = Sshd::start(&dir, i, None, path.as_deref());
                test.hosts.push(host);
            }
            // Namespaces, links and subnets are named after the test, so
            // tests running at once do not share them.
            let base = self
                .name
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                as usize
                % 200;
            for n in 0..self.isolated {
                let i = self.hosts + n;
                let netns = Netns::create(base + n);
                let host = Sshd::start(&dir, i, Some(netns), path.as_deref());
                test.hosts.push(host);
            }
            test.write_ssh_config();
        }
        if self.split {
            test.make_split_django_repo();
        } else if self.usual {
            test.make_usual_django_repo();
        } else {
            test.make_repo(if self.django { "django" } else { "app" });
        }
        test
    }
}

pub struct Test {
    pub dir: PathBuf,
    pub hosts: Vec<Sshd>,
    app_ports: BTreeMap<(String, usize), u16>,
    pub repo: PathBuf,
    pub postgres: Option<Postgres>,
}

/// How a run of `gantry` ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(&self) -> &Run {
        self.code(0)
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "gantry exited {} (wanted {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, text: &str) -> &Run {
        assert!(
            !self.stderr.contains(text),
            "stderr has {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n--- stdout\n{}",
            self.stdout
        );
        self
    }
}

impl Test {
    #[allow(clippy::new_ret_no_self)]
    /// A test named after the test function that calls it (the test
    /// runner names each test's thread after it).
    pub fn new() -> TestBuilder {
        let thread = std::thread::current();
        let full = thread.name().expect("tests run on named threads");
        let name = full.rsplit("::").next().unwrap_or(full);
        TestBuilder {
            name: name.to_string(),
            hosts: 0,
            isolated: 0,
            django: false,
            usual: false,
            split: false,
            postgres: false,
            without: Vec::new(),
        }
    }

    /// Runs `gantry ARGS` in the repo.
    pub fn gantry(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("gantry runs"))
    }

    /// `gantry ARGS` as a command, for tests that start it in the background.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(GANTRY);
        cmd.args(args)
            .current_dir(&self.repo)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// The app port of host `i` in `env`: a free port, the same on every call.
    pub fn app_port(&mut self, env: &str, i: usize) -> u16 {
        *self
            .app_ports
            .entry((env.to_string(), i))
            .or_insert_with(free_port)
    }

    /// The site folder of host `i` in `env`.
    pub fn site(&self, env: &str, i: usize) -> PathBuf {
        self.dir.join("sites").join(env).join(format!("h{i}"))
    }

    /// The release `current` points at, or `None`.
    pub fn current(&self, env: &str, i: usize) -> Option<String> {
        std::fs::read_link(self.site(env, i).join("current"))
            .ok()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
    }

    pub fn releases(&self, env: &str, i: usize) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.site(env, i).join("releases"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn history(&self, env: &str, i: usize) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.site(env, i).join(".gantry/history.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("history lines are JSON"))
            .collect()
    }

    /// What the app of host `i` in `env` answers on `path`.
    pub fn get(&mut self, env: &str, i: usize, path: &str) -> Option<(u16, String)> {
        let port = self.app_port(env, i);
        let ip = if i < self.hosts.len() {
            self.hosts[i].ip.clone()
        } else {
            "127.0.0.1".to_string()
        };
        http_get(&ip, port, path)
    }

    /// The standard config for the example app: `envs` lists each
    /// environment with the indexes of its hosts (`None` for `local`).
    pub fn config(&mut self, envs: &[(&str, &[usize])]) -> String {
        let mut text = format!(
            r#"[app]
name = "todo"

[ssh]
config = "{dir}/ssh_config"

[deploy]
path = "{dir}/sites/{{env}}/{{hostid}}"
keep_releases = 3
shared = ["data/"]
build = ["sh build.sh", "sh ci/hooks.sh"]
migrate = "python3 migrate.py"
restart = "sh restart.sh"
env = {{ APP_HOST = "{{host}}", APP_PORT = "{{app_port}}" }}
health = {{ url = "http://{{host}}:{{app_port}}/health", body = "{{commit}}", timeout = "2s", retries = 40, interval = "250ms" }}

[database]
engine = "sqlite"
path = "{{shared}}/data/app.sqlite3"
check = "python3 migrate.py --check"
"#,
            dir = self.dir.display()
        );
        for (env, hosts) in envs {
            let mut entries = Vec::new();
            for &i in hosts.iter() {
                let port = self.app_port(env, i);
                entries.push(format!(
                    "{{ address = \"{}\", vars = {{ hostid = \"h{i}\", app_port = \"{port}\" }} }}",
                    self.address(i)
                ));
            }
            text.push_str(&format!(
                "\n[environments.{env}]\nhosts = [\n  {}\n]\n",
                entries.join(",\n  ")
            ));
        }
        text
    }

    pub fn address(&self, i: usize) -> String {
        format!("root@{}:{}", self.hosts[i].ip, self.hosts[i].port)
    }

    /// The address host `i`'s apps are reached on from this machine.
    pub fn ip(&self, i: usize) -> &str {
        &self.hosts[i].ip
    }

    /// Writes the standard config for `envs`, commits it as "Add config"
    /// and pushes; returns the commit.
    pub fn configure(&mut self, envs: &[(&str, &[usize])]) -> String {
        let config = self.config(envs);
        self.write_config(&config);
        self.commit("Add config", &[])
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.repo.join("gantry.toml"), text).unwrap();
    }

    /// Commits `files` in the repo and pushes to origin; returns the sha.
    pub fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        for (path, content) in files {
            let path = self.repo.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        git(&self.repo, &["add", "-A"]);
        git(
            &self.repo,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.repo, &["push", "-q", "origin", "HEAD:main"]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.repo, &["rev-parse", "HEAD"]).trim().to_string()
    }

    fn make_repo(&self, example: &str) {
        copy_dir(&examples().join(example), &self.repo);
        self.init_repo();
    }

    /// Adds the test hooks, makes the repo and its bare `origin`, and
    /// commits what the repo holds.
    fn init_repo(&self) {
        let origin = self.dir.join("origin.git");
        git(
            &self.dir,
            &["init", "-q", "--bare", origin.to_str().unwrap()],
        );
        std::fs::create_dir_all(self.repo.join("ci")).unwrap();
        std::fs::write(self.repo.join("ci/hooks.sh"), HOOKS).unwrap();
        git(&self.repo, &["init", "-q", "-b", "main"]);
        git(&self.repo, &["config", "user.name", "Test"]);
        git(&self.repo, &["config", "user.email", "test@example.com"]);
        git(
            &self.repo,
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );
        self.commit("The example app", &[]);
    }

    /// The Django example in `src/`, its requirements at the root: the
    /// app's folder.
    fn django_in_src(&self) -> PathBuf {
        let src = self.repo.join("src");
        copy_dir(&examples().join("django"), &src);
        std::fs::rename(
            src.join("requirements.txt"),
            self.repo.join("requirements.txt"),
        )
        .unwrap();
        src
    }

    /// A `.venv` in the app's folder `src/` whose python is the tests'
    /// Django interpreter, as a developer has one (not committed).
    pub fn app_venv(&self) {
        let bin = self.repo.join("src/.venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let python = bin.join("python");
        std::fs::write(
            &python,
            format!("#!/bin/sh\nexec {} \"$@\"\n", django_python()),
        )
        .unwrap();
        std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    /// `git archive` of HEAD (without Gantry's config), unpacked as a host
    /// unpacks it into `<dir>/<name>`.
    pub fn fresh_archive(&self, name: &str) -> PathBuf {
        let fresh = self.dir.join(name);
        std::fs::create_dir_all(&fresh).unwrap();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "git -C {} archive HEAD -- . ':(exclude)gantry.toml' | tar -x -C {}",
                self.repo.display(),
                fresh.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        fresh
    }

    /// The pid gunicorn wrote for the example app on host `i` of `env`.
    pub fn app_pid(&self, env: &str, i: usize) -> String {
        let file = self.site(env, i).join("shared/gunicorn.pid");
        std::fs::read_to_string(file).unwrap().trim().to_string()
    }

    /// The Django example laid out the usual way: `src/` with fixed-path
    /// settings, `requirements.txt` at the root.
    fn make_usual_django_repo(&self) {
        let src = self.django_in_src();
        std::fs::copy(
            fixtures().join("django-usual/settings.py"),
            src.join("superlists/settings.py"),
        )
        .unwrap();
        self.init_repo();
    }

    /// The split fixture: `src/` as the usual one, the settings package
    /// and upload view over the example's, manage.py defaulting to `dev`.
    fn make_split_django_repo(&self) {
        let src = self.django_in_src();
        std::fs::remove_file(src.join("superlists/settings.py")).unwrap();
        copy_dir(
            &fixtures().join("django-split/superlists"),
            &src.join("superlists"),
        );
        let manage = std::fs::read_to_string(src.join("manage.py")).unwrap();
        let dev = manage.replace("\"superlists.settings\"", "\"superlists.settings.dev\"");
        assert_ne!(manage, dev, "manage.py names its settings");
        std::fs::write(src.join("manage.py"), dev).unwrap();
        self.init_repo();
    }

    /// The usual fixture's settings with the database written in: the
    /// test's PostgreSQL database `live`, whatever `DATABASE_URL` says.
    pub fn fixed_postgres_settings(&self) -> String {
        let port = self.postgres.as_ref().expect("a PostgreSQL server").port;
        let sqlite = "        \"ENGINE\": \"django.db.backends.sqlite3\",\n        \"NAME\": BASE_DIR / \"db.sqlite3\",\n";
        let text = std::fs::read_to_string(fixtures().join("django-usual/settings.py")).unwrap();
        assert!(text.contains(sqlite), "the fixture names its SQLite file");
        text.replace(
            sqlite,
            &format!("        \"ENGINE\": \"django.db.backends.postgresql\",\n        \"NAME\": \"live\",\n        \"USER\": \"postgres\",\n        \"HOST\": \"127.0.0.1\",\n        \"PORT\": \"{port}\",\n"),
        )
    }

    fn make_client_key(&self) {
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "gantry-test", "-f"])
            .arg(self.dir.join("client_key")));
    }

    fn write_ssh_config(&self) {
        let mut known = String::new();
        for h in &self.hosts {
            known.push_str(&h.known_hosts_line());
        }
        std::fs::write(self.dir.join("known_hosts"), known).unwrap();
        let config = format!(
            "Host *\n  IdentityFile {dir}/client_key\n  IdentitiesOnly yes\n  UserKnownHostsFile {dir}/known_hosts\n  StrictHostKeyChecking yes\n  KexAlgorithms curve25519-sha256\n  LogLevel ERROR\n",
            dir = self.dir.display()
        );
        std::fs::write(self.dir.join("ssh_config"), config).unwrap();
    }

    /// Writes `known_hosts` with only the hosts for which `keep` is true.
    pub fn set_known_hosts(&self, keep: impl Fn(usize) -> bool) {
        let mut known = String::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if keep(i) {
                known.push_str(&h.known_hosts_line());
            }
        }
        std::fs::write(self.dir.join("known_hosts"), known).unwrap();
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        if let Some(pg) = &self.postgres {
            pg.stop();
        }
        for h in &mut self.hosts {
            let _ = h.child.kill();
            let _ = h.child.wait();
        }
        kill_matching(&self.dir);
    }
}

/// Build hooks the test repo carries, so tests can make a build fail or
/// wait on one host: a `fail-build` file in the site's folder fails the
/// build with its content; a `hold` file makes the build create `holding`
/// and wait until `hold` is removed.
const HOOKS: &str = r#"set -eu
if [ -e "$GANTRY_PATH/fail-build" ]; then
    echo "build failed on purpose: $(cat "$GANTRY_PATH/fail-build")" >&2
    exit 3
fi
if [ -e "$GANTRY_PATH/hold" ]; then
    touch "$GANTRY_PATH/holding"
    i=0
    while [ -e "$GANTRY_PATH/hold" ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done
fi
"#;

/// One sshd with its own host key: on a loopback port, or on port 22 of a
/// network namespace of its own.
pub struct Sshd {
    pub ip: String,
    pub port: u16,
    pub dir: PathBuf,
    pub netns: Option<Netns>,
    child: Child,
}

impl Sshd {
    fn start(test_dir: &Path, index: usize, netns: Option<Netns>, path: Option<&Path>) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: the tests need real sshd hosts. Run `scripts/test` (it installs openssh-server), or `apt-get install openssh-server`."
        );
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = test_dir.join(format!("sshd{index}"));
        std::fs::create_dir_all(dir.join("home")).unwrap();
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join("host_key")));
        let ip = netns
            .as_ref()
            .map_or("127.0.0.1".to_string(), |n| n.ip.clone());
        for _attempt in 0..5 {
            let port = if netns.is_some() { 22 } else { free_port() };
            let config = format!(
                "Port {port}\nListenAddress {ip}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {t}/client_key.pub\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 MaxSessions 100\nMaxStartups 200\nUseDNS no\nLogLevel VERBOSE\nSetEnv HOME={d}/home{path}\n",
                d = dir.display(),
                t = test_dir.display(),
                path = path.map(|p| format!(" PATH={}", p.display())).unwrap_or_default(),
            );
            std::fs::write(dir.join("sshd_config"), config).unwrap();
            let mut command = match &netns {
                Some(n) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", &n.name, SSHD]);
                    c
                }
                None => Command::new(SSHD),
            };
            let mut child = command
                .arg("-D")
                .arg("-f")
                .arg(dir.join("sshd_config"))
                .arg("-E")
                .arg(dir.join("sshd.log"))
                .stdin(Stdio::null())
                .spawn()
                .expect("sshd starts");
            if wait_for_banner(&ip, port, &mut child) {
                return Sshd {
                    ip,
                    port,
                    dir,
                    netns,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start; see {}", dir.join("sshd.log").display());
    }

    /// Adds `lines` to this sshd's config and restarts it (SIGHUP), until
    /// it listens again.
    pub fn reconfigure(&self, lines: &str) {
        let config = self.dir.join("sshd_config");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(lines);
        std::fs::write(&config, text).unwrap();
        let listening = || {
            std::fs::read_to_string(self.dir.join("sshd.log"))
                .unwrap_or_default()
                .matches("Server listening")
                .count()
        };
        let before = listening();
        run(Command::new("kill").args(["-HUP", &self.child.id().to_string()]));
        wait_until(10, "sshd listening again", || listening() > before);
    }

    pub fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        let mut parts = key.split_whitespace();
        let host = if self.port == 22 {
            self.ip.clone()
        } else {
            format!("[{}]:{}", self.ip, self.port)
        };
        format!(
            "{host} {} {}\n",
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    }
}

/// Waits until sshd answers with its banner, or has exited.
fn wait_for_banner(ip: &str, port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect((ip, port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 8];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-") {
                return true;
            }
        }
        std::thread::yield_now();
    }
    false
}

/// Sends signal `name` (`INT`, `TERM`, `KILL`…) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// Ctrl-C to a running Gantry, and the wait until it says it took it.
pub fn interrupt(gantry: &std::process::Child, stderr: &Collected) {
    signal(gantry.id(), "INT");
    wait_until(30, "gantry to take the interrupt", || {
        stderr.lock().unwrap().contains("interrupted:")
    });
}

/// Collects a child's output as it arrives, for tests that wait on it.
pub fn collect(pipe: impl Read + Send + 'static) -> Collected {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        let mut pipe = pipe;
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Collected {
        text,
        reader: std::sync::Mutex::new(Some(reader)),
    }
}

/// What a pipe printed so far (`lock()`), and all of it once it closed
/// (`finish()`).
pub struct Collected {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::ops::Deref for Collected {
    type Target = std::sync::Mutex<String>;
    fn deref(&self) -> &Self::Target {
        &self.text
    }
}

impl Collected {
    /// Waits until the pipe closed (the process exited), then returns all
    /// it printed.
    pub fn finish(&self) -> String {
        if let Some(reader) = self.reader.lock().unwrap().take() {
            reader.join().unwrap();
        }
        self.text.lock().unwrap().clone()
    }
}

/// A port nothing listens on, below the kernel's ephemeral range
/// (32768 and up), so that no outgoing connection of this or another test
/// can take it between now and the moment the app binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32);
    let _ = STATE.compare_exchange(0, seed | 1, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        // xorshift: cheap, and different in every test process.
        let mut x = STATE.load(Ordering::SeqCst);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::SeqCst);
        let port = 20_000 + (x % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One HTTP/1.0 GET to the app; `None` when nothing answers.
pub fn http_get(ip: &str, port: u16, path: &str) -> Option<(u16, String)> {
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Polls `check` until it holds or `secs` pass: for waiting on another
/// process's progress, never as a fixed sleep.
#[track_caller]
pub fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `sql` on the SQLite file `db` with the `sqlite3` shell; its output.
pub fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(
        out.status.success(),
        "sqlite3 {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A folder of links to every command of this machine but `without`, for
/// a host PATH that lacks them.
fn host_bin(dir: &Path, without: &[String]) -> PathBuf {
    let bin = dir.join("hostbin");
    std::fs::create_dir_all(&bin).unwrap();
    for folder in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let Ok(entries) = std::fs::read_dir(folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if without.iter().any(|w| name == w.as_str()) || link.exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), link);
        }
    }
    bin
}

/// The test fixtures that are not examples.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Stops every process whose command line names `dir`: apps, ssh masters
/// and sshd processes a test left behind.
fn kill_matching(dir: &Path) {
    let pattern = format!("{}/", dir.display());
    let _ = Command::new("pkill")
        .arg("-9")
        .arg("-f")
        .arg("--")
        .arg(&pattern)
        .status();
}

/// A network namespace joined to this machine by a veth pair, with an
/// address from a private test range on each end; `cut` takes the link
/// down as a failed network would. Removed when dropped.
pub struct Netns {
    pub name: String,
    pub ip: String,
    veth: String,
}

impl Netns {
    fn create(n: usize) -> Netns {
        let name = format!("gantry-it{n}");
        let veth = format!("gtit{n}");
        let (outer, ip) = (format!("10.213.{n}.1"), format!("10.213.{n}.2"));
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let _ = Command::new("ip").args(["link", "del", &veth]).status();
        let inner = format!("{veth}n");
        for args in [
            vec!["netns", "add", &name],
            vec!["link", "add", &veth, "type", "veth", "peer", "name", &inner],
            vec!["link", "set", &inner, "netns", &name],
            vec!["addr", "add", &format!("{outer}/30"), "dev", &veth],
            vec!["link", "set", &veth, "up"],
            vec![
                "-n",
                &name,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                &inner,
            ],
            vec!["-n", &name, "link", "set", &inner, "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap_or_else(|e| {
                panic!(
                    "`ip` is missing ({e}): the tests need iproute2 and root; run `scripts/test`"
                )
            });
            assert!(
                out.status.success(),
                "ip {args:?} failed (network namespaces need root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Netns { name, ip, veth }
    }

    /// Takes the link down: the host is cut off mid-whatever.
    pub fn cut(&self) {
        run(Command::new("ip").args(["link", "set", &self.veth, "down"]));
    }

    pub fn restore(&self) {
        run(Command::new("ip").args(["link", "set", &self.veth, "up"]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
    }
}

/// The Python with Django, gunicorn and psycopg that `scripts/test` makes.
pub fn django_python() -> String {
    let python = std::env::var("GANTRY_TEST_PYTHON")
        .unwrap_or_else(|_| "/opt/gantry-venv/bin/python".into());
    assert!(
        Path::new(&python).exists(),
        "{python} is missing: the Django tests need a virtualenv with examples/django/requirements.txt; run `scripts/test`"
    );
    python
}

/// A private PostgreSQL server for one test, run by the `postgres` user
/// on a loopback port with trust authentication.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
}

impl Postgres {
    fn start(test_dir: &Path) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path().join("bin"))
                    .find(|b| b.join("initdb").exists())
            })
            .expect("PostgreSQL is missing: run `scripts/test` (it installs postgresql)");
        let data = test_dir.join("pg");
        std::fs::create_dir_all(&data).unwrap();
        run(Command::new("chown").arg("postgres:postgres").arg(&data));
        let as_postgres = |args: &[&str]| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        };
        let d = data.to_str().unwrap();
        let initdb = bin.join("initdb");
        run(&mut as_postgres(&[
            initdb.to_str().unwrap(),
            "--no-sync",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-D",
            d,
        ]));
        let pg_ctl = bin.join("pg_ctl");
        for _ in 0..5 {
            let port = free_port();
            // The socket goes to /tmp: socket paths are limited to 107 bytes.
            let options = format!("-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off");
            let log = format!("{d}/log");
            let started = as_postgres(&[
                pg_ctl.to_str().unwrap(),
                "-D",
                d,
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ])
            .output()
            .unwrap();
            if started.status.success() {
                return Postgres { port, data, bin };
            }
        }
        panic!("PostgreSQL did not start; see {}/log", data.display());
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL, returning the rows as `a|b` lines.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                &self.url(database),
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn databases(&self) -> Vec<String> {
        self.sql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn stop(&self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Whether a running process's command line contains `text`.
pub fn processes_matching(text: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", "--", text])
        .status()
        .unwrap()
        .success()
}

/// POSTs an item (form field `text`) to the app at `ip:port`, as a user
/// would: its whole answer, or `None` when nothing listens there.
pub fn post_item(ip: &str, port: u16, text: &str) -> Option<String> {
    post(ip, port, "/items", &format!("text={text}"))
}

/// POSTs `body` (form-encoded) to `path`: the whole answer.
pub fn post(ip: &str, port: u16, path: &str, body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, port)).ok()?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(15)));
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    Some(answer)
}

/// Whether an answer says the item was added (201).
pub fn created(answer: &str) -> bool {
    answer.starts_with("HTTP/1.1 201") || answer.starts_with("HTTP/1.0 201")
}

/// A private nginx for the test, on a loopback port, including the sites
/// `gantry setup` installs into `<dir>/nginx/sites`.
pub fn nginx_conf(t: &Test) -> std::path::PathBuf {
    let sites = t.dir.join("nginx/sites");
    std::fs::create_dir_all(&sites).unwrap();
    nginx_with(t, &format!("include {}/*;\n", sites.display()))
}

/// A private nginx's config for the test, in `<dir>/nginx`, with `http`
/// (servers, upstreams) in its `http` block.
pub fn nginx_with(t: &Test, http: &str) -> std::path::PathBuf {
    let prefix = t.dir.join("nginx");
    std::fs::create_dir_all(prefix.join("tmp")).unwrap();
    let p = prefix.display();
    let conf = format!(
        "user root;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{}}\nhttp {{\n  include /etc/nginx/mime.types;\n  access_log off;\n  \
         client_body_temp_path {p}/tmp;\n  proxy_temp_path {p}/tmp;\n{http}}}\n"
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// The test's nginx, stopped when dropped.
pub struct Nginx {
    prefix: String,
    conf: std::path::PathBuf,
}

impl Nginx {
    pub fn start(t: &Test, conf: &Path, port: u16) -> Nginx {
        let prefix = format!("{}/", t.dir.join("nginx").display());
        let started = Command::new("nginx")
            .args(["-p", &prefix, "-c"])
            .arg(conf)
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        wait_until(20, "nginx to listen", || {
            http_get("127.0.0.1", port, "/").is_some()
        });
        Nginx {
            prefix,
            conf: conf.to_path_buf(),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .args(["-p", &self.prefix, "-c"])
            .arg(&self.conf)
            .args(["-s", "stop"])
            .status();
    }
}

/// Asserts that `systemd-analyze verify` accepts the unit files.
pub fn systemd_verify(units: &[&Path]) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units)
        .output()
        .expect("systemd-analyze is installed (scripts/test installs systemd)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
