//! Thumbnails for the gallery: decoded, scaled and encoded for the terminal's protocol on
//! a few worker threads, never on the UI task.
//!
//! The app says which keys (file + tile size) the screen wants on every turn
//! (`ThumbnailWorker::want`): that replaces the queue, the tiles on screen first and the
//! next screen's after them, so a request for a tile scrolled away is dropped before a
//! worker spends time on it. Finished encodings land in a bounded cache (least recently
//! wanted out first); a screen whose tiles are all cached is drawn without asking anyone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufReader;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use image::{ImageReader, Limits};
use ratatui::layout::Size;
use ratatui_image::Resize;
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use tokio::sync::mpsc::UnboundedSender;

use super::event::AppEvent;
use super::gallery::Thumb;
use super::state::ImageKey;
use crate::store::ImageFiles;

/// Encoded thumbnails kept: several screens of a wide grid.
pub const CACHE_ENTRIES: usize = 256;
/// At most this many worker threads (fewer on a machine with fewer cores).
const MAX_WORKERS: usize = 4;
/// Decoding limit, as the preview's: the service makes at most 2048x2048 here.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// What the workers share with the app: the keys still to encode, most wanted first, and
/// the keys a worker has taken and not yet answered.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<ImageKey>,
    working: HashSet<ImageKey>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An encoding and when it was last wanted (a counter, for eviction).
struct Cached {
    thumb: Thumb,
    used: u64,
}

/// The app's side: the shared queue and the cache.
pub struct ThumbnailWorker {
    shared: Arc<Shared>,
    cache: HashMap<ImageKey, Cached>,
    clock: u64,
}

impl ThumbnailWorker {
    /// Starts the workers, each sending `AppEvent::Thumbnail` for what it encodes; `files`
    /// finds each image on this host (another host's from the store).
    pub fn start(
        picker: Picker,
        files: ImageFiles,
        events: UnboundedSender<AppEvent>,
    ) -> ThumbnailWorker {
        let workers = thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_WORKERS);
        ThumbnailWorker::with_workers(picker, files, events, workers)
    }

    pub fn with_workers(
        picker: Picker,
        files: ImageFiles,
        events: UnboundedSender<AppEvent>,
        workers: usize,
    ) -> ThumbnailWorker {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        for n in 0..workers.max(1) {
            let (shared, picker, files, events) = (
                shared.clone(),
                picker.clone(),
                files.clone(),
                events.clone(),
            );
            thread::Builder::new()
                .name(format!("wandash-ui-thumbs-{n}"))
                .spawn(move || serve(&shared, &picker, &files, &events))
                .expect("spawning a thread only fails when the process is out of resources");
        }
        ThumbnailWorker {
            shared,
            cache: HashMap::new(),
            clock: 0,
        }
    }

    /// What to draw for each key in `screen`: cached encodings as they are, the rest
    /// `Loading`. The queue becomes exactly the uncached keys of `screen`, then of `ahead`
    /// (in that order); whatever else was waiting is dropped.
    pub fn want(&mut self, screen: &[ImageKey], ahead: &[ImageKey]) -> HashMap<ImageKey, Thumb> {
        self.clock += 1;
        let mut shown = HashMap::with_capacity(screen.len());
        for key in screen {
            let thumb = match self.cache.get_mut(key) {
                Some(cached) => {
                    cached.used = self.clock;
                    cached.thumb.clone()
                }
                None => Thumb::Loading,
            };
            shown.insert(key.clone(), thumb);
        }
        let mut queue = self.shared.lock();
        let waiting = next_queue(screen, ahead, |key| {
            self.cache.contains_key(key) || queue.working.contains(key)
        });
        if waiting != queue.waiting {
            queue.waiting = waiting;
            self.shared.wake.notify_all();
        }
        shown
    }

    /// Takes a worker's answer into the cache, making room by dropping the entry wanted
    /// least recently.
    pub fn finished(&mut self, key: ImageKey, result: Result<Arc<Protocol>, String>) {
        if self.cache.len() >= CACHE_ENTRIES
            && !self.cache.contains_key(&key)
            && let Some(oldest) = self
                .cache
                .iter()
                .min_by_key(|(_, cached)| cached.used)
                .map(|(key, _)| key.clone())
        {
            self.cache.remove(&oldest);
        }
        let thumb = match result {
            Ok(protocol) => Thumb::Ready(protocol),
            Err(message) => Thumb::Failed(message),
        };
        self.cache.insert(
            key,
            Cached {
                thumb,
                used: self.clock,
            },
        );
    }

    /// Encodings held.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// The queue for a screen: its keys in order, then the next screen's, leaving out those
/// already `held` (cached, or being encoded). Anything not named is dropped.
fn next_queue(
    screen: &[ImageKey],
    ahead: &[ImageKey],
    held: impl Fn(&ImageKey) -> bool,
) -> VecDeque<ImageKey> {
    screen
        .iter()
        .chain(ahead)
        .filter(|key| !held(key))
        .cloned()
        .collect()
}

impl Drop for ThumbnailWorker {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

fn serve(shared: &Shared, picker: &Picker, files: &ImageFiles, events: &UnboundedSender<AppEvent>) {
    loop {
        let key = {
            let mut queue = shared.lock();
            loop {
                if queue.closed {
                    return;
                }
                if let Some(key) = queue.waiting.pop_front() {
                    queue.working.insert(key.clone());
                    break key;
                }
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let result = encode_thumbnail(picker, files, &key);
        let sent = events.send(AppEvent::Thumbnail(key.clone(), result));
        // Answered before leaving `working`: the app's next `want` finds it cached, never
        // neither cached nor working (which would ask for it twice).
        shared.lock().working.remove(&key);
        if sent.is_err() {
            return;
        }
    }
}

/// Decodes the image (the recorded file, or this host's copy of it), shrinks it to the
/// pixels the tile's cells hold (a fast box filter: a thumbnail needs no more), and
/// encodes it to fit the cells.
pub fn encode_thumbnail(
    picker: &Picker,
    files: &ImageFiles,
    key: &ImageKey,
) -> Result<Arc<Protocol>, String> {
    let here = files.local(&key.path)?;
    let name = here.display();
    let file = std::fs::File::open(&here).map_err(|e| format!("{name}: {e}"))?;
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| format!("{name}: {e}"))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let picture = reader.decode().map_err(|e| format!("{name}: {e}"))?;
    let font = picker.font_size();
    let pixels = (
        u32::from(key.width) * u32::from(font.width),
        u32::from(key.height) * u32::from(font.height),
    );
    let small = picture.thumbnail(pixels.0.max(1), pixels.1.max(1));
    let protocol = picker
        .new_protocol(small, Size::new(key.width, key.height), Resize::Fit(None))
        .map_err(|e| format!("encoding {name}: {e}"))?;
    Ok(Arc::new(protocol))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use image::{DynamicImage, RgbImage};

    use super::*;

    fn key(n: usize) -> ImageKey {
        ImageKey {
            path: PathBuf::from(format!("/images/{n}.png")),
            width: 30,
            height: 15,
        }
    }

    fn keys(range: std::ops::Range<usize>) -> Vec<ImageKey> {
        range.map(key).collect()
    }

    #[test]
    fn the_queue_is_the_screen_then_the_next_screen_without_what_is_held() {
        let queue = next_queue(&keys(0..4), &keys(4..8), |k| *k == key(1) || *k == key(5));
        assert_eq!(
            Vec::from(queue),
            [key(0), key(2), key(3), key(4), key(6), key(7)]
        );
        // Scrolled on: the first screen's keys are no longer named, so they are dropped.
        let queue = next_queue(&keys(8..12), &[], |_| false);
        assert_eq!(Vec::from(queue), keys(8..12));
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_least_recently_wanted_first() {
        let (events, _inbox) = tokio::sync::mpsc::unbounded_channel();
        let mut worker =
            ThumbnailWorker::with_workers(Picker::halfblocks(), ImageFiles::default(), events, 1);
        let picture = DynamicImage::ImageRgb8(RgbImage::new(8, 8));
        let protocol = Arc::new(
            Picker::halfblocks()
                .new_protocol(picture, Size::new(4, 2), Resize::Fit(None))
                .unwrap(),
        );
        for n in 0..CACHE_ENTRIES {
            worker.finished(key(n), Ok(protocol.clone()));
        }
        // Key 0 wanted again: of the full cache it is the one that must stay.
        let shown = worker.want(&[key(0)], &[]);
        assert!(matches!(shown[&key(0)], Thumb::Ready(_)));
        worker.finished(key(CACHE_ENTRIES), Err("unreadable".into()));
        assert_eq!(worker.cached(), CACHE_ENTRIES);
        let shown = worker.want(&keys(0..CACHE_ENTRIES + 1), &[]);
        assert!(matches!(shown[&key(0)], Thumb::Ready(_)));
        let evicted = keys(1..CACHE_ENTRIES)
            .iter()
            .filter(|k| matches!(shown[*k], Thumb::Loading))
            .count();
        assert_eq!(evicted, 1, "one entry made room");
        assert!(matches!(&shown[&key(CACHE_ENTRIES)], Thumb::Failed(m) if m == "unreadable"));
    }
}
