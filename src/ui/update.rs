//! How events change the state. Handlers are synchronous and do no I/O: what needs the
//! store or the terminal comes back as a `Command` for the app loop to hand to a worker.

use ratatui::crossterm::event::{Event, KeyEvent, KeyEventKind, MouseEventKind};

use crate::dashscope::{JobSpec, Model, ValidationError};
use crate::engine::EngineEvent;
use crate::store::{Pauses, QueueStep};
use crate::text::sanitize;

use super::editor::{Editor, EditorFocus};
use super::gallery::GalleryRequest;
use super::keys::{Action, Context, KeyMap};
use super::state::{
    AppState, Confirm, FrameLayout, JobDetailView, JobId, JobRow, Mode, Pane, Tab, TabCounts,
    ToastLevel, state_label,
};
use super::studio::{StudioCommand, StudioEvent};

/// Work the app loop does on the state's behalf.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// The list window, the counts or the selected job's detail need loading.
    Refresh,
    Cancel(JobId),
    Retry(JobId),
    Delete(JobId),
    /// Pause the whole queue; `Resume` lifts every pause.
    Pause,
    Resume,
    MoveInQueue(JobId, QueueStep),
    MoveToTop(JobId),
    /// Start (true) or stop reading the `$` view's figures, now and on every change.
    WatchStats(bool),
    /// Check local files, then enqueue (the editor has already validated it), naming the
    /// job it was made from, if any.
    Submit(Box<JobSpec>, Option<JobId>),
    /// Put text on the clipboard with OSC 52.
    Copy(String),
    /// Compare, variations and the mask painter.
    Studio(StudioCommand),
    /// Star or unstar one saved image.
    Star {
        job: JobId,
        index: u32,
        starred: bool,
    },
    /// Load (and keep loading after changes) this window of the gallery.
    LoadGallery(GalleryRequest),
    /// The gallery closed: its window needs no more loading.
    CloseGallery,
}

/// What the data worker is asked for: the visible window of a filtered list, and the
/// detail of the job at `selected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    pub tab: Tab,
    pub search: String,
    /// Only this process's submitter's jobs.
    pub mine: bool,
    pub offset: u64,
    pub limit: u64,
    pub selected: u64,
}

/// What the data worker answers.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSnapshot {
    pub request: ListRequest,
    /// Per tab, the jobs its list holds: one's own only under "mine".
    pub counts: TabCounts,
    pub images_today: u64,
    pub spend_today_cny: f64,
    pub pauses: Pauses,
    /// Per tab, every job of the store whatever the filter: the batch progress (jobs
    /// left, rate, ETA, the end) is the whole queue's, which one's own jobs wait behind.
    pub queue: TabCounts,
    pub total: u64,
    pub rows: Vec<JobRow>,
    pub detail: Option<JobDetailView>,
}

impl DataSnapshot {
    /// Jobs of the store not finished yet (queued or in flight).
    pub fn remaining(&self) -> u64 {
        self.queue.get(Tab::Active)
    }
}

/// Why a submit did not enqueue.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitError {
    /// Rules broken (e.g. a local file that is too big): shown beside their fields.
    Invalid(Vec<ValidationError>),
    /// Anything else (the store refused): shown as a toast.
    Failed(String),
}

impl AppState {
    /// Rows the list shows in the last layout.
    pub fn visible_rows(&self) -> u64 {
        u64::from(self.layout.list_rows)
    }

    /// The request that fills the current list window.
    pub fn list_request(&self) -> ListRequest {
        ListRequest {
            tab: self.tab,
            search: self.search.clone(),
            mine: self.mine,
            offset: self.list.top,
            limit: self.visible_rows().max(1),
            selected: self.list.selected,
        }
    }

    /// Takes one event; returns what the app must do for it.
    pub fn handle(&mut self, keys: &KeyMap, event: &Event) -> Vec<Command> {
        match event {
            // The frame drawn at the new size reports its layout (`laid_out`).
            Event::Resize(..) => Vec::new(),
            Event::Paste(text) => {
                match self.mode {
                    Mode::Editor => {
                        if let Some(editor) = self.editor.as_mut() {
                            editor.paste(text);
                        }
                    }
                    Mode::Search => return self.edit_search(|s| s.push_str(&sanitize(text))),
                    _ => {}
                }
                Vec::new()
            }
            Event::Key(key) if key.kind != KeyEventKind::Release => self.key(keys, key),
            Event::Mouse(mouse) if self.mode == Mode::Painter => self.painter_mouse(mouse),
            Event::Mouse(mouse) if self.mode == Mode::Browse => match mouse.kind {
                MouseEventKind::ScrollDown => self.move_to(self.list.selected.saturating_add(1)),
                MouseEventKind::ScrollUp => self.move_to(self.list.selected.saturating_sub(1)),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn key(&mut self, keys: &KeyMap, key: &KeyEvent) -> Vec<Command> {
        match self.mode.clone() {
            Mode::Browse => match keys.action(Context::Browse, key) {
                Some(action) => self.browse(action),
                None => Vec::new(),
            },
            Mode::Search => match keys.action(Context::Search, key) {
                Some(Action::AcceptSearch) => {
                    self.mode = Mode::Browse;
                    Vec::new()
                }
                Some(Action::Leave) => {
                    self.mode = Mode::Browse;
                    self.edit_search(String::clear)
                }
                _ => match key.code {
                    ratatui::crossterm::event::KeyCode::Backspace => self.edit_search(|s| {
                        s.pop();
                    }),
                    ratatui::crossterm::event::KeyCode::Char(c) => {
                        self.edit_search(|s| s.push_str(&sanitize(&c.to_string())))
                    }
                    _ => Vec::new(),
                },
            },
            Mode::Editor => self.editor_key(keys, key),
            Mode::Help => {
                match keys.action(Context::Help, key) {
                    Some(Action::Leave) => {
                        // Back to what the help was opened over.
                        self.mode = if self.gallery.is_some() {
                            Mode::Gallery
                        } else {
                            Mode::Browse
                        }
                    }
                    // Down to the last screenful, as the help is laid out on this screen.
                    Some(Action::Down) => {
                        self.help_scroll =
                            (self.help_scroll + 1).min(keys.help_layout(self.layout.area).overflow)
                    }
                    Some(Action::Up) => self.help_scroll = self.help_scroll.saturating_sub(1),
                    _ => {}
                }
                Vec::new()
            }
            Mode::Painter => self.painter_key(keys, key),
            Mode::Compare => self.compare_key(keys, key),
            Mode::Sweep => self.sweep_key(keys, key),
            Mode::FullPreview => {
                match keys.action(Context::FullPreview, key) {
                    Some(Action::Leave) => self.mode = Mode::Browse,
                    Some(Action::PaintMask) => return self.open_painter(),
                    Some(Action::EditImage) => self.open_image_edit(),
                    Some(action @ (Action::PrevImage | Action::NextImage)) => {
                        self.cycle_image(action == Action::NextImage)
                    }
                    Some(Action::Star) => return self.star_shown_image(),
                    _ => {}
                }
                Vec::new()
            }
            Mode::Stats => match keys.action(Context::Stats, key) {
                Some(Action::Leave) => {
                    self.mode = Mode::Browse;
                    vec![Command::WatchStats(false)]
                }
                _ => Vec::new(),
            },
            Mode::Gallery => self.gallery_key(keys, key),
            Mode::Confirm(question) => match keys.action(Context::Confirm, key) {
                Some(Action::Yes) => {
                    self.mode = Mode::Browse;
                    match question {
                        Confirm::Delete(id) => vec![Command::Delete(id)],
                        Confirm::CancelBilled(id) => vec![Command::Cancel(id)],
                        Confirm::Quit => {
                            self.quit = true;
                            Vec::new()
                        }
                    }
                }
                Some(Action::No) => {
                    self.mode = if question == Confirm::Quit && self.editor.is_some() {
                        Mode::Editor
                    } else {
                        Mode::Browse
                    };
                    Vec::new()
                }
                _ => Vec::new(),
            },
        }
    }

    fn browse(&mut self, action: Action) -> Vec<Command> {
        let page = self.visible_rows().max(1);
        match action {
            Action::Down => return self.move_to(self.list.selected.saturating_add(1)),
            Action::Up => return self.move_to(self.list.selected.saturating_sub(1)),
            Action::PageDown => return self.move_to(self.list.selected.saturating_add(page)),
            Action::PageUp => return self.move_to(self.list.selected.saturating_sub(page)),
            Action::First => return self.move_to(0),
            Action::Last => return self.move_to(u64::MAX),
            Action::NextPane => self.pane = self.pane.next(),
            Action::ShowTab(i) => {
                let tab = Tab::ALL[i.min(Tab::ALL.len() - 1)];
                if tab != self.tab {
                    self.tab = tab;
                    self.reset_list();
                    return vec![Command::Refresh];
                }
            }
            Action::MineOnly => {
                self.mine = !self.mine;
                self.reset_list();
                return vec![Command::Refresh];
            }
            Action::StartSearch => self.mode = Mode::Search,
            Action::NewJob => {
                let reuse = self.editor.as_ref().is_some_and(|e| e.modified);
                if reuse {
                    // A kept draft opens where typing goes: the prompt.
                    if let Some(editor) = self.editor.as_mut() {
                        editor.focus = EditorFocus::Prompt;
                    }
                } else {
                    let model = self
                        .editor
                        .as_ref()
                        .map_or(Model::Wanx21T2iTurbo, |e| e.model);
                    // A model the region does not offer gives way to its first.
                    let model = if model.id_in(self.region).is_some() {
                        model
                    } else {
                        super::editor::model_choices(self.region)
                            .first()
                            .copied()
                            .unwrap_or(model)
                    };
                    self.editor = Some(Editor::new(model).in_region(self.region));
                }
                self.mode = Mode::Editor;
            }
            Action::Fork => match self.selected_detail() {
                Some(detail) => {
                    let mut editor = Editor::from_spec(&detail.spec).in_region(self.region);
                    editor.parent = Some(detail.id);
                    self.editor = Some(editor);
                    self.mode = Mode::Editor;
                }
                None => self.toast(ToastLevel::Info, "no job selected to fork"),
            },
            Action::FullScreen => {
                // The row's count is enough: the detail (with the paths) may still be on
                // its way, and full screen shows "loading…" until it lands.
                let has_images = self.list.selected_row().is_some_and(|r| r.images_ok > 0);
                if has_images || self.selected_image().is_some() {
                    self.mode = Mode::FullPreview;
                }
            }
            Action::PrevImage | Action::NextImage => self.cycle_image(action == Action::NextImage),
            Action::Cancel => match self.selected_detail().map(|d| (d.id, d.state)) {
                Some((_, state)) if state.is_final() => self.toast(
                    ToastLevel::Info,
                    format!("the job is {}; nothing to cancel", state_label(state)),
                ),
                // It may be billed already: asked first.
                Some((id, state)) if state.is_remote() => {
                    self.mode = Mode::Confirm(Confirm::CancelBilled(id));
                }
                Some((id, _)) => return vec![Command::Cancel(id)],
                None => {}
            },
            Action::Retry => match self.selected_detail().map(|d| (d.id, d.state)) {
                Some((id, state))
                    if state.is_final() && state != super::state::JobState::Succeeded =>
                {
                    return vec![Command::Retry(id)];
                }
                Some((_, state)) => self.toast(
                    ToastLevel::Info,
                    format!("a {} job cannot be retried", state_label(state)),
                ),
                None => {}
            },
            Action::Delete => {
                if let Some(id) = self.list.selected_row().map(|r| r.id) {
                    self.mode = Mode::Confirm(Confirm::Delete(id));
                }
            }
            Action::TogglePause | Action::QueueSooner | Action::QueueLater | Action::QueueTop => {
                return self.queue_action(action);
            }
            Action::Copy => {
                let text = match self.pane {
                    Pane::Preview => self
                        .selected_image()
                        .and_then(|i| i.path.as_ref())
                        .map(|p| p.display().to_string()),
                    _ => self.selected_detail().map(|d| d.spec.prompt.clone()),
                };
                if let Some(text) = text {
                    return vec![Command::Copy(text)];
                }
            }
            Action::ShowStats => {
                self.mode = Mode::Stats;
                return vec![Command::WatchStats(true)];
            }
            Action::ShowHelp => {
                self.help_scroll = 0;
                self.mode = Mode::Help;
            }
            Action::Mark => self.toggle_mark(),
            Action::CompareMarked => return self.open_compare(),
            Action::SeedSweep => self.open_sweep(),
            Action::EditImage => self.open_image_edit(),
            Action::PaintMask => return self.open_painter(),
            Action::Gallery => return self.open_gallery(),
            Action::Star => return self.star_shown_image(),
            Action::Quit => {
                if self
                    .editor
                    .as_ref()
                    .is_some_and(|e| e.modified && !e.prompt_text().trim().is_empty())
                {
                    self.mode = Mode::Confirm(Confirm::Quit);
                } else {
                    self.quit = true;
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn editor_key(&mut self, keys: &KeyMap, key: &KeyEvent) -> Vec<Command> {
        let Some(editor) = self.editor.as_mut() else {
            self.mode = Mode::Browse;
            return Vec::new();
        };
        // A hint is about the key before; any new key replaces it.
        editor.hint = None;
        let on_choice = editor.on_choice();
        let action = keys.action(Context::Editor, key).or_else(|| {
            on_choice
                .then(|| keys.action(Context::Choice, key))
                .flatten()
        });
        match action {
            Some(Action::Submit) => {
                if editor.submitting {
                    return Vec::new();
                }
                match editor.valid_spec() {
                    Some(spec) => {
                        editor.submitting = true;
                        return vec![Command::Submit(Box::new(spec), editor.parent)];
                    }
                    None => {
                        let n = editor.errors.len();
                        self.toast(
                            ToastLevel::Error,
                            format!("not submitted: {n} field(s) to fix"),
                        );
                    }
                }
            }
            Some(Action::Leave) => self.mode = Mode::Browse,
            Some(Action::NextField) => editor.cycle_focus(true),
            Some(Action::PrevField) => editor.cycle_focus(false),
            Some(Action::ChoicePrev) => {
                editor.cycle_choice(false);
            }
            Some(Action::ChoiceNext) => {
                editor.cycle_choice(true);
            }
            _ => editor.type_key(*key),
        }
        Vec::new()
    }

    /// Takes the layout a frame was drawn with. A new one means a new terminal size: the
    /// list may show another number of rows, so the selection is kept on screen and the
    /// window loaded again.
    pub fn laid_out(&mut self, layout: FrameLayout) -> Vec<Command> {
        if layout == self.layout {
            return Vec::new();
        }
        self.layout = layout;
        self.keep_selection_visible();
        let mut commands = vec![Command::Refresh];
        commands.extend(self.gallery_reframed());
        commands
    }

    /// What the engine (running in this process) reports: progress reloads the list,
    /// trouble becomes a toast (and a stopped engine a mark in the header).
    pub fn engine_event(&mut self, event: EngineEvent) -> Vec<Command> {
        match event {
            // A retry's reason is noted on the job, which the refreshed list shows.
            EngineEvent::JobChanged { .. }
            | EngineEvent::ImageSaved { .. }
            | EngineEvent::Retrying { .. } => {
                vec![Command::Refresh]
            }
            EngineEvent::ModelStopped { model, reason } => {
                self.toast(ToastLevel::Error, format!("{model} stopped: {reason}"));
                Vec::new()
            }
            EngineEvent::Stopped { reason } => {
                self.toast(ToastLevel::Error, format!("engine stopped: {reason}"));
                self.header.engine_stopped = Some(reason);
                Vec::new()
            }
            EngineEvent::DiskRefused { path, reason } => {
                self.toast(
                    ToastLevel::Error,
                    format!(
                        "cannot save images to {}: {reason}; no new jobs are sent until it works",
                        path.display()
                    ),
                );
                vec![Command::Refresh]
            }
            EngineEvent::DiskRecovered => {
                self.toast(ToastLevel::Info, "images save again; sending jobs");
                vec![Command::Refresh]
            }
            EngineEvent::Idle => Vec::new(),
        }
    }

    /// A studio worker's answer.
    pub fn studio_event(&mut self, event: StudioEvent) -> Vec<Command> {
        match event {
            StudioEvent::Picture(path, result) => {
                let slot = match result {
                    Ok(picture) => {
                        self.painter_picture(&picture, &path);
                        super::studio::PictureSlot::Ready(picture)
                    }
                    Err(message) => super::studio::PictureSlot::Failed(message),
                };
                // Only pictures still wanted are kept (leaving a view drops the rest).
                if let Some(wanted) = self.studio.pictures.get_mut(&path) {
                    *wanted = slot;
                }
                Vec::new()
            }
            StudioEvent::MaskSaved(result) => {
                self.mask_saved(result);
                Vec::new()
            }
            StudioEvent::CompareLoaded(result) => self.compare_loaded(result),
        }
    }

    /// The worker's answer to a submit.
    pub fn submitted(&mut self, result: Result<JobId, SubmitError>) -> Vec<Command> {
        match result {
            Ok(id) => {
                self.editor = None;
                self.mode = Mode::Browse;
                self.toast(ToastLevel::Info, format!("job {id} queued"));
                // Show the new job: it is the newest, at the top of "all".
                self.tab = Tab::All;
                self.search.clear();
                self.reset_list();
                vec![Command::Refresh]
            }
            Err(err) => {
                if let Some(editor) = self.editor.as_mut() {
                    editor.submitting = false;
                    if let SubmitError::Invalid(errors) = &err {
                        editor.errors = errors.clone();
                    }
                }
                let text = match err {
                    SubmitError::Invalid(errors) => format!(
                        "not submitted: {}",
                        errors
                            .first()
                            .map(std::string::ToString::to_string)
                            .unwrap_or_default()
                    ),
                    SubmitError::Failed(message) => format!("not submitted: {message}"),
                };
                self.toast(ToastLevel::Error, sanitize(&text));
                Vec::new()
            }
        }
    }

    /// Takes a data snapshot; returns `Refresh` if the selection had to move (the list
    /// shrank under it, or new jobs pushed the selected job down) and the window or the
    /// detail needs loading again.
    pub fn apply_data(&mut self, data: DataSnapshot) -> Vec<Command> {
        self.header.images_today = data.images_today;
        self.header.spend_today_cny = data.spend_today_cny;
        self.header.batch.remaining = data.remaining();
        self.header.pauses = data.pauses;
        // The tabs' counts follow "mine"; an answer from before a toggle would show the
        // other side's until the next one.
        if data.request.mine == self.mine {
            self.header.counts = data.counts;
        }
        if data.request.tab != self.tab
            || data.request.search != self.search
            || data.request.mine != self.mine
        {
            // An answer for a filter the user has already left.
            return Vec::new();
        }
        let old_selection = self.list.selected_row().map(|r| r.id);
        let old_total = self.list.total;
        self.list.total = data.total;
        self.list.offset = data.request.offset;
        self.list.rows = data.rows;
        let mut moved = self.follow_selected_job(&data.request, old_total);
        let selected_id = self.list.selected_row().map(|r| r.id);
        // The detail was loaded for a position; it is the selected job's only if the ids
        // agree (new rows may have put another job at that position meanwhile).
        let detail_fits = match &data.detail {
            Some(detail) => Some(detail.id) == selected_id,
            None => data.request.selected == self.list.selected,
        };
        if detail_fits {
            self.detail = data.detail;
        }
        if selected_id.is_some() {
            self.list.selected_id = selected_id;
        }
        if selected_id != old_selection {
            self.image_index = 0;
        }
        let last = self.list.total.saturating_sub(1);
        if self.list.selected > last || self.list.top > self.list.selected {
            self.list.selected = self.list.selected.min(last);
            moved = true;
        }
        if moved {
            self.keep_selection_visible();
            return vec![Command::Refresh];
        }
        Vec::new()
    }

    /// Puts the selection back on the job it was on, after the rows have been replaced.
    /// The list is newest first: jobs that arrived meanwhile push the selected one down.
    /// If it is in the loaded window, the selection goes to its row; if it was pushed out
    /// of the window, the selection moves down by the number of new jobs and the window
    /// containing it is asked for. True if the selection moved.
    fn follow_selected_job(&mut self, request: &ListRequest, old_total: u64) -> bool {
        let Some(id) = self.list.selected_id else {
            return false;
        };
        let found = self.list.rows.iter().position(|r| r.id == id);
        let list = &mut self.list;
        match found {
            Some(index) => {
                let position = list.offset + index as u64;
                let moved = position != list.selected;
                list.selected = position;
                moved
            }
            // Only an answer for the window on screen tells where the job went; an older
            // answer was for a window the user has scrolled away from.
            None if request.offset == list.top && list.total > old_total => {
                list.selected += list.total - old_total;
                true
            }
            None => false,
        }
    }

    fn move_to(&mut self, position: u64) -> Vec<Command> {
        let target = position.min(self.list.total.saturating_sub(1));
        if target == self.list.selected {
            return Vec::new();
        }
        self.list.selected = target;
        // Known when the row is loaded; otherwise the answer for the new window tells it.
        self.list.selected_id = self.list.row(target).map(|r| r.id);
        self.image_index = 0;
        self.keep_selection_visible();
        vec![Command::Refresh]
    }

    pub(super) fn keep_selection_visible(&mut self) {
        let rows = self.visible_rows().max(1);
        let list = &mut self.list;
        if list.selected < list.top {
            list.top = list.selected;
        } else if list.selected >= list.top + rows {
            list.top = list.selected + 1 - rows;
        }
    }

    fn reset_list(&mut self) {
        self.list = Default::default();
        self.detail = None;
        self.image_index = 0;
    }

    fn edit_search(&mut self, edit: impl FnOnce(&mut String)) -> Vec<Command> {
        let before = self.search.clone();
        edit(&mut self.search);
        if self.search == before {
            return Vec::new();
        }
        self.reset_list();
        vec![Command::Refresh]
    }

    fn cycle_image(&mut self, forward: bool) {
        let count = self.selected_detail().map_or(0, |d| d.saved_images().len());
        if count > 1 {
            self.image_index = if forward {
                (self.image_index + 1) % count
            } else {
                (self.image_index + count - 1) % count
            };
        }
    }

    /// The detail, only if it is the selected row's (never a stale one).
    pub fn selected_detail(&self) -> Option<&JobDetailView> {
        let selected = self.list.selected_row()?.id;
        self.detail.as_ref().filter(|d| d.id == selected)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ratatui::layout::Rect;
    use time::macros::datetime;

    use super::*;
    use crate::store::JobState;
    use crate::ui::state::{Header, Toast};

    fn state_with_rows(list_rows: u16) -> AppState {
        let layout = FrameLayout {
            area: Rect::new(0, 0, 120, 40),
            list_rows,
            ..FrameLayout::default()
        };
        AppState::new(layout, datetime!(2026-11-20 12:00 UTC), Header::default())
    }

    fn only_toast(state: &AppState) -> &Toast {
        assert_eq!(state.toasts.len(), 1, "{:?}", state.toasts);
        &state.toasts[0]
    }

    #[test]
    fn engine_progress_reloads_the_list_quietly() {
        let mut state = state_with_rows(20);
        let changed = EngineEvent::JobChanged {
            id: JobId(1),
            state: JobState::Running,
        };
        assert_eq!(state.engine_event(changed), vec![Command::Refresh]);
        let saved = EngineEvent::ImageSaved {
            job: JobId(1),
            index: 0,
            path: PathBuf::from("/data/1-0.png"),
        };
        assert_eq!(state.engine_event(saved), vec![Command::Refresh]);
        assert!(state.toasts.is_empty());
    }

    #[test]
    fn a_stopped_model_is_an_error_toast() {
        let mut state = state_with_rows(20);
        let stopped = EngineEvent::ModelStopped {
            model: Model::Wanx21T2iTurbo,
            reason: "quota used up".into(),
        };
        assert!(state.engine_event(stopped).is_empty());
        let toast = only_toast(&state);
        assert_eq!(toast.level, ToastLevel::Error);
        assert_eq!(
            toast.text,
            format!("{} stopped: quota used up", Model::Wanx21T2iTurbo)
        );
        assert_eq!(state.header.engine_stopped, None, "the engine still runs");
    }

    #[test]
    fn a_stopped_engine_is_a_toast_and_a_mark_in_the_header() {
        let mut state = state_with_rows(20);
        let stopped = EngineEvent::Stopped {
            reason: "the API key was refused".into(),
        };
        assert!(state.engine_event(stopped).is_empty());
        let toast = only_toast(&state);
        assert_eq!(toast.level, ToastLevel::Error);
        assert_eq!(toast.text, "engine stopped: the API key was refused");
        assert_eq!(
            state.header.engine_stopped.as_deref(),
            Some("the API key was refused")
        );
    }

    #[test]
    fn a_refused_disk_names_the_path_and_a_recovered_one_says_so() {
        let mut state = state_with_rows(20);
        let refused = EngineEvent::DiskRefused {
            path: PathBuf::from("/data/images"),
            reason: "No space left on device".into(),
        };
        assert_eq!(state.engine_event(refused), vec![Command::Refresh]);
        let toast = only_toast(&state);
        assert_eq!(toast.level, ToastLevel::Error);
        assert_eq!(
            toast.text,
            "cannot save images to /data/images: No space left on device; \
             no new jobs are sent until it works"
        );

        state.toasts.clear();
        assert_eq!(
            state.engine_event(EngineEvent::DiskRecovered),
            vec![Command::Refresh]
        );
        let toast = only_toast(&state);
        assert_eq!(toast.level, ToastLevel::Info);
        assert_eq!(toast.text, "images save again; sending jobs");
    }

    #[test]
    fn an_idle_engine_changes_nothing() {
        let mut state = state_with_rows(20);
        assert!(state.engine_event(EngineEvent::Idle).is_empty());
        assert!(state.toasts.is_empty());
        assert_eq!(state.header.engine_stopped, None);
    }

    #[test]
    fn a_smaller_layout_keeps_the_selection_on_screen_and_reloads() {
        let mut state = state_with_rows(20);
        state.list.total = 100;
        state.list.selected = 15;
        let same = state.layout;
        assert!(
            state.laid_out(same).is_empty(),
            "the same layout asks for nothing"
        );
        assert_eq!(state.list.top, 0);

        let smaller = FrameLayout {
            list_rows: 10,
            ..state.layout
        };
        assert_eq!(state.laid_out(smaller), vec![Command::Refresh]);
        assert_eq!(state.layout, smaller);
        assert_eq!(state.visible_rows(), 10);
        assert_eq!(state.list.top, 6, "the selection is the last row on screen");
        assert_eq!(state.list_request().limit, 10);
    }
}
