//! The preview: decode + encode of a 1024x1024 PNG (the function the image worker runs)
//! for halfblocks and sixel at the pane and full-screen sizes of a 160x48 terminal, a
//! frame's render of the encoded image, and the preview cache's hit time. Prints medians;
//! never asserts on time.
//!
//! `cargo bench --bench preview`
//! Environment: `WANDASH_BENCH_PREVIEW_RUNS` (encodes per case, default 20).

mod measure;

use measure::{median_of, ms};

use std::path::Path;

use image::{Rgb, RgbImage};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Widget};
use ratatui_image::Image;
use ratatui_image::picker::{Picker, ProtocolType};
use tokio::sync::mpsc::unbounded_channel;
use wandash::store::ImageFiles;
use wandash::ui::draw::screen_layout;
use wandash::ui::preview::{ImageWorker, encode};
use wandash::ui::state::{ImageKey, PreviewImage};

const SIDE: u32 = 1024;
/// The preview cache's size (`CACHE_ENTRIES` in src/ui/preview.rs).
const CACHE_ENTRIES: usize = 48;
const LOOKUPS: usize = 1000;

fn main() {
    let runs: usize = std::env::var("WANDASH_BENCH_PREVIEW_RUNS")
        .ok()
        .map(|v| v.parse().expect("WANDASH_BENCH_PREVIEW_RUNS is a count"))
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("picture.png");
    write_picture(&path);
    let bytes = std::fs::metadata(&path).expect("the picture exists").len();
    println!("preview: {SIDE}x{SIDE} PNG of {bytes} bytes, {runs} runs per case");

    let decode = median_of(runs, || {
        image::open(&path).expect("the picture decodes");
    });
    println!("  decode only (image::open), median: {}", ms(decode));

    let terminal = Rect::new(0, 0, 160, 48);
    // The preview pane's inside (the pane has a border) and the full-screen preview
    // (the whole screen but the header and footer lines), as src/ui/draw.rs lays them out.
    let pane = Block::new()
        .borders(Borders::ALL)
        .inner(screen_layout(terminal).preview);
    let full = Rect::new(0, 0, terminal.width, terminal.height - 2);
    let halfblocks = Picker::halfblocks();
    // The non-deprecated way to a sixel picker without asking a terminal: halfblocks'
    // fixed 10x20 font size, then the protocol forced (what `UiOptions::protocol` does).
    let mut sixel = Picker::halfblocks();
    sixel.set_protocol_type(ProtocolType::Sixel);
    let font = sixel.font_size();
    println!("  font size {}x{} px per cell", font.width, font.height);

    for (name, picker) in [("halfblocks", &halfblocks), ("sixel", &sixel)] {
        for (area_name, area) in [("pane", pane), ("full screen", full)] {
            let key = ImageKey {
                path: path.clone(),
                width: area.width,
                height: area.height,
            };
            let encoded = median_of(runs, || {
                encode(picker, &ImageFiles::default(), &key).expect("the picture encodes");
            });
            let protocol =
                encode(picker, &ImageFiles::default(), &key).expect("the picture encodes");
            let target = Rect::new(0, 0, area.width, area.height);
            let mut buffer = Buffer::empty(target);
            let render = median_of(runs * 10, || {
                Image::new(&protocol).render(target, &mut buffer);
            });
            println!(
                "  {name}, {area_name} {}x{} cells: decode + encode median {}, render into a frame median {}",
                area.width,
                area.height,
                ms(encoded),
                ms(render)
            );
        }
    }

    // Cache hits: a full cache, then the lookup the app makes on every loop turn for the
    // image on screen (the most recently used entry, the last one the scan reaches).
    let (events, _inbox) = unbounded_channel();
    let mut worker = ImageWorker::start(halfblocks.clone(), ImageFiles::default(), events);
    let key = |i: usize| ImageKey {
        path: dir.path().join(format!("{i}.png")),
        width: pane.width,
        height: pane.height,
    };
    let protocol = encode(
        &halfblocks,
        &ImageFiles::default(),
        &ImageKey {
            path: path.clone(),
            width: pane.width,
            height: pane.height,
        },
    )
    .expect("the picture encodes");
    for i in 0..CACHE_ENTRIES {
        worker.finished(key(i), Ok(protocol.clone()));
    }
    let newest = key(CACHE_ENTRIES - 1);
    let hit = median_of(runs * 10, || {
        for _ in 0..LOOKUPS {
            let shown = worker.lookup(newest.clone());
            assert!(matches!(shown, PreviewImage::Ready(_)), "a cached key hits");
        }
    }) / LOOKUPS as u32;
    println!(
        "  cache hit (ImageWorker::lookup, {CACHE_ENTRIES} entries, most recent), median: {:.3} us",
        hit.as_secs_f64() * 1e6
    );
    let mut next = 0;
    let round = median_of(runs * 10, || {
        for _ in 0..LOOKUPS {
            let shown = worker.lookup(key(next % CACHE_ENTRIES));
            assert!(matches!(shown, PreviewImage::Ready(_)), "a cached key hits");
            next += 1;
        }
    }) / LOOKUPS as u32;
    println!(
        "  cache hit (ImageWorker::lookup, {CACHE_ENTRIES} entries, least recent), median: {:.3} us",
        round.as_secs_f64() * 1e6
    );
}

/// A picture that compresses like a rendered image, not like a flat fill: smooth colour
/// gradients with a little deterministic noise.
fn write_picture(path: &Path) {
    let mut rng = fastrand::Rng::with_seed(7);
    let picture = RgbImage::from_fn(SIDE, SIDE, |x, y| {
        let noise = rng.u8(0..24);
        Rgb([
            ((x * 255 / SIDE) as u8).saturating_add(noise),
            ((y * 255 / SIDE) as u8).saturating_add(noise / 2),
            (((x + y) * 127 / SIDE) as u8).saturating_add(noise),
        ])
    });
    picture.save(path).expect("the picture is written");
}
