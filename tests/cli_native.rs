//! The command line as a shell user meets it, through the binary: completions and the
//! manual page, help, JSON errors, a closed pipe, negative numbers, the example config,
//! where logs go, and money to the cent.

mod cli_support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use cli_support::{BIN, Run, Scratch};

#[test]
fn completions_generate_for_every_shell() {
    let s = Scratch::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = s.run(&["completions", shell]).expect(0);
        assert!(out.stdout.contains("wandash"), "{shell}:\n{}", out.stdout);
        // Subcommands and their options are completed too.
        assert!(out.stdout.contains("until-idle"), "{shell}");
    }
    let unknown = s.run(&["completions", "tcsh"]).expect(2);
    assert!(
        unknown.stderr.contains("possible values"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn the_manual_page_is_roff_on_stdout() {
    let out = Scratch::new().run(&["man"]).expect(0);
    assert!(out.stdout.contains(".TH wandash 1"), "{}", out.stdout);
    assert!(out.stdout.contains(".SH SUBCOMMANDS"), "{}", out.stdout);
}

#[test]
fn config_example_prints_the_example_the_binary_carries() {
    let s = Scratch::new();
    let out = s.run(&["config", "--example"]).expect(0);
    let example = include_str!("../config.example.toml");
    assert_eq!(out.stdout, example);
    // What it prints is a config wandash accepts.
    let config = s.write("config.toml", &out.stdout);
    s.run(&["--config", config.to_str().unwrap(), "list"])
        .expect(0);
    // The error for a missing config file says how to make one.
    let missing = s
        .run(&["--config", "/nonexistent/wandash.toml", "list"])
        .expect(2);
    assert!(
        missing
            .stderr
            .contains("wandash config --example > /nonexistent/wandash.toml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn global_options_are_listed_apart_and_sim_shows_only_its_own() {
    let s = Scratch::new();
    let help = s.run(&["list", "--help"]).expect(0).stdout;
    let (own, global) = help
        .split_once("Global options:")
        .unwrap_or_else(|| panic!("no global section:\n{help}"));
    assert!(
        own.contains("--limit <N>") && !own.contains("--db"),
        "{help}"
    );
    assert!(
        global.contains("--db <PATH>") && global.contains("--json"),
        "{help}"
    );

    let sim = s.run(&["sim", "--help"]).expect(0).stdout;
    assert!(sim.contains("--listen"), "{sim}");
    for global in [
        "--db",
        "--config",
        "--base-url",
        "--region",
        "--json",
        "Global options",
    ] {
        assert!(!sim.contains(global), "{global} in sim's help:\n{sim}");
    }
}

#[test]
fn every_option_and_argument_has_a_help_line() {
    let s = Scratch::new();
    let commands = [
        "submit",
        "batch",
        "worker",
        "list",
        "show",
        "watch",
        "cancel",
        "delete",
        "pause",
        "resume",
        "top",
        "retry",
        "export",
        "mcp",
        "sim",
        "completions",
        "man",
        "config",
    ];
    for command in commands {
        let help = s.run(&[command, "--help"]).expect(0).stdout;
        for line in help.lines() {
            let trimmed = line.trim_start();
            let is_option = trimmed.starts_with('-') || trimmed.starts_with('<');
            if is_option && line.starts_with("  ") {
                // `  --flag <V>   What it does [default: x]`: words after the name column,
                // not only the default clap adds.
                let described = trimmed
                    .split("  ")
                    .filter(|part| !part.is_empty())
                    .nth(1)
                    .is_some_and(|text| !text.starts_with('['));
                assert!(described, "`wandash {command}`: no help for `{trimmed}`");
            }
        }
    }
}

fn json_error(run: &Run) -> serde_json::Value {
    let error = run.json();
    let body = &error["error"];
    assert!(
        body["kind"].is_string() && body["message"].is_string(),
        "{error}"
    );
    error
}

#[test]
fn with_json_errors_are_json_on_stdout_and_the_exit_code_is_kept() {
    let s = Scratch::new();
    // A value clap refuses.
    let usage = s
        .run(&["--json", "submit", "--model", "nope", "--prompt", "p"])
        .expect(2);
    let error = json_error(&usage);
    assert_eq!(error["error"]["kind"], "usage");
    assert_eq!(error["error"]["field"], "model");
    assert!(usage.stderr.contains("unknown model"), "{}", usage.stderr);

    // A job that breaks one rule names its field.
    let rule = s
        .run(&[
            "submit",
            "--json",
            "--model",
            "wanx2.1-t2i-turbo",
            "--prompt",
            "p",
            "-n",
            "9",
        ])
        .expect(2);
    let error = json_error(&rule);
    assert_eq!(error["error"]["field"], "n");

    // A command that fails later, with no field at fault.
    let missing = s.run(&["--json", "show", "999"]).expect(2);
    let error = json_error(&missing);
    assert_eq!(error["error"]["field"], serde_json::Value::Null);
    assert!(
        error["error"]["message"].as_str().unwrap().contains("999"),
        "{error}"
    );

    // Without --json, stdout stays empty.
    let plain = s.run(&["show", "999"]).expect(2);
    assert_eq!(plain.stdout, "");
}

#[test]
fn a_negative_seed_meets_the_seeds_rule_and_dashed_values_pass_with_equals() {
    let s = Scratch::new();
    for seed in ["-1", "-2147483648"] {
        let out = s
            .run(&[
                "submit",
                "--model",
                "wanx2.1-t2i-turbo",
                "--prompt",
                "p",
                "--seed",
                seed,
            ])
            .expect(2);
        assert!(
            out.stderr.contains("seed must be 0 to 2147483647"),
            "{}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("unexpected argument"),
            "{}",
            out.stderr
        );
    }
    let json = s
        .run(&[
            "--json",
            "submit",
            "--model",
            "wanx2.1-t2i-turbo",
            "--prompt",
            "p",
            "--seed=-5",
        ])
        .expect(2);
    assert_eq!(json_error(&json)["error"]["field"], "seed");

    s.run(&[
        "submit",
        "--model",
        "wanx2.1-t2i-turbo",
        "--prompt=-a dash first",
        "--seed=7",
    ])
    .expect(0);
    let rows = s.run(&["--json", "list"]).expect(0).json();
    assert_eq!(rows[0]["prompt"], "-a dash first");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let s = Scratch::new();
    // Enough jobs that `list --json` outgrows the pipe's buffer.
    let prompts: Vec<String> = (0..40).map(|i| format!("\"prompt number {i}\"")).collect();
    let batch = s.write(
        "many.toml",
        format!(
            "[[job]]\nmodel = \"wanx2.1-t2i-turbo\"\nprompts = [{}]\nseeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n",
            prompts.join(", ")
        ),
    );
    s.run(&["batch", batch.to_str().unwrap()]).expect(0);

    for args in [&["--json", "list", "--limit", "1000"][..], &["man"][..]] {
        let mut child = s
            .cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is gone (`| head -1`).
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(0) || out.status.signal() == Some(13),
            "{args:?}: {:?}\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

#[test]
fn logs_go_to_the_xdg_state_directory_without_db() {
    let s = Scratch::new();
    let home = s.path("home");
    let state = s.path("state");
    let out = std::process::Command::new(BIN)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_STATE_HOME", &state)
        .env_remove("DASHSCOPE_API_KEY")
        .env_remove("DASHSCOPE_BASE_URL")
        .args(["list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let log = state.join("wandash/logs/wandash.log");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600, "{}", log.display());
    assert_eq!(mode(log.parent().unwrap()), 0o700);
    assert!(home.join(".local/share/wandash/wandash.db").exists());
    assert!(!home.join(".local/share/wandash/logs").exists());
}

#[test]
fn money_in_json_is_rounded_to_the_cent() {
    let s = Scratch::new();
    // 12 jobs of 4 images at 0.14 CNY: 6.720000000000001 when summed in floating point.
    let batch = s.write(
        "twelve.toml",
        "[[job]]\nmodel = \"wanx2.1-t2i-turbo\"\nprompts = [\"a\", \"b\", \"c\"]\nseeds = [1, 2, 3, 4]\nn = 4\n",
    );
    let out = s
        .run(&["--json", "batch", batch.to_str().unwrap(), "--dry-run"])
        .expect(0);
    assert!(!out.stdout.contains("000000"), "{}", out.stdout);
    assert_eq!(out.json()["cost_cny"], serde_json::json!(6.72));
}
