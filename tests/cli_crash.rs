//! Issue #3's crash test: SIGKILL the worker mid-batch, restart it, and every job still
//! completes exactly once (the simulator counts creates).

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
        let mut cmd = scratch.cmd();
        cmd.env("DASHSCOPE_API_KEY", "test-key")
            .arg("--config")
            .arg(&config)
            .arg("--base-url")
            .arg(&sim.base_url);
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
    Run::from(wandash(&["batch", batch.to_str().unwrap()]).output().unwrap()).expect(0);

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
        assert!(worker.try_wait().unwrap().is_none(), "the worker exited early");
        std::thread::sleep(Duration::from_millis(20));
    };
    worker.kill().unwrap(); // SIGKILL: no cleanup of any kind
    worker.wait().unwrap();
    assert!(
        created_at_kill < JOBS as u64,
        "killed mid-batch (creates {created_at_kill})"
    );
    let rows = Run::from(wandash(&["--json", "list", "--limit", "100"]).output().unwrap())
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
    assert_eq!(stats["creates"], JOBS as u64, "every job created exactly once: {stats}");
    let rows = Run::from(wandash(&["--json", "list", "--limit", "100"]).output().unwrap())
        .expect(0)
        .json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), JOBS);
    for row in rows {
        assert_eq!(row["state"], "succeeded", "{row}");
        let detail = Run::from(wandash(&["--json", "show", &row["id"].to_string()]).output().unwrap())
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
