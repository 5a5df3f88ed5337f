//! Input files are read with a bound: only regular files, at most the model's 10 MB limit
//! plus one byte. `/dev/zero`, `/dev/urandom`, a FIFO and a directory are refused at once,
//! through the command line, a batch file, the MCP tool and the upload path alike, and a
//! refusal loses nothing already queued.

mod hardening_support;
mod mcp_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hardening_support::{Finished, Hostile, Seen, answer_json, run_within};
use serde_json::json;
use wandash::dashscope::{
    ApiKey, Client, ClientError, ImageRef, JobSpec, Model, check_local_images,
};

const BIN: &str = env!("CARGO_BIN_EXE_wandash");
/// A refusal reads nothing: far less than the seconds it took to read gigabytes.
const LIMIT: Duration = Duration::from_secs(15);

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Finished {
        let home = self.path("home");
        run_within(
            Command::new(BIN)
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .env("XDG_DATA_HOME", home.join(".local/share"))
                .env_remove("DASHSCOPE_API_KEY")
                .env_remove("DASHSCOPE_BASE_URL")
                .arg("--db")
                .arg(self.path("data/wandash.db"))
                .args(args),
            LIMIT,
        )
    }

    fn job_count(&self) -> usize {
        let listed = self.run(&["--json", "list", "--limit", "1000"]);
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        serde_json::from_str::<serde_json::Value>(&listed.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    }

    fn fifo(&self) -> PathBuf {
        let path = self.path("pipe.png");
        let made = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
        assert!(made.success());
        path
    }
}

fn submit_edit(home: &Home, base_image: &Path) -> Finished {
    home.run(&[
        "submit",
        "--model",
        "wanx2.1-imageedit",
        "--function",
        "super_resolution",
        "--upscale",
        "2",
        "--prompt",
        "x",
        "--base-image",
        base_image.to_str().unwrap(),
    ])
}

#[test]
fn submit_refuses_devices_fifos_and_directories_at_once_and_keeps_the_queue() {
    let home = Home::new();
    let kept = home.run(&["submit", "--model", "wanx2.0-t2i-turbo", "--prompt", "kept"]);
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    let folder = home.path("folder");
    std::fs::create_dir(&folder).unwrap();
    let fifo = home.fifo();
    for (path, rule) in [
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not an image file",
        ),
        (
            PathBuf::from("/dev/urandom"),
            "is a character device, not an image file",
        ),
        (fifo.clone(), "is a FIFO (named pipe), not an image file"),
        (folder.clone(), "is a directory, not an image file"),
    ] {
        let run = submit_edit(&home, &path);
        assert_eq!(run.code, 2, "{path:?}: {}", run.stderr);
        let expected = format!("base_image: {} {rule}", path.display());
        assert!(run.stderr.contains(&expected), "{expected}\n{}", run.stderr);
        assert!(
            run.took < Duration::from_secs(10),
            "{path:?} took {:?}",
            run.took
        );
    }
    assert_eq!(
        home.job_count(),
        1,
        "the refusals queued nothing and lost nothing"
    );
}

#[test]
fn a_batch_line_naming_dev_zero_or_a_fifo_is_refused() {
    let home = Home::new();
    let fifo = home.fifo();
    let line = |path: &Path| {
        format!(
            "{{\"model\":\"wanx2.1-imageedit\",\"prompt\":\"x\",\"function\":\"super_resolution\",\"upscale_factor\":2,\"base_image\":\"{}\"}}\n",
            path.display()
        )
    };
    let batch = home.path("jobs.jsonl");
    std::fs::write(&batch, line(Path::new("/dev/zero")) + &line(&fifo)).unwrap();
    let run = home.run(&["batch", batch.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for needle in [
        "line 1: field `base_image`: /dev/zero is a character device",
        "is a FIFO (named pipe), not an image file",
        "nothing was queued",
    ] {
        assert!(run.stderr.contains(needle), "{needle}\n{}", run.stderr);
    }
    assert_eq!(home.job_count(), 0);
}

#[test]
fn a_file_over_the_limit_is_refused_by_its_length_without_reading_it() {
    let home = Home::new();
    let huge = home.path("huge.png");
    // Sparse: 4 GB stated, nothing on disk; reading it would take the memory.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(4 * 1024 * 1024 * 1024)
        .unwrap();
    let run = submit_edit(&home, &huge);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "is 4294967296 bytes, over the limit of 10 MB (10485760 bytes) of wanx2.1-imageedit"
        ),
        "{}",
        run.stderr
    );
}

/// The check every path shares (CLI, batch, MCP, the dashboard's editor), on a FIFO no
/// one writes to: without a non-blocking open it would wait forever.
#[test]
fn check_local_images_does_not_block_on_a_fifo() {
    let home = Home::new();
    let fifo = home.fifo();
    let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "x");
    spec.function = Some("colorization".parse().unwrap());
    spec.base_image = Some(ImageRef::File(fifo));
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(check_local_images(&spec)).ok());
    let err = result
        .recv_timeout(LIMIT)
        .expect("check_local_images returned")
        .expect_err("a FIFO is refused");
    assert_eq!(err.field, "base_image");
    assert!(err.message.contains("FIFO"), "{err}");
}

#[tokio::test]
async fn upload_refuses_dev_zero_without_calling_the_service() {
    let server = Hostile::start(|_: &Seen, stream| answer_json(stream, "{}"));
    let client = Client::new(&server.base_url(), ApiKey::new("sk-test".into())).unwrap();
    let result = tokio::time::timeout(
        LIMIT,
        client.upload(Model::Wanx21ImageEdit, Path::new("/dev/zero")),
    )
    .await
    .expect("upload returned");
    match result {
        Err(ClientError::Invalid(e)) => {
            assert!(e.message.contains("/dev/zero is a character device"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}

#[tokio::test]
async fn the_mcp_tool_refuses_dev_zero_and_a_fifo() {
    let setup = mcp_support::Setup::new().await;
    let client = setup.client().await;
    let fifo = setup.path("pipe.png");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (path, rule) in [
        ("/dev/zero".to_string(), "is a character device"),
        (fifo.display().to_string(), "is a FIFO"),
    ] {
        let result = tokio::time::timeout(
            LIMIT,
            mcp_support::call(
                &client,
                "transform_image_from_file",
                json!({"image_file_path": path, "prompt": "x", "function": "colorization"}),
            ),
        )
        .await
        .expect("the tool answered");
        assert!(mcp_support::is_error(&result), "{path}");
        let text = mcp_support::text(&result);
        assert!(text.contains(&path) && text.contains(rule), "{text}");
    }
    // The server is still there and the store holds nothing from the refusals.
    assert_eq!(setup.store().count(&Default::default()).unwrap(), 0);
    client.cancel().await.ok();
}

#[test]
fn a_config_that_is_a_device_or_a_fifo_is_refused_unread() {
    let home = Home::new();
    let fifo = home.fifo();
    for (path, rule) in [
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (fifo, "is a FIFO (named pipe), not a regular file"),
    ] {
        let run = home.run(&["--config", path.to_str().unwrap(), "list"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        let expected = format!("cannot read config file {}: {rule}", path.display());
        assert!(run.stderr.contains(&expected), "{expected}\n{}", run.stderr);
    }
}
