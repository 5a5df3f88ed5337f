//! How long `wandash worker` takes to exit after SIGTERM while the service misbehaves:
//! silent (takes the create, never answers), trickling (answers a byte every 200 ms),
//! holding (the simulator makes the task and holds the answer for an hour), unreachable
//! (nothing listens). Each run starts from a fresh store with one queued job, waits until
//! the worker has sent its create, then times SIGTERM to exit.
//! `cargo bench --bench stop` prints the median of `WANDASH_BENCH_RUNS` (default 7) runs
//! per service; nothing here fails on time.

mod measure;

use measure::median;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wandash::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_wandash");

/// A loopback server that reads each request's head and hands the socket to `answer`;
/// counts the requests it saw.
fn serve(answer: fn(&mut TcpStream)) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                answer(&mut stream);
            });
        }
    });
    (addr, seen)
}

fn silent(_: &mut TcpStream) {
    std::thread::sleep(Duration::from_secs(3600));
}

fn trickling(stream: &mut TcpStream) {
    let body = br#"{"request_id":"r","output":{"task_id":"t-1","task_status":"PENDING"}}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    for byte in body {
        if stream.write_all(&[*byte]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `wandash` in its own scratch home, against `base_url`.
fn wandash(dir: &Path, base_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home/.config"))
        .env("XDG_DATA_HOME", dir.join("home/.local/share"))
        .env("XDG_STATE_HOME", dir.join("home/.local/state"))
        .env("DASHSCOPE_API_KEY", "bench-key")
        .env_remove("RUST_LOG")
        .arg("--db")
        .arg(dir.join("data/wandash.db"))
        .arg("--base-url")
        .arg(base_url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// How a run knows the worker has met the service.
enum Met {
    /// The test's server counted a request more.
    Requests(Arc<AtomicUsize>),
    /// The store shows the job sent, or an error from sending it.
    StoreShows,
}

/// One run: a fresh store with one job, a worker that has met the service (as `met`
/// tells), SIGTERM; how long until the worker exited.
fn stop_time(base_url: &str, met: &Met) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let status = wandash(dir.path(), base_url)
        .args([
            "submit",
            "--model",
            "wanx2.1-t2i-turbo",
            "--prompt",
            "a lighthouse",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "submit: {status:?}");
    let mut worker: Child = wandash(dir.path(), base_url).arg("worker").spawn().unwrap();
    let before = match met {
        Met::Requests(seen) => seen.load(Ordering::SeqCst),
        Met::StoreShows => 0,
    };
    let sent = || match met {
        Met::Requests(seen) => seen.load(Ordering::SeqCst) > before,
        Met::StoreShows => job_sent(dir.path()),
    };
    let waiting = Instant::now();
    while !sent() {
        assert!(waiting.elapsed() < Duration::from_secs(30), "nothing sent");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    worker.wait().unwrap();
    stopping.elapsed()
}

/// Whether the job in the scratch store has met the service (a create sent, or an error).
fn job_sent(dir: &Path) -> bool {
    let Ok(store) = Store::open(&dir.join("data/wandash.db")) else {
        return false;
    };
    let rows = store
        .list(&wandash::store::JobFilter::default(), 0, 10)
        .unwrap_or_default();
    rows.iter().any(|row| {
        store.job(row.id).ok().flatten().is_some_and(|job| {
            job.summary.status.submitted_at().is_some() || job.summary.error().is_some()
        })
    })
}

/// `wandash sim` holding every answer for an hour; its base URL.
fn holding_sim() -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--slow",
            "1",
            "--slow-delay",
            "1h",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base_url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .expect("the simulator's URL")
        .to_string();
    (child, base_url)
}

fn main() {
    let runs: usize = std::env::var("WANDASH_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(7);
    let (silent_addr, silent_seen) = serve(silent);
    let (trickle_addr, trickle_seen) = serve(trickling);
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}/api/v1", closed.local_addr().unwrap());
    drop(closed);
    let (mut sim, sim_url) = holding_sim();

    let services = [
        (
            "silent",
            format!("http://{silent_addr}/api/v1"),
            Met::Requests(silent_seen),
        ),
        (
            "trickling",
            format!("http://{trickle_addr}/api/v1"),
            Met::Requests(trickle_seen),
        ),
        ("holding", sim_url, Met::StoreShows),
        ("unreachable", unreachable, Met::StoreShows),
    ];
    println!("worker exit after SIGTERM, median of {runs} runs (min..max):");
    for (name, base_url, met) in &services {
        let mut times: Vec<Duration> = (0..runs).map(|_| stop_time(base_url, met)).collect();
        let mid = median(&mut times);
        println!(
            "  {name:<12} {:>7.1} ms  ({:.1}..{:.1} ms)",
            mid.as_secs_f64() * 1000.0,
            times[0].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0,
        );
    }
    sim.kill().ok();
    sim.wait().ok();
}
