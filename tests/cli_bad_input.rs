//! Bad input through the real binary: each case exits with the documented code, says on
//! stderr which field (or line, or file) is wrong and what the rule is, and queues or
//! changes nothing.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cli_support::{Run, Scratch};
use image::{ImageBuffer, ImageFormat, Luma};

/// The embedded simulator with short task times and fast polling.
const FAST_CONFIG: &str = "[simulator]\nlatency_min_ms = 50\nlatency_max_ms = 150\n\n\
    [poll]\nmin_interval_ms = 50\nmax_interval_ms = 250\n";

fn job_count(s: &Scratch) -> usize {
    s.run(&["--json", "list", "--limit", "1000"])
        .expect(0)
        .json()
        .as_array()
        .unwrap()
        .len()
}

/// One job queued before the bad input, to show that a refusal loses nothing.
fn queue_one(s: &Scratch) {
    s.run(&[
        "submit",
        "--model",
        "wanx2.0-t2i-turbo",
        "--prompt",
        "kept",
        "-n",
        "1",
    ])
    .expect(0);
    assert_eq!(job_count(s), 1);
}

#[track_caller]
fn says(run: &Run, needles: &[&str]) {
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr should say `{needle}`:\n{}",
            run.stderr
        );
    }
}

fn grey_png(dir: &Path, name: &str, width: u32, height: u32) -> String {
    let path = dir.join(name);
    ImageBuffer::from_pixel(width, height, Luma([128u8]))
        .save_with_format(&path, ImageFormat::Png)
        .unwrap();
    path.to_str().unwrap().to_string()
}

fn edit_line(base: &str, extra: &str) -> String {
    format!(
        "{{\"model\":\"wanx2.1-imageedit\",\"prompt\":\"p\",\"function\":\"colorization\",\"base_image\":\"{base}\"{extra}}}\n"
    )
}

// ---- prompts ----

#[test]
fn submit_refuses_a_prompt_of_only_control_and_invisible_characters() {
    let s = Scratch::new();
    let run = s
        .run(&[
            "submit",
            "--model",
            "wanx2.1-t2i-turbo",
            "--prompt",
            "\u{1b}\u{7} \u{200B}\u{202E}\t",
        ])
        .expect(2);
    says(&run, &["error: prompt: is empty", "its 6 character(s)"]);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert_eq!(job_count(&s), 0);
}

// ---- batch files ----

#[test]
fn a_non_utf8_batch_names_the_file_and_the_line_and_queues_nothing() {
    let s = Scratch::new();
    queue_one(&s);
    let mut bytes = Vec::new();
    for i in 1..=2 {
        bytes.extend(
            format!("{{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"job {i}\"}}\n").bytes(),
        );
    }
    bytes.extend(b"{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"caf\xe9\"}\n");
    let batch = s.write("latin1.jsonl", bytes);
    let run = s.run(&["batch", batch.to_str().unwrap()]).expect(2);
    says(
        &run,
        &[
            "latin1.jsonl: not UTF-8",
            "line 3",
            "save the file as UTF-8",
            "nothing was queued",
        ],
    );
    assert_eq!(
        job_count(&s),
        1,
        "the job queued before is kept, none added"
    );
}

#[test]
fn one_over_long_prompt_among_a_hundred_lines_queues_nothing_and_names_line_field_and_limit() {
    let s = Scratch::new();
    queue_one(&s);
    let mut text = String::new();
    for i in 1..=100 {
        let prompt = if i == 73 {
            "x".repeat(801)
        } else {
            format!("job {i}")
        };
        text.push_str(&format!(
            "{{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"{prompt}\",\"n\":1}}\n"
        ));
    }
    let batch = s.write("hundred.jsonl", text);
    let run = s.run(&["batch", batch.to_str().unwrap()]).expect(2);
    says(
        &run,
        &[
            "error: line 73: field `prompt`: 801 characters is over the limit of 800",
            "1 problem(s) in the batch file; nothing was queued",
        ],
    );
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
    assert_eq!(job_count(&s), 1);
}

#[test]
fn a_batch_field_of_the_wrong_type_names_the_field_and_its_rule() {
    let s = Scratch::new();
    let batch = s.write(
        "types.jsonl",
        concat!(
            "{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"a\",\"seed\":-1}\n",
            "{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"b\",\"n\":\"four\"}\n",
            "{\"model\":\"wanx-x-painting\",\"prompt\":\"c\",\"base_image\":\"https://e.com/a.png\",",
            "\"mask_image\":\"https://e.com/m.png\",\"mask_color\":[[300,0,0]]}\n",
            "{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"d\",\"watermark\":\"yes\"}\n",
        ),
    );
    let run = s.run(&["batch", batch.to_str().unwrap()]).expect(2);
    says(
        &run,
        &[
            "line 1: field `seed`: invalid value: integer `-1`",
            "seed must be a whole number 0 to 2147483647",
            "line 2: field `n`: invalid type: string \"four\"",
            "n must be a whole number 1 to 4",
            "line 3: field `mask_color`: invalid value: integer `300`",
            "mask_color must be a list of [r, g, b] triples, each 0 to 255",
            "line 4: field `watermark`",
            "watermark must be true or false",
            "4 problem(s)",
        ],
    );
    assert_eq!(job_count(&s), 0);
}

/// wan2.7's palette and boxes: a bad entry named by number through `submit` and a batch
/// line, a flag that does not parse named by clap; nothing queued.
#[test]
fn a_bad_wan27_color_palette_or_bbox_list_names_the_entry_and_queues_nothing() {
    let s = Scratch::new();
    let submit = |extra: &[&str]| {
        let args = [
            &["submit", "--model", "wan2.7-image", "--prompt", "p"],
            extra,
        ]
        .concat();
        s.run(&args)
    };
    let run = submit(&["--color-palette", "#112233:0.5,#44:0.3,#778899:0.2"]).expect(2);
    says(
        &run,
        &["error: color_palette: entry 2: hex `#44` is not a colour #RRGGBB"],
    );
    let run = submit(&["--color-palette", "#112233:0.5,#445566"]).expect(2);
    says(
        &run,
        &["--color-palette", "entry 2: `#445566` is not HEX:RATIO"],
    );
    let run = submit(&["--bbox-list", "[[0,0,1,1]]"]).expect(2);
    says(&run, &["--bbox-list", "[x1, y1, x2, y2] boxes"]);
    let run = submit(&["--bbox-list", "[[[0,0,10,10]]]"]).expect(2);
    says(&run, &["error: bbox_list: applies only with input images"]);
    let batch = s.write(
        "palette.jsonl",
        concat!(
            "{\"model\":\"wan2.7-image\",\"prompt\":\"a\",\"color_palette\":[{\"hex\":\"#112233\",\"ratio\":0.5},",
            "{\"hex\":\"#445566\",\"ratio\":0.3},{\"hex\":\"#778899\",\"ratio\":1.2}]}\n",
        ),
    );
    let run = s.run(&["batch", batch.to_str().unwrap()]).expect(2);
    says(
        &run,
        &[
            "line 1: field `color_palette`: entry 3: ratio 1.2 is out of range; ratio must be 0 to 1",
        ],
    );
    let batch = s.write(
        "palette-shape.jsonl",
        "{\"model\":\"wan2.7-image\",\"prompt\":\"b\",\"color_palette\":[\"#112233\"]}\n",
    );
    let run = s.run(&["batch", batch.to_str().unwrap()]).expect(2);
    says(
        &run,
        &[
            "line 1: field `color_palette`",
            "color_palette must be a list of 3 to 10 {hex = \"#RRGGBB\", ratio = 0 to 1} entries",
        ],
    );
    assert_eq!(job_count(&s), 0);
}

#[test]
fn bad_local_images_in_a_batch_are_each_named_with_line_field_and_limit() {
    let s = Scratch::new();
    let dir = s.dir.path();
    let not_image = s.write("notes.png", "just text");
    let empty = s.write("empty.png", "");
    let truncated = {
        let whole = grey_png(dir, "whole.png", 600, 600);
        let bytes = std::fs::read(&whole).unwrap();
        s.write("truncated.png", &bytes[..bytes.len() / 2])
    };
    let oversize = s.path("huge.png");
    std::fs::File::create(&oversize)
        .unwrap()
        .set_len(10 * 1024 * 1024 + 1)
        .unwrap();
    let small = grey_png(dir, "small.png", 300, 600);
    let wide = grey_png(dir, "wide.png", 4097, 512);
    let base = grey_png(dir, "base.png", 640, 600);
    let mask = grey_png(dir, "mask.png", 600, 640);
    let folder = s.path("folder");
    std::fs::create_dir(&folder).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let mut text = String::new();
    for image in [
        path(&not_image),
        path(&empty),
        path(&truncated),
        path(&oversize),
        small,
        wide,
        path(&folder),
    ] {
        text.push_str(&edit_line(&image, ""));
    }
    text.push_str(&format!(
        "{{\"model\":\"wanx2.1-imageedit\",\"prompt\":\"p\",\"function\":\"description_edit_with_mask\",\"base_image\":\"{base}\",\"mask_image\":\"{mask}\"}}\n"
    ));
    text.push_str(&edit_line(&grey_png(dir, "fine.png", 600, 600), ""));
    let batch = s.write("images.jsonl", text);
    let run = s.run(&["batch", batch.to_str().unwrap()]).expect(2);
    says(
        &run,
        &[
            "line 1: field `base_image`: is not an image (unrecognised format)",
            "line 2: field `base_image`: the image is empty (0 bytes)",
            "line 3: field `base_image`: could not be decoded as Png",
            "the file may be truncated",
            "line 4: field `base_image`:",
            "is 10485761 bytes, over the limit of 10 MB",
            "line 5: field `base_image`: width 300 of a 300x600 image is out of range; each side must be 512 to 4096",
            "line 6: field `base_image`: width 4097 of a 4097x512 image is out of range; each side must be 512 to 4096",
            "line 7: field `base_image`:",
            "is a directory, not an image file",
            "line 8: field `mask_image`: is 600x640 but the base image is 640x600",
            "8 problem(s) in the batch file; nothing was queued",
        ],
    );
    assert!(!run.stderr.contains("line 9"), "{}", run.stderr);
    assert_eq!(job_count(&s), 0);
}

#[test]
fn a_directory_given_as_the_batch_file_is_named_as_such() {
    let s = Scratch::new();
    let folder = s.path("jobs");
    std::fs::create_dir(&folder).unwrap();
    let run = s.run(&["batch", folder.to_str().unwrap()]).expect(2);
    says(
        &run,
        &[
            "jobs: is a directory, not a batch file",
            "nothing was queued",
        ],
    );
    assert_eq!(job_count(&s), 0);
}

// ---- a path that is a directory, on the command line ----

#[test]
fn submit_refuses_a_directory_as_an_image() {
    let s = Scratch::new();
    let folder = s.path("photos");
    std::fs::create_dir(&folder).unwrap();
    let run = s
        .run(&[
            "submit",
            "--model",
            "wanx2.1-imageedit",
            "--prompt",
            "p",
            "--function",
            "colorization",
            "--base-image",
            folder.to_str().unwrap(),
        ])
        .expect(2);
    says(
        &run,
        &[
            "error: base_image:",
            "photos is a directory, not an image file",
        ],
    );
    assert_eq!(job_count(&s), 0);
}

#[test]
fn a_directory_given_as_the_database_is_refused() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.db()).unwrap();
    for args in [
        &["list"][..],
        &["submit", "--model", "wanx2.0-t2i-turbo", "--prompt", "p"],
    ] {
        let run = s.run(args).expect(3);
        says(
            &run,
            &[
                &format!("{}: is a directory, not a database file", s.db().display()),
                "pass --db a file path",
            ],
        );
    }
    assert_eq!(
        std::fs::read_dir(s.db()).unwrap().count(),
        0,
        "nothing written in it"
    );
}

// ---- the config file ----

#[test]
fn a_config_with_an_unknown_key_names_it_its_line_and_the_keys_allowed() {
    let s = Scratch::new();
    let config = s.write(
        "config.toml",
        "[retry]\nmax_attempts = 3\nbackof_base_ms = 10\n",
    );
    let run = s
        .run(&["--config", config.to_str().unwrap(), "list"])
        .expect(2);
    says(
        &run,
        &[
            "config.toml: line 3, column 1 (`backof_base_ms = 10`)",
            "unknown field `backof_base_ms`, expected one of `max_attempts`, `backoff_base_ms`, `backoff_cap_ms`",
        ],
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn a_config_value_of_the_wrong_type_names_the_key_the_value_and_the_type() {
    let s = Scratch::new();
    let config = s.write("config.toml", "[poll]\nmax_interval_ms = \"5s\"\n");
    let run = s
        .run(&["--config", config.to_str().unwrap(), "list"])
        .expect(2);
    says(
        &run,
        &[
            "line 2, column 19 (`max_interval_ms = \"5s\"`)",
            "invalid type: string \"5s\", expected u64",
        ],
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn a_config_value_outside_its_choices_names_them() {
    let s = Scratch::new();
    let config = s.write("config.toml", "region = \"mars\"\n");
    let run = s
        .run(&["--config", config.to_str().unwrap(), "list"])
        .expect(2);
    says(
        &run,
        &[
            "line 1, column 10 (`region = \"mars\"`)",
            "unknown variant `mars`, expected one of `cn-beijing`, `ap-southeast-1`, `us-east-1`",
        ],
    );
}

#[test]
fn a_config_value_outside_its_range_names_the_key_and_the_limit() {
    let s = Scratch::new();
    let config = s.write(
        "config.toml",
        "[limits.\"wanx2.1-t2i-turbo\"]\nsubmit_per_second = 2.0\nin_flight = 0\n",
    );
    let run = s
        .run(&["--config", config.to_str().unwrap(), "list"])
        .expect(2);
    says(
        &run,
        &["limits.\"wanx2.1-t2i-turbo\".in_flight must be at least 1"],
    );
}

// ---- the database ----

#[test]
fn a_file_that_is_not_a_database_is_refused_by_every_command_and_left_alone() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.data_dir()).unwrap();
    let content = "these are notes, not SQLite; long enough to fill a header page.\n".repeat(20);
    std::fs::write(s.db(), &content).unwrap();
    let batch = s.write(
        "b.jsonl",
        "{\"model\":\"wanx2.0-t2i-turbo\",\"prompt\":\"p\"}\n",
    );
    let config = s.write("config.toml", FAST_CONFIG);
    for args in [
        &["list"][..],
        &["show", "1"],
        &["submit", "--model", "wanx2.0-t2i-turbo", "--prompt", "p"],
        &["batch", batch.to_str().unwrap()],
        &[
            "--config",
            config.to_str().unwrap(),
            "worker",
            "--until-idle",
        ],
    ] {
        let run = s.run(args).expect(3);
        says(
            &run,
            &[
                &format!("{} is not a wandash database", s.db().display()),
                "choose another --db",
            ],
        );
    }
    assert_eq!(std::fs::read_to_string(s.db()).unwrap(), content);
}

/// A `wandash worker` child, killed if the test fails before it stops it.
struct Worker(Child);

impl Worker {
    /// Starts a worker on the embedded simulator; returns once it holds the engine lock
    /// (it announces its backend only after taking it).
    fn start(s: &Scratch, config: &Path) -> Worker {
        let mut child = s
            .cmd()
            .arg("--config")
            .arg(config)
            .arg("worker")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wandash worker");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        // Keep draining: a closed pipe would make the worker's next warning fail.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let worker = Worker(child);
        assert!(line.starts_with("backend: SIMULATOR"), "{line:?}");
        worker
    }

    fn terminate(mut self) -> i32 {
        let pid = self.0.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.0.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn a_second_engine_is_refused_naming_the_lock_while_reads_and_enqueues_work() {
    let s = Scratch::new();
    let config = s.write("config.toml", FAST_CONFIG);
    let worker = Worker::start(&s, &config);

    let run = s
        .run(&["--config", config.to_str().unwrap(), "worker"])
        .expect(3);
    let lock = format!("{}.engine.lock", s.db().display());
    says(
        &run,
        &[
            &format!(
                "another wandash engine is already running on {}",
                s.db().display()
            ),
            &format!("(lock {lock})"),
            "just enqueue: it will pick the jobs up",
        ],
    );

    // Enqueueing and reading work beside the running engine, which then runs the job.
    let id = s
        .run(&[
            "submit",
            "--model",
            "wanx2.0-t2i-turbo",
            "--prompt",
            "beside",
            "-n",
            "1",
            "--size",
            "512*512",
        ])
        .expect(0)
        .stdout;
    let id = id.trim();
    assert_eq!(job_count(&s), 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = s.run(&["--json", "show", id]).expect(0).json();
        if shown["summary"]["state"] == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running worker never ran the job: {shown}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(worker.terminate(), 0);
}

#[test]
fn a_store_held_in_a_write_transaction_still_reads_and_refuses_writes_naming_the_file() {
    let s = Scratch::new();
    queue_one(&s);
    let holder = rusqlite::Connection::open(s.db()).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    // WAL: readers are not blocked by a writer.
    assert_eq!(job_count(&s), 1);
    let run = s
        .run(&[
            "submit",
            "--model",
            "wanx2.0-t2i-turbo",
            "--prompt",
            "blocked",
        ])
        .expect(3);
    says(
        &run,
        &[
            &format!("{}: database is locked", s.db().display()),
            "held its write lock for over 10 s",
        ],
    );

    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(job_count(&s), 1, "the refused job was not queued later");
    s.run(&[
        "submit",
        "--model",
        "wanx2.0-t2i-turbo",
        "--prompt",
        "now",
        "-n",
        "1",
    ])
    .expect(0);
    assert_eq!(job_count(&s), 2);
}
