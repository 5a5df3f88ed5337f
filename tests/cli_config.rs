//! The config file as the binary reads it: strict keys, types, the documented defaults.

mod cli_support;

use cli_support::Scratch;

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let s = Scratch::new();
    let config = s.write(
        "config.toml",
        "region = \"cn-beijing\"\n\n[poll]\nmin_interval_ms = 500\nmax_intervall_ms = 9000\n",
    );
    let run = s
        .run(&["--config", config.to_str().unwrap(), "list"])
        .expect(2);
    assert!(run.stderr.contains("max_intervall_ms"), "{}", run.stderr);
    assert!(run.stderr.contains("line 5"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
}

#[test]
fn a_wrong_type_is_named() {
    let s = Scratch::new();
    let config = s.write("config.toml", "[retry]\nmax_attempts = \"five\"\n");
    let run = s
        .run(&["--config", config.to_str().unwrap(), "list"])
        .expect(2);
    assert!(
        run.stderr.contains("max_attempts") && run.stderr.contains("line 2"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_config_given_explicitly_is_an_error_but_the_default_may_be_absent() {
    let s = Scratch::new();
    let run = s
        .run(&["--config", s.path("nope.toml").to_str().unwrap(), "list"])
        .expect(2);
    assert!(
        run.stderr.contains("nope.toml") && run.stderr.contains("not found"),
        "{}",
        run.stderr
    );
    s.run(&["list"]).expect(0);
}

#[test]
fn the_default_config_path_is_read() {
    let s = Scratch::new();
    let dir = s.path("home/.config/wandash");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "[ui]\nmouse = \"yes\"\n").unwrap();
    let run = s.run(&["list"]).expect(2);
    assert!(run.stderr.contains("mouse"), "{}", run.stderr);
}

#[test]
fn the_example_file_gives_the_same_estimate_as_no_file() {
    let s = Scratch::new();
    let batch = s.write(
        "b.jsonl",
        "{\"model\":\"wanx2.1-t2i-plus\",\"prompt\":\"a\"}\n{\"model\":\"wanx-x-painting\",\"prompt\":\"b\",\"base_image\":\"https://example.com/a.png\",\"mask_image\":\"https://example.com/m.png\"}\n",
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    let with_example = s
        .run(&[
            "--config",
            example,
            "batch",
            batch.to_str().unwrap(),
            "--dry-run",
        ])
        .expect(0);
    let without = s
        .run(&["batch", batch.to_str().unwrap(), "--dry-run"])
        .expect(0);
    assert_eq!(with_example.stdout, without.stdout);
    // A changed price shows: the config is really applied.
    let cheap = s.write("cheap.toml", "[prices]\n\"wanx2.1-t2i-plus\" = 1.0\n");
    let priced = s.run(&[
        "--config",
        cheap.to_str().unwrap(),
        "--json",
        "batch",
        batch.to_str().unwrap(),
        "--dry-run",
    ]);
    let cost = priced.expect(0).json()["cost_cny"].as_f64().unwrap();
    assert!(
        (cost - 4.0).abs() < 1e-9,
        "4 images at 1.0 and the painting model has no price left: {cost}"
    );
}

#[test]
fn a_key_rebinding_to_no_such_action_is_refused_before_anything_runs() {
    let s = Scratch::new();
    let config = s.write(
        "config.toml",
        "[ui.keys]\nquit = \"ctrl-q\"\nlaunch = \"x\"\n",
    );
    let run = s
        .run(&["--config", config.to_str().unwrap(), "list"])
        .expect(2);
    assert!(
        run.stderr.contains("ui.keys.launch: no such action"),
        "{}",
        run.stderr
    );
}
