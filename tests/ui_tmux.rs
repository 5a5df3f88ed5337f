//! The dashboard end to end in a real terminal: the release-shaped binary runs in tmux with
//! no API key (so on the embedded simulator), a person's keystrokes go in through
//! `send-keys`, and the screen is read back with `capture-pane`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[path = "support/postgres.rs"]
mod test_postgres;

const SOCKET: &str = "wandash-e2e";

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-L")
        .arg(SOCKET)
        .args(args)
        .output()
        .expect("tmux runs")
}

fn screen(session: &str) -> String {
    String::from_utf8_lossy(&tmux(&["capture-pane", "-t", session, "-p"]).stdout).into_owned()
}

/// Waits until the screen satisfies `done`, or panics with the last screen.
fn wait_for(session: &str, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = screen(session);
        if done(&text) {
            return text;
        }
        if start.elapsed() > timeout {
            panic!("timed out waiting for {what}; the screen was:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Kills the tmux server however the test ends.
struct Session(&'static str);

impl Drop for Session {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", self.0]);
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_prompt_typed_in_the_editor_runs_to_success_and_its_image_shows() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (`apt-get install tmux`; .ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        "[simulator]\nlatency_min_ms = 300\nlatency_max_ms = 800\n",
    )
    .unwrap();
    let db = home.join("jobs.db");
    let command = format!(
        "env -u DASHSCOPE_API_KEY -u DASHSCOPE_BASE_URL HOME={home} XDG_CONFIG_HOME={home} \
         XDG_DATA_HOME={home} {bin} --config {config} --db {db}",
        home = home.display(),
        bin = env!("CARGO_BIN_EXE_wandash"),
        config = config.display(),
        db = db.display(),
    );
    let session = Session("ui");
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        session.0,
        "-x",
        "160",
        "-y",
        "48",
        &command,
    ]);
    assert!(
        started.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&started.stderr)
    );

    let first = wait_for(session.0, "the dashboard", Duration::from_secs(20), |s| {
        s.contains("No jobs")
    });
    assert!(
        first.contains("SIMULATOR"),
        "no key, so the header says SIMULATOR:\n{first}"
    );

    tmux(&["send-keys", "-t", session.0, "n"]);
    wait_for(session.0, "the editor", Duration::from_secs(10), |s| {
        s.contains("Prompt")
    });
    tmux(&["send-keys", "-t", session.0, "-l", "a lighthouse at dusk"]);
    wait_for(
        session.0,
        "the typed prompt",
        Duration::from_secs(10),
        |s| s.contains("a lighthouse at dusk"),
    );
    tmux(&["send-keys", "-t", session.0, "C-s"]);

    let done = wait_for(
        session.0,
        "the job to succeed with its preview",
        Duration::from_secs(90),
        |s| {
            s.contains("succeeded  wanx2.1-t2i-turbo")
                && s.contains("Preview 1/4")
                && s.contains('▀')
        },
    );
    assert!(
        done.contains("4/4"),
        "all four images were downloaded:\n{done}"
    );
    assert!(done.contains("a lighthouse at dusk"));

    let images = home.join("images");
    let saved: Vec<_> = walk_pngs(&images);
    assert_eq!(saved.len(), 4, "four PNGs under {}", images.display());
    for png in &saved {
        let decoded = image::open(png).expect("a saved image decodes");
        assert_eq!((decoded.width(), decoded.height()), (1024, 1024));
    }

    // The gallery: the job's four images as four tiles, each captioned with the job,
    // the image and the seed wandash chose for the job (image i made with seed + i).
    tmux(&["send-keys", "-t", session.0, "v"]);
    let gallery = wait_for(
        session.0,
        "the gallery's four tiles",
        Duration::from_secs(20),
        |s| {
            s.contains("Gallery")
                && (1..=4).all(|i| s.contains(&format!("#1.{i} seed")))
                && s.matches('▀').count() + s.matches('▄').count() > 40
        },
    );
    let seeds: Vec<u64> = (1..=4)
        .map(|i| {
            let caption = format!("#1.{i} seed ");
            let at = gallery.find(&caption).unwrap() + caption.len();
            let digits: String = gallery[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().expect("a seed under each tile")
        })
        .collect();
    assert_eq!(
        seeds,
        (0..4).map(|i| seeds[0] + i).collect::<Vec<_>>(),
        "image i has seed + i:\n{gallery}"
    );
    tmux(&["send-keys", "-t", session.0, "Escape"]);
    wait_for(
        session.0,
        "the job list again",
        Duration::from_secs(10),
        |s| s.contains("Preview 1/4"),
    );

    // q with an empty editor quits at once; the pane's command then ends the session.
    tmux(&["send-keys", "-t", session.0, "q"]);
    let start = Instant::now();
    while tmux(&["has-session", "-t", session.0]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "q did not quit:\n{}",
            screen(session.0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the dashboard on the simulator in a tmux session of its own, in `home`.
fn start_dashboard(session: &Session, home: &Path) {
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        "[simulator]\nlatency_min_ms = 300\nlatency_max_ms = 800\n",
    )
    .unwrap();
    let command = format!(
        "env -u DASHSCOPE_API_KEY -u DASHSCOPE_BASE_URL HOME={home} XDG_CONFIG_HOME={home} \
         XDG_DATA_HOME={home} {bin} --config {config} --db {db}",
        home = home.display(),
        bin = env!("CARGO_BIN_EXE_wandash"),
        config = config.display(),
        db = home.join("jobs.db").display(),
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        session.0,
        "-x",
        "160",
        "-y",
        "48",
        &command,
    ]);
    assert!(
        started.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&started.stderr)
    );
}

#[test]
fn a_mask_painted_on_an_image_is_saved_at_its_size_and_opens_an_inpainting_job() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (`apt-get install tmux`; .ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let session = Session("painter");
    start_dashboard(&session, home);
    wait_for(session.0, "the dashboard", Duration::from_secs(20), |s| {
        s.contains("No jobs")
    });
    // A job of four images, done on the simulator.
    tmux(&["send-keys", "-t", session.0, "n"]);
    wait_for(session.0, "the editor", Duration::from_secs(10), |s| {
        s.contains("Prompt")
    });
    tmux(&["send-keys", "-t", session.0, "-l", "a boat on a lake"]);
    wait_for(session.0, "the prompt", Duration::from_secs(10), |s| {
        s.contains("a boat on a lake")
    });
    tmux(&["send-keys", "-t", session.0, "C-s"]);
    wait_for(
        session.0,
        "the job's four images",
        Duration::from_secs(90),
        |s| s.contains("4/4") && s.contains("Preview 1/4") && s.contains('▀'),
    );

    // The painter on the image shown: a few moves, a dab, Enter.
    tmux(&["send-keys", "-t", session.0, "m"]);
    wait_for(session.0, "the painter", Duration::from_secs(20), |s| {
        s.contains("mask · job 1 · 1024x1024")
    });
    for key in ["l", "l", "l", "l", "l", "j", "j", "j", "Space"] {
        tmux(&["send-keys", "-t", session.0, key]);
    }
    wait_for(session.0, "the dab", Duration::from_secs(10), |s| {
        !s.contains(" 0.0% to edit")
    });
    tmux(&["send-keys", "-t", session.0, "Enter"]);
    let editor = wait_for(
        session.0,
        "the editor on the inpainting job",
        Duration::from_secs(20),
        |s| s.contains("description_edit_with_mask"),
    );
    assert!(editor.contains("wanx2.1-imageedit"), "{editor}");
    assert!(editor.contains("mask image"), "{editor}");

    let masks = walk_pngs(&home.join("masks"));
    assert_eq!(masks.len(), 1, "one mask under {}", home.display());
    let mask = image::open(&masks[0]).expect("the mask decodes").to_luma8();
    assert_eq!(mask.dimensions(), (1024, 1024), "the base image's size");
    assert!(mask.pixels().any(|p| p.0[0] == 255), "white where painted");
    assert!(mask.pixels().any(|p| p.0[0] == 0), "black elsewhere");
    assert!(
        editor.contains(&masks[0].file_name().unwrap().to_string_lossy().to_string())
            || editor.contains("masks/"),
        "the editor names the mask:\n{editor}"
    );
}

fn walk_pngs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk_pngs(&path));
        } else if path.extension().is_some_and(|e| e == "png") {
            found.push(path);
        }
    }
    found
}

#[test]
fn sigterm_and_sighup_end_the_dashboard_with_the_terminal_restored() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (`apt-get install tmux`; .ci/run installs it)");
        return;
    }
    for (signal, session) in [("TERM", Session("sigterm")), ("HUP", Session("sighup"))] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        // After the dashboard ends, the shell says how it ended and whether the terminal
        // is back in its cooked mode (`icanon`, not raw's `-icanon`).
        let command = format!(
            "env -u DASHSCOPE_API_KEY -u DASHSCOPE_BASE_URL HOME={home} XDG_CONFIG_HOME={home} \
             XDG_DATA_HOME={home} {bin} --db {db}; echo ended=$?; stty -a | tr ' ' '\\n' | \
             grep -x -- '-\\?icanon'; sleep 60",
            home = home.display(),
            bin = env!("CARGO_BIN_EXE_wandash"),
            db = home.join("jobs.db").display(),
        );
        let started = tmux(&[
            "new-session",
            "-d",
            "-s",
            session.0,
            "-x",
            "100",
            "-y",
            "30",
            &format!("sh -c \"{}\"", command.replace('"', "\\\"")),
        ]);
        assert!(started.status.success(), "tmux new-session");
        wait_for(session.0, "the dashboard", Duration::from_secs(20), |s| {
            s.contains("SIMULATOR")
        });
        let shell = String::from_utf8_lossy(
            &tmux(&["display-message", "-p", "-t", session.0, "#{pane_pid}"]).stdout,
        )
        .trim()
        .to_string();
        let dashboard = child_named(&shell, "wandash").expect("the dashboard runs under the shell");
        // The shell's own `kill`: nothing beyond a POSIX shell is needed.
        let sent = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {dashboard}")])
            .status()
            .expect("sh runs");
        assert!(sent.success(), "SIG{signal} reached the dashboard");
        let after = wait_for(
            session.0,
            "the shell after the dashboard",
            Duration::from_secs(10),
            // Until `stty` has answered too, either way: the shell prints `ended=` first.
            |s| s.contains("ended=") && s.lines().any(|l| matches!(l.trim(), "icanon" | "-icanon")),
        );
        assert!(
            after.contains("ended=0"),
            "SIG{signal}: a clean end:\n{after}"
        );
        assert!(
            after.lines().any(|l| l.trim() == "icanon"),
            "SIG{signal}: the terminal is out of raw mode:\n{after}"
        );
        assert!(
            !after.contains("SIMULATOR"),
            "SIG{signal}: the alternate screen is left:\n{after}"
        );
    }
}

/// The pid of `parent`'s child process called `name`, read from /proc.
fn child_named(parent: &str, name: &str) -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after its `)`.
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            let ppid = rest.split_whitespace().nth(1)?;
            (comm == name && ppid == parent)
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

/// A team on one PostgreSQL store: a job queued by another process (another person, as
/// on another host) shows in a running dashboard, woken by the server's notification;
/// `o` shows only the dashboard user's own jobs, and the detail names who queued it.
#[test]
fn a_job_queued_by_another_process_on_postgresql_shows_and_mine_hides_it() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (`apt-get install tmux`; .ci/run installs it)");
        return;
    }
    let Some(server) = test_postgres::server() else {
        return;
    };
    let url = server.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let command = format!(
        "env -u DASHSCOPE_API_KEY -u DASHSCOPE_BASE_URL HOME={home} XDG_CONFIG_HOME={home} \
         XDG_DATA_HOME={home} USER=alice LOGNAME=alice {bin} --db '{url}'",
        home = home.display(),
        bin = env!("CARGO_BIN_EXE_wandash"),
    );
    let session = Session("team");
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        session.0,
        "-x",
        "160",
        "-y",
        "48",
        &command,
    ]);
    assert!(
        started.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    wait_for(session.0, "the dashboard", Duration::from_secs(20), |s| {
        s.contains("No jobs")
    });

    let submitted = Command::new(env!("CARGO_BIN_EXE_wandash"))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_DATA_HOME", home)
        .env("USER", "bob")
        .env("LOGNAME", "bob")
        .env_remove("DASHSCOPE_API_KEY")
        .env_remove("DASHSCOPE_BASE_URL")
        .args(["--db", &url, "submit", "--model", "wanx2.1-t2i-turbo"])
        .args(["--prompt", "a grey owl queued elsewhere"])
        .output()
        .expect("wandash submit runs");
    assert!(
        submitted.status.success(),
        "submit: {}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let shown = wait_for(
        session.0,
        "the other process's job",
        Duration::from_secs(10),
        |s| s.contains("a grey owl queued elsewhere") && s.contains("by         bob@"),
    );
    assert!(!shown.contains("│ mine"), "{shown}");

    tmux(&["send-keys", "-t", session.0, "o"]);
    let mine = wait_for(
        session.0,
        "alice's jobs only",
        Duration::from_secs(10),
        // The tabs count alice's jobs too: none.
        |s| s.contains("│ mine") && s.contains("No jobs") && s.contains("1 all 0 2 queued 0"),
    );
    assert!(!mine.contains("a grey owl queued elsewhere"), "{mine}");
    tmux(&["send-keys", "-t", session.0, "o"]);
    wait_for(
        session.0,
        "everyone's jobs again",
        Duration::from_secs(10),
        |s| {
            !s.contains("│ mine")
                && s.contains("a grey owl queued elsewhere")
                && s.contains("1 all 1 ")
        },
    );
}
