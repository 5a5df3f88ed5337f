//! Images for the preview: decoded and encoded for the terminal's protocol on a worker
//! thread (the shape of ratatui-image's `examples/thread.rs`), cached by file and cell
//! size, so moving through the list never waits for a picture.

use std::collections::VecDeque;
use std::io::BufReader;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;

use image::imageops::FilterType;
use image::{ImageReader, Limits};
use ratatui::layout::Size;
use ratatui_image::Resize;
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use tokio::sync::mpsc::UnboundedSender;

use super::event::AppEvent;
use super::state::{ImageKey, PreviewImage, ReadyImage};
use crate::store::ImageFiles;

/// Encoded images kept; a page of previews at two sizes (pane and full screen).
const CACHE_ENTRIES: usize = 48;
/// Decoding limit: the service makes at most 2048x2048 here, inputs are 10 MB files.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// What the worker sends back.
pub type Encoded = Result<Arc<Protocol>, String>;

/// The app's side: the request channel and the cache.
pub struct ImageWorker {
    requests: Sender<ImageKey>,
    cache: VecDeque<(ImageKey, Arc<Protocol>)>,
    /// The key asked for last and not answered yet (asked once, however often wanted).
    pending: Option<ImageKey>,
}

impl ImageWorker {
    /// Starts the worker; `files` finds each image on this host (another host's from the
    /// store), off the UI task like the decoding.
    pub fn start(
        picker: Picker,
        files: ImageFiles,
        events: UnboundedSender<AppEvent>,
    ) -> ImageWorker {
        let (requests, inbox) = channel();
        thread::Builder::new()
            .name("wandash-ui-images".into())
            .spawn(move || serve(picker, files, inbox, events))
            .expect("spawning a thread only fails when the process is out of resources");
        ImageWorker {
            requests,
            cache: VecDeque::new(),
            pending: None,
        }
    }

    /// What the preview should show for `wanted`: the cached encoding, or `Loading` after
    /// asking the worker for it.
    pub fn lookup(&mut self, wanted: ImageKey) -> PreviewImage {
        if let Some(at) = self.cache.iter().position(|(key, _)| *key == wanted) {
            // Move to the back: the back is the most recently used.
            let entry = self.cache.remove(at).expect("position is in range");
            let protocol = entry.1.clone();
            self.cache.push_back(entry);
            return PreviewImage::Ready(ReadyImage {
                key: wanted,
                protocol,
            });
        }
        if self.pending.as_ref() != Some(&wanted) {
            self.pending = Some(wanted.clone());
            let _ = self.requests.send(wanted.clone());
        }
        PreviewImage::Loading(wanted)
    }

    /// Takes the worker's answer into the cache; returns what the preview shows for it.
    pub fn finished(&mut self, key: ImageKey, result: Encoded) -> PreviewImage {
        if self.pending.as_ref() == Some(&key) {
            self.pending = None;
        }
        match result {
            Ok(protocol) => {
                if self.cache.len() >= CACHE_ENTRIES {
                    self.cache.pop_front();
                }
                self.cache.push_back((key.clone(), protocol.clone()));
                PreviewImage::Ready(ReadyImage { key, protocol })
            }
            Err(message) => PreviewImage::Failed(key, message),
        }
    }
}

fn serve(
    picker: Picker,
    files: ImageFiles,
    inbox: Receiver<ImageKey>,
    events: UnboundedSender<AppEvent>,
) {
    while let Ok(first) = inbox.recv() {
        // Only the newest request matters: the others are for jobs already scrolled past.
        let key = inbox.try_iter().last().unwrap_or(first);
        let result = encode(&picker, &files, &key);
        if events.send(AppEvent::Image(key, result)).is_err() {
            return;
        }
    }
}

/// Decodes the image (the recorded file, or this host's copy of it) and fits it into the
/// key's cell area.
pub fn encode(picker: &Picker, files: &ImageFiles, key: &ImageKey) -> Encoded {
    let here = files.local(&key.path)?;
    let file = std::fs::File::open(&here).map_err(|e| format!("{}: {e}", here.display()))?;
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| format!("{}: {e}", key.path.display()))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let picture = reader
        .decode()
        .map_err(|e| format!("{}: {e}", key.path.display()))?;
    let protocol = picker
        // Scale, not fit: small inputs fill the pane too. Triangle filtering keeps
        // downscaled photos smooth at a cost the worker can afford.
        .new_protocol(
            picture,
            Size::new(key.width, key.height),
            Resize::Scale(Some(FilterType::Triangle)),
        )
        .map_err(|e| format!("encoding {}: {e}", key.path.display()))?;
    Ok(Arc::new(protocol))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::PathBuf;

    use image::{DynamicImage, ImageFormat, RgbImage};

    use super::*;
    use crate::dashscope::{JobSpec, Model};
    use crate::store::tests::test_postgres;
    use crate::store::{ImageRecord, Store, sha256_hex};

    /// The preview of an image another host's engine saved, on a store on PostgreSQL:
    /// the recorded file is not on this disk, so the worker reads it from the store.
    #[test]
    fn the_preview_of_an_image_saved_on_another_host_is_read_from_the_store() {
        let Some(server) = test_postgres::server() else {
            return;
        };
        let url = PathBuf::from(server.fresh_database());
        let store = Store::open(&url).unwrap().into_engine();
        let id = store
            .enqueue(&JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse"))
            .unwrap();
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(RgbImage::new(8, 6))
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let recorded = dir.path().join(format!("other-host/images/{id}/0.png"));
        let sha256 = sha256_hex(&png);
        store.put_image_bytes(&sha256, &png, 1 << 20).unwrap();
        let image = ImageRecord {
            index: 0,
            path: Some(recorded.clone()),
            sha256: Some(sha256),
            bytes: Some(png.len() as u64),
            ..Default::default()
        };
        store.record_image(id, &image).unwrap();
        let key = ImageKey {
            path: recorded.clone(),
            width: 8,
            height: 3,
        };

        let cache = dir.path().join("this-host/cache");
        let files =
            ImageFiles::for_store(&url, crate::store::ImageCache::at(cache.clone(), u64::MAX))
                .unwrap();
        assert!(encode(&Picker::halfblocks(), &files, &key).is_ok());
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
        // Without the store, the file that is not here is named.
        let Err(missing) = encode(&Picker::halfblocks(), &ImageFiles::default(), &key) else {
            panic!("a file not on this disk decoded");
        };
        assert!(missing.contains(recorded.to_str().unwrap()), "{missing}");
    }
}
