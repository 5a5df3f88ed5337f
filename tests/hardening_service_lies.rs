//! A service that answers something wrong, and a worker stopped while the service does
//! not answer (issue 15, sections 2 and 4). Each lie comes from a raw server of the
//! test's own on 127.0.0.1, through the real engine on a real SQLite file (or the real
//! binary); each test is bounded in time and checks both the refusal and that a good job
//! beside it is not lost.

mod cli_support;
mod engine_support;
mod hardening_support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli_support::{Run, Scratch, Sim, files_under, http_post_json};
use engine_support::{all_jobs, engine_config, spec, wait_idle};
use hardening_support::{Hostile, Seen, answer, answer_json};
use serde_json::json;
use wandash::dashscope::{ApiKey, Client, Model};
use wandash::engine::{Engine, EngineConfig, EngineEvent, EngineHandle};
use wandash::store::{JobDetail, JobState, Store};

const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Tries the engine allows a service that answers something wrong, in these tests.
const MAX_ATTEMPTS: u32 = 3;

/// How the test's service answers a poll.
enum Poll {
    Json(String),
    /// The answer, one byte every 200 ms.
    Trickle(String),
}

/// A service scripted per test: the task id each create answers (from the job's
/// prompt), the answer to each poll of a task (its id and how many polls it had
/// before), the bytes behind each image path. The task list is always empty.
struct Script {
    task_id: fn(&str) -> String,
    poll: fn(origin: &str, task_id: &str, polls_before: usize) -> Poll,
    image: fn(&str) -> Vec<u8>,
}

fn serve(script: Script) -> Hostile {
    let script = Arc::new(script);
    let origin = Arc::new(std::sync::OnceLock::<String>::new());
    let polls = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    let server_origin = origin.clone();
    let server = Hostile::start(move |seen: &Seen, stream: &mut TcpStream| {
        let origin = server_origin.get().cloned().unwrap_or_default();
        let line = seen.line().to_string();
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        if line.starts_with("POST") && path.ends_with("/image-synthesis") {
            let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
            let prompt = body["input"]["prompt"].as_str().unwrap_or_default();
            let answer = json!({"request_id": "r", "output": {
                "task_id": (script.task_id)(prompt), "task_status": "PENDING"}});
            answer_json(stream, &answer.to_string());
        } else if path.starts_with("/api/v1/tasks?") {
            answer_json(
                stream,
                r#"{"total":0,"total_page":0,"page_no":1,"page_size":100,"request_id":"r","data":[]}"#,
            );
        } else if let Some(task_id) = path.strip_prefix("/api/v1/tasks/") {
            let before = {
                let mut polls = polls.lock().unwrap();
                let count = polls.entry(task_id.to_string()).or_default();
                *count += 1;
                *count - 1
            };
            match (script.poll)(&origin, task_id, before) {
                Poll::Json(body) => answer_json(stream, &body),
                Poll::Trickle(body) => trickle(stream, &body),
            }
        } else if path.starts_with("/img/") {
            answer(
                stream,
                "200 OK",
                &[("Content-Type", "image/png")],
                &(script.image)(&path),
            );
        } else {
            answer(stream, "404 Not Found", &[], b"{}");
        }
    });
    origin.set(server.origin()).unwrap();
    server
}

fn trickle(stream: &mut TcpStream, body: &str) {
    use std::io::Write;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    for byte in body.bytes() {
        if stream.write_all(&[byte]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn succeeded(task_id: &str, urls: &[String]) -> Poll {
    let results: Vec<_> = urls.iter().map(|u| json!({ "url": u })).collect();
    Poll::Json(
        json!({"request_id": "r", "output": {"task_id": task_id, "task_status": "SUCCEEDED",
            "submit_time": "2025-02-21 17:56:31.786", "end_time": "2025-02-21 17:56:33.786",
            "results": results}})
        .to_string(),
    )
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A PNG whose header claims `width` x `height` (a decompression bomb before inflation),
/// padded to about 1 MB like the file in the issue.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(8, 8);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes.resize(1 << 20, 0);
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn config(data: &Path) -> EngineConfig {
    EngineConfig {
        max_attempts: MAX_ATTEMPTS,
        download_max_bytes: 4 << 20,
        ..engine_config(data)
    }
}

/// A client whose requests end after 1 s, so that a trickling answer is cut quickly.
fn client(server: &Hostile) -> Client {
    Client::with_timeouts(
        &server.base_url(),
        ApiKey::new("test-key".into()),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .unwrap()
}

/// Enqueues one 512*512 n=1 job per prompt, runs the engine until idle, returns the jobs
/// by prompt and the engine (still running) with the events it sent.
async fn run(
    server: &Hostile,
    dir: &Path,
    prompts: &[&str],
) -> (Vec<JobDetail>, EngineHandle, Vec<EngineEvent>) {
    let db = dir.join("wandash.db");
    let store = Store::open(&db).unwrap();
    for prompt in prompts {
        store.enqueue(&spec(Model::Wanx21T2iTurbo, prompt)).unwrap();
    }
    let engine = Engine::start(&db, client(server), config(&dir.join("data"))).unwrap();
    let mut events = engine.subscribe();
    wait_idle(&engine, IDLE_LIMIT).await;
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let mut jobs = all_jobs(&store);
    // Enqueued in the prompts' order.
    jobs.sort_by_key(|j| j.summary.id.0);
    (jobs, engine, seen)
}

fn requests_to(server: &Hostile, path_part: &str) -> usize {
    server
        .seen()
        .iter()
        .filter(|s| s.line().contains(path_part))
        .count()
}

fn creates(server: &Hostile) -> usize {
    requests_to(server, "/image-synthesis")
}

fn error_of(job: &JobDetail) -> String {
    job.summary
        .error()
        .map(|error| format!("{} {}", error.kind.code(), error.message))
        .unwrap_or_default()
}

fn assert_good_job_saved(job: &JobDetail) {
    assert_eq!(job.summary.state(), JobState::Succeeded, "{job:?}");
    assert_eq!(job.summary.images_ok, 1, "{job:?}");
    engine_support::check_saved_images(job);
}

fn good_poll(origin: &str, task_id: &str) -> Poll {
    succeeded(task_id, &[format!("{origin}/img/{task_id}.png")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_results_than_asked_are_cut_to_n_and_the_rest_recorded_as_an_anomaly() {
    let server = serve(Script {
        task_id: |prompt| format!("task-{prompt}"),
        poll: |origin, task_id, _| {
            let urls: Vec<String> = (0..500).map(|i| format!("{origin}/img/{i}.png")).collect();
            succeeded(task_id, &urls)
        },
        image: |_| png(64, 64),
    });
    let dir = tempfile::tempdir().unwrap();
    let (jobs, engine, _) = run(&server, dir.path(), &["many"]).await;
    engine.shutdown().await;
    let job = &jobs[0];
    assert_good_job_saved(job);
    // The anomaly is in the job's history (a succeeded job shows no error).
    assert!(
        job.events.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("500 results"))),
        "{:?}",
        job.events
    );
    assert_eq!(
        requests_to(&server, "/img/"),
        1,
        "only the asked image is fetched"
    );
    let files = files_under(&dir.path().join("data/images"));
    assert_eq!(files.len(), 1, "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_far_larger_than_asked_is_refused_before_it_is_decoded() {
    let server = serve(Script {
        task_id: |prompt| format!("task-{prompt}"),
        poll: |origin, task_id, _| good_poll(origin, task_id),
        image: |path| {
            if path.contains("bomb") {
                png_claiming(16_000, 16_000)
            } else {
                png(64, 64)
            }
        },
    });
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (jobs, engine, _) = run(&server, dir.path(), &["bomb", "fine"]).await;
    engine.shutdown().await;
    println!("16000x16000 refused in {:?}", started.elapsed());
    let bomb = &jobs[0];
    assert!(bomb.summary.state().is_final(), "{bomb:?}");
    assert_eq!(bomb.summary.images_ok, 0);
    let image = &bomb.images[0];
    assert_eq!(
        image.error_code.as_deref(),
        Some("InvalidImage"),
        "{image:?}"
    );
    assert!(
        image.error_message.as_deref().unwrap().contains("limit"),
        "{image:?}"
    );
    assert_eq!(
        requests_to(&server, "/img/task-bomb"),
        MAX_ATTEMPTS as usize,
        "fetched a bounded number of times"
    );
    assert_good_job_saved(&jobs[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_answered_with_one_task_id_end_the_second_job_visibly_and_never_resend() {
    let server = serve(Script {
        task_id: |_| "one-id-for-all".into(),
        poll: |origin, task_id, _| good_poll(origin, task_id),
        image: |_| png(64, 64),
    });
    let dir = tempfile::tempdir().unwrap();
    // Going idle at all is the first assertion: the second job no longer stays submitting.
    let (jobs, engine, _) = run(&server, dir.path(), &["first", "second"]).await;
    engine.shutdown().await;
    let (first, second) = (&jobs[0], &jobs[1]);
    assert_good_job_saved(first);
    assert_eq!(
        second.summary.state(),
        JobState::NeedsAttention,
        "{second:?}"
    );
    let why = error_of(second);
    assert!(
        why.contains("DuplicateTaskId") && why.contains("one-id-for-all"),
        "{why}"
    );
    assert_eq!(creates(&server), 2);

    // A restart sends nothing again.
    let (jobs, engine, _) = run(&server, dir.path(), &[]).await;
    engine.shutdown().await;
    assert_eq!(creates(&server), 2, "no create re-sent on restart");
    assert_eq!(jobs[1].summary.state(), JobState::NeedsAttention);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_ids_that_cannot_be_task_ids_end_their_job_and_are_never_used_nor_resent() {
    let server = serve(Script {
        task_id: |prompt| match prompt {
            "dots" => "../../etc/passwd".into(),
            "slash" => "a/b".into(),
            "escape" => "id\u{1b}[31mred".into(),
            "long" => "x".repeat(5_000),
            _ => "good-task".into(),
        },
        poll: |origin, task_id, _| good_poll(origin, task_id),
        image: |_| png(64, 64),
    });
    let dir = tempfile::tempdir().unwrap();
    let prompts = ["dots", "slash", "escape", "long", "good"];
    let (jobs, engine, _) = run(&server, dir.path(), &prompts).await;
    engine.shutdown().await;
    for job in &jobs[..4] {
        assert_eq!(job.summary.state(), JobState::NeedsAttention, "{job:?}");
        let why = error_of(job);
        assert!(
            why.contains("WrongAnswer") && why.contains("not a task id"),
            "{why}"
        );
        assert!(!why.contains('\u{1b}'), "the escape is not echoed: {why:?}");
        assert!(
            why.len() < 1_000,
            "the 5000-character id is not echoed whole"
        );
        assert_eq!(job.task_id(), None, "{job:?}");
    }
    assert_good_job_saved(&jobs[4]);
    let polls: Vec<_> = server
        .seen()
        .iter()
        .filter(|s| s.line().contains("/tasks/"))
        .map(|s| s.line().to_string())
        .collect();
    assert!(
        polls.iter().all(|l| l.contains("/tasks/good-task")),
        "{polls:?}"
    );
    assert_eq!(creates(&server), 5);
    let (_, engine, _) = run(&server, dir.path(), &[]).await;
    engine.shutdown().await;
    assert_eq!(creates(&server), 5, "no create re-sent on restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_answers_no_client_can_read_are_retried_a_bounded_number_of_times_then_end_the_job() {
    let server = serve(Script {
        task_id: |prompt| format!("task-{prompt}"),
        poll: |origin, task_id, _| {
            let output = match task_id {
                "task-status" => json!({"task_id": task_id, "task_status": "DONE"}),
                "task-nourl" => json!({"task_id": task_id, "task_status": "SUCCEEDED",
                    "results": [{"image": "somewhere"}]}),
                "task-types" => json!({"task_id": 42, "task_status": ["SUCCEEDED"]}),
                _ => return good_poll(origin, task_id),
            };
            Poll::Json(json!({"request_id": "r", "output": output}).to_string())
        },
        image: |_| png(64, 64),
    });
    let dir = tempfile::tempdir().unwrap();
    let (jobs, engine, events) =
        run(&server, dir.path(), &["status", "nourl", "types", "good"]).await;
    engine.shutdown().await;
    for job in &jobs[..3] {
        assert_eq!(job.summary.state(), JobState::NeedsAttention, "{job:?}");
        let why = error_of(job);
        assert!(
            why.contains("stopped following task") && why.contains("3 wrong answers"),
            "{why}"
        );
        let task = job.task_id().unwrap().to_string();
        assert_eq!(
            requests_to(&server, &format!("/tasks/{task} ")),
            MAX_ATTEMPTS as usize,
            "{task} polled a bounded number of times"
        );
        // Each retry was told while it happened, with its reason.
        let told = events
            .iter()
            .filter(|e| matches!(e, EngineEvent::Retrying { id, reason } if *id == job.summary.id && reason.contains("try")))
            .count();
        assert_eq!(told, MAX_ATTEMPTS as usize - 1, "{events:?}");
    }
    assert_good_job_saved(&jobs[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_url_not_http_or_an_image_over_the_byte_limit_fails_that_image_after_bounded_tries()
 {
    let server = serve(Script {
        task_id: |prompt| format!("task-{prompt}"),
        poll: |origin, task_id, _| match task_id {
            "task-file" => succeeded(task_id, &["file:///etc/passwd".into()]),
            _ => good_poll(origin, task_id),
        },
        image: |path| {
            if path.contains("huge") {
                vec![0; 5 << 20]
            } else {
                png(64, 64)
            }
        },
    });
    let dir = tempfile::tempdir().unwrap();
    let (jobs, engine, _) = run(&server, dir.path(), &["file", "huge", "good"]).await;
    engine.shutdown().await;
    for (job, expected) in [
        (&jobs[0], "not an http(s) URL"),
        (&jobs[1], "over the limit"),
    ] {
        assert!(job.summary.state().is_final(), "{job:?}");
        assert_eq!(job.summary.images_ok, 0, "{job:?}");
        let message = job.images[0].error_message.clone().unwrap_or_default();
        assert!(
            message.contains(expected) && message.contains("gave up"),
            "{message}"
        );
    }
    assert_eq!(
        requests_to(&server, "/img/task-huge"),
        MAX_ATTEMPTS as usize
    );
    assert_good_job_saved(&jobs[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_answer_trickling_in_is_cut_at_the_timeout_counted_and_told() {
    let server = serve(Script {
        task_id: |prompt| format!("task-{prompt}"),
        poll: |origin, task_id, polls_before| {
            let Poll::Json(body) = good_poll(origin, task_id) else {
                unreachable!()
            };
            if polls_before == 0 {
                Poll::Trickle(body)
            } else {
                Poll::Json(body)
            }
        },
        image: |_| png(64, 64),
    });
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (jobs, engine, events) = run(&server, dir.path(), &["slow"]).await;
    engine.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_good_job_saved(&jobs[0]);
    assert!(
        events.iter().any(
            |e| matches!(e, EngineEvent::Retrying { reason, .. } if reason.contains("timed out"))
        ),
        "the cut poll was told: {events:?}"
    );
    // And noted on the job, where `show` and the dashboard read it.
    assert!(
        jobs[0]
            .events
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.contains("timed out"))),
        "{:?}",
        jobs[0].events
    );
    assert_eq!(requests_to(&server, "/tasks/task-slow "), 2);
}

/// A server that takes connections and requests and never answers.
fn silent_server() -> Hostile {
    Hostile::start(|_, _| std::thread::sleep(Duration::from_secs(3600)))
}

/// Jobs queued for each stop test.
const STOPPED_JOBS: usize = 3;

/// A scratch store with `STOPPED_JOBS` jobs queued and a config with short polls, for
/// stopping a worker and starting it again.
struct StopRig {
    scratch: Scratch,
    config: std::path::PathBuf,
}

impl StopRig {
    fn new() -> StopRig {
        let scratch = Scratch::new();
        let config = scratch.write(
            "config.toml",
            "[poll]\nmin_interval_ms = 20\nmax_interval_ms = 100\n\n[retry]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n",
        );
        let rig = StopRig { scratch, config };
        let text: String = (0..STOPPED_JOBS)
            .map(|i| format!("{{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"stop test {i}\",\"n\":1,\"size\":\"512*512\"}}\n"))
            .collect();
        let batch = rig.scratch.write("stop.jsonl", text);
        // Enqueueing sends nothing; any base URL does.
        Run::from(
            rig.wandash("http://127.0.0.1:9/api/v1")
                .args(["batch", batch.to_str().unwrap()])
                .output()
                .unwrap(),
        )
        .expect(0);
        rig
    }

    fn wandash(&self, base_url: &str) -> Command {
        let mut cmd = self.scratch.cmd();
        cmd.env("DASHSCOPE_API_KEY", "test-key")
            .arg("--config")
            .arg(&self.config)
            .arg("--base-url")
            .arg(base_url);
        cmd
    }

    /// Starts a worker on `base_url`, waits until `sent` says it has met the service,
    /// sends it SIGTERM and returns how long it took to exit (cleanly, within 5 s: room
    /// for a loaded machine; the printed figure is what counts).
    fn stop_worker(&self, base_url: &str, service: &str, sent: impl Fn() -> bool) -> Duration {
        let mut worker = self.wandash(base_url);
        worker.arg("worker");
        let (took, status) = self.stop(&mut worker, &format!("worker, {service} service"), sent);
        assert!(status.success(), "{status:?}");
        took
    }

    /// Runs `cmd`, waits until `sent`, sends SIGTERM; how long it took to exit (within
    /// 5 s), and how.
    fn stop(
        &self,
        cmd: &mut Command,
        what: &str,
        sent: impl Fn() -> bool,
    ) -> (Duration, std::process::ExitStatus) {
        let mut worker = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let waiting = Instant::now();
        while !sent() {
            assert!(
                waiting.elapsed() < Duration::from_secs(20),
                "{what}: never met the service"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        let stopping = Instant::now();
        Command::new("kill")
            .args(["-TERM", &worker.id().to_string()])
            .status()
            .unwrap();
        let status = loop {
            if let Some(status) = worker.try_wait().unwrap() {
                break status;
            }
            if stopping.elapsed() > Duration::from_secs(5) {
                worker.kill().ok();
                panic!("{what}: did not stop within 5 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = stopping.elapsed();
        println!("{what}: stopped {took:?} after SIGTERM");
        (took, status)
    }

    /// Runs `worker --until-idle` on `sim`: every one of the `jobs` succeeds, and the
    /// service made exactly one task per job.
    fn finish_on(&self, sim: &Sim, jobs: usize) -> Vec<JobDetail> {
        Run::from(
            self.wandash(&sim.base_url)
                .args(["worker", "--until-idle"])
                .output()
                .unwrap(),
        )
        .expect(0);
        let stats = sim.stats();
        assert_eq!(stats["creates"], jobs, "one create per job: {stats}");
        let all = all_jobs(&Store::open(&self.scratch.db()).unwrap());
        assert_eq!(all.len(), jobs);
        for job in &all {
            assert_eq!(job.summary.state(), JobState::Succeeded, "{job:?}");
        }
        all
    }

    /// Whether a job has met the service (a create answered or not, or an error).
    fn any_job_sent(&self) -> bool {
        all_jobs(&Store::open(&self.scratch.db()).unwrap())
            .iter()
            .any(|j| j.summary.status.submitted_at().is_some() || j.summary.error().is_some())
    }
}

#[test]
fn a_worker_stops_within_seconds_while_the_service_never_answers_and_a_restart_finishes_all() {
    let rig = StopRig::new();
    let silent = silent_server();
    rig.stop_worker(&silent.base_url(), "silent", || creates(&silent) > 0);
    // `submit --wait` runs an engine of its own: interrupted the same way (here while it
    // looks the worker's unanswered create up in the silent service's task list), its
    // job stays.
    let sent_before = silent.seen().len();
    let (_, status) = rig.stop(
        rig.wandash(&silent.base_url()).args([
            "submit",
            "--wait",
            "--model",
            "wanx2.1-t2i-turbo",
            "--prompt",
            "waited for",
        ]),
        "submit --wait, silent service",
        || silent.seen().len() > sent_before,
    );
    assert_eq!(status.code(), Some(1), "interrupted: {status:?}");
    rig.finish_on(&Sim::start(&[]), STOPPED_JOBS + 1);
}

#[test]
fn a_worker_stops_within_a_second_while_its_create_is_held_and_the_restart_adopts_that_task() {
    // The service takes the create, makes the task and holds the answer for an hour.
    let rig = StopRig::new();
    let sim = Sim::start(&["--slow", "1", "--slow-delay", "1h"]);
    let took = rig.stop_worker(&sim.base_url, "holding", || sim.stats()["creates"] == 1);
    assert_eq!(sim.stats()["creates"], 1, "one create was on the wire");
    // The same service answers again: the next start finds the task in its list and
    // follows it; it never sends that job's create a second time.
    http_post_json(&format!("{}/__sim/faults", sim.origin()), &json!({}));
    let jobs = rig.finish_on(&sim, STOPPED_JOBS);
    let adopted: Vec<_> = jobs
        .iter()
        .filter(|j| {
            j.events.iter().any(|e| {
                e.detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("adopted"))
            })
        })
        .collect();
    assert_eq!(adopted.len(), 1, "the held create's task adopted: {jobs:?}");
    println!("held create: stopped in {took:?}, its task adopted at the next start");
}

#[test]
fn a_worker_stops_within_a_second_while_the_service_is_unreachable_and_a_restart_finishes_all() {
    // A port nobody listens on: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/api/v1", closed.local_addr().unwrap());
    drop(closed);
    let rig = StopRig::new();
    rig.stop_worker(&base_url, "unreachable", || rig.any_job_sent());
    rig.finish_on(&Sim::start(&[]), STOPPED_JOBS);
}
