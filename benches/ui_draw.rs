//! The dashboard at 100, 10 000 and 100 000 jobs: store fill time, the list-page queries,
//! frame draw time into a 160x48 `TestBackend`, key-press to frame latency, peak memory,
//! and cold start to first frame of the real binary in tmux. Prints medians; never asserts
//! on time.
//!
//! `cargo bench --bench ui_draw`
//! Environment: `WANDASH_BENCH_UI_JOBS=100,10000,100000` (the default), `WANDASH_BENCH_FRAMES`
//! (frames and key presses per size, default 200).

mod measure;

use measure::{env_list, median, median_of, ms};

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::Rect;
use time::OffsetDateTime;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use wandash::dashscope::{JobSpec, Model};
use wandash::store::{ImageFiles, JobFilter, Store};
use wandash::ui::data::{DataJob, DataWorker, snapshot};
use wandash::ui::draw::{draw, frame_layout};
use wandash::ui::event::AppEvent;
use wandash::ui::keys::KeyMap;
use wandash::ui::state::{AppState, BackendLabel, Header};
use wandash::ui::update::Command;

const WIDTH: u16 = 160;
const HEIGHT: u16 = 48;
/// Jobs per `enqueue_batch` transaction while filling.
const FILL_CHUNK: usize = 10_000;
const COLD_STARTS: usize = 5;

const PROMPTS: [&str; 6] = [
    "a lighthouse on a basalt cliff at dusk, volumetric light, 35mm film grain",
    "watercolour fox curled up in fresh snow, soft pastel palette, paper texture",
    "一只橘猫坐在窗台上看雨，电影感光影，细腻毛发",
    "isometric cyberpunk noodle stall at night, neon signs, rain reflections",
    "水墨山水，远山近水，一叶扁舟，留白",
    "product shot of a ceramic teapot on linen, morning light, shallow depth of field",
];
const MODELS: [Model; 3] = [
    Model::Wanx21T2iTurbo,
    Model::Wanx21T2iPlus,
    Model::Wanx20T2iTurbo,
];

fn main() {
    let sizes = env_list("WANDASH_BENCH_UI_JOBS", "100,10000,100000");
    let frames: usize = std::env::var("WANDASH_BENCH_FRAMES")
        .ok()
        .map(|v| v.parse().expect("WANDASH_BENCH_FRAMES is a count"))
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("a temp dir");
    println!(
        "ui_draw: terminal {WIDTH}x{HEIGHT} (TestBackend), {frames} frames / key presses per size"
    );
    let mut largest = None;
    for n in sizes {
        let db = dir.path().join(format!("jobs-{n}.db"));
        bench_size(&db, n, frames);
        largest = Some((db, n));
    }
    if let Some((db, n)) = largest {
        cold_start(dir.path(), &db, n);
    }
}

fn bench_size(db: &Path, n: usize, frames: usize) {
    println!("--- {n} jobs in the store");
    let store = Store::open(db).expect("the store opens");
    let fill = Instant::now();
    let mut done = 0;
    while done < n {
        let chunk = FILL_CHUNK.min(n - done);
        let specs: Vec<JobSpec> = (done..done + chunk)
            .map(|i| {
                JobSpec::new(
                    MODELS[i % MODELS.len()],
                    format!("{} #{i}", PROMPTS[i % PROMPTS.len()]),
                )
            })
            .collect();
        store.enqueue_batch(&specs, None).expect("the jobs enqueue");
        done += chunk;
    }
    println!(
        "  fill ({FILL_CHUNK} jobs per transaction): {:.3} s",
        fill.elapsed().as_secs_f64()
    );

    let keys = KeyMap::default();
    let mut state = app_state();
    let load = Instant::now();
    load_window(&mut state, &store);
    println!(
        "  first window load (snapshot + apply_data): {}",
        ms(load.elapsed())
    );
    println!("  rows in the window: {}", state.list.rows.len());

    // The list-page queries: the whole snapshot the data worker makes (counts, count,
    // window, detail, today's totals), and `Store::list` alone at the top and at the
    // last page (the offset is walked through the index).
    let request = state.list_request();
    let snap = median_of(frames, || {
        snapshot(&store, &request).expect("the snapshot loads");
    });
    println!(
        "  snapshot (list page as the UI loads it), median: {}",
        ms(snap)
    );
    let filter = JobFilter::default();
    let limit = request.limit;
    let top = median_of(frames, || {
        store.list(&filter, 0, limit).expect("the page loads");
    });
    let last_offset = (n as u64).saturating_sub(limit);
    let last = median_of(frames, || {
        store
            .list(&filter, last_offset, limit)
            .expect("the page loads");
    });
    println!(
        "  Store::list first page ({limit} rows), median: {}",
        ms(top)
    );
    println!(
        "  Store::list last page (offset {last_offset}), median: {}",
        ms(last)
    );

    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("a test terminal");
    let frame = median_of(frames, || {
        terminal
            .draw(|f| {
                draw(&state, &keys, f);
            })
            .expect("the frame draws");
    });
    println!(
        "  frame draw (Terminal::draw, same state), median: {}",
        ms(frame)
    );

    // A key press as the app takes it: `handle`, then a frame at once (the window rows
    // are already loaded), then the data worker's answer for the new selection (its
    // detail) and a second frame. The direction flips at either end of the list.
    let (events, mut inbox) = unbounded_channel();
    let worker =
        DataWorker::start(db, ImageFiles::default(), events).expect("the data worker starts");
    let mut first_frames = Vec::with_capacity(frames);
    let mut loaded_frames = Vec::with_capacity(frames);
    let mut down = true;
    for _ in 0..frames {
        if state.list.selected + 1 >= state.list.total {
            down = false;
        } else if state.list.selected == 0 {
            down = true;
        }
        let key = Event::Key(KeyEvent::from(if down {
            KeyCode::Down
        } else {
            KeyCode::Up
        }));
        let pressed = Instant::now();
        let commands = state.handle(&keys, &key);
        terminal
            .draw(|f| {
                draw(&state, &keys, f);
            })
            .expect("the frame draws");
        first_frames.push(pressed.elapsed());
        if commands.contains(&Command::Refresh) {
            worker.send(DataJob::List(state.list_request()));
            let data = next_data(&mut inbox);
            let more = state.apply_data(data);
            assert!(more.is_empty(), "the window settled after one answer");
            terminal
                .draw(|f| {
                    draw(&state, &keys, f);
                })
                .expect("the frame draws");
        }
        loaded_frames.push(pressed.elapsed());
    }
    drop(worker);
    println!(
        "  key press to frame (handle + draw), median: {}",
        ms(median(&mut first_frames))
    );
    println!(
        "  key press to loaded frame (+ data worker round trip + draw), median: {}",
        ms(median(&mut loaded_frames))
    );
    let (hwm, rss) = memory();
    println!("  process memory after this size: peak RSS (VmHWM) {hwm}, RSS now {rss}");
}

fn app_state() -> AppState {
    AppState::new(
        frame_layout(Rect::new(0, 0, WIDTH, HEIGHT)),
        OffsetDateTime::now_utc(),
        Header {
            backend: BackendLabel::Simulator,
            protocol: "halfblocks".into(),
            ..Header::default()
        },
    )
}

/// Answers the state's list requests the way the data worker does, until it stops asking.
fn load_window(state: &mut AppState, store: &Store) {
    loop {
        let data = snapshot(store, &state.list_request()).expect("the snapshot loads");
        if state.apply_data(data).is_empty() {
            return;
        }
    }
}

fn next_data(inbox: &mut UnboundedReceiver<AppEvent>) -> wandash::ui::update::DataSnapshot {
    loop {
        match inbox.blocking_recv() {
            Some(AppEvent::Data(data)) => return *data,
            Some(AppEvent::DataFailed(message)) => panic!("the data worker failed: {message}"),
            Some(_) => continue,
            None => panic!("the data worker stopped"),
        }
    }
}

/// Time from starting `wandash` in a 160x48 tmux pane to its header on screen, and to the
/// first window of jobs on screen; the screen is read with `capture-pane` as fast as tmux
/// answers, so the figures include that polling (a few ms).
fn cold_start(home: &Path, db: &Path, n: usize) {
    let tmux_ok = Process::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !tmux_ok {
        println!("--- cold start: skipped (tmux is not installed)");
        return;
    }
    let config = home.join("config.toml");
    std::fs::write(&config, "").expect("the config file is written");
    let empty_db = home.join("empty.db");
    // The list's title counts the jobs once the first window has loaded.
    let loaded = format!(" of {n} ");
    // A session kept open for the whole run, so the tmux server does not exit (and race
    // the next start) each time a measured session ends.
    let keep = tmux(&["new-session", "-d", "-s", "keep", "sleep 3600"]);
    assert!(
        keep.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&keep.stderr)
    );
    let cases = [
        ("empty store".to_string(), empty_db.as_path(), None),
        (format!("{n} jobs"), db, Some(loaded.as_str())),
    ];
    for (label, db, row) in cases {
        let mut header = Vec::new();
        let mut rows = Vec::new();
        for run in 0..COLD_STARTS {
            let (to_header, to_row) = one_cold_start(home, &config, db, row, run);
            header.push(to_header);
            if let Some(t) = to_row {
                rows.push(t);
            }
        }
        println!(
            "--- cold start to first frame ({label}), median of {COLD_STARTS}: {}",
            ms(median(&mut header))
        );
        if !rows.is_empty() {
            println!(
                "--- cold start to the first window of jobs on screen ({label}), median of {COLD_STARTS}: {}",
                ms(median(&mut rows))
            );
        }
    }
    tmux(&["kill-server"]);
}

fn one_cold_start(
    home: &Path,
    config: &Path,
    db: &Path,
    row: Option<&str>,
    run: usize,
) -> (Duration, Option<Duration>) {
    let session = format!("cold{run}");
    let command = format!(
        "env -u DASHSCOPE_API_KEY -u DASHSCOPE_BASE_URL HOME={home} XDG_CONFIG_HOME={home} \
         XDG_DATA_HOME={home} {bin} --config {config} --db {db}",
        home = home.display(),
        bin = env!("CARGO_BIN_EXE_wandash"),
        config = config.display(),
        db = db.display(),
    );
    let started = Instant::now();
    let out = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "48",
        &command,
    ]);
    assert!(
        out.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let to_header = wait_screen(&session, started, |s| s.contains("SIMULATOR"));
    let to_row = row.map(|text| wait_screen(&session, started, |s| s.contains(text)));
    tmux(&["kill-session", "-t", &session]);
    wait_engine_gone(db);
    (to_header, to_row)
}

/// Waits until the killed dashboard's engine has let go of its lock, so the next start
/// does not find the store locked.
fn wait_engine_gone(db: &Path) {
    let mut lock = db.as_os_str().to_owned();
    lock.push(".engine.lock");
    let Ok(file) = std::fs::File::options().write(true).open(&lock) else {
        return;
    };
    let started = Instant::now();
    while file.try_lock().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the dashboard's engine still holds {} after 30 s",
            Path::new(&lock).display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = file.unlock();
}

fn wait_screen(session: &str, started: Instant, done: impl Fn(&str) -> bool) -> Duration {
    loop {
        let out = tmux(&["capture-pane", "-t", session, "-p"]);
        let screen = String::from_utf8_lossy(&out.stdout);
        if done(&screen) {
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!("the dashboard did not show in 60 s; the screen was:\n{screen}");
        }
    }
}

fn tmux(args: &[&str]) -> std::process::Output {
    Process::new("tmux")
        .args(["-L", "wandash-bench"])
        .args(args)
        .output()
        .expect("tmux runs")
}

/// Peak and current resident set size of this process, from /proc/self/status.
fn memory() -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    (field("VmHWM:"), field("VmRSS:"))
}
