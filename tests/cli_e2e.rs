//! End to end through the binary against a `wandash sim` child process on loopback.

mod cli_support;

use std::path::PathBuf;

use cli_support::{Scratch, Sim};

/// Fast polling and raised limits, so each test takes seconds.
const FAST_CONFIG: &str = r#"
[limits."wanx2.0-t2i-turbo"]
submit_per_second = 10.0
in_flight = 6

[poll]
min_interval_ms = 50
max_interval_ms = 250

[retry]
backoff_base_ms = 50
backoff_cap_ms = 500
"#;

const SIM_LIMITS: [&str; 4] = [
    "--rate",
    "wanx2.0-t2i-turbo=10",
    "--in-flight",
    "wanx2.0-t2i-turbo=6",
];

struct Setup {
    scratch: Scratch,
    sim: Sim,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let scratch = Scratch::new();
        let config = scratch.write("config.toml", FAST_CONFIG);
        Setup {
            sim: Sim::start(&SIM_LIMITS),
            scratch,
            config,
        }
    }

    fn run_with_key(&self, key: &str, args: &[&str]) -> cli_support::Run {
        let mut cmd = self.scratch.cmd_against(&self.sim, key, &self.config);
        cli_support::Run::from(cmd.args(args).output().expect("run wandash"))
    }

    fn run(&self, args: &[&str]) -> cli_support::Run {
        self.run_with_key("test-key", args)
    }

    fn creates(&self) -> u64 {
        self.sim.stats()["creates"].as_u64().unwrap()
    }
}

fn assert_png(path: &str, width: u32, height: u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{path} does not decode: {e}"));
    assert_eq!((img.width(), img.height()), (width, height), "{path}");
    assert!(path.ends_with(".png"), "{path}");
}

#[test]
fn submit_wait_prints_the_paths_of_valid_pngs() {
    let t = Setup::new();
    let run = t
        .run(&[
            "submit",
            "--model",
            "wanx2.0-t2i-turbo",
            "--prompt",
            "a lighthouse at dusk",
            "-n",
            "2",
            "--size",
            "768*512",
            "--wait",
        ])
        .expect(0);
    let paths: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(paths.len(), 2, "{}", run.stdout);
    for path in &paths {
        assert!(
            path.starts_with(t.scratch.data_dir().to_str().unwrap()),
            "{path}"
        );
        assert_png(path, 768, 512);
    }
    assert!(run.stderr.contains("job 1 queued"), "{}", run.stderr);
    assert_eq!(t.creates(), 1);
}

#[test]
fn batch_then_worker_until_idle_then_list_show_export() {
    let t = Setup::new();
    let batch = t.scratch.write(
        "b.toml",
        "[[job]]\nmodel = \"wanx2.0-t2i-turbo\"\nprompts = [\"a fox\", \"an owl\", \"a bear\"]\nseeds = [7, 8]\nsize = \"512*512\"\nn = 1\n",
    );
    let queued = t
        .run(&["--json", "batch", batch.to_str().unwrap()])
        .expect(0)
        .json();
    let ids: Vec<i64> = queued["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(t.creates(), 0, "queueing sends nothing");

    t.run(&["worker", "--until-idle"]).expect(0);
    assert_eq!(t.creates(), 6);

    let rows = t
        .run(&["--json", "list", "--status", "succeeded"])
        .expect(0)
        .json();
    assert_eq!(rows.as_array().unwrap().len(), 6);
    let text = t.run(&["list"]).expect(0).stdout;
    assert_eq!(
        text.lines().filter(|l| l.contains("succeeded")).count(),
        6,
        "{text}"
    );
    // The id column is right-aligned under its header, so the state column lines up.
    let state_column: Vec<_> = text
        .lines()
        .map(|l| l.find("state").or(l.find("succeeded")))
        .collect();
    assert!(state_column.windows(2).all(|w| w[0] == w[1]), "{text}");

    let shown = t
        .run(&["--json", "show", &ids[2].to_string()])
        .expect(0)
        .json();
    assert_eq!(shown["summary"]["state"], "succeeded");
    assert_eq!(shown["spec"]["prompt"], "an owl");
    assert_eq!(shown["spec"]["seed"], 7);
    let image_path = shown["images"][0]["path"].as_str().unwrap();
    assert_png(image_path, 512, 512);
    assert!(
        shown["events"].as_array().unwrap().len() >= 3,
        "every state change is logged"
    );
    let text = t.run(&["show", &ids[2].to_string()]).expect(0).stdout;
    assert!(
        text.contains("an owl") && text.contains(image_path),
        "{text}"
    );

    let out = t.scratch.path("export");
    t.run(&["export", "--to", out.to_str().unwrap()]).expect(0);
    for id in &ids {
        let sidecar: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("job-{id}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(sidecar["id"], *id);
        assert_eq!(sidecar["spec"]["model"], "wanx2.0-t2i-turbo");
        assert_eq!(sidecar["request"]["parameters"]["size"], "512*512");
        let file = sidecar["images"][0]["file"].as_str().unwrap();
        assert_png(out.join(file).to_str().unwrap(), 512, 512);
    }

    // One image starred (the column `*` in the dashboard sets), then only it exported,
    // through the same never-overwrite path, and `show` marking it.
    let store = wandash::store::Store::open(&t.scratch.db()).unwrap();
    let owl = wandash::store::JobId(ids[2]);
    assert!(store.set_starred(owl, 0, true).unwrap());
    drop(store);
    let starred = t.scratch.path("starred");
    t.run(&["export", "--to", starred.to_str().unwrap(), "--starred"])
        .expect(0);
    let mut names: Vec<String> = std::fs::read_dir(&starred)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [format!("job-{owl}-0.png"), format!("job-{owl}.json")]
    );
    let text = t.run(&["show", &ids[2].to_string()]).expect(0).stdout;
    assert!(text.contains("seed 7 ★ starred"), "{text}");
}

#[test]
fn a_cancelled_job_is_never_sent_and_a_failed_job_exits_4() {
    let t = Setup::new();
    let id = t
        .run(&[
            "submit",
            "--model",
            "wanx2.0-t2i-turbo",
            "--prompt",
            "never",
            "-n",
            "1",
        ])
        .expect(0)
        .stdout;
    t.run(&["cancel", id.trim()]).expect(0);
    t.run(&["worker", "--until-idle"]).expect(0);
    assert_eq!(t.creates(), 0);

    // An input URL the simulator does not serve: the job ends failed, not retried forever.
    let missing = format!("{}/results/none/0.png", t.sim.origin());
    let run = t.run(&[
        "submit",
        "--model",
        "wanx2.1-imageedit",
        "--prompt",
        "colour it",
        "--function",
        "colorization",
        "--base-image",
        &missing,
        "--wait",
    ]);
    let run = run.expect(4);
    assert!(run.stderr.contains("failed"), "{}", run.stderr);
}

#[test]
fn a_wrong_api_key_stops_the_engine_with_exit_3() {
    let scratch = Scratch::new();
    let sim = Sim::start(&["--key", "the-right-key"]);
    let mut cmd = scratch.cmd();
    cmd.env("DASHSCOPE_API_KEY", "the-wrong-key").args([
        "--base-url",
        &sim.base_url,
        "submit",
        "--model",
        "wanx2.0-t2i-turbo",
        "--prompt",
        "x",
        "-n",
        "1",
        "--wait",
    ]);
    let run = cli_support::Run::from(cmd.output().unwrap()).expect(3);
    assert!(run.stderr.contains("InvalidApiKey"), "{}", run.stderr);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{}",
        run.stderr
    );
    let rows = scratch.run(&["--json", "list"]).expect(0).json();
    let detail = scratch.run(&["--json", "show", "1"]).expect(0).stdout;
    assert_eq!(
        rows[0]["state"], "queued",
        "the job waits for a good key: {detail}"
    );
}

#[test]
fn a_base_url_without_a_key_is_refused_clearly() {
    let scratch = Scratch::new();
    let sim = Sim::start(&[]);
    let mut cmd = scratch.cmd();
    cmd.args(["--base-url", &sim.base_url, "worker", "--until-idle"]);
    let run = cli_support::Run::from(cmd.output().unwrap()).expect(3);
    assert!(run.stderr.contains("DASHSCOPE_API_KEY"), "{}", run.stderr);
}

#[test]
fn watch_prints_plain_progress_lines_until_the_queue_drains() {
    let t = Setup::new();
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&format!(
            "{{\"model\":\"wanx2.0-t2i-turbo\",\"prompt\":\"w{i}\",\"n\":1,\"size\":\"512*512\"}}\n"
        ));
    }
    let batch = t.scratch.write("w.jsonl", text);
    t.run(&["batch", batch.to_str().unwrap()]).expect(0);
    let mut worker = t.scratch.cmd_against(&t.sim, "test-key", &t.config);
    worker
        .arg("worker")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut worker = worker.spawn().unwrap();
    let watched = t.run(&["watch"]);
    worker.kill().ok();
    worker.wait().ok();
    let watched = watched.expect(0);
    let last = watched
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.starts_with("6/6 jobs done (6 succeeded, 0 not)") && last.ends_with("done"),
        "{}",
        watched.stdout
    );
    assert!(
        !watched.stdout.contains('\x1b'),
        "no terminal codes when stdout is not a terminal"
    );
}

#[test]
fn sigterm_stops_the_worker_cleanly() {
    let t = Setup::new();
    let mut worker = t.scratch.cmd_against(&t.sim, "test-key", &t.config);
    worker
        .arg("worker")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let worker = worker.spawn().unwrap();
    // Wait until it holds the engine lock: a second engine is then refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !t.scratch.data_dir().join("wandash.db.engine.lock").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = worker.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_key_and_base_url_the_embedded_simulator_is_used_and_said() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "config.toml",
        "[simulator]\nlatency_min_ms = 50\nlatency_max_ms = 150\n\n[poll]\nmin_interval_ms = 50\nmax_interval_ms = 250\n",
    );
    let run = scratch
        .run(&[
            "--config",
            config.to_str().unwrap(),
            "submit",
            "--model",
            "wanx2.0-t2i-turbo",
            "--prompt",
            "offline",
            "-n",
            "1",
            "--size",
            "512*512",
            "--wait",
        ])
        .expect(0);
    assert!(run.stderr.contains("SIMULATOR"), "{}", run.stderr);
    assert_png(run.stdout.trim(), 512, 512);
}

#[test]
fn every_command_has_help_with_the_exit_codes_where_they_matter() {
    let scratch = Scratch::new();
    for cmd in [
        "submit", "batch", "worker", "list", "show", "watch", "cancel", "retry", "export", "sim",
    ] {
        let run = scratch.run(&[cmd, "--help"]).expect(0);
        assert!(
            run.stdout.contains("Usage: wandash"),
            "{cmd}: {}",
            run.stdout
        );
    }
    let top = scratch.run(&["--help"]).expect(0).stdout;
    for line in [
        "0  success",
        "2  usage or validation error",
        "3  engine or backend error",
        "4  with --wait",
    ] {
        assert!(top.contains(line), "{top}");
    }
    assert!(
        scratch
            .run(&["batch", "--help"])
            .expect(0)
            .stdout
            .contains("prompts x seeds x sizes")
    );
    scratch.run(&["frobnicate"]).expect(2);
}
