//! A team of engines against the quota bound: one batch of one-second jobs on one
//! PostgreSQL store, drained by 1, 2 and 4 `wandash worker --until-idle` processes at once,
//! against one `wandash sim` process keeping API.md's limits (2 creates/s, 2 tasks in
//! flight). Prints per engine count the wall time, its ratio to the quota bound, the
//! simulator's throttled count, creates per job, and the median time from a job's claim to
//! its recorded create (the wait for the shared create token included); never asserts.
//!
//! `cargo bench --bench team` (needs PostgreSQL binaries, like the tests; skips without)
//! Environment:
//! - `WANDASH_BENCH_TEAM_JOBS=200`: jobs per run (default 200).
//! - `WANDASH_BENCH_TEAM_ENGINES=1,2,4`: engine counts (default 1,2,4).

mod measure;

#[path = "../tests/support/postgres.rs"]
mod test_postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use measure::env_list;

const BIN: &str = env!("CARGO_BIN_EXE_wandash");
const MODEL: &str = "wanx2.0-t2i-turbo";
const RATE: f64 = 2.0;
const IN_FLIGHT: usize = 2;
const TASK: Duration = Duration::from_secs(1);

fn main() {
    let jobs = env_list("WANDASH_BENCH_TEAM_JOBS", "200")
        .first()
        .copied()
        .unwrap_or(200);
    let engines = env_list("WANDASH_BENCH_TEAM_ENGINES", "1,2,4");
    let Some(server) = test_postgres::server() else {
        println!("team: no PostgreSQL here, nothing measured");
        return;
    };
    let bound = (jobs as f64 / RATE).max(jobs.div_ceil(IN_FLIGHT) as f64 * TASK.as_secs_f64());
    println!(
        "team: {jobs} jobs of {TASK:?} on {MODEL}, limits {RATE}/s and {IN_FLIGHT} in flight, quota bound {bound:.2} s"
    );
    for count in engines {
        run(server, jobs, count, bound);
    }
}

fn run(server: &test_postgres::TestServer, jobs: usize, engines: usize, bound: f64) {
    let url = server.fresh_database();
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("config.toml");
    // The engine's polls scaled to one-second tasks, as `benches/batch.rs` does.
    std::fs::write(
        &config,
        format!(
            "[limits.\"{MODEL}\"]\nsubmit_per_second = {RATE:.1}\nin_flight = {IN_FLIGHT}\n\n[poll]\nmin_interval_ms = 100\nmax_interval_ms = 1000\n"
        ),
    )
    .expect("write the config");
    let sim = Sim::start();
    let wandash = |args: &[&str]| {
        let home = dir.path().join("home");
        let mut cmd = Command::new(BIN);
        cmd.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("DASHSCOPE_API_KEY", "bench-key")
            .env_remove("DASHSCOPE_BASE_URL")
            .env_remove("RUST_LOG")
            .args(["--db", &url, "--config"])
            .arg(&config)
            .args(["--base-url", &sim.base_url])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let batch: String = (0..jobs)
        .map(|i| {
            format!(
                "{{\"model\":\"{MODEL}\",\"prompt\":\"team bench {i}\",\"n\":1,\"size\":\"512*512\"}}\n"
            )
        })
        .collect();
    let batch_file = dir.path().join("batch.jsonl");
    std::fs::write(&batch_file, batch).expect("write the batch");
    let enqueued = wandash(&["batch", batch_file.to_str().unwrap()])
        .status()
        .expect("run wandash batch");
    assert!(enqueued.success(), "wandash batch failed");

    let started = Instant::now();
    let workers: Vec<Child> = (0..engines)
        .map(|_| {
            wandash(&["worker", "--until-idle"])
                .spawn()
                .expect("start a worker")
        })
        .collect();
    for mut worker in workers {
        let status = worker.wait().expect("a worker ends");
        assert!(status.success(), "a worker failed: {status}");
    }
    let wall = started.elapsed().as_secs_f64();

    let stats = sim.stats();
    let creates = stats["creates"].as_u64().unwrap_or(0);
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let succeeded: i64 = sql
        .query_one("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'", &[])
        .unwrap()
        .get(0);
    let per_engine: Vec<i64> = sql
        .query(
            "SELECT COUNT(*) FROM jobs GROUP BY engine_id ORDER BY COUNT(*) DESC",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut claim_to_create: Vec<Duration> = sql
        .query(
            "SELECT created.at - claimed.at FROM events claimed JOIN events created
               ON created.job_id = claimed.job_id AND created.from_state = 'submitting'
                  AND created.to_state IN ('submitted', 'running')
             WHERE claimed.to_state = 'submitting'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| Duration::from_millis(row.get::<_, i64>(0).max(0) as u64))
        .collect();
    let median = if claim_to_create.is_empty() {
        "-".to_string()
    } else {
        measure::ms(measure::median(&mut claim_to_create))
    };
    println!("--- {engines} engine(s)");
    println!("  wall {wall:.2} s, ratio to the bound {:.3}", wall / bound);
    println!(
        "  succeeded {succeeded} of {jobs}; jobs per engine {per_engine:?}; throttled {}; creates per job {:.3}",
        stats["throttled"],
        creates as f64 / jobs as f64
    );
    println!("  claim to create, median {median}");
}

/// A `wandash sim` process at the quota, with one-second tasks.
struct Sim {
    child: Child,
    base_url: String,
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(BIN)
            .args(["sim", "--listen", "127.0.0.1:0", "--latency", "1s..1s"])
            .args(["--rate", &format!("{MODEL}={RATE}")])
            .args(["--in-flight", &format!("{MODEL}={IN_FLIGHT}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wandash sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the simulator's first line");
        let base_url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        Sim { child, base_url }
    }

    fn stats(&self) -> serde_json::Value {
        let origin = self.base_url.trim_end_matches("/api/v1");
        let host = origin.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).expect("connect to the simulator");
        write!(
            stream,
            "GET /__sim/stats HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats ({e}): {answer}"))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
