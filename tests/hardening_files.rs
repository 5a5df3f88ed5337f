//! Files and the store: exports never write through a link or over someone else's file,
//! everything wandash writes is private whatever the umask, a read-only or foreign store
//! is refused at open, an impossible row hides no other job, text from the service is
//! escaped in the log, and a base URL that is not http(s) is a config error naming the
//! key. Through the real binary.

mod cli_support;
mod hardening_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cli_support::{BIN, Scratch, Sim, files_under};
use hardening_support::{Finished, Hostile, Seen, answer_json, run_within};

const LIMIT: Duration = Duration::from_secs(60);

const FAST_CONFIG: &str = "[poll]\nmin_interval_ms = 50\nmax_interval_ms = 250\n\
    [retry]\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n";

fn run(cmd: &mut Command) -> Finished {
    run_within(cmd, LIMIT)
}

fn expect(finished: Finished, code: i32) -> Finished {
    assert_eq!(
        finished.code, code,
        "stdout:\n{}\nstderr:\n{}",
        finished.stdout, finished.stderr
    );
    finished
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A scratch home with one succeeded job (two images) made against a simulator.
struct Done {
    scratch: Scratch,
    _sim: Sim,
}

fn one_succeeded_job(umask: &str) -> Done {
    let scratch = Scratch::new();
    let sim = Sim::start(&[]);
    let config = scratch.write("config.toml", FAST_CONFIG);
    // `sh -c 'umask ...; exec wandash ...'`: the umask the user runs wandash under.
    let under_umask = |args: &[&str]| {
        let inner = scratch.cmd_against(&sim, "test-key", &config);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(inner.get_program());
        cmd.args(inner.get_args()).args(args);
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    };
    expect(
        run(&mut under_umask(&[
            "submit",
            "--model",
            "wanx2.0-t2i-turbo",
            "--prompt",
            "a private owl",
            "-n",
            "2",
            "--size",
            "512*512",
            "--wait",
        ])),
        0,
    );
    expect(
        run(&mut under_umask(&[
            "export",
            "--to",
            scratch.path("export").to_str().unwrap(),
        ])),
        0,
    );
    Done { scratch, _sim: sim }
}

fn export(scratch: &Scratch, to: &Path, extra: &[&str]) -> Finished {
    run(scratch
        .cmd()
        .args(["export", "--to", to.to_str().unwrap()])
        .args(extra))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn everything_wandash_writes_is_private_whatever_the_umask() {
    let done = one_succeeded_job("000");
    let data = done.scratch.data_dir();
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["wandash.db", "wandash.db-wal", "wandash.db-shm"] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    assert_eq!(mode(&data.join("logs")), 0o700);
    assert_eq!(mode(&data.join("logs/wandash.log")), 0o600);
    let images: Vec<PathBuf> = files_under(&data)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    for image in &images {
        assert_eq!(mode(image), 0o600, "{}", image.display());
        // The job's folder, made by the image writer (`images/` itself is the engine's
        // start-up check's, inside the 0700 data directory).
        let job_dir = image.parent().unwrap();
        assert_eq!(mode(job_dir), 0o700, "{}", job_dir.display());
    }
    let exported = done.scratch.path("export");
    assert_eq!(mode(&exported), 0o700);
    let names = names_in(&exported);
    assert_eq!(names.len(), 3, "{names:?}");
    for name in names {
        assert_eq!(mode(&exported.join(&name)), 0o600, "{name}");
    }
}

#[test]
fn export_never_writes_through_a_link_nor_over_a_file_it_did_not_write() {
    let done = one_succeeded_job("022");
    let s = &done.scratch;
    let first = s.path("export");
    let expected = names_in(&first);
    assert_eq!(expected, ["job-1-0.png", "job-1-1.png", "job-1.json"]);

    // Running it again over its own files is fine and changes nothing.
    expect(export(s, &first, &[]), 0);
    assert_eq!(names_in(&first), expected);

    // A link planted where an image goes, pointing at a victim; and a file of the user's
    // where the sidecar goes.
    let to = s.path("shared");
    std::fs::create_dir(&to).unwrap();
    let victim = s.write("victim.txt", "precious");
    std::os::unix::fs::symlink(&victim, to.join("job-1-0.png")).unwrap();
    std::fs::write(to.join("job-1.json"), "the user's own notes").unwrap();
    let refused = expect(export(s, &to, &[]), 1);
    for needle in [
        "job-1-0.png (a symbolic link)",
        "job-1.json (a different file)",
        "nothing was exported",
        "--force",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}\n{}",
            refused.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(
        std::fs::read_to_string(to.join("job-1.json")).unwrap(),
        "the user's own notes"
    );
    assert_eq!(
        names_in(&to),
        ["job-1-0.png", "job-1.json"],
        "nothing else was written"
    );

    // --force replaces the names themselves: the link goes, the victim is untouched.
    expect(export(s, &to, &["--force"]), 0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(names_in(&to), expected);
    for name in &expected {
        assert!(
            !std::fs::symlink_metadata(to.join(name))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(to.join(name)).unwrap(),
            std::fs::read(first.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_read_only_store_is_refused_at_open_with_exit_code_3() {
    let s = Scratch::new();
    expect(
        run(s
            .cmd()
            .args(["submit", "--model", "wanx2.0-t2i-turbo", "--prompt", "kept"])),
        0,
    );
    let db = s.db();
    let before = std::fs::read(&db).unwrap();
    let mut cmd = s.cmd();
    if is_root() {
        // Root writes any file: run as `nobody`, to whom the store (owner root) is
        // read-only, as it is to any other user.
        use std::os::unix::process::CommandExt;
        // The directories open to it, so that only the store file is in its way.
        for (dir, dir_mode) in [(s.dir.path(), 0o755), (s.data_dir().as_path(), 0o777)] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        }
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let refused = expect(run(cmd.args(["worker", "--until-idle"])), 3);
    assert!(refused.took < Duration::from_secs(10), "{:?}", refused.took);
    let expected = format!("{} is read-only", db.display());
    assert!(
        refused.stderr.contains(&expected),
        "{expected}\n{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    // Nothing was lost: the store is as it was, and its owner still reads it.
    assert_eq!(std::fs::read(&db).unwrap(), before);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let listed = expect(run(s.cmd().args(["--json", "list"])), 0);
    assert!(listed.stdout.contains("kept"), "{}", listed.stdout);
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn a_foreign_sqlite_database_is_refused_with_one_line() {
    let s = Scratch::new();
    let foreign = s.path("photos.sqlite");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch(
            "CREATE TABLE albums (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO albums (name) VALUES ('holiday');",
        )
        .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    let refused = expect(
        run(Command::new(BIN)
            .env("HOME", s.path("home"))
            .env("XDG_DATA_HOME", s.path("home/data"))
            .args(["--db", foreign.to_str().unwrap(), "list"])),
        3,
    );
    let expected = format!("{} is another program's database", foreign.display());
    assert!(
        refused.stderr.contains(&expected),
        "{expected}\n{}",
        refused.stderr
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(!refused.stderr.contains("CREATE"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        before,
        "the file is untouched"
    );
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["albums"]);
}

#[test]
fn an_impossible_row_in_the_store_is_named_by_id_and_field_and_the_other_jobs_are_listed() {
    let s = Scratch::new();
    for prompt in ["kept one", "impossible state", "unknown model"] {
        s.run(&["submit", "--model", "wanx2.1-t2i-turbo", "--prompt", prompt])
            .expect(0);
    }
    {
        // Edited by hand or by another program: a running job without a task, and a
        // model no build knows.
        let conn = rusqlite::Connection::open(s.db()).unwrap();
        conn.execute_batch(
            "UPDATE jobs SET state = 'running' WHERE id = 2;
             UPDATE jobs SET model = 'wanx9-made-up' WHERE id = 3;",
        )
        .unwrap();
    }
    let listed = expect(run(s.cmd().arg("list")), 0);
    assert!(listed.stdout.contains("kept one"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("impossible"), "{}", listed.stdout);
    let warnings: Vec<&str> = listed.stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{}", listed.stderr);
    assert!(
        warnings[0].contains("job 3 cannot be read")
            && warnings[0].contains("field `model`")
            && warnings[0].contains("wanx9-made-up"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[1].contains("job 2 cannot be read")
            && warnings[1].contains("a running job without a task id"),
        "{}",
        warnings[1]
    );
    let json: serde_json::Value =
        serde_json::from_str(&expect(run(s.cmd().args(["--json", "list"])), 0).stdout).unwrap();
    let ids: Vec<i64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1]);
    // The bad row itself: refused by id and field, not by a bare "corrupt".
    let shown = run(s.cmd().args(["show", "3"]));
    assert_ne!(shown.code, 0);
    assert!(
        shown.stderr.contains("job 3, field `model`"),
        "{}",
        shown.stderr
    );
    assert!(
        expect(run(s.cmd().args(["show", "1"])), 0)
            .stdout
            .contains("kept one")
    );
    // Nothing was changed or dropped by reading.
    let conn = rusqlite::Connection::open(s.db()).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM jobs", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 3);
}

#[test]
fn text_from_the_service_is_escaped_in_the_log() {
    let hostile_id = "t-\u{1b}]52;c;ZXZpbA==\u{7}-\u{9b}31m";
    let created = serde_json::json!({
        "request_id": "r\u{1b}[2J",
        "output": {"task_id": hostile_id, "task_status": "PENDING"},
    })
    .to_string();
    let server = Hostile::start(move |_: &Seen, stream| answer_json(stream, &created));
    let s = Scratch::new();
    let config = s.write("config.toml", FAST_CONFIG);
    expect(
        run(s
            .cmd()
            .args(["submit", "--model", "wanx2.0-t2i-turbo", "--prompt", "p"])),
        0,
    );
    // The worker creates the task and logs its id; the test stops it once it has.
    let log = s.data_dir().join("logs/wandash.log");
    let mut worker = s
        .cmd()
        .env("DASHSCOPE_API_KEY", "test-key")
        .args(["--config", config.to_str().unwrap()])
        .args(["--base-url", &server.base_url(), "worker"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let text = loop {
        let text = std::fs::read(&log).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains("task created") || started.elapsed() > LIMIT {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    worker.kill().ok();
    worker.wait().ok();
    let text = String::from_utf8(text).expect("the log is UTF-8");
    assert!(text.contains("task created"), "{text}");
    assert!(
        text.contains(r"t-\x1b]52;c;ZXZpbA==\x07-\u{9b}31m"),
        "{text}"
    );
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a raw control character reached the log:\n{text:?}"
    );
    assert!(server.seen().iter().any(|r| r.line().starts_with("POST")));
}

#[test]
fn a_base_url_that_is_not_http_is_a_config_error_naming_the_key() {
    let s = Scratch::new();
    let config = s.write("config.toml", "base_url = \"ftp://example.com/api/v1\"\n");
    let refused = expect(
        run(s.cmd().args(["--config", config.to_str().unwrap(), "list"])),
        2,
    );
    assert!(
        refused
            .stderr
            .contains("base_url: `ftp://example.com/api/v1` is not an http(s) URL"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(config.to_str().unwrap()),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("invalid job"),
        "{}",
        refused.stderr
    );

    let refused = expect(
        run(s.cmd().args(["--base-url", "ftp://example.com", "list"])),
        2,
    );
    assert!(
        refused
            .stderr
            .contains("--base-url (or DASHSCOPE_BASE_URL): `ftp://example.com`"),
        "{}",
        refused.stderr
    );
    // Nothing was created for a refused start.
    assert!(!s.db().exists());
}
