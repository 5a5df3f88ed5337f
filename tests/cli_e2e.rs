//! End to end through the binary against a `wandash sim` child process on loopback.

mod cli_support;

use std::path::PathBuf;

use cli_support::{Run, Scratch, Sim};

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

/// Two 768x512 images of one prompt, waited for: the jobs several tests start from.
const SUBMIT_TWO_768X512: [&str; 10] = [
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
];

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

    /// `run` on the store at `db` (a `postgres://` URL) instead of the scratch file.
    fn run_on(&self, db: &std::path::Path, args: &[&str]) -> cli_support::Run {
        let mut cmd = self
            .scratch
            .cmd_against_on(db, &self.sim, "test-key", &self.config);
        cli_support::Run::from(cmd.args(args).output().expect("run wandash"))
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
    let run = t.run(&SUBMIT_TWO_768X512).expect(0);
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

/// Issue #11: wan2.6-t2i goes through image-generation (a task, polled), qwen-image-max
/// through one synchronous multimodal-generation call; both print their PNGs' paths.
#[test]
fn submit_wait_prints_the_pngs_of_the_messages_endpoints() {
    let t = Setup::new();
    let run = t
        .run(&[
            "submit",
            "--model",
            "wan2.6-t2i",
            "--prompt",
            "a flower shop",
            "-n",
            "1",
            "--wait",
        ])
        .expect(0);
    let paths: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(paths.len(), 1, "{}", run.stdout);
    assert_png(paths[0], 1280, 1280);
    assert_eq!(t.creates(), 1);

    let run = t
        .run(&[
            "submit",
            "--model",
            "qwen-image-max",
            "--prompt",
            "a lighthouse",
            "--wait",
        ])
        .expect(0);
    let paths: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(paths.len(), 1, "{}", run.stdout);
    assert_png(paths[0], 1664, 928);
    assert_eq!(t.creates(), 1, "a synchronous call creates no task");
    assert_eq!(t.sim.stats()["sync_calls"], 1);
}

/// Issue #11: wan2.7-image with `--color-palette` and `--bbox-list` on an input image:
/// the simulator, which checks both like the service, makes the image; `show` keeps them.
#[test]
fn submit_sends_a_wan27_color_palette_and_bbox_list_the_service_accepts() {
    let t = Setup::new();
    let input = t.scratch.path("input.png");
    image::RgbImage::from_fn(320, 320, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .save(&input)
    .unwrap();
    let run = t
        .run(&[
            "submit",
            "--model",
            "wan2.7-image",
            "--prompt",
            "repaint image 1 in these colours",
            "--image",
            input.to_str().unwrap(),
            "-n",
            "1",
            "--size",
            "1024*1024",
            "--color-palette",
            "#112233:0.5,#445566:0.3,#778899:0.2",
            "--bbox-list",
            "[[[0,0,160,160]]]",
            "--wait",
        ])
        .expect(0);
    let paths: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(paths.len(), 1, "{}", run.stdout);
    assert_png(paths[0], 1024, 1024);
    let show = t.run(&["--json", "show", "1"]).expect(0).json();
    assert_eq!(
        show["spec"]["color_palette"][2],
        serde_json::json!({"hex": "#778899", "ratio": 0.2}),
        "{show}"
    );
    assert_eq!(
        show["spec"]["bbox_list"],
        serde_json::json!([[[0.0, 0.0, 160.0, 160.0]]])
    );
}

/// Issue #11: `[sync] call_timeout_ms` shorter than the simulator's hold: the call ends at
/// the limit, and the job needs attention saying so (the service may still bill the
/// image), not sent again; `submit --wait` exits 4.
#[test]
fn a_synchronous_call_past_the_configured_timeout_needs_attention_and_is_not_resent() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "config.toml",
        format!("{FAST_CONFIG}\n[sync]\ncall_timeout_ms = 300\n"),
    );
    let sim = Sim::start(&["--latency", "3s..3s"]);
    let run = Run::from(
        scratch
            .cmd_against(&sim, "test-key", &config)
            .args([
                "--json",
                "submit",
                "--model",
                "qwen-image-max",
                "--prompt",
                "a lighthouse",
                "--wait",
            ])
            .output()
            .unwrap(),
    )
    .expect(4);
    let show = Run::from(
        scratch
            .cmd_against(&sim, "test-key", &config)
            .args(["--json", "show", "1"])
            .output()
            .unwrap(),
    )
    .expect(0)
    .json();
    assert_eq!(show["summary"]["state"], "needs_attention", "{show}");
    let message = show["summary"]["error_message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("within 0.3 s") && message.contains("sync.call_timeout_ms"),
        "{message}"
    );
    assert!(message.contains("billed"), "{message}");
    assert_eq!(
        sim.stats()["sync_calls"],
        1,
        "not sent again: {}",
        run.stderr
    );
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
        "submit", "batch", "worker", "list", "show", "watch", "stats", "cancel", "retry", "export",
        "sim", "delete", "pause", "resume", "top",
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

/// Ends job `id` succeeded at `ended_ms` (made a second before) with `images` images that
/// cost `cost`, as the engine writes an ended job.
fn end_job(db: &std::path::Path, id: i64, ended_ms: i64, images: u32, cost: f64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(
        "UPDATE jobs SET state = 'succeeded', task_id = 'task-' || id, task_status = 'SUCCEEDED',
             created_at = ?2 - 1000, submitted_at = ?2 - 1000, ended_at = ?2,
             images_expected = ?3, images_ok = ?3, cost_cny = ?4
         WHERE id = ?1",
        rusqlite::params![id, ended_ms, images, cost],
    )
    .unwrap();
}

#[test]
fn stats_match_the_store_and_a_budget_holds_jobs_with_the_reason_said() {
    let t = Setup::new();
    // In UTC, so that the test and the binary agree where today and the month begin.
    let run = |config: &std::path::Path, args: &[&str]| {
        let mut cmd = t.scratch.cmd_against(&t.sim, "test-key", config);
        cli_support::Run::from(cmd.env("TZ", "UTC").args(args).output().unwrap())
    };
    let now = time::OffsetDateTime::now_utc();
    let ms = |at: time::OffsetDateTime| (at.unix_timestamp_nanos() / 1_000_000) as i64;
    let today = ms(now.replace_time(time::Time::MIDNIGHT));
    let month = ms(now
        .replace_time(time::Time::MIDNIGHT)
        .replace_day(1)
        .unwrap());
    let turbo = "wanx2.1-t2i-turbo";
    // Oldest first, so the first job is where free images are counted from.
    let ended = [
        (turbo, month - 40 * 86_400_000, 4, 0.56),
        ("wanx2.1-t2i-plus", month - 86_400_000, 2, 0.4),
        (turbo, month, 3, 0.14 * 3.0),
        (turbo, ms(now) - 1000, 4, 0.56),
    ];
    for (i, (model, at, images, cost)) in ended.iter().enumerate() {
        run(
            &t.config,
            &["submit", "--model", model, "--prompt", "counted"],
        )
        .expect(0);
        end_job(&t.scratch.db(), i as i64 + 1, *at, *images, *cost);
    }
    let sum = |model: &str, since: i64| {
        let rows = ended
            .iter()
            .filter(|(m, at, ..)| *m == model && *at >= since);
        let images: u32 = rows.clone().map(|r| r.2).sum();
        let cost: f64 = rows.map(|r| r.3).sum();
        (images, (cost * 100.0).round() / 100.0)
    };

    let stats = run(&t.config, &["--json", "stats"]).expect(0).json();
    let line = |model: &str| {
        stats["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == model)
            .unwrap_or_else(|| panic!("{model} in {stats}"))
            .clone()
    };
    for model in [turbo, "wanx2.1-t2i-plus"] {
        let m = line(model);
        for (images_key, spend_key, since) in [
            ("images_today", "spend_today_cny", today),
            ("images_month", "spend_month_cny", month),
            ("images_total", "spend_total_cny", i64::MIN),
        ] {
            let (images, spend) = sum(model, since);
            assert_eq!(m[images_key], images, "{model} {images_key}: {m}");
            assert_eq!(
                m[spend_key].as_f64().unwrap(),
                spend,
                "{model} {spend_key}: {m}"
            );
        }
        assert_eq!(m["free_images_left"], 500 - sum(model, i64::MIN).0, "{m}");
    }
    let all = |since: i64| {
        let cost: f64 = ended.iter().filter(|r| r.1 >= since).map(|r| r.3).sum();
        (cost * 100.0).round() / 100.0
    };
    assert_eq!(stats["spend_today_cny"].as_f64().unwrap(), all(today));
    assert_eq!(stats["spend_month_cny"].as_f64().unwrap(), all(month));
    assert_eq!(stats["free_images_counted_locally"], true);
    assert_eq!(line("wan2.5-i2i-preview")["images_total"], 0);
    let text = run(&t.config, &["stats"]).expect(0).stdout;
    assert!(
        text.contains(turbo) && text.contains("counted locally"),
        "{text}"
    );
    // Money in job JSON is to the cent: 0.14 x 3 is not 0.42000000000000004.
    let listed = run(&t.config, &["--json", "list"]).expect(0);
    assert!(listed.stdout.contains("0.42"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("0000000"), "{}", listed.stdout);

    // A daily budget already spent: the job waits, says so up front, and nothing is sent.
    let budgeted = t.scratch.write(
        "budget.toml",
        format!(
            "{FAST_CONFIG}\n[budget]\ndaily_cny = {}\n",
            all(today) + 0.1
        ),
    );
    let submitted = run(
        &budgeted,
        &[
            "submit", "--model", turbo, "--prompt", "too dear", "-n", "2",
        ],
    )
    .expect(0);
    assert!(
        submitted.stderr.contains("waits for budget")
            && submitted.stderr.contains("budget.daily_cny"),
        "{}",
        submitted.stderr
    );
    let id = submitted.stdout.trim().to_string();
    let batch = t.scratch.write(
        "dear.jsonl",
        format!("{{\"model\": \"{turbo}\", \"prompt\": \"dearer\", \"n\": 1}}\n"),
    );
    let dry = run(&budgeted, &["batch", "--dry-run", batch.to_str().unwrap()]).expect(0);
    assert!(dry.stderr.contains("waits for budget"), "{}", dry.stderr);
    run(&budgeted, &["worker", "--until-idle"]).expect(0);
    assert_eq!(t.creates(), 0, "nothing past the budget is sent");
    let list = run(&budgeted, &["list"]).expect(0).stdout;
    assert!(list.contains("OverBudget: waits for budget"), "{list}");
    let shown = run(&budgeted, &["--json", "show", &id]).expect(0).json();
    assert_eq!(shown["summary"]["state"], "queued");
    assert_eq!(shown["summary"]["error_code"], "OverBudget");
    // A raised limit lets it go.
    let raised = t.scratch.write(
        "raised.toml",
        format!("{FAST_CONFIG}\n[budget]\ndaily_cny = 100.0\n"),
    );
    run(&raised, &["worker", "--until-idle"]).expect(0);
    assert_eq!(t.creates(), 1);
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} in time");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Setup {
    /// Queues one 512x512 image of `model`; its id.
    fn submit(&self, model: &str, prompt: &str) -> String {
        let args = ["submit", "--model", model, "--prompt", prompt, "-n", "1"];
        let run = self.run(&[&args[..], &["--size", "512*512"]].concat());
        run.expect(0).stdout.trim().to_string()
    }

    fn state(&self, id: &str) -> String {
        let shown = self.run(&["--json", "show", id]).expect(0).json();
        shown["summary"]["state"].as_str().unwrap().to_string()
    }

    fn worker(&self) -> KillOnDrop {
        let mut worker = self
            .scratch
            .cmd_against(&self.sim, "test-key", &self.config);
        worker
            .arg("worker")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        KillOnDrop(worker.spawn().unwrap())
    }

    /// The lines of the store's log (beside the database) that contain every one of `words`.
    fn log_lines_with(&self, words: &[&str]) -> usize {
        let log = std::fs::read_to_string(self.scratch.data_dir().join("logs/wandash.log"))
            .unwrap_or_default();
        log.lines()
            .filter(|line| words.iter().all(|w| line.contains(w)))
            .count()
    }
}

#[test]
fn a_pause_holds_every_create_of_a_worker_in_another_process_and_resume_drains() {
    let t = Setup::new();
    let _worker = t.worker();

    // One model paused: its job waits while a job of another model, queued after it,
    // is sent (the worker's round that sent that one saw this one and held it).
    t.run(&["pause", "--model", "wanx2.1-t2i-turbo"]).expect(0);
    let held = t.submit("wanx2.1-t2i-turbo", "held by its model");
    let witness = t.submit("wanx2.0-t2i-turbo", "sent meanwhile");
    wait_until("the other model's job", || t.state(&witness) == "succeeded");
    assert_eq!(t.creates(), 1);
    let shown = t.run(&["--json", "show", &held]).expect(0).json();
    assert_eq!(shown["summary"]["state"], "queued");
    let why = shown["waiting"].as_str().unwrap_or_default();
    assert!(why.contains("wanx2.1-t2i-turbo is paused"), "{shown}");
    let list = t.run(&["list"]).expect(0).stdout;
    assert!(
        list.contains("paused: wanx2.1-t2i-turbo")
            && list.contains("waits: wanx2.1-t2i-turbo is paused"),
        "{list}"
    );
    let rows = t.run(&["--json", "list"]).expect(0).json();
    assert_eq!(rows[0]["waiting"], serde_json::Value::Null, "{rows}");
    assert!(rows[1]["waiting"].is_string(), "{rows}");

    // The whole queue: the worker sees the new job and holds it (its log says so).
    t.run(&["pause"]).expect(0);
    let later = t.submit("wanx2.0-t2i-turbo", "held by the queue");
    wait_until("the worker holding the new job", || {
        t.log_lines_with(&["queued jobs held: the queue is paused", "wanx2.0-t2i-turbo"]) > 0
    });
    assert_eq!(t.creates(), 1, "nothing sent while paused");
    let text = t.run(&["show", &later]).expect(0).stdout;
    assert!(text.contains("the queue is paused"), "{text}");
    let partly = t
        .run(&["resume", "--model", "wanx2.1-t2i-turbo"])
        .expect(0)
        .stdout;
    assert!(
        partly.contains("the whole queue is still paused"),
        "{partly}"
    );
    assert_eq!(t.creates(), 1);

    t.run(&["resume"]).expect(0);
    wait_until("every job", || {
        [&held, &later].iter().all(|id| t.state(id) == "succeeded")
    });
    assert_eq!(t.creates(), 3);
}

#[test]
fn top_delete_and_cancel_refuse_what_they_must_and_ask_first() {
    let t = Setup::new();
    let ids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|p| t.submit("wanx2.0-t2i-turbo", p))
        .collect();
    let next = t.run(&["top", &ids[2]]).expect(0).stdout;
    assert!(next.contains("goes next"), "{next}");
    let queued = t
        .run(&["--json", "list", "--status", "queued"])
        .expect(0)
        .json();
    let order: Vec<String> = queued
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].to_string())
        .collect();
    assert_eq!(order, [&*ids[2], &*ids[0], &*ids[1]], "in send order");

    // Without a terminal, delete needs --yes; a missing job refuses the whole command.
    let refused = t.run(&["delete", &ids[0]]).expect(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let missing = t.run(&["delete", "--yes", &ids[0], "999"]).expect(2);
    assert!(
        missing.stderr.contains("job 999 does not exist"),
        "{}",
        missing.stderr
    );
    assert_eq!(t.state(&ids[0]), "queued", "nothing was deleted");

    t.run(&["worker", "--until-idle"]).expect(0);
    let done = t.run(&["top", &ids[0]]).expect(2);
    assert!(done.stderr.contains("only a queued job"), "{}", done.stderr);
    let images = t.scratch.data_dir().join("images").join(&ids[0]);
    assert_eq!(cli_support::files_under(&images).len(), 1);
    let deleted = t
        .run(&["--json", "delete", "--yes", &ids[0], &ids[1]])
        .expect(0)
        .json();
    assert_eq!(deleted["deleted"][0]["images_removed"], 1, "{deleted}");
    assert!(!images.exists());
    t.run(&["show", &ids[1]]).expect(2);
    assert_eq!(t.state(&ids[2]), "succeeded");

    // A job at the service may be billed: cancel asks, and without a terminal needs --yes.
    let remote = t.submit("wanx2.0-t2i-turbo", "at the service");
    rusqlite::Connection::open(t.scratch.db())
        .unwrap()
        .execute(
            "UPDATE jobs SET state = 'submitting', attempts = 1 WHERE id = ?1",
            [remote.parse::<i64>().unwrap()],
        )
        .unwrap();
    let asked = t.run(&["cancel", &remote]).expect(2);
    assert!(asked.stderr.contains("may be billed"), "{}", asked.stderr);
    let shown = t.run(&["--json", "show", &remote]).expect(0).json();
    assert_eq!(shown["summary"]["cancel_requested"], false);
    t.run(&["cancel", "--yes", &remote]).expect(0);
    let shown = t.run(&["--json", "show", &remote]).expect(0).json();
    assert_eq!(shown["summary"]["cancel_requested"], true);
    let refused = t.run(&["delete", "--yes", &remote]).expect(2);
    assert!(
        refused.stderr.contains("Cancel it first"),
        "{}",
        refused.stderr
    );
}

#[test]
fn show_names_the_job_a_variation_came_from_and_the_compare_it_won() {
    use wandash::dashscope::{JobSpec, Model};
    use wandash::intake::{Draft, check, enqueue};
    use wandash::store::Store;

    let s = Scratch::new();
    std::fs::create_dir_all(s.data_dir()).unwrap();
    let store = Store::open(&s.db()).unwrap();
    let spec = JobSpec::new(Model::Wanx21T2iTurbo, "a fox");
    let parent = enqueue(
        &store,
        check(Draft::new(spec.clone(), &s.data_dir())).unwrap(),
    )
    .unwrap();
    let draft = Draft::new(spec, &s.data_dir()).with_parent(Some(parent));
    let child = enqueue(&store, check(draft).unwrap()).unwrap();
    store.record_compare_winner(child, &[parent]).unwrap();

    let text = s.run(&["show", &child.to_string()]).expect(0).stdout;
    assert!(text.contains(&format!("from job       {parent}")), "{text}");
    assert!(
        text.contains(&format!("won a compare against jobs {parent}")),
        "{text}"
    );
    let json = s
        .run(&["--json", "show", &child.to_string()])
        .expect(0)
        .json();
    assert_eq!(json["parent_job_id"], parent.0);
    // The chain ends at a job made from nothing: no parent named.
    let json = s
        .run(&["--json", "show", &parent.to_string()])
        .expect(0)
        .json();
    assert!(json.get("parent_job_id").is_none(), "{json}");
    let text = s.run(&["show", &parent.to_string()]).expect(0).stdout;
    assert!(!text.contains("from job"), "{text}");
}

#[path = "support/postgres.rs"]
mod test_postgres;

/// Issue #14: `--db postgres://…` puts the store on a PostgreSQL server. A job submitted
/// and run by one process is read by another, a wrong password is named with the URL,
/// never the password, and TLS is used as the URL's `sslmode` asks.
#[test]
fn a_store_on_postgresql_runs_jobs_that_other_processes_read() {
    let Some(server) = test_postgres::server() else {
        return;
    };
    let url = PathBuf::from(server.fresh_database());
    let t = Setup::new();
    let on_server = |args: &[&str]| t.run_on(&url, args);
    let run = on_server(&SUBMIT_TWO_768X512).expect(0);
    let paths: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(paths.len(), 2, "{}", run.stdout);
    for path in &paths {
        assert_png(path, 768, 512);
    }
    assert_eq!(t.creates(), 1);

    // Another process, reading the server's store.
    let listed = on_server(&["list", "--json"]).expect(0).json();
    let jobs = listed.as_array().expect("a list");
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_eq!(jobs[0]["state"], "succeeded", "{listed}");
    assert_eq!(jobs[0]["images_ok"], 2, "{listed}");
    let stats = on_server(&["stats", "--json"]).expect(0).stdout;
    assert!(stats.contains("wanx2.0-t2i-turbo"), "{stats}");
    // Nothing of the store was written beside the scratch database path.
    assert!(!t.scratch.db().exists());

    let wrong = server.with_wrong_password(url.to_str().unwrap());
    let secret = wrong
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user_info, _)| user_info.split_once(':'))
        .map(|(_, password)| password.to_string())
        .expect("a password in the URL");
    let refused = t
        .scratch
        .cmd_on(PathBuf::from(&wrong).as_path())
        .arg("list")
        .output()
        .unwrap();
    let refused = cli_support::Run::from(refused);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("password authentication failed"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("127.0.0.1"), "{}", refused.stderr);
    assert!(!refused.stderr.contains(&secret), "{}", refused.stderr);

    // TLS as the URL asks: the test server has none, so `sslmode=require` is refused, said.
    let tls = format!("{}?sslmode=require", url.display());
    let refused = t
        .scratch
        .cmd_on(PathBuf::from(&tls).as_path())
        .arg("list")
        .output()
        .unwrap();
    let refused = cli_support::Run::from(refused);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("server does not support TLS"),
        "{}",
        refused.stderr
    );
}

/// Issue #14: images for everyone. On a PostgreSQL store the engine that downloads an
/// image stores its bytes in the database too, so another host (another HOME, another
/// data dir) gets the same PNGs from `show`, `export` and MCP when the files are not on
/// its disk: here they are on no disk at all, the first host's being deleted. The first
/// call fills that host's cache; the next reads from there.
#[test]
fn another_host_shows_exports_and_serves_a_jobs_images_from_the_postgresql_store() {
    let Some(server) = test_postgres::server() else {
        return;
    };
    let url = PathBuf::from(server.fresh_database());
    let t = Setup::new();
    let run = t.run_on(&url, &SUBMIT_TWO_768X512).expect(0);
    let saved: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(saved.len(), 2, "{}", run.stdout);
    let originals: Vec<Vec<u8>> = saved.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for path in &saved {
        std::fs::remove_file(path).unwrap();
    }

    let other_host = Scratch::new();
    let on_other_host = |args: &[&str]| {
        let mut cmd = other_host.cmd_on(&url);
        Run::from(cmd.args(args).output().expect("run wandash")).expect(0)
    };
    let listed = on_other_host(&["list", "--json"]).json();
    let id = listed[0]["id"].to_string();
    let cache = other_host.path("home/.local/share/wandash/cache");

    let shown = on_other_host(&["show", &id, "--json"]).json();
    let images = shown["images"].as_array().expect("images");
    assert_eq!(images.len(), 2, "{shown}");
    for (image, original) in images.iter().zip(&originals) {
        let path = PathBuf::from(image["path"].as_str().expect("a path"));
        assert!(path.starts_with(&cache), "{}", path.display());
        assert_eq!(&std::fs::read(&path).unwrap(), original);
        assert_png(path.to_str().unwrap(), 768, 512);
    }
    // The text form names the same files.
    let text = on_other_host(&["show", &id]).stdout;
    assert!(text.contains(cache.to_str().unwrap()), "{text}");

    let to = other_host.path("exported");
    on_other_host(&["export", "--to", to.to_str().unwrap()]);
    for (index, original) in originals.iter().enumerate() {
        let copy = to.join(format!("job-{id}-{index}.png"));
        assert_eq!(
            &std::fs::read(&copy).unwrap(),
            original,
            "{}",
            copy.display()
        );
    }
    // One copy per image in the cache, whatever read it.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);

    // An assistant on a third host: `get_job` answers with paths on that host, and the
    // first image attached.
    let third_host = Scratch::new();
    let answer = mcp_get_job(&third_host, &url, &id);
    assert_eq!(answer["isError"], false, "{answer}");
    let third_cache = third_host.path("home/.local/share/wandash/cache");
    let images = answer["structuredContent"]["images"]
        .as_array()
        .expect("images");
    for (image, original) in images.iter().zip(&originals) {
        let path = PathBuf::from(image["path"].as_str().expect("a path"));
        assert!(path.starts_with(&third_cache), "{image}");
        assert_eq!(&std::fs::read(&path).unwrap(), original);
    }
    let attached = answer["content"].as_array().expect("content");
    assert!(attached.iter().any(|c| c["type"] == "image"), "{answer}");
}

/// Issue 14: a job's local input file travels with it. Host A queues an edit of a file in
/// its own folder, which is then deleted: host B's worker, on another HOME, sends the
/// bytes A queued (stored with the job) and the job succeeds, the simulator's picture
/// made from that input (its odd size).
#[test]
fn a_local_input_queued_on_one_host_is_sent_by_a_worker_on_another() {
    let Some(server) = test_postgres::server() else {
        return;
    };
    let url = PathBuf::from(server.fresh_database());
    let t = Setup::new();
    let base = t.scratch.path("cat.png");
    image::GrayImage::from_fn(640, 520, |x, y| image::Luma([((x + y) % 256) as u8]))
        .save(&base)
        .unwrap();
    let queued = t
        .run_on(
            &url,
            &[
                "submit",
                "--model",
                "wanx2.1-imageedit",
                "--prompt",
                "colour the cat",
                "--function",
                "colorization",
                "--base-image",
                base.to_str().unwrap(),
            ],
        )
        .expect(0);
    std::fs::remove_file(&base).unwrap();

    let host_b = Scratch::new();
    let on_host_b = |args: &[&str]| {
        let mut cmd = host_b.cmd_against_on(&url, &t.sim, "test-key", &t.config);
        Run::from(cmd.args(args).output().expect("run wandash"))
    };
    on_host_b(&["worker", "--until-idle"]).expect(0);
    let listed = on_host_b(&["list", "--json"]).expect(0).json();
    assert_eq!(
        listed[0]["state"], "succeeded",
        "{listed} {}",
        queued.stderr
    );
    assert_eq!(t.sim.stats()["uploads"], 1);
    let id = listed[0]["id"].to_string();
    let shown = on_host_b(&["show", &id, "--json"]).expect(0).json();
    let made = shown["images"][0]["path"].as_str().expect("an image path");
    assert_png(made, 640, 520);
    // B read the input from its cache, filled from the store.
    let cache = host_b.path("home/.local/share/wandash/cache");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);

    // A job whose input is neither on B nor in the store (as an older wandash queued it)
    // fails naming the field and the path.
    let edit_b = t.scratch.path("dog.png");
    image::GrayImage::from_pixel(600, 600, image::Luma([60]))
        .save(&edit_b)
        .unwrap();
    let args = [
        "submit",
        "--model",
        "wanx2.1-imageedit",
        "--prompt",
        "colour the dog",
        "--function",
        "colorization",
        "--base-image",
        edit_b.to_str().unwrap(),
    ];
    t.run_on(&url, &args).expect(0);
    std::fs::remove_file(&edit_b).unwrap();
    let mut sql = postgres::Client::connect(url.to_str().unwrap(), postgres::NoTls)
        .expect("connect to the store");
    let forgotten = sql.execute("DELETE FROM job_inputs WHERE job_id = 2", &[]);
    assert_eq!(forgotten.unwrap(), 1);
    on_host_b(&["worker", "--until-idle"]).expect(0);
    let shown = on_host_b(&["show", "2", "--json"]).expect(0).json();
    assert_eq!(shown["summary"]["state"], "failed", "{shown}");
    let why = shown["summary"]["error_message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains(&format!(
            "base_image: cannot read {}: not on this host and not in the store",
            edit_b.display()
        )),
        "{shown}"
    );
}

/// `wandash mcp` on `host` against the store at `db`, asked for job `id` with its image:
/// the tool call's result. The server ends when its input closes.
fn mcp_get_job(host: &Scratch, db: &std::path::Path, id: &str) -> serde_json::Value {
    use std::io::{BufRead, Write};
    let mut child = host
        .cmd_on(db)
        .arg("mcp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start wandash mcp");
    let id: i64 = id.parse().expect("a job id");
    let requests = [
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
            "capabilities": {}, "clientInfo": {"name": "cli-e2e", "version": "0"}}}),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "get_job", "arguments": {"id": id, "return_image": true}}}),
    ];
    let mut stdin = child.stdin.take().unwrap();
    for request in &requests {
        writeln!(stdin, "{request}").unwrap();
    }
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let answer = loop {
        let mut line = String::new();
        assert_ne!(
            reader.read_line(&mut line).unwrap(),
            0,
            "mcp ended unanswered"
        );
        let message: serde_json::Value = serde_json::from_str(&line).expect("JSON-RPC");
        if message["id"] == 2 {
            break message["result"].clone();
        }
    };
    drop(stdin);
    child.wait().unwrap();
    answer
}

/// Two people queue jobs into one store on PostgreSQL: each job names who queued it
/// (`show`, `--json`), and `list --mine` lists one's own.
#[test]
fn jobs_on_a_shared_store_name_who_queued_them_and_list_mine_selects_ones_own() {
    let Some(server) = test_postgres::server() else {
        return;
    };
    let url = PathBuf::from(server.fresh_database());
    let t = Setup::new();
    let as_user = |user: &str, args: &[&str]| {
        let mut cmd = t
            .scratch
            .cmd_against_on(&url, &t.sim, "test-key", &t.config);
        cmd.env("USER", user).env("LOGNAME", user);
        cli_support::Run::from(cmd.args(args).output().expect("run wandash"))
    };
    let submit = |user: &str, prompt: &str| {
        let args = ["submit", "--model", "wanx2.0-t2i-turbo", "--prompt", prompt];
        as_user(user, &args).expect(0)
    };
    submit("alice", "a red fox");
    submit("bob", "a grey owl");
    submit("alice", "a blue fox");

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let alice = format!("alice@{}", host.trim());
    let everyone = as_user("bob", &["list", "--json"]).expect(0).json();
    let who: Vec<&str> = everyone
        .as_array()
        .expect("a list")
        .iter()
        .map(|job| job["submitted_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        who,
        [alice.as_str(), &format!("bob@{}", host.trim()), &alice]
    );
    let mine = as_user("alice", &["list", "--mine", "--json"])
        .expect(0)
        .json();
    let prompts: Vec<&str> = mine
        .as_array()
        .expect("a list")
        .iter()
        .map(|job| job["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, ["a blue fox", "a red fox"], "{mine}");
    let id = mine[0]["id"].to_string();
    let shown = as_user("bob", &["show", &id]).expect(0).stdout;
    assert!(
        shown.contains(&format!("submitted by   {alice}")),
        "{shown}"
    );
    let shown = as_user("bob", &["show", &id, "--json"]).expect(0).json();
    assert_eq!(shown["summary"]["submitted_by"], alice.as_str(), "{shown}");
}

/// Issue 14: engines on several hosts share one PostgreSQL store, one queue and one
/// quota. Two `wandash worker` processes drain one batch against a simulator that keeps
/// the account's limits (2 creates a second, 2 in flight): no create is throttled, each
/// job is created once and both engines run some. One engine is then killed (-9) mid-batch:
/// once its lease runs out the other adopts its jobs and finishes them all, still one
/// create per job.
#[test]
fn two_workers_on_one_postgresql_store_share_the_queue_and_the_quota_and_survive_a_kill() {
    use std::time::{Duration, Instant};

    const JOBS: usize = 12;
    let Some(team) = TeamBatch::queue(
        2,
        2000,
        &[
            "--latency",
            "200ms..400ms",
            "--rate",
            &format!("{TEAM_MODEL}=2"),
            "--in-flight",
            &format!("{TEAM_MODEL}=2"),
        ],
        "a team job",
        JOBS,
    ) else {
        return;
    };
    let mut sql = team.sql();
    let done_by_engine = |sql: &mut postgres::Client| -> Vec<(Option<i64>, i64)> {
        sql.query(
            "SELECT engine_id, COUNT(*) FROM jobs WHERE state = 'succeeded'
             GROUP BY engine_id ORDER BY engine_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
    };
    let mut killed = team.spawn(&["worker"]);
    let survivor = team.spawn(&["worker", "--until-idle"]);

    // Both engines have run some jobs, and the one to be killed holds a job it runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let held_by_killed = |sql: &mut postgres::Client| -> i64 {
        sql.query_one(
            "SELECT COUNT(*) FROM jobs JOIN engines e ON e.id = jobs.engine_id
             WHERE e.pid = $1 AND jobs.state IN ('submitting', 'submitted', 'running')",
            &[&i64::from(killed.id())],
        )
        .unwrap()
        .get(0)
    };
    loop {
        let done = done_by_engine(&mut sql);
        if done.len() >= 2 && held_by_killed(&mut sql) > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both engines did not get jobs: {done:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    killed.kill().unwrap(); // SIGKILL: it never leaves the team
    killed.wait().unwrap();

    // The survivor adopts what the killed engine held and returns once the store is idle.
    let finished = survivor.wait_with_output().unwrap();
    let finished = Run::from(finished).expect(0);
    let stats = team.sim.stats();
    assert_eq!(stats["creates"], JOBS as u64, "one create per job: {stats}");
    assert_eq!(
        stats["throttled"], 0,
        "the account's limits were kept: {stats}"
    );
    let done = done_by_engine(&mut sql);
    let total: i64 = done.iter().map(|(_, n)| n).sum();
    assert_eq!(
        total, JOBS as i64,
        "every job succeeded: {done:?} {}",
        finished.stderr
    );
    assert_eq!(done.len(), 2, "both engines ran jobs: {done:?}");
    assert!(done.iter().all(|(engine, _)| engine.is_some()), "{done:?}");
}

/// Exactly once while adopting next to a live engine: every create is answered late (the
/// task exists at once), so the engine killed (-9) leaves a create unanswered, and the
/// survivor, when it adopts it, mostly has a create of its own on the wire. It holds the
/// model's creates, waits for their answers, then looks the lost one up: the killed
/// engine's job gets its own task, no job needs attention or waits forever, and none is
/// created twice. (The task list is answered late too, so a look that did not wait would
/// still mostly see the survivor's own task recorded: the pure decisions and the store's
/// tests pin the marker down; this proves the whole adoption ends right.)
#[test]
fn a_create_left_unanswered_by_a_killed_worker_is_matched_while_the_other_keeps_creating() {
    use std::time::{Duration, Instant};

    const JOBS: usize = 12;
    let Some(team) = TeamBatch::queue(
        4,
        3000,
        &[
            "--latency",
            "2s..3s",
            "--in-flight",
            &format!("{TEAM_MODEL}=4"),
            "--slow",
            "1",
            "--slow-delay",
            "700ms",
        ],
        "an adopted job",
        JOBS,
    ) else {
        return;
    };
    let mut sql = team.sql();
    let mut killed = team.spawn(&["worker"]);
    let survivor = team.spawn(&["worker", "--until-idle"]);
    let sending_on_killed = |sql: &mut postgres::Client| -> i64 {
        sql.query_one(
            "SELECT COUNT(*) FROM jobs JOIN engines e ON e.id = jobs.engine_id
             WHERE e.pid = $1 AND jobs.state = 'submitting'
               AND jobs.submitted_at IS NOT NULL AND jobs.task_id IS NULL",
            &[&i64::from(killed.id())],
        )
        .unwrap()
        .get(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sending_on_killed(&mut sql) == 0 {
        assert!(
            Instant::now() < deadline,
            "the engine to kill never had a create on the wire"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    killed.kill().unwrap(); // SIGKILL: its create's answer is never read
    killed.wait().unwrap();

    let finished = Run::from(survivor.wait_with_output().unwrap()).expect(0);
    let states: Vec<(String, i64)> = sql
        .query(
            "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        states,
        [("succeeded".to_string(), JOBS as i64)],
        "{}",
        finished.stderr
    );
    let stats = team.sim.stats();
    assert_eq!(stats["creates"], JOBS as u64, "one create per job: {stats}");
    let tasks: i64 = sql
        .query_one("SELECT COUNT(DISTINCT task_id) FROM jobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(tasks, JOBS as i64, "each job its own task");
}

/// An engine on a PostgreSQL store whose lease is shorter than its start-up read of the
/// account's limits (the simulator answers every call 2.5 s late, the lease lasts 1.5 s)
/// keeps its lease through that read, and runs its job: before, the lease keeper started
/// after the read, found the lease gone and stopped the engine.
#[test]
fn a_lease_shorter_than_the_start_up_read_of_the_limits_is_kept_through_it() {
    let Some(team) = TeamBatch::queue(
        2,
        1500,
        &["--slow", "1", "--slow-delay", "2500ms"],
        "a patient job",
        1,
    ) else {
        return;
    };
    let worked = team.wandash(&["worker", "--until-idle"]).output().unwrap();
    let worked = Run::from(worked).expect(0);
    let succeeded: i64 = team
        .sql()
        .query_one("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'", &[])
        .unwrap()
        .get(0);
    assert_eq!(succeeded, 1, "{}", worked.stderr);
}

/// The model the team tests queue.
const TEAM_MODEL: &str = "wanx2.0-t2i-turbo";

/// A batch of `jobs` jobs of `TEAM_MODEL` queued on a fresh PostgreSQL database, with the
/// simulator (started with `sim_args`) and the config (`limit` creates a second and in
/// flight, `lease_ms`, quick polls and retries) the team tests run their workers with.
struct TeamBatch {
    url: String,
    scratch: Scratch,
    config: PathBuf,
    sim: Sim,
}

impl TeamBatch {
    /// `None` where no PostgreSQL server can be had (the test skips, as the others do).
    fn queue(
        limit: u32,
        lease_ms: u64,
        sim_args: &[&str],
        prompt: &str,
        jobs: usize,
    ) -> Option<TeamBatch> {
        let url = test_postgres::server()?.fresh_database();
        let scratch = Scratch::new();
        let config = scratch.write(
            "config.toml",
            format!(
                "[limits.\"{TEAM_MODEL}\"]\nsubmit_per_second = {limit}.0\nin_flight = {limit}\n\n[store]\nlease_ms = {lease_ms}\n\n[poll]\nmin_interval_ms = 50\nmax_interval_ms = 250\n\n[retry]\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n"
            ),
        );
        let team = TeamBatch {
            url,
            scratch,
            config,
            sim: Sim::start(sim_args),
        };
        let text: String = (0..jobs)
            .map(|i| format!("{{\"model\":\"{TEAM_MODEL}\",\"prompt\":\"{prompt} {i}\"}}\n"))
            .collect();
        let batch = team.scratch.write("team.jsonl", text);
        Run::from(
            team.wandash(&["batch", batch.to_str().unwrap()])
                .output()
                .unwrap(),
        )
        .expect(0);
        Some(team)
    }

    fn wandash(&self, args: &[&str]) -> std::process::Command {
        let db = PathBuf::from(&self.url);
        let mut cmd = self
            .scratch
            .cmd_against_on(&db, &self.sim, "test-key", &self.config);
        cmd.args(args);
        cmd
    }

    /// A `wandash` process in the background, its errors kept for the assertions.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.wandash(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A direct connection to the store, to watch the engines.
    fn sql(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the store")
    }
}
