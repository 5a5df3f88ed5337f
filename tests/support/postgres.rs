//! A throwaway PostgreSQL server for the store's PostgreSQL tests.
//!
//! `server()` is one server per test process, shared by its tests; each test takes a
//! database of its own with `fresh_database`. With `WANDASH_TEST_POSTGRES` set to
//! `postgres://USER:PASSWORD@HOST:PORT/DB` the tests use that server instead: the role must
//! be allowed to create databases and must log in by password (the wrong-password tests
//! rely on it); the `wandash_test_*` databases made there stay. Otherwise the server is
//! started here from the PostgreSQL binaries on PATH or in /usr/lib/postgresql/*/bin, in
//! a temp directory, and a watchdog process stops it and removes the directory when this
//! process ends, however it ends. With neither, the tests skip with a message.
//!
//! Included by `#[path]` from integration tests and from the library's own unit tests, so
//! it uses only std and the package's dependencies.

#![allow(dead_code)] // each includer uses a different part

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// An existing server to use instead of starting one.
pub const URL_VARIABLE: &str = "WANDASH_TEST_POSTGRES";
const SKIPPED: &str =
    "PostgreSQL tests skipped: no server (set WANDASH_TEST_POSTGRES or install postgresql)";
const RESTART_SKIPPED: &str = "PostgreSQL restart tests skipped: no PostgreSQL binaries to start a server (install postgresql)";
/// The role the tests log in as, by password, on a server started here.
const ROLE: &str = "wandash";
/// The superuser `initdb` creates; it logs in over the private socket only (trust).
const SUPERUSER: &str = "postgres";
/// The OS account the server runs as when the tests run as root: PostgreSQL refuses root.
const SERVER_ACCOUNT: &str = "postgres";
/// How long `pg_ctl` may wait for a start or stop before the test fails with the log.
const PG_CTL_TIMEOUT_SECS: u32 = 20;

/// A PostgreSQL server the tests may create databases on.
pub struct TestServer {
    address: Address,
    /// None for the server at `WANDASH_TEST_POSTGRES`: not ours to start or stop.
    process: Option<ServerProcess>,
}

/// The server shared by this process's tests, started on first use; None (after one
/// message on stderr) where there is no PostgreSQL. Panics when one is there but fails.
pub fn server() -> Option<&'static TestServer> {
    static SHARED: OnceLock<Result<Option<TestServer>, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        if let Ok(url) = std::env::var(URL_VARIABLE) {
            let address = Address::parse(&url)?;
            return Ok(Some(TestServer {
                address,
                process: None,
            }));
        }
        let Some(bin) = find_bin_dir() else {
            say_on_stderr(SKIPPED);
            return Ok(None);
        };
        start(bin).map(Some)
    });
    match shared {
        Ok(server) => server.as_ref(),
        Err(message) => panic!("{message}"),
    }
}

/// A server for the calling test alone, so it may stop and restart it without breaking
/// other tests' connections; stopped and removed when dropped. Always started here, also
/// when `WANDASH_TEST_POSTGRES` is set; None (with a message) without PostgreSQL binaries.
pub fn own_server() -> Option<TestServer> {
    let Some(bin) = find_bin_dir() else {
        say_on_stderr(RESTART_SKIPPED);
        return None;
    };
    Some(start(bin).unwrap_or_else(|message| panic!("{message}")))
}

impl TestServer {
    /// A new empty database, owned by the test role, and its URL.
    pub fn fresh_database(&self) -> String {
        static CREATED: AtomicU64 = AtomicU64::new(0);
        // The process id keeps names apart between test processes sharing a server; the
        // random part from a database an earlier process of the same id left behind.
        let name = format!(
            "wandash_test_{}_{}_{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let admin_url = self
            .address
            .url(&self.address.password, &self.address.database);
        let statement = format!("CREATE DATABASE {name}");
        off_runtime(move || {
            let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)?;
            admin.batch_execute(&statement)
        })
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        self.address.url(&self.address.password, &name)
    }

    /// `url` (one of this server's) with a password the server refuses.
    pub fn with_wrong_password(&self, url: &str) -> String {
        let password = format!(":{}@", self.address.password);
        assert!(url.contains(&password), "{url} is not a URL of this server");
        url.replacen(&password, &format!(":{}-wrong@", self.address.password), 1)
    }

    /// Stops the server (fast shutdown: open connections are ended) until `start`.
    /// Only an `own_server()` is this test's to stop.
    pub fn stop(&mut self) {
        self.own_process()
            .pg_ctl(&["stop", "-m", "fast"])
            .unwrap_or_else(|message| panic!("{message}"));
    }

    /// Starts a stopped server again, on the same port with the same data.
    pub fn start(&mut self) {
        self.own_process()
            .start_postmaster()
            .unwrap_or_else(|message| panic!("{message}"));
    }

    /// Stops and starts the server: what a database restart looks like to clients.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    fn own_process(&self) -> &ServerProcess {
        // Only `own_server()` hands out a server the caller may mutate, and it always
        // starts the process.
        self.process
            .as_ref()
            .expect("an own_server() always has its process")
    }
}

/// Where the server is and how the test role logs in, kept as URL pieces (already
/// percent-encoded where the URL came from outside) to build the URL of any database.
struct Address {
    user: String,
    password: String,
    /// `host:port`, or several separated by commas.
    hosts: String,
    /// The database to connect to for creating others.
    database: String,
    /// `?…` parameters such as sslmode, or empty.
    query: String,
}

impl Address {
    fn parse(url: &str) -> Result<Address, String> {
        let malformed = || {
            format!("{URL_VARIABLE} must be postgres://USER:PASSWORD@HOST:PORT/DATABASE, not {url}")
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(malformed)?;
        let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
        let (authority, database) = before_query.split_once('/').unwrap_or((before_query, ""));
        let (user_info, hosts) = authority.rsplit_once('@').ok_or_else(malformed)?;
        let (user, password) = user_info.split_once(':').ok_or_else(malformed)?;
        if user.is_empty() || password.is_empty() || hosts.is_empty() {
            return Err(malformed());
        }
        Ok(Address {
            user: user.to_owned(),
            password: password.to_owned(),
            hosts: hosts.to_owned(),
            database: if database.is_empty() {
                "postgres".to_owned()
            } else {
                database.to_owned()
            },
            query: query.to_owned(),
        })
    }

    fn url(&self, password: &str, database: &str) -> String {
        format!(
            "postgres://{}:{password}@{}/{database}{}",
            self.user, self.hosts, self.query
        )
    }
}

/// A server started by this process, in a directory of its own.
struct ServerProcess {
    bin: PathBuf,
    /// The account to run the PostgreSQL tools as; None when not root (then: ourselves).
    account: Option<Account>,
    /// Holds `data/`, `sockets/` and `server.log`.
    root: PathBuf,
    port: u16,
    /// Reads its stdin, whose write end only this process holds, until end of file: when
    /// this process ends, however it ends, the kernel closes it and the watchdog stops the
    /// server and removes `root`.
    watchdog: Child,
}

fn start(bin: PathBuf) -> Result<TestServer, String> {
    let account = Account::for_server()?;
    let root = tempfile::Builder::new()
        .prefix("wandash-pg-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for the PostgreSQL server: {e}"))?
        .keep();
    let sockets = root.join("sockets");
    fs::create_dir(&sockets).map_err(|e| format!("cannot create {}: {e}", sockets.display()))?;
    if let Some(account) = &account {
        account.give(&root)?;
        account.give(&sockets)?;
    }
    let pg_ctl = bin.join("pg_ctl");
    let watchdog = as_account(account.as_ref(), Path::new("sh"))
        .arg("-c")
        .arg(r#"cat >/dev/null; "$0" stop -D "$1" -m immediate >/dev/null 2>&1; rm -rf "$2""#)
        .arg(&pg_ctl)
        .arg(root.join("data"))
        .arg(&root)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to `cargo test` must not end it before us.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;
    // From here on, dropping `process` (or this process ending) cleans up.
    let process = ServerProcess {
        bin,
        account,
        root,
        port: free_port()?,
        watchdog,
    };
    process.initdb()?;
    process.start_postmaster()?;
    let password: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect();
    process.create_role(&password)?;
    let address = Address {
        user: ROLE.to_owned(),
        password,
        hosts: format!("127.0.0.1:{}", process.port),
        database: "postgres".to_owned(),
        query: String::new(),
    };
    Ok(TestServer {
        address,
        process: Some(process),
    })
}

impl ServerProcess {
    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn tool(&self, name: &str) -> Command {
        let mut command = as_account(self.account.as_ref(), &self.bin.join(name));
        command.current_dir(&self.root).stdin(Stdio::null());
        command
    }

    fn initdb(&self) -> Result<(), String> {
        // Local socket: trust (the superuser creates the test role through it); TCP: a
        // password, so a wrong one is refused. C collation and UTF-8 whatever the locale.
        let output = self
            .tool("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.join("initdb").display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "initdb failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn start_postmaster(&self) -> Result<(), String> {
        // fsync and friends off: the data of a test server need not survive a power cut.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{}' -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.root.join("sockets").display()
        );
        self.pg_ctl(&["start", "-o", &options])
    }

    /// Runs `pg_ctl ACTION -D data -l log -w` plus `args`; `-w` waits (bounded) until the
    /// server accepts connections or is down.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let timeout = PG_CTL_TIMEOUT_SECS.to_string();
        // The server's output goes to the log (`-l`), not to pipes `output()` would wait
        // to close.
        let output = self
            .tool("pg_ctl")
            .arg(args[0])
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", &timeout])
            .args(&args[1..])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.join("pg_ctl").display()))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "pg_ctl {} failed ({}): {}\nlast lines of {}:\n{}",
            args[0],
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            self.log().display(),
            self.log_tail(30)
        ))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn create_role(&self, password: &str) -> Result<(), String> {
        let mut config = postgres::Config::new();
        config
            .host_path(self.root.join("sockets"))
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres");
        let statement = format!("CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{password}'");
        off_runtime(move || {
            let mut superuser = config.connect(postgres::NoTls)?;
            superuser.batch_execute(&statement)
        })
        .map_err(|e| format!("cannot create the role {ROLE}: {e}"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // End of file for the watchdog; waiting for it means the server is gone after this.
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// The OS account PostgreSQL runs as when we are root.
struct Account {
    uid: u32,
    gid: u32,
}

impl Account {
    fn for_server() -> Result<Option<Account>, String> {
        // /proc/self belongs to this process's effective user.
        let running_as_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !running_as_root {
            return Ok(None);
        }
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.len() > 3 && fields[0] == SERVER_ACCOUNT)
            .and_then(|fields| {
                Some(Account {
                    uid: fields[2].parse().ok()?,
                    gid: fields[3].parse().ok()?,
                })
            })
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "the tests run as root, which PostgreSQL refuses, and there is no \
                     `{SERVER_ACCOUNT}` account to run it as"
                )
            })
    }

    fn give(&self, path: &Path) -> Result<(), String> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| format!("cannot give {} to {SERVER_ACCOUNT}: {e}", path.display()))
    }
}

fn as_account(account: Option<&Account>, program: &Path) -> Command {
    match account {
        Some(account) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={}", account.uid))
                .arg(format!("--regid={}", account.gid))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: PATH first, then Debian's
/// versioned directories, newest version first.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file());
    let in_debian_dirs = || {
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin/initdb")))
            })
            .filter(|(_, initdb)| initdb.is_file())
            .collect();
        versions.sort();
        versions.pop().map(|(_, initdb)| initdb)
    };
    // A PATH entry is often a symlink into the versioned directory, beside pg_ctl.
    let initdb = fs::canonicalize(on_path.or_else(in_debian_dirs)?).ok()?;
    initdb.parent().map(Path::to_path_buf)
}

/// Past the test harness's capture of `eprintln!`, which would show it only for a failing
/// test: a skip should be seen.
fn say_on_stderr(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Runs `work` on a thread of its own: the `postgres` crate's blocking client starts a
/// runtime, which panics on a thread already inside one (a `#[tokio::test]`).
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
