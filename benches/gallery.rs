//! The gallery: time to the first full grid of 12 thumbnails from 1024x1024 PNGs, cold
//! (the thumbnail workers decode, scale and encode each) and cached, for halfblocks and
//! sixel; the data worker's window query on a store of 1000 images; and key-to-frame while
//! moving through a grid of 1000 images, with the workers busy decoding (cold) and with
//! the screen's thumbnails cached (handle + lookup + draw). Prints medians; never asserts
//! on time.
//!
//! `cargo bench --bench gallery`
//! Environment: `WANDASH_BENCH_GALLERY_RUNS` (grids per case, default 5),
//! `WANDASH_BENCH_GALLERY_KEYS` (key presses per case, default 300).

mod measure;

use measure::{median, ms};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui_image::picker::{Picker, ProtocolType};
use time::OffsetDateTime;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use wandash::dashscope::{JobSpec, Model};
use wandash::store::{ImageFiles, JobId, JobState, Store};
use wandash::ui::data::gallery_snapshot;
use wandash::ui::draw::{draw, frame_layout};
use wandash::ui::event::AppEvent;
use wandash::ui::gallery::{GalleryRequest, GalleryScope, GallerySnapshot, Tile};
use wandash::ui::keys::KeyMap;
use wandash::ui::state::{AppState, Header, ImageKey, Mode, Tab};
use wandash::ui::thumbnails::ThumbnailWorker;
use wandash::ui::update::Command;

const SIDE: u32 = 1024;
/// A 200x45 terminal lays the gallery out as 6 x 2 = 12 tiles.
const SCREEN: Rect = Rect::new(0, 0, 200, 45);
const PICTURES: usize = 12;
const GRID: u64 = 1000;

fn main() {
    let runs = env_count("WANDASH_BENCH_GALLERY_RUNS", 5);
    let presses = env_count("WANDASH_BENCH_GALLERY_KEYS", 300);
    let dir = tempfile::tempdir().expect("a temp dir");
    let pictures: Vec<PathBuf> = (0..PICTURES)
        .map(|i| {
            let path = dir.path().join(format!("picture-{i}.png"));
            write_picture(&path, i as u64);
            path
        })
        .collect();
    // A thousand names for the dozen pictures (hard links): a thousand cache keys, real
    // PNG bytes behind each.
    let grid_files: Vec<PathBuf> = (0..GRID as usize)
        .map(|i| {
            let path = dir.path().join(format!("grid-{i}.png"));
            std::fs::hard_link(&pictures[i % PICTURES], &path).expect("a hard link");
            path
        })
        .collect();
    let layout = frame_layout(SCREEN);
    let shape = wandash::ui::gallery::grid_shape(layout.gallery);
    println!(
        "gallery: {SIDE}x{SIDE} PNGs, {}x{} terminal, grid {}x{} tiles of {}x{} cells, {runs} runs per case",
        SCREEN.width, SCREEN.height, shape.columns, shape.rows, shape.tile_width, shape.tile_height
    );

    for (name, picker) in pickers() {
        let (width, height) = shape.thumb_size();
        let mut cold = Vec::new();
        let mut cached = Vec::new();
        for run in 0..runs {
            // Fresh names each run, so nothing is cached; the files stay in the page cache.
            let keys: Vec<ImageKey> = (0..PICTURES)
                .map(|i| ImageKey {
                    path: grid_files[(run * PICTURES + i) % grid_files.len()].clone(),
                    width,
                    height,
                })
                .collect();
            let (events, mut inbox) = unbounded_channel();
            let mut worker = ThumbnailWorker::start(picker.clone(), ImageFiles::default(), events);
            let start = Instant::now();
            worker.want(&keys, &[]);
            await_thumbnails(&mut worker, &mut inbox, keys.len());
            cold.push(start.elapsed());
            let start = Instant::now();
            let shown = worker.want(&keys, &[]);
            cached.push(start.elapsed());
            assert!(
                shown
                    .values()
                    .all(|t| matches!(t, wandash::ui::gallery::Thumb::Ready(_)))
            );
        }
        println!(
            "  {name}: first full grid of {PICTURES} thumbnails, cold (decode, scale, encode on the workers) median {}, cached (the lookup of all {PICTURES}) median {}",
            ms(median(&mut cold)),
            ms(median(&mut cached))
        );
    }

    // The data worker's window: 250 jobs of 4 images each in a real store.
    let store_dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(&store_dir.path().join("jobs.db")).expect("a store");
    fill_store(&store_dir.path().join("jobs.db"), &store, &grid_files);
    let request = GalleryRequest {
        scope: GalleryScope::Tab,
        tab: Tab::All,
        search: String::new(),
        mine: false,
        starred_only: false,
        offset: 500,
        limit: 2 * shape.tiles(),
    };
    let mut windows: Vec<Duration> = (0..runs * 10)
        .map(|_| {
            let start = Instant::now();
            let answer = gallery_snapshot(&store, &request).expect("a window");
            assert_eq!(answer.total, GRID);
            start.elapsed()
        })
        .collect();
    println!(
        "  data worker: a window of {} of {GRID} images (with the count), median {}",
        request.limit,
        ms(median(&mut windows))
    );

    let tiles: Vec<Tile> = grid_files
        .iter()
        .enumerate()
        .map(|(i, path)| Tile {
            job: JobId(GRID as i64 - i as i64 / 4),
            index: (i % 4) as u32,
            path: path.clone(),
            state: JobState::Succeeded,
            spec: JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse"),
            starred: false,
        })
        .collect();
    let halfblocks = Picker::halfblocks();
    for warm in [false, true] {
        let (events, mut inbox) = unbounded_channel();
        let mut worker = ThumbnailWorker::start(halfblocks.clone(), ImageFiles::default(), events);
        if warm {
            // The first 200 images' thumbnails cached; the walk stays among them.
            let (width, height) = shape.thumb_size();
            let keys: Vec<ImageKey> = grid_files[..200]
                .iter()
                .map(|path| ImageKey {
                    path: path.clone(),
                    width,
                    height,
                })
                .collect();
            worker.want(&keys, &[]);
            await_thumbnails(&mut worker, &mut inbox, keys.len());
        }
        let mut times = key_to_frame(&tiles, &mut worker, &mut inbox, presses, warm);
        println!(
            "  key-to-frame moving in a grid of {GRID} ({}), median {}, slowest {}",
            if warm {
                "screen's thumbnails cached"
            } else {
                "cold: workers decoding meanwhile"
            },
            ms(median(&mut times)),
            ms(*times.iter().max().expect("presses"))
        );
    }
}

/// Each press: the key handled, the data worker's answer applied at once (its time is
/// measured above), the thumbnails looked up (and the misses queued), the frame drawn.
/// Cold walks the whole grid; warm walks back and forth among the cached first 200.
fn key_to_frame(
    tiles: &[Tile],
    worker: &mut ThumbnailWorker,
    inbox: &mut UnboundedReceiver<AppEvent>,
    presses: usize,
    warm: bool,
) -> Vec<Duration> {
    let keys = KeyMap::default();
    let mut state = AppState::new(
        frame_layout(SCREEN),
        OffsetDateTime::now_utc(),
        Header::default(),
    );
    let mut commands = state.handle(&keys, &press(KeyCode::Char('v')));
    assert_eq!(state.mode, Mode::Gallery);
    let mut terminal = Terminal::new(TestBackend::new(SCREEN.width, SCREEN.height)).unwrap();
    let mut times = Vec::with_capacity(presses);
    for n in 0..presses {
        // Warm: down 6 rows and back up (within the first 200 images); cold: right on.
        let key = match (warm, n % 12 < 6) {
            (true, true) => KeyCode::Char('j'),
            (true, false) => KeyCode::Char('k'),
            (false, _) if n % 4 == 0 => KeyCode::Char('j'),
            (false, _) => KeyCode::Char('l'),
        };
        let start = Instant::now();
        commands.extend(state.handle(&keys, &press(key)));
        while let Some(command) = commands.pop() {
            if let Command::LoadGallery(request) = command {
                commands.extend(state.apply_gallery(answer(tiles, &request)));
            }
        }
        let (screen, ahead) = state.thumbnails_wanted();
        let shown = worker.want(&screen, &ahead);
        state.gallery.as_mut().expect("the gallery is open").thumbs = shown;
        terminal
            .draw(|frame| {
                draw(&state, &keys, frame);
            })
            .unwrap();
        times.push(start.elapsed());
        // What arrived meanwhile goes into the cache, as the app loop takes it.
        while let Ok(event) = inbox.try_recv() {
            if let AppEvent::Thumbnail(key, result) = event {
                worker.finished(key, result);
            }
        }
    }
    times
}

fn answer(tiles: &[Tile], request: &GalleryRequest) -> GallerySnapshot {
    GallerySnapshot {
        request: request.clone(),
        total: tiles.len() as u64,
        tiles: tiles
            .iter()
            .skip(request.offset as usize)
            .take(request.limit as usize)
            .cloned()
            .collect(),
    }
}

fn await_thumbnails(
    worker: &mut ThumbnailWorker,
    inbox: &mut UnboundedReceiver<AppEvent>,
    count: usize,
) {
    let mut done = 0;
    while done < count {
        match inbox.blocking_recv() {
            Some(AppEvent::Thumbnail(key, result)) => {
                assert!(result.is_ok(), "{}: {:?}", key.path.display(), result.err());
                worker.finished(key, result);
                done += 1;
            }
            Some(_) => {}
            None => panic!("the thumbnail workers stopped"),
        }
    }
}

fn pickers() -> [(&'static str, Picker); 2] {
    let mut sixel = Picker::halfblocks();
    sixel.set_protocol_type(ProtocolType::Sixel);
    [("halfblocks", Picker::halfblocks()), ("sixel", sixel)]
}

fn press(code: KeyCode) -> Event {
    Event::Key(KeyEvent::from(code))
}

/// 250 succeeded jobs of four saved images, written as the engine leaves them.
fn fill_store(db: &Path, store: &Store, files: &[PathBuf]) {
    let specs: Vec<JobSpec> = (0..GRID / 4)
        .map(|i| JobSpec::new(Model::Wanx21T2iTurbo, format!("a lighthouse, study {i}")))
        .collect();
    let ids = store.enqueue_batch(&specs, None).expect("jobs");
    let mut conn = rusqlite::Connection::open(db).expect("the store file");
    let tx = conn.transaction().expect("a transaction");
    for (n, id) in ids.iter().enumerate() {
        for index in 0..4u32 {
            tx.execute(
                "INSERT INTO images (job_id, idx, path) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    id.0,
                    index,
                    files[n * 4 + index as usize].display().to_string()
                ],
            )
            .expect("an image row");
        }
    }
    tx.execute("UPDATE jobs SET state = 'succeeded'", [])
        .expect("succeeded");
    tx.commit().expect("committed");
}

/// A picture that compresses like a rendered image: gradients with a little noise.
fn write_picture(path: &Path, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let tint = (seed * 40 % 200) as u8;
    let picture = RgbImage::from_fn(SIDE, SIDE, |x, y| {
        let noise = rng.u8(0..24);
        Rgb([
            ((x * 255 / SIDE) as u8).saturating_add(noise),
            ((y * 255 / SIDE) as u8).saturating_add(tint / 2),
            (((x + y) * 127 / SIDE) as u8).saturating_add(tint),
        ])
    });
    picture.save(path).expect("the picture is written");
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a count")))
        .unwrap_or(default)
}
