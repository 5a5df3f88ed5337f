//! The dashboard's view-model: everything on screen is drawn from an `AppState`.
//!
//! These types are the UI's own, not the store's: the data adapter (`data.rs`) fills them
//! on a worker, so drawing and key handling can be tested with no store at all.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ratatui::layout::Rect;
use ratatui_image::protocol::Protocol;
use time::OffsetDateTime;

use crate::dashscope::{JobSpec, Model, Region};

use super::editor::Editor;
use super::gallery::Gallery;
use super::studio::StudioState;

pub use crate::store::JobId;

pub use crate::store::JobState;

pub use crate::store::Pauses;

/// What one image of each model costs, as the config says (prices it does not name fall
/// back to the published ones, as the engine's do). Handed in at start, so the editor
/// shows the price of the job being written without asking the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices(pub BTreeMap<Model, f64>);

impl Prices {
    pub fn per_image(&self, model: Model) -> Option<f64> {
        self.0
            .get(&model)
            .copied()
            .or_else(|| model.default_price_cny())
    }

    /// The price per image in `region`: the config's, else the catalogue's there.
    pub fn per_image_in(&self, model: Model, region: Region) -> Option<f64> {
        self.0
            .get(&model)
            .copied()
            .or_else(|| model.price_in(region))
    }
}

/// A state as the list and the detail show it: short enough for the state column.
pub fn state_label(state: JobState) -> &'static str {
    match state {
        JobState::NeedsAttention => "attention",
        other => other.as_str(),
    }
}

/// The state filter tabs, in the order keys 1-6 select them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    All,
    Queued,
    /// Not finished: queued or in flight at the service.
    Active,
    Succeeded,
    /// Failed, expired or needing attention: what a person should look at.
    Failed,
    Cancelled,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::All,
        Tab::Queued,
        Tab::Active,
        Tab::Succeeded,
        Tab::Failed,
        Tab::Cancelled,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tab::All => "all",
            Tab::Queued => "queued",
            Tab::Active => "active",
            Tab::Succeeded => "succeeded",
            Tab::Failed => "failed",
            Tab::Cancelled => "cancelled",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// Where the engine sends its requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendLabel {
    Live {
        region: String,
    },
    #[default]
    Simulator,
}

/// Jobs per tab, in `Tab::ALL` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TabCounts(pub [u64; 6]);

impl TabCounts {
    pub fn get(&self, tab: Tab) -> u64 {
        self.0[tab.index()]
    }
}

/// Progress of the work still queued or in flight.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchProgress {
    /// Jobs queued, submitting, submitted or running.
    pub remaining: u64,
    /// Jobs finished per minute lately; `None` until there is a measurement.
    pub per_minute: Option<f64>,
}

impl BatchProgress {
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.per_minute.filter(|r| *r > 0.0)?;
        Some(Duration::from_secs_f64(self.remaining as f64 / rate * 60.0))
    }
}

/// The header line's facts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Header {
    pub backend: BackendLabel,
    /// The image protocol in use (halfblocks, sixel, kitty, iterm2).
    pub protocol: String,
    pub counts: TabCounts,
    pub images_today: u64,
    pub spend_today_cny: f64,
    pub batch: BatchProgress,
    /// Set when the engine stopped (e.g. a bad key); queued jobs wait for a restart.
    pub engine_stopped: Option<String>,
    /// What is paused in the store (by `p`, or `wandash pause` from anywhere).
    pub pauses: Pauses,
}

/// One row of the job list. `prompt` is already sanitised and on one line.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    pub state: JobState,
    pub model: Model,
    pub prompt: String,
    pub created_at: OffsetDateTime,
    pub images_ok: u32,
    pub images_expected: u32,
}

/// One output image of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageView {
    pub index: u32,
    pub path: Option<PathBuf>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub error: Option<String>,
    /// A favourite (`*`); the gallery can show only these.
    pub starred: bool,
}

/// Everything the detail pane shows about the selected job. Text here is raw: the
/// draw code sanitises it (the spec is also what `e` forks into the editor).
#[derive(Debug, Clone, PartialEq)]
pub struct JobDetailView {
    pub id: JobId,
    pub state: JobState,
    pub spec: JobSpec,
    pub task_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub submitted_at: Option<OffsetDateTime>,
    pub scheduled_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
    pub attempts: u32,
    pub error: Option<String>,
    pub actual_prompt: Option<String>,
    pub cost_cny: Option<f64>,
    /// The job this one was made from (fork, sweep, edit, inpainting).
    pub parent: Option<JobId>,
    /// `user@host` that queued it (made safe to draw); `None` for older jobs.
    pub submitted_by: Option<String>,
    pub images: Vec<ImageView>,
}

impl JobDetailView {
    /// The images that reached the disk, in order: what the preview cycles through.
    pub fn saved_images(&self) -> Vec<&ImageView> {
        self.images.iter().filter(|i| i.path.is_some()).collect()
    }
}

/// The list's window onto the filtered jobs. Only `rows` (the visible window) is held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListView {
    /// Jobs matching the tab and search.
    pub total: u64,
    /// Position of `rows[0]` in the filtered list.
    pub offset: u64,
    pub rows: Vec<JobRow>,
    /// First row on screen.
    pub top: u64,
    /// Position of the selected row in the filtered list.
    pub selected: u64,
    /// The job the selection is on, once its row has been loaded. New jobs arrive at the
    /// top and push the rows down; the selection follows this id, not the position.
    pub selected_id: Option<JobId>,
}

impl ListView {
    pub fn row(&self, position: u64) -> Option<&JobRow> {
        position
            .checked_sub(self.offset)
            .and_then(|i| self.rows.get(i as usize))
    }

    pub fn selected_row(&self) -> Option<&JobRow> {
        self.row(self.selected)
    }
}

/// A decoded, encoded image ready to draw; which picture and for what cell size.
#[derive(Clone)]
pub struct ReadyImage {
    pub key: ImageKey,
    pub protocol: Arc<Protocol>,
}

/// Identifies an encoding: the file and the cell area it was fitted into.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageKey {
    pub path: PathBuf,
    pub width: u16,
    pub height: u16,
}

/// What the preview pane shows.
#[derive(Clone, Default)]
pub enum PreviewImage {
    #[default]
    Nothing,
    Loading(ImageKey),
    Ready(ReadyImage),
    Failed(ImageKey, String),
}

impl PreviewImage {
    pub fn key(&self) -> Option<&ImageKey> {
        match self {
            PreviewImage::Nothing => None,
            PreviewImage::Loading(key) | PreviewImage::Failed(key, _) => Some(key),
            PreviewImage::Ready(ready) => Some(&ready.key),
        }
    }
}

/// Which pane `Tab` has focused outside the editor (decides what `y` copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    List,
    Detail,
    Preview,
}

impl Pane {
    pub fn next(self) -> Pane {
        match self {
            Pane::List => Pane::Detail,
            Pane::Detail => Pane::Preview,
            Pane::Preview => Pane::List,
        }
    }
}

/// A question waiting for y/n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    Delete(JobId),
    /// Cancel a job already at the service: it may be billed.
    CancelBilled(JobId),
    /// Quit although the editor holds unsaved text.
    Quit,
}

/// What the keyboard is talking to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Browse,
    Search,
    Editor,
    Help,
    FullPreview,
    Confirm(Confirm),
    /// The spend and free images view (`$`).
    Stats,
    /// The mask painter (`studio.painter`).
    Painter,
    /// Marked jobs side by side (`studio.compare`).
    Compare,
    /// Asking how many seeds a sweep takes (`studio.sweep`).
    Sweep,
    /// The gallery (`AppState::gallery`): a grid of images, or one of them full screen.
    Gallery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToastLevel {
    Info,
    Error,
}

/// A short message in the corner; `until` is compared with `AppState::now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    pub text: String,
    pub level: ToastLevel,
    pub until: OffsetDateTime,
}

/// How long a toast stays.
pub const TOAST_TIME: Duration = Duration::from_secs(5);

/// What logic needs to know about the screen's layout. Drawing works it out and returns it
/// with every frame (`draw::draw`); the app keeps the last one here, so key handling and
/// the image worker read it instead of calling into drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameLayout {
    /// The whole terminal.
    pub area: Rect,
    /// Job rows the list has room for on the main screen. Counted also while something
    /// covers the list, so leaving an overlay finds the window where it was.
    pub list_rows: u16,
    /// Where the preview pane fits an image.
    pub preview_image: Rect,
    /// Where the full-screen preview fits an image.
    pub full_image: Rect,
    /// Where the gallery lays out its grid of tiles.
    pub gallery: Rect,
}

/// The whole view-model.
pub struct AppState {
    /// The layout of the last frame; handlers use it to know how many rows the list shows.
    pub layout: FrameLayout,
    /// "Now" for ages and toasts; set by the app, fixed in tests.
    pub now: OffsetDateTime,
    pub header: Header,
    pub tab: Tab,
    pub search: String,
    /// Only the jobs this user queued from this host (`Store::submitter`), else everyone's.
    pub mine: bool,
    pub list: ListView,
    pub detail: Option<JobDetailView>,
    /// Which of the selected job's saved images the preview shows.
    pub image_index: usize,
    pub preview: PreviewImage,
    pub pane: Pane,
    pub mode: Mode,
    /// The draft; kept when the editor is left with Esc.
    pub editor: Option<Editor>,
    /// The gallery while it is open (`Mode::Gallery`, and the help over it).
    pub gallery: Option<Gallery>,
    /// For the editor's cost line.
    pub prices: Prices,
    /// The configured region: the editor's model list and prices are this region's.
    pub region: Region,
    /// First line of the help shown, when the help does not fit the screen.
    pub help_scroll: usize,
    /// The `$` view's figures.
    pub stats: super::stats::StatsState,
    pub toasts: VecDeque<Toast>,
    pub quit: bool,
    /// Compare marks, the painter, compare and the sweep question.
    pub studio: StudioState,
}

impl AppState {
    /// A state for a screen laid out as `layout` (`draw::frame_layout` of the terminal's
    /// size, until the first frame reports its own).
    pub fn new(layout: FrameLayout, now: OffsetDateTime, header: Header) -> Self {
        AppState {
            layout,
            now,
            header,
            tab: Tab::All,
            search: String::new(),
            mine: false,
            list: ListView::default(),
            detail: None,
            image_index: 0,
            preview: PreviewImage::Nothing,
            pane: Pane::List,
            mode: Mode::Browse,
            editor: None,
            gallery: None,
            prices: Prices::default(),
            region: Region::Beijing,
            help_scroll: 0,
            stats: super::stats::StatsState::default(),
            toasts: VecDeque::new(),
            quit: false,
            studio: StudioState::default(),
        }
    }

    pub fn toast(&mut self, level: ToastLevel, text: impl Into<String>) {
        // A handful is enough on screen; the oldest goes first.
        if self.toasts.len() >= 4 {
            self.toasts.pop_front();
        }
        self.toasts.push_back(Toast {
            text: text.into(),
            level,
            until: self.now + TOAST_TIME,
        });
    }

    /// Drops toasts whose time is up; true if any went.
    pub fn expire_toasts(&mut self) -> bool {
        let before = self.toasts.len();
        let now = self.now;
        self.toasts.retain(|t| t.until > now);
        before != self.toasts.len()
    }

    /// The selected job's image the preview should show, if it has any saved.
    pub fn selected_image(&self) -> Option<&ImageView> {
        let detail = self.detail.as_ref()?;
        if Some(detail.id) != self.list.selected_row().map(|r| r.id) {
            return None;
        }
        let saved = detail.saved_images();
        saved
            .get(self.image_index.min(saved.len().saturating_sub(1)))
            .copied()
    }

    /// The selected job's current image fitted into `area`, if the screen shows an image
    /// now. Overlays and the editor cover the preview, and a graphics image would show
    /// through them, so they want none.
    pub fn image_in(&self, area: Rect) -> Option<ImageKey> {
        if !matches!(self.mode, Mode::Browse | Mode::Search | Mode::FullPreview) {
            return None;
        }
        let path = self.selected_image()?.path.clone()?;
        (area.width > 0 && area.height > 0).then_some(ImageKey {
            path,
            width: area.width,
            height: area.height,
        })
    }

    /// The image the screen wants now, at the size of its area in the last layout. The app
    /// has it encoded on a worker when it is not what `preview` holds.
    pub fn wanted_image(&self) -> Option<ImageKey> {
        if self.mode == Mode::Gallery {
            return self.gallery.as_ref()?.opened_image(self.layout.full_image);
        }
        let area = if self.mode == Mode::FullPreview {
            self.layout.full_image
        } else {
            self.layout.preview_image
        };
        self.image_in(area)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-20 12:00 UTC);

    /// A screen whose selected job has one saved image.
    fn with_an_image() -> AppState {
        let layout = FrameLayout {
            area: Rect::new(0, 0, 120, 40),
            list_rows: 20,
            preview_image: Rect::new(67, 20, 51, 17),
            full_image: Rect::new(0, 1, 120, 38),
            gallery: Rect::new(1, 3, 118, 35),
        };
        let mut state = AppState::new(layout, NOW, Header::default());
        let spec = JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse");
        state.list = ListView {
            total: 1,
            rows: vec![JobRow {
                id: JobId(7),
                state: JobState::Succeeded,
                model: spec.model,
                prompt: spec.prompt.clone(),
                created_at: NOW,
                images_ok: 1,
                images_expected: 1,
            }],
            ..ListView::default()
        };
        state.detail = Some(JobDetailView {
            id: JobId(7),
            state: JobState::Succeeded,
            spec,
            task_id: None,
            created_at: NOW,
            submitted_at: None,
            scheduled_at: None,
            ended_at: None,
            attempts: 1,
            error: None,
            actual_prompt: None,
            cost_cny: None,
            submitted_by: None,
            parent: None,
            images: vec![ImageView {
                index: 0,
                path: Some(PathBuf::from("/data/7-0.png")),
                width: Some(1024),
                height: Some(1024),
                error: None,
                starred: false,
            }],
        });
        state
    }

    fn key(width: u16, height: u16) -> ImageKey {
        ImageKey {
            path: PathBuf::from("/data/7-0.png"),
            width,
            height,
        }
    }

    #[test]
    fn the_wanted_image_fits_the_area_of_the_mode_in_the_last_layout() {
        let mut state = with_an_image();
        assert_eq!(state.wanted_image(), Some(key(51, 17)), "the preview pane");
        state.mode = Mode::Search;
        assert_eq!(state.wanted_image(), Some(key(51, 17)));
        state.mode = Mode::FullPreview;
        assert_eq!(state.wanted_image(), Some(key(120, 38)), "full screen");
        // What covers the preview wants no image: a graphics image would show through.
        for covered in [Mode::Editor, Mode::Help, Mode::Confirm(Confirm::Quit)] {
            state.mode = covered;
            assert_eq!(state.wanted_image(), None);
        }
    }

    #[test]
    fn no_image_is_wanted_for_an_empty_area_or_a_job_without_images() {
        let mut state = with_an_image();
        assert_eq!(state.image_in(Rect::new(0, 0, 0, 10)), None);
        state.detail.as_mut().expect("the job's detail").images[0].path = None;
        assert_eq!(state.wanted_image(), None);
    }
}
