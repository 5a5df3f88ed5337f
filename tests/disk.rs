//! Issue #5: a full disk or an unwritable data directory. A clear error naming the path
//! and the OS's reason, the jobs kept (never failed), nothing corrupted; a disk that
//! frees up lets the batch finish without a restart.

mod cli_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{Run, Scratch, Sim, files_under};
use wandash::store::{JobFilter, JobState, Store};

const MODEL: &str = "wanx2.0-t2i-turbo";

fn config_with_data_dir(scratch: &Scratch, data_dir: &Path) -> PathBuf {
    scratch.write(
        "config.toml",
        format!(
            "data_dir = \"{}\"\n\n[limits.\"{MODEL}\"]\nsubmit_per_second = 10.0\nin_flight = 4\n\n[poll]\nmin_interval_ms = 20\nmax_interval_ms = 100\n\n[retry]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n",
            data_dir.display()
        ),
    )
}

fn batch_file(scratch: &Scratch, jobs: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..jobs {
        text.push_str(&format!(
            "{{\"model\":\"{MODEL}\",\"prompt\":\"disk test {i}\",\"n\":1,\"size\":\"512*512\"}}\n"
        ));
    }
    scratch.write("disk.jsonl", text)
}

fn states(db: &Path) -> Vec<JobState> {
    Store::open(db)
        .unwrap()
        .list(&JobFilter::default(), 0, 1000)
        .unwrap()
        .into_iter()
        .map(|r| r.state())
        .collect()
}

#[test]
fn a_data_dir_that_is_a_regular_file_is_refused_at_start_naming_the_path_and_jobs_stay_queued() {
    let scratch = Scratch::new();
    let not_a_dir = scratch.write("data-is-a-file", b"not a directory");
    let config = config_with_data_dir(&scratch, &not_a_dir);
    let sim = Sim::start(&[]);
    let wandash = |args: &[&str]| {
        let mut cmd = scratch.cmd_against(&sim, "test-key", &config);
        cmd.args(args).stdin(Stdio::null());
        Run::from(cmd.output().unwrap())
    };
    let batch = batch_file(&scratch, 3);
    // Queueing needs only the store (elsewhere): it works, and nothing is sent.
    wandash(&["batch", batch.to_str().unwrap()]).expect(0);

    let images = not_a_dir.join("images");
    // The headless worker, --wait and the dashboard all refuse to start, the same way.
    for args in [
        &["worker", "--until-idle"][..],
        &["batch", batch.to_str().unwrap(), "--wait"][..],
        &[][..],
    ] {
        let run = wandash(args).expect(3);
        assert!(
            run.stderr.contains(&*images.to_string_lossy())
                && run.stderr.contains("Not a directory"),
            "`wandash {args:?}` must name the path and the reason:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("queued jobs stay queued"),
            "{}",
            run.stderr
        );
    }
    let states = states(&scratch.db());
    assert_eq!(states.len(), 6, "the two batches are queued");
    assert!(states.iter().all(|s| *s == JobState::Queued), "{states:?}");
    assert_eq!(sim.stats()["creates"], 0, "nothing was sent");
    assert_eq!(
        std::fs::read(&not_a_dir).unwrap(),
        b"not a directory",
        "the file is untouched"
    );

    // The store itself inside a regular file: the error names it too.
    let run = Run::from(
        Command::new(cli_support::BIN)
            .env("HOME", scratch.path("home"))
            .env("XDG_CONFIG_HOME", scratch.path("home/.config"))
            .env("DASHSCOPE_API_KEY", "test-key")
            .arg("--db")
            .arg(not_a_dir.join("wandash.db"))
            .arg("--base-url")
            .arg(&sim.base_url)
            .args(["worker", "--until-idle"])
            .output()
            .unwrap(),
    )
    .expect(3);
    assert!(
        run.stderr.contains(&*not_a_dir.to_string_lossy()),
        "{}",
        run.stderr
    );
}

/// A tiny tmpfs: mounted by root, or inside a user and mount namespace that only the
/// worker (started through `unshare`) sees; the test then reaches it through
/// `/proc/<worker>/root`.
enum SmallDisk {
    Mounted(PathBuf),
    Namespace(PathBuf),
}

const DISK_SIZE: &str = "size=2m";

impl SmallDisk {
    fn get(dir: &Path) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", DISK_SIZE, "tmpfs"])
            .arg(dir)
            .stderr(Stdio::piped())
            .output();
        let root_error = match mounted {
            Ok(out) if out.status.success() => return Ok(SmallDisk::Mounted(dir.to_path_buf())),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => format!("mount: {e}"),
        };
        let probe = Command::new("unshare")
            .args(["-Urm", "sh", "-c", "mount -t tmpfs -o \"$1\" none \"$0\""])
            .arg(dir)
            .arg(DISK_SIZE)
            .stderr(Stdio::piped())
            .output();
        match probe {
            Ok(out) if out.status.success() => Ok(SmallDisk::Namespace(dir.to_path_buf())),
            Ok(out) => Err(format!(
                "{root_error}; unshare: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("{root_error}; unshare: {e}")),
        }
    }

    fn dir(&self) -> &Path {
        match self {
            SmallDisk::Mounted(dir) | SmallDisk::Namespace(dir) => dir,
        }
    }

    /// Fills the disk to the last byte (`filler`), then runs `cmd` where it sees the
    /// disk, its stderr to `stderr`.
    fn spawn_on_full_disk(&self, mut cmd: Command, stderr: std::fs::File) -> Child {
        let filler = self.dir().join("filler");
        match self {
            SmallDisk::Mounted(_) => {
                fill(&filler);
                cmd.stdout(Stdio::null()).stderr(stderr).spawn().unwrap()
            }
            SmallDisk::Namespace(dir) => {
                let mut wrapped = Command::new("unshare");
                wrapped
                    .args([
                        "-Urm",
                        "sh",
                        "-c",
                        "mount -t tmpfs -o \"$1\" none \"$0\" && { cat /dev/zero > \"$0/filler\" 2>/dev/null; shift; exec \"$@\"; }",
                    ])
                    .arg(dir)
                    .arg(DISK_SIZE)
                    .arg(cmd.get_program())
                    .args(cmd.get_args());
                for (key, value) in cmd.get_envs() {
                    match value {
                        Some(value) => wrapped.env(key, value),
                        None => wrapped.env_remove(key),
                    };
                }
                wrapped
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()
                    .unwrap()
            }
        }
    }

    /// `path` (on the disk) as this process can reach it while `worker` runs.
    fn seen(&self, worker: &Child, path: &Path) -> PathBuf {
        match self {
            SmallDisk::Mounted(_) => path.to_path_buf(),
            SmallDisk::Namespace(_) => {
                let inside = path.strip_prefix("/").unwrap();
                PathBuf::from(format!("/proc/{}/root", worker.id())).join(inside)
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let SmallDisk::Mounted(dir) = self {
            let _ = Command::new("umount").arg("-l").arg(dir).status();
        }
    }
}

/// Writes zeros to `path` until the disk refuses.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = file.sync_all();
}

fn wait_until(what: &str, worker: &mut Child, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker exited while waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_disk_keeps_the_jobs_and_the_batch_finishes_once_space_is_freed() {
    const JOBS: usize = 12;
    let scratch = Scratch::new();
    let disk = match SmallDisk::get(&scratch.path("disk")) {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipping: cannot mount a small tmpfs here ({why})");
            return;
        }
    };
    // The images go to the small disk; the store stays on the big one.
    let config = config_with_data_dir(&scratch, disk.dir());
    let sim = Sim::start(&[
        "--rate",
        &format!("{MODEL}=10"),
        "--in-flight",
        &format!("{MODEL}=4"),
    ]);
    let wandash = |args: &[&str]| {
        let mut cmd = scratch.cmd_against(&sim, "test-key", &config);
        cmd.args(args);
        cmd
    };
    let batch = batch_file(&scratch, JOBS);
    Run::from(
        wandash(&["batch", batch.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect(0);

    let stderr_path = scratch.path("worker.stderr");
    let mut worker = disk.spawn_on_full_disk(
        wandash(&["worker"]),
        std::fs::File::create(&stderr_path).unwrap(),
    );
    let db = scratch.db();
    let store = Store::open(&db).unwrap();
    let all = || store.list(&JobFilter::default(), 0, 1000).unwrap();

    // The first image meets the full disk: the job notes why, names the path.
    wait_until("a job noting the disk error", &mut worker, || {
        all()
            .iter()
            .any(|r| r.error().map(|e| e.kind.code()) == Some("DiskError"))
    });
    let noted = all()
        .into_iter()
        .find(|r| r.error().map(|e| e.kind.code()) == Some("DiskError"))
        .unwrap();
    let message = noted.error().unwrap().message.clone();
    assert!(message.contains("No space left on device"), "{message}");
    assert!(
        message.contains(&*disk.dir().join("images").to_string_lossy()),
        "the note names the path: {message}"
    );
    assert_eq!(
        noted.state(),
        JobState::Running,
        "kept, not failed: {noted:?}"
    );
    let listed = Run::from(wandash(&["list"]).output().unwrap())
        .expect(0)
        .stdout;
    assert!(
        listed.contains("! DiskError") && listed.contains("No space left on device"),
        "list shows why the job waits:\n{listed}"
    );

    // No new creates while the disk refuses: the tasks already made finish, then the
    // count stays put while jobs are still queued.
    std::thread::sleep(Duration::from_millis(500));
    let paused_at = sim.stats()["creates"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        sim.stats()["creates"],
        paused_at,
        "creates stopped while the disk is full"
    );
    let rows = all();
    assert!(
        paused_at < JOBS as u64,
        "some jobs were held back ({paused_at} created)"
    );
    assert!(
        rows.iter().any(|r| r.state() == JobState::Queued),
        "{rows:?}"
    );
    assert!(
        rows.iter().all(|r| !r.state().is_final()),
        "nothing failed or ended while the disk was full: {rows:?}"
    );

    // Free the space: the same worker, without a restart, finishes the batch.
    std::fs::remove_file(disk.seen(&worker, &disk.dir().join("filler"))).unwrap();
    wait_until("every job succeeded", &mut worker, || {
        all().iter().all(|r| r.state() == JobState::Succeeded)
    });
    assert_eq!(
        sim.stats()["creates"],
        JOBS as u64,
        "each job created exactly once"
    );

    let mut recorded = HashSet::new();
    for row in all() {
        assert_eq!(
            row.error().map(|e| e.kind.code()),
            None,
            "no stale note on a finished job: {row:?}"
        );
        let detail = store.job(row.id).unwrap().unwrap();
        assert_eq!(detail.images.len(), 1);
        let image = &detail.images[0];
        let path = disk.seen(&worker, image.path.as_ref().unwrap());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(Some(bytes.len() as u64), image.bytes);
        assert_eq!(image.sha256.as_deref(), Some(sha256(&bytes).as_str()));
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (512, 512));
        recorded.insert(path);
    }
    let images_dir = disk.seen(&worker, &disk.dir().join("images"));
    let on_disk: HashSet<PathBuf> = files_under(&images_dir).into_iter().collect();
    let extra: Vec<_> = on_disk.difference(&recorded).collect();
    assert!(extra.is_empty(), "no partial or temp files: {extra:?}");

    // A graceful stop, then the worker's own words.
    let _ = Command::new("kill").arg(worker.id().to_string()).status();
    let status = worker.wait().unwrap();
    assert!(
        status.success(),
        "the worker stops cleanly on SIGTERM: {status}"
    );
    drop(store);
    let integrity: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        stderr.contains("cannot save images") && stderr.contains("No space left on device"),
        "the worker warns on stderr:\n{stderr}"
    );
    assert!(stderr.contains("images save again"), "{stderr}");
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The other way out: the worker dies while the disk is full, space is freed, and a
/// restart finishes the kept jobs (their tasks' images are fetched again).
#[test]
fn a_restart_after_a_full_disk_finishes_the_kept_jobs() {
    const JOBS: usize = 6;
    let scratch = Scratch::new();
    let disk = match SmallDisk::get(&scratch.path("disk")) {
        Ok(disk @ SmallDisk::Mounted(_)) => disk,
        // A namespace's tmpfs dies with the worker: nothing to restart on.
        Ok(SmallDisk::Namespace(_)) => {
            println!("skipping: a restart needs a tmpfs that outlives the worker (not root)");
            return;
        }
        Err(why) => {
            println!("skipping: cannot mount a small tmpfs here ({why})");
            return;
        }
    };
    let config = config_with_data_dir(&scratch, disk.dir());
    let sim = Sim::start(&[]);
    let wandash = |args: &[&str]| {
        let mut cmd = scratch.cmd_against(&sim, "test-key", &config);
        cmd.args(args);
        cmd
    };
    let batch = batch_file(&scratch, JOBS);
    Run::from(
        wandash(&["batch", batch.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect(0);
    let mut worker = disk.spawn_on_full_disk(
        wandash(&["worker"]),
        std::fs::File::create(scratch.path("worker.stderr")).unwrap(),
    );
    let store = Store::open(&scratch.db()).unwrap();
    wait_until("a job noting the disk error", &mut worker, || {
        store
            .list(&JobFilter::default(), 0, 100)
            .unwrap()
            .iter()
            .any(|r| r.error().map(|e| e.kind.code()) == Some("DiskError"))
    });
    worker.kill().unwrap();
    worker.wait().unwrap();
    std::fs::remove_file(disk.dir().join("filler")).unwrap();

    Run::from(wandash(&["worker", "--until-idle"]).output().unwrap()).expect(0);
    let rows = store.list(&JobFilter::default(), 0, 100).unwrap();
    assert!(
        rows.iter().all(|r| r.state() == JobState::Succeeded),
        "{rows:?}"
    );
    assert_eq!(sim.stats()["creates"], JOBS as u64);
    for row in rows {
        let image = &store.job(row.id).unwrap().unwrap().images[0];
        let bytes = std::fs::read(image.path.as_ref().unwrap()).unwrap();
        assert_eq!(image.sha256.as_deref(), Some(sha256(&bytes).as_str()));
    }
    let temps: Vec<_> = files_under(disk.dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}
