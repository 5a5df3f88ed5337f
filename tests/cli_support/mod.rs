//! Running the real `wandash` binary in a scratch home, for the `cli_*` tests.

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_wandash");

/// A scratch home: its own config dir, data dir and database, no key in the environment.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    pub fn db(&self) -> PathBuf {
        self.data_dir().join("wandash.db")
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write a test file");
        path
    }

    /// `wandash --db <scratch db> ...` with HOME and XDG dirs inside the scratch dir.
    pub fn cmd(&self) -> Command {
        self.cmd_on(&self.db())
    }

    /// `cmd()` on the store at `db` (a path or a `postgres://` URL).
    pub fn cmd_on(&self, db: &Path) -> Command {
        let mut cmd = Command::new(BIN);
        let home = self.path("home");
        cmd.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env_remove("DASHSCOPE_API_KEY")
            .env_remove("DASHSCOPE_BASE_URL")
            .env_remove("RUST_LOG")
            .arg("--db")
            .arg(db);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().expect("run wandash"))
    }

    /// `cmd()` as a user with `key` runs it against `sim`, with the settings in `config`.
    pub fn cmd_against(&self, sim: &Sim, key: &str, config: &Path) -> Command {
        self.cmd_against_on(&self.db(), sim, key, config)
    }

    /// `cmd_against` on the store at `db`.
    pub fn cmd_against_on(&self, db: &Path, sim: &Sim, key: &str, config: &Path) -> Command {
        let mut cmd = self.cmd_on(db);
        cmd.env("DASHSCOPE_API_KEY", key)
            .arg("--config")
            .arg(config)
            .arg("--base-url")
            .arg(&sim.base_url);
        cmd
    }
}

/// A finished command: exit code and its output as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Fails the test with the whole output unless the exit code is `code`.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// A `wandash sim` child process on 127.0.0.1 with short task latency.
pub struct Sim {
    pub child: Child,
    pub base_url: String,
}

impl Sim {
    /// Task latency 50ms..150ms unless `extra` gives `--latency`.
    pub fn start(extra: &[&str]) -> Sim {
        let latency: &[&str] = if extra.contains(&"--latency") {
            &[]
        } else {
            &["--latency", "50ms..150ms"]
        };
        let mut child = Command::new(BIN)
            .args(["sim", "--listen", "127.0.0.1:0"])
            .args(latency)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wandash sim");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the simulator's first line");
        let base_url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in the simulator's first line: {line:?}"))
            .to_string();
        Sim { child, base_url }
    }

    /// `http://127.0.0.1:PORT` without `/api/v1`.
    pub fn origin(&self) -> &str {
        self.base_url.trim_end_matches("/api/v1")
    }

    pub fn stats(&self) -> serde_json::Value {
        let url = format!("{}/__sim/stats", self.origin());
        http_get_json(&url)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A tiny blocking HTTP/1.1 GET over loopback (the tests need no async runtime for this).
pub fn http_get_json(url: &str) -> serde_json::Value {
    http_json("GET", url, None)
}

/// The same, a POST of `body`.
pub fn http_post_json(url: &str, body: &serde_json::Value) -> serde_json::Value {
    http_json("POST", url, Some(body))
}

fn http_json(method: &str, url: &str, body: Option<&serde_json::Value>) -> serde_json::Value {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect to the simulator");
    let sent = body.map(ToString::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{sent}",
        sent.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
