//! Crash tests: SIGKILL the worker mid-batch (once, issue #3; ten times in a row at
//! seeded random points, issue #5), restart it, and every job still completes exactly
//! once (the simulator counts creates) with every image intact on disk.

mod cli_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::{Run, Scratch, Sim, files_under};

const JOBS: usize = 24;

#[test]
fn a_worker_killed_mid_batch_resumes_and_creates_every_task_exactly_once() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "config.toml",
        "[limits.\"wanx2.0-t2i-turbo\"]\nsubmit_per_second = 8.0\nin_flight = 6\n\n[poll]\nmin_interval_ms = 50\nmax_interval_ms = 250\n\n[retry]\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n",
    );
    // Tasks run long enough that several are in flight when the worker dies.
    let sim = Sim::start(&[
        "--latency",
        "400ms..900ms",
        "--rate",
        "wanx2.0-t2i-turbo=8",
        "--in-flight",
        "wanx2.0-t2i-turbo=6",
    ]);
    let wandash = |args: &[&str]| {
        let mut cmd = scratch.cmd_against(&sim, "test-key", &config);
        cmd.args(args);
        cmd
    };

    let mut text = String::new();
    for i in 0..JOBS {
        text.push_str(&format!(
            "{{\"model\":\"wanx2.0-t2i-turbo\",\"prompt\":\"crash test {i}\",\"n\":1,\"size\":\"512*512\"}}\n"
        ));
    }
    let batch = scratch.write("crash.jsonl", text);
    Run::from(
        wandash(&["batch", batch.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect(0);

    let mut worker = wandash(&["worker"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let created_at_kill = loop {
        let creates = sim.stats()["creates"].as_u64().unwrap();
        if creates >= 8 {
            break creates;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never got going (creates {creates})"
        );
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    worker.kill().unwrap(); // SIGKILL: no cleanup of any kind
    worker.wait().unwrap();
    assert!(
        created_at_kill < JOBS as u64,
        "killed mid-batch (creates {created_at_kill})"
    );
    let rows = Run::from(
        wandash(&["--json", "list", "--limit", "100"])
            .output()
            .unwrap(),
    )
    .expect(0)
    .json();
    let unfinished = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] != "succeeded")
        .count();
    assert!(unfinished > 0, "jobs were still open when the worker died");

    Run::from(wandash(&["worker", "--until-idle"]).output().unwrap()).expect(0);

    let stats = sim.stats();
    assert_eq!(
        stats["creates"], JOBS as u64,
        "every job created exactly once: {stats}"
    );
    let rows = Run::from(
        wandash(&["--json", "list", "--limit", "100"])
            .output()
            .unwrap(),
    )
    .expect(0)
    .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), JOBS);
    for row in rows {
        assert_eq!(row["state"], "succeeded", "{row}");
        let detail = Run::from(
            wandash(&["--json", "show", &row["id"].to_string()])
                .output()
                .unwrap(),
        )
        .expect(0)
        .json();
        let path = detail["images"][0]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no image for {row}"));
        let img = image::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((img.width(), img.height()), (512, 512));
    }
    let pngs = files_under(&scratch.data_dir().join("images"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .count();
    assert_eq!(pngs, JOBS, "one image per job on disk, no leftovers");
}

const MODEL: &str = "wanx2.0-t2i-turbo";
const KILLED_BATCH: usize = 80;
const KILLS: usize = 10;

/// Issue #5: ten SIGKILLs in a row at points drawn from a seeded RNG (a number of creates
/// the simulator must have counted, then a delay), so that kills land while the engine
/// resumes, between a create and its recorded answer, while tasks run and while images
/// are written; then one restart runs the batch to its end.
#[test]
fn ten_sigkills_in_a_row_lose_no_image_and_create_no_task_twice() {
    let seed: u64 = std::env::var("WANDASH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rng = fastrand::Rng::with_seed(seed);
    let scratch = Scratch::new();
    let config = scratch.write(
        "config.toml",
        format!(
            "[limits.\"{MODEL}\"]\nsubmit_per_second = 20.0\nin_flight = 12\n\n[poll]\nmin_interval_ms = 20\nmax_interval_ms = 100\n\n[retry]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n"
        ),
    );
    let sim = Sim::start(&[
        "--latency",
        "100ms..400ms",
        "--rate",
        &format!("{MODEL}=20"),
        "--in-flight",
        &format!("{MODEL}=12"),
    ]);
    let wandash = |args: &[&str]| {
        let mut cmd = scratch.cmd_against(&sim, "test-key", &config);
        cmd.args(args);
        cmd
    };
    // One or two images per job: a kill can also land between two images of one job.
    let mut text = String::new();
    for i in 0..KILLED_BATCH {
        let n = 1 + i % 2;
        text.push_str(&format!(
            "{{\"model\":\"{MODEL}\",\"prompt\":\"ten kills {i}\",\"n\":{n},\"size\":\"512*512\"}}\n"
        ));
    }
    let batch = scratch.write("kills.jsonl", text);
    Run::from(
        wandash(&["batch", batch.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect(0);

    let creates = || sim.stats()["creates"].as_u64().unwrap();
    let mut kills = Vec::new();
    for round in 0..KILLS {
        let before = creates();
        let target = (before + rng.u64(0..=12)).min(KILLED_BATCH as u64);
        let delay = Duration::from_millis(rng.u64(0..300));
        let mut worker = wandash(&["worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while creates() < target {
            assert!(
                Instant::now() < deadline,
                "round {round}: stuck below {target} creates"
            );
            assert!(
                worker.try_wait().unwrap().is_none(),
                "round {round}: the worker exited"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(delay);
        worker.kill().unwrap(); // SIGKILL: no cleanup of any kind
        worker.wait().unwrap();
        kills.push((creates(), delay));
    }
    // The kills must have spread over the batch, not all landed after it was done.
    let early = kills
        .iter()
        .filter(|(c, _)| *c < KILLED_BATCH as u64)
        .count();
    assert!(
        early >= KILLS / 2,
        "most kills landed mid-creates: {kills:?} (seed {seed})"
    );

    Run::from(wandash(&["worker", "--until-idle"]).output().unwrap()).expect(0);

    let context = format!("seed {seed}, kills at (creates, delay) {kills:?}");
    let stats = sim.stats();
    assert_eq!(
        stats["creates"], KILLED_BATCH as u64,
        "every job created exactly once ({context}): {stats}"
    );
    let store = wandash::store::Store::open(&scratch.db()).unwrap();
    let rows = store
        .list(&wandash::store::JobFilter::default(), 0, 1000)
        .unwrap();
    assert_eq!(rows.len(), KILLED_BATCH);
    let mut recorded = std::collections::HashSet::new();
    for row in &rows {
        let detail = store.job(row.id).unwrap().unwrap();
        assert_eq!(
            row.state(),
            wandash::store::JobState::Succeeded,
            "job {} ({context}): {:?}",
            row.id,
            row.error()
        );
        let n = detail.spec.n.unwrap() as usize;
        assert_eq!(
            detail.images.len(),
            n,
            "job {}: {:?}",
            row.id,
            detail.images
        );
        for image in &detail.images {
            let path = image.path.clone().unwrap_or_else(|| {
                panic!("job {} image {} not saved: {image:?}", row.id, image.index)
            });
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(Some(bytes.len() as u64), image.bytes, "{}", path.display());
            assert_eq!(
                image.sha256.as_deref(),
                Some(sha256(&bytes).as_str()),
                "{}",
                path.display()
            );
            let decoded = image::load_from_memory(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!((decoded.width(), decoded.height()), (512, 512));
            recorded.insert(path);
        }
    }
    // Nothing else in the images directory: no temp file a kill interrupted, no image
    // written twice under another name.
    let on_disk: std::collections::HashSet<_> = files_under(&scratch.data_dir().join("images"))
        .into_iter()
        .collect();
    let extra: Vec<_> = on_disk.difference(&recorded).collect();
    assert!(extra.is_empty(), "files no job records: {extra:?}");
    let temps: Vec<_> = files_under(&scratch.data_dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(temps.is_empty(), "temp files left behind: {temps:?}");
    drop(store);
    let db = rusqlite::Connection::open(scratch.db()).unwrap();
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Issue #11: a worker killed while a synchronous call (qwen-image-max, served only by
/// the multimodal-generation endpoint) is held by the service. There is no task id to
/// look the call up by, so the restarted worker never sends it again by itself: the job
/// needs attention, saying the image may have been made and billed; `retry` sends it
/// again on the user's word. The simulator's count of calls proves both.
#[test]
fn a_worker_killed_during_a_synchronous_call_never_sends_it_again_without_retry() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "config.toml",
        "[poll]\nmin_interval_ms = 50\nmax_interval_ms = 250\n\n[retry]\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n",
    );
    // Long enough a hold that the kill lands while the call is on the wire.
    let sim = Sim::start(&["--latency", "1s..1s"]);
    let wandash = |args: &[&str]| {
        let mut cmd = scratch.cmd_against(&sim, "test-key", &config);
        cmd.args(args);
        cmd
    };
    let calls = || sim.stats()["sync_calls"].as_u64().unwrap();
    let submitted = Run::from(
        wandash(&[
            "--json",
            "submit",
            "--model",
            "qwen-image-max",
            "--prompt",
            "a lighthouse at dusk",
        ])
        .output()
        .unwrap(),
    )
    .expect(0)
    .json();
    let id = submitted["ids"][0].to_string();

    let mut worker = wandash(&["worker"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while calls() == 0 {
        assert!(
            Instant::now() < deadline,
            "the call never reached the simulator"
        );
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker exited early"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    worker.kill().unwrap(); // SIGKILL while the simulator holds the call
    worker.wait().unwrap();

    Run::from(wandash(&["worker", "--until-idle"]).output().unwrap()).expect(0);
    let show = |id: &str| {
        Run::from(wandash(&["--json", "show", id]).output().unwrap())
            .expect(0)
            .json()
    };
    let detail = show(&id);
    assert_eq!(detail["summary"]["state"], "needs_attention", "{detail}");
    let message = detail["summary"]["error_message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("billed") && message.contains("no task id"),
        "{detail}"
    );
    assert_eq!(calls(), 1, "not sent again without the user's word");

    Run::from(wandash(&["retry", &id]).output().unwrap()).expect(0);
    Run::from(wandash(&["worker", "--until-idle"]).output().unwrap()).expect(0);
    let detail = show(&id);
    assert_eq!(detail["summary"]["state"], "succeeded", "{detail}");
    assert_eq!(calls(), 2, "sent once more on retry");
    let path = detail["images"][0]["path"].as_str().unwrap();
    let img = image::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!((img.width(), img.height()), (1664, 928));
}
