//! The API key never lands anywhere: not in the store, the logs, the images' folder, nor
//! any output, even with the most verbose logging and on the error path.

mod cli_support;

use std::process::Command;

use cli_support::{Run, Scratch, Sim, files_under};

#[test]
fn the_api_key_appears_in_no_file_and_no_output() {
    let scratch = Scratch::new();
    let canary = format!("canary-{}", uuid::Uuid::new_v4());
    let wrong_canary = format!("canary-wrong-{}", uuid::Uuid::new_v4());
    let sim = Sim::start(&["--key", &canary]);
    let config = scratch.write(
        "config.toml",
        "[poll]\nmin_interval_ms = 50\nmax_interval_ms = 250\n",
    );

    // A local input image, so the upload flow (getPolicy + form POST) runs too.
    let input = scratch.path("input.png");
    image::RgbImage::from_fn(640, 640, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .save(&input)
    .unwrap();
    let batch = scratch.write(
        "canary.toml",
        format!(
            "[[job]]\nmodel = \"wanx2.0-t2i-turbo\"\nprompts = [\"one\", \"two\"]\nn = 1\nsize = \"512*512\"\n\n\
             [[job]]\nmodel = \"wanx2.1-imageedit\"\nprompt = \"make it blue\"\nfunction = \"stylization_all\"\nbase_image = \"{}\"\n",
            input.display()
        ),
    );
    let with_key = |key: &str, args: &[&str]| {
        let mut cmd = scratch.cmd_against(&sim, key, &config);
        cmd.env("RUST_LOG", "trace").args(args);
        cmd
    };
    let mut outputs = Vec::new();
    let mut run = |mut cmd: Command, code: i32| {
        let out = cmd.output().unwrap();
        outputs.push(out.stdout.clone());
        outputs.push(out.stderr.clone());
        Run::from(out).expect(code)
    };

    run(
        with_key(&canary, &["batch", batch.to_str().unwrap(), "--wait"]),
        0,
    );
    run(
        with_key(
            &canary,
            &[
                "submit",
                "--model",
                "wanx2.0-t2i-turbo",
                "--prompt",
                "three",
                "-n",
                "1",
            ],
        ),
        0,
    );
    run(with_key(&canary, &["worker", "--until-idle"]), 0);
    run(with_key(&canary, &["--json", "list"]), 0);
    run(with_key(&canary, &["--json", "show", "1"]), 0);
    run(
        with_key(
            &canary,
            &["export", "--to", scratch.path("export").to_str().unwrap()],
        ),
        0,
    );
    // The error path: a rejected key is reported without being repeated.
    run(
        with_key(
            &wrong_canary,
            &[
                "submit",
                "--model",
                "wanx2.0-t2i-turbo",
                "--prompt",
                "four",
                "-n",
                "1",
                "--wait",
            ],
        ),
        3,
    );
    assert_eq!(
        sim.stats()["creates"],
        4,
        "the runs really talked to the service"
    );

    let files = files_under(scratch.dir.path());
    assert!(files.iter().any(|f| f.ends_with("wandash.db")), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log")),
        "logs were written: {files:?}"
    );
    let mut searched = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        searched += bytes.len();
        for key in [&canary, &wrong_canary] {
            assert!(
                !contains(&bytes, key.as_bytes()),
                "the key leaked into {}",
                file.display()
            );
        }
    }
    for (i, out) in outputs.iter().enumerate() {
        for key in [&canary, &wrong_canary] {
            assert!(
                !contains(out, key.as_bytes()),
                "the key leaked into output #{i}: {}",
                String::from_utf8_lossy(out)
            );
        }
    }
    assert!(searched > 0);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
