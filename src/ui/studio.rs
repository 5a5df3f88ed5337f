//! The studio's shared parts: the state the painter, compare and variations keep beside
//! the dashboard's, the commands and events they add, and a worker that decodes pictures
//! and writes masks off the UI task.
//!
//! Pictures for the painter and compare are small RGB copies of the images, drawn as
//! halfblocks by a pure function (`draw_picture`): the painter tints the painted dots,
//! and compare shows several at once, which the one-image preview worker does not.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;

use image::imageops::FilterType;
use image::{ImageReader, Limits, RgbImage};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use tokio::sync::mpsc::UnboundedSender;

use crate::dashscope::JobSpec;
use crate::files::{create_private_dir, create_private_file};
use crate::store::{ImageFiles, JobId};

use super::compare::CompareView;
use super::event::AppEvent;
use super::mask::{CellFit, Mask};
use super::painter::Painter;
use super::state::JobDetailView;

/// The longer side of a picture's small copy: enough for a full-screen halfblock view
/// (a 250-column terminal shows at most 250 dots across).
pub const PICTURE_SIDE: u32 = 256;
/// Decoding limit, as the preview's.
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;
/// Pictures kept: four compared jobs of four images each, and the painter's.
const PICTURES_KEPT: usize = 20;

/// An image as the studio draws it: its true size and a small copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub small: RgbImage,
}

/// A picture asked for, decoded, or refused.
#[derive(Debug, Clone, PartialEq)]
pub enum PictureSlot {
    Loading,
    Ready(Arc<Picture>),
    Failed(String),
}

/// A seed sweep being asked for: the job and the number typed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepAsk {
    pub job: JobId,
    pub count: String,
}

/// What the studio keeps beside the dashboard's state.
#[derive(Debug, Default)]
pub struct StudioState {
    /// Jobs marked for compare, in the order they were marked (at most four).
    pub marks: Vec<JobId>,
    pub painter: Option<Painter>,
    pub compare: Option<CompareView>,
    pub sweep: Option<SweepAsk>,
    /// Small copies of images, by path.
    pub pictures: HashMap<PathBuf, PictureSlot>,
}

impl StudioState {
    /// The picture of `path`, and whether it must be asked for (first time wanted).
    pub fn want_picture(&mut self, path: &Path) -> bool {
        if self.pictures.contains_key(path) {
            return false;
        }
        if self.pictures.len() >= PICTURES_KEPT {
            // Ready ones go first; one still loading will be answered.
            let spare = self
                .pictures
                .iter()
                .find(|(_, slot)| !matches!(slot, PictureSlot::Loading))
                .map(|(p, _)| p.clone());
            if let Some(spare) = spare {
                self.pictures.remove(&spare);
            }
        }
        self.pictures
            .insert(path.to_path_buf(), PictureSlot::Loading);
        true
    }

    pub fn picture(&self, path: &Path) -> Option<&PictureSlot> {
        self.pictures.get(path)
    }
}

/// Studio work the app hands to a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum StudioCommand {
    /// Decode an image into a `Picture`.
    LoadPicture(PathBuf),
    /// Encode the mask as a PNG and write it under the masks directory.
    SaveMask {
        job: JobId,
        base: PathBuf,
        mask: Box<Mask>,
    },
    /// Load these jobs' details for compare (the data worker).
    LoadCompare(Vec<JobId>),
    /// Star the winner's images and note the compare on it (the data worker).
    RecordWinner { winner: JobId, others: Vec<JobId> },
    /// Queue these jobs through intake, each made from `parent` (the data worker).
    Sweep { parent: JobId, specs: Vec<JobSpec> },
}

/// A mask written to disk, for the inpainting job.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedMask {
    pub job: JobId,
    pub base: PathBuf,
    pub path: PathBuf,
}

/// What the studio's workers answer.
#[derive(Debug, Clone)]
pub enum StudioEvent {
    Picture(PathBuf, Result<Arc<Picture>, String>),
    MaskSaved(Result<SavedMask, String>),
    CompareLoaded(Result<Vec<JobDetailView>, String>),
}

/// Work for the picture thread.
enum PictureJob {
    Decode(PathBuf),
    SaveMask {
        job: JobId,
        base: PathBuf,
        mask: Box<Mask>,
    },
}

/// The app's handle on the studio's picture thread.
pub struct StudioWorker {
    jobs: Sender<PictureJob>,
}

impl StudioWorker {
    /// Starts the thread; masks go under `masks_dir` (made 0700 when the first is saved);
    /// `files` finds each picture on this host (another host's from the store).
    pub fn start(
        masks_dir: PathBuf,
        files: ImageFiles,
        events: UnboundedSender<AppEvent>,
    ) -> StudioWorker {
        let (jobs, inbox) = channel();
        thread::Builder::new()
            .name("wandash-ui-studio".into())
            .spawn(move || serve(&masks_dir, &files, inbox, events))
            .expect("spawning a thread only fails when the process is out of resources");
        StudioWorker { jobs }
    }

    pub fn decode(&self, path: PathBuf) {
        let _ = self.jobs.send(PictureJob::Decode(path));
    }

    pub fn save_mask(&self, job: JobId, base: PathBuf, mask: Box<Mask>) {
        let _ = self.jobs.send(PictureJob::SaveMask { job, base, mask });
    }
}

fn serve(
    masks_dir: &Path,
    files: &ImageFiles,
    inbox: Receiver<PictureJob>,
    events: UnboundedSender<AppEvent>,
) {
    while let Ok(job) = inbox.recv() {
        let event = match job {
            PictureJob::Decode(path) => {
                let result = files
                    .local(&path)
                    .and_then(|here| load_picture(&here))
                    .map(Arc::new);
                StudioEvent::Picture(path, result)
            }
            PictureJob::SaveMask { job, base, mask } => {
                StudioEvent::MaskSaved(save_mask(masks_dir, job, &mask).map(|path| SavedMask {
                    job,
                    base,
                    path,
                }))
            }
        };
        if events.send(AppEvent::Studio(event)).is_err() {
            return;
        }
    }
}

/// Decodes an image file and keeps a small copy of it.
pub fn load_picture(path: &Path) -> Result<Picture, String> {
    let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut reader = ImageReader::open(path)
        .map_err(|e| named(&e))?
        .with_guessed_format()
        .map_err(|e| named(&e))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| named(&e))?;
    let (width, height) = (decoded.width(), decoded.height());
    let small = decoded
        .resize(PICTURE_SIDE, PICTURE_SIDE, FilterType::Triangle)
        .to_rgb8();
    Ok(Picture {
        width,
        height,
        small,
    })
}

/// Writes the mask as `masks/job-<id>-<time>.png`, a new private file; returns its path.
fn save_mask(masks_dir: &Path, job: JobId, mask: &Mask) -> Result<PathBuf, String> {
    let png = mask.to_png()?;
    create_private_dir(masks_dir).map_err(|e| format!("{}: {e}", masks_dir.display()))?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let path = masks_dir.join(format!("job-{job}-{stamp}.png"));
    let mut file = create_private_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(&png)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The tint painted dots get, half over the picture's own colour.
const TINT: (u8, u8, u8) = (255, 0, 160);

/// Draws a picture as halfblocks at the top-left of `area`, fitted keeping its aspect
/// ratio; dots whose pixel the mask marks for editing are tinted. Pure: the same picture
/// and mask always give the same cells.
pub fn draw_picture(picture: &Picture, mask: Option<&Mask>, area: Rect, buffer: &mut Buffer) {
    let fit = CellFit::new(picture.width, picture.height, area.width, area.height);
    let (cols, rows) = fit.cells();
    let colour = |dot_x: u32, dot_y: u32| -> Option<Color> {
        if dot_y >= fit.dots_high {
            return None;
        }
        let (x, y) = fit.dot_pixel(dot_x, dot_y);
        let small_x =
            (u64::from(x) * u64::from(picture.small.width()) / u64::from(picture.width)) as u32;
        let small_y =
            (u64::from(y) * u64::from(picture.small.height()) / u64::from(picture.height)) as u32;
        let [r, g, b] = picture
            .small
            .get_pixel(
                small_x.min(picture.small.width() - 1),
                small_y.min(picture.small.height() - 1),
            )
            .0;
        let tinted = mask.is_some_and(|m| m.is_edit(x, y));
        let mix = |own: u8, tint: u8| {
            if tinted {
                ((u16::from(own) + u16::from(tint)) / 2) as u8
            } else {
                own
            }
        };
        Some(Color::Rgb(mix(r, TINT.0), mix(g, TINT.1), mix(b, TINT.2)))
    };
    for row in 0..rows.min(area.height) {
        for col in 0..cols.min(area.width) {
            let (top, bottom) = (
                colour(u32::from(col), 2 * u32::from(row)),
                colour(u32::from(col), 2 * u32::from(row) + 1),
            );
            let cell = &mut buffer[(area.x + col, area.y + row)];
            cell.set_symbol("▀");
            if let Some(top) = top {
                cell.set_fg(top);
            }
            cell.set_bg(bottom.unwrap_or(Color::Reset));
        }
    }
}

/// Seeds for a sweep: `count` different ones, none the job's own, each within the
/// service's range (0 to 2147483647).
pub fn sweep_seeds(rng: &mut fastrand::Rng, count: usize, own: Option<u64>) -> Vec<u64> {
    let mut seeds: Vec<u64> = Vec::with_capacity(count);
    while seeds.len() < count {
        let seed = rng.u64(0..=2_147_483_647);
        if Some(seed) != own && !seeds.contains(&seed) {
            seeds.push(seed);
        }
    }
    seeds
}

/// The most jobs one sweep queues.
pub const SWEEP_MAX: usize = 16;

/// The number typed for a sweep, or why it is not one.
pub fn sweep_count(text: &str) -> Result<usize, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(4);
    }
    match text.parse::<usize>() {
        Ok(n) if (1..=SWEEP_MAX).contains(&n) => Ok(n),
        _ => Err(format!(
            "seeds: `{text}` is not a number from 1 to {SWEEP_MAX}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_seeds_are_new_distinct_and_in_range() {
        let mut rng = fastrand::Rng::with_seed(7);
        let seeds = sweep_seeds(&mut rng, 6, Some(42));
        assert_eq!(seeds.len(), 6);
        for (i, seed) in seeds.iter().enumerate() {
            assert!(*seed <= 2_147_483_647 && *seed != 42);
            assert!(!seeds[..i].contains(seed));
        }
    }

    #[test]
    fn a_sweep_count_defaults_to_four_and_names_its_limit() {
        assert_eq!(sweep_count(""), Ok(4));
        assert_eq!(sweep_count("8"), Ok(8));
        assert_eq!(
            sweep_count("99"),
            Err("seeds: `99` is not a number from 1 to 16".into())
        );
        assert!(sweep_count("0").is_err() && sweep_count("x").is_err());
    }

    #[test]
    fn a_saved_mask_is_a_private_png_of_the_base_size() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let masks = dir.path().join("masks");
        let fit = CellFit::new(120, 80, 12, 4);
        let mut mask = Mask::new(120, 80);
        mask.brush(&fit, super::super::mask::Cell { col: 3, row: 1 }, 2, true);
        let path = save_mask(&masks, JobId(5), &mask).unwrap();
        assert!(path.starts_with(&masks));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&masks), mode(&path)), (0o700, 0o600));
        let saved = image::open(&path).unwrap().to_luma8();
        assert_eq!(saved.dimensions(), (120, 80));
        assert!(saved.pixels().any(|p| p.0[0] == 255) && saved.pixels().any(|p| p.0[0] == 0));
    }

    #[test]
    fn painted_dots_are_tinted_and_the_others_keep_their_colour() {
        let picture = Picture {
            width: 40,
            height: 40,
            small: RgbImage::from_pixel(20, 20, image::Rgb([0, 100, 0])),
        };
        let area = Rect::new(0, 0, 20, 10);
        let fit = CellFit::new(40, 40, 20, 10);
        let mut mask = Mask::new(40, 40);
        mask.brush(&fit, super::super::mask::Cell { col: 5, row: 5 }, 1, true);
        let mut buffer = Buffer::empty(area);
        draw_picture(&picture, Some(&mask), area, &mut buffer);
        let painted = &buffer[(5, 5)];
        assert_eq!(painted.symbol(), "▀");
        assert_eq!(painted.fg, Color::Rgb(127, 50, 80));
        assert_eq!(painted.bg, Color::Rgb(127, 50, 80));
        assert_eq!(buffer[(0, 0)].fg, Color::Rgb(0, 100, 0));
    }
}
