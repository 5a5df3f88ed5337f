//! The mask painter (`m`): the image shown full screen as halfblocks with a brush cursor on
//! the cell grid. The brush, rectangle, invert and clear work on a `Mask` at the image's
//! own resolution (`mask.rs`); the painted region shows tinted over the picture. Enter
//! has the mask written as a PNG on the studio worker and then opens the editor on an
//! inpainting job of the image with that mask; Esc leaves without saving.

use std::path::PathBuf;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

use crate::dashscope::{EditFunction, ImageRef, JobSpec, Model};
use crate::store::JobId;
use crate::text::sanitize;

use super::draw::frame_layout;
use super::editor::{Editor, EditorFocus};
use super::keys::{Action, Context, KeyMap};
use super::mask::{Cell, CellFit, Mask};
use super::state::{AppState, Mode, ToastLevel};
use super::studio::{Picture, PictureSlot, SavedMask, StudioCommand, draw_picture};
use super::update::Command;

/// The brush's radius in dots: 1 paints the cell under the cursor.
const BRUSH_DEFAULT: u32 = 2;
const BRUSH_MAX: u32 = 24;

/// The painter's state: which image, the mask so far, the brush.
#[derive(Debug, Clone, PartialEq)]
pub struct Painter {
    pub job: JobId,
    pub base: PathBuf,
    /// Made when the picture arrives, at its size.
    pub mask: Option<Mask>,
    pub cursor: Cell,
    pub brush: u32,
    pub erase: bool,
    /// The last two points painted: `r` fills the rectangle between them.
    pub points: Vec<Cell>,
    /// The mask is being written; keys wait for the answer.
    pub saving: bool,
    /// Where Esc returns to.
    pub back_to: Mode,
}

impl Painter {
    pub fn new(job: JobId, base: PathBuf, back_to: Mode) -> Painter {
        Painter {
            job,
            base,
            mask: None,
            cursor: Cell::default(),
            brush: BRUSH_DEFAULT,
            erase: false,
            points: Vec::new(),
            saving: false,
            back_to,
        }
    }

    fn remember(&mut self, cell: Cell) {
        if self.points.last() != Some(&cell) {
            self.points.push(cell);
        }
        if self.points.len() > 2 {
            self.points.remove(0);
        }
    }

    /// Paints (or erases) with the brush at the cursor.
    fn dab(&mut self, fit: &CellFit) {
        let (cell, brush, edit) = (self.cursor, self.brush, !self.erase);
        if let Some(mask) = self.mask.as_mut() {
            mask.brush(fit, cell, brush, edit);
        }
        self.remember(cell);
    }
}

/// The painter's screen: a caption, the picture, a line of keys.
fn painter_layout(area: Rect) -> Rect {
    frame_layout(area).full_image
}

impl AppState {
    /// `m`: the painter on the image shown, its picture asked for.
    pub(super) fn open_painter(&mut self) -> Vec<Command> {
        let Some(job) = self.selected_detail().map(|d| d.id) else {
            return Vec::new();
        };
        let Some(path) = self.selected_image().and_then(|i| i.path.clone()) else {
            self.toast(ToastLevel::Info, "no saved image to paint a mask on");
            return Vec::new();
        };
        let back_to = if self.mode == Mode::FullPreview {
            Mode::FullPreview
        } else {
            Mode::Browse
        };
        self.studio.painter = Some(Painter::new(job, path.clone(), back_to));
        self.mode = Mode::Painter;
        self.picture_wanted(path)
    }

    /// Asks for a picture unless it is there or on its way.
    pub(super) fn picture_wanted(&mut self, path: PathBuf) -> Vec<Command> {
        if self.studio.want_picture(&path) {
            vec![Command::Studio(StudioCommand::LoadPicture(path))]
        } else {
            Vec::new()
        }
    }

    /// The painter's picture and how it sits on the screen, once decoded.
    fn painter_fit(&self) -> Option<CellFit> {
        let painter = self.studio.painter.as_ref()?;
        let Some(PictureSlot::Ready(picture)) = self.studio.picture(&painter.base) else {
            return None;
        };
        let area = painter_layout(self.layout.area);
        Some(CellFit::new(
            picture.width,
            picture.height,
            area.width,
            area.height,
        ))
    }

    /// A picture arrived: the painter's gets its mask, at the image's size.
    pub(super) fn painter_picture(&mut self, picture: &Picture, path: &std::path::Path) {
        if let Some(painter) = self.studio.painter.as_mut()
            && painter.base == path
            && painter.mask.is_none()
        {
            painter.mask = Some(Mask::new(picture.width, picture.height));
        }
    }

    pub(super) fn painter_key(&mut self, keys: &KeyMap, key: &KeyEvent) -> Vec<Command> {
        let action = keys.action(Context::Painter, key);
        let Some(painter) = self.studio.painter.as_mut() else {
            self.mode = Mode::Browse;
            return Vec::new();
        };
        if action == Some(Action::Leave) {
            self.mode = painter.back_to.clone();
            self.studio.painter = None;
            return Vec::new();
        }
        if painter.saving {
            return Vec::new();
        }
        let Some(fit) = self.painter_fit() else {
            return Vec::new();
        };
        let painter = self
            .studio
            .painter
            .as_mut()
            .expect("checked above; nothing in between takes it");
        let step = |cell: Cell, dx: i32, dy: i32| {
            fit.clamp(Cell {
                col: (i32::from(cell.col) + dx).max(0) as u16,
                row: (i32::from(cell.row) + dy).max(0) as u16,
            })
        };
        match action {
            Some(Action::Left) => painter.cursor = step(painter.cursor, -1, 0),
            Some(Action::Right) => painter.cursor = step(painter.cursor, 1, 0),
            Some(Action::Up) => painter.cursor = step(painter.cursor, 0, -1),
            Some(Action::Down) => painter.cursor = step(painter.cursor, 0, 1),
            Some(Action::Paint) => painter.dab(&fit),
            Some(Action::ToggleErase) => painter.erase = !painter.erase,
            Some(Action::BrushBigger) => painter.brush = (painter.brush + 1).min(BRUSH_MAX),
            Some(Action::BrushSmaller) => painter.brush = painter.brush.saturating_sub(1).max(1),
            Some(Action::Rectangle) => {
                if let ([a, b], Some(mask)) = (&painter.points[..], painter.mask.as_mut()) {
                    mask.rectangle(&fit, *a, *b, !painter.erase);
                } else {
                    self.toast(
                        ToastLevel::Info,
                        "paint two points with Space first; r fills the rectangle between them",
                    );
                }
            }
            Some(Action::Invert) => {
                if let Some(mask) = painter.mask.as_mut() {
                    mask.invert();
                }
            }
            Some(Action::ClearMask) => {
                if let Some(mask) = painter.mask.as_mut() {
                    mask.clear();
                }
                painter.points.clear();
            }
            Some(Action::SaveMask) => return self.save_mask(),
            _ => {}
        }
        Vec::new()
    }

    /// With mouse capture on, a press or a drag paints where the pointer is.
    pub(super) fn painter_mouse(&mut self, mouse: &MouseEvent) -> Vec<Command> {
        if !matches!(
            mouse.kind,
            MouseEventKind::Down(MouseButton::Left) | MouseEventKind::Drag(MouseButton::Left)
        ) {
            return Vec::new();
        }
        let area = painter_layout(self.layout.area);
        let Some(fit) = self.painter_fit() else {
            return Vec::new();
        };
        let (cols, rows) = fit.cells();
        let (col, row) = (
            mouse.column.wrapping_sub(area.x),
            mouse.row.wrapping_sub(area.y),
        );
        if col >= cols || row >= rows {
            return Vec::new();
        }
        if let Some(painter) = self.studio.painter.as_mut()
            && !painter.saving
        {
            painter.cursor = Cell { col, row };
            painter.dab(&fit);
        }
        Vec::new()
    }

    fn save_mask(&mut self) -> Vec<Command> {
        let Some(painter) = self.studio.painter.as_mut() else {
            return Vec::new();
        };
        let Some(mask) = painter.mask.as_ref() else {
            return Vec::new();
        };
        if mask.edit_count() == 0 {
            self.toast(
                ToastLevel::Info,
                "nothing painted: Space paints where the edit goes",
            );
            return Vec::new();
        }
        painter.saving = true;
        vec![Command::Studio(StudioCommand::SaveMask {
            job: painter.job,
            base: painter.base.clone(),
            mask: Box::new(mask.clone()),
        })]
    }

    /// The worker wrote the mask (or could not): the editor opens on the inpainting job.
    pub(super) fn mask_saved(&mut self, result: Result<SavedMask, String>) {
        match result {
            Ok(saved) => {
                self.studio.painter = None;
                self.studio.pictures.clear();
                self.editor = Some(inpainting_editor(&saved).in_region(self.region));
                self.mode = Mode::Editor;
                self.toast(
                    ToastLevel::Info,
                    format!("mask saved: {}", saved.path.display()),
                );
            }
            Err(message) => {
                if let Some(painter) = self.studio.painter.as_mut() {
                    painter.saving = false;
                }
                self.toast(ToastLevel::Error, format!("mask not saved: {message}"));
            }
        }
    }
}

/// The editor on wanx2.1-imageedit's masked edit of the base image, the prompt to write.
pub fn inpainting_editor(saved: &SavedMask) -> Editor {
    let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "");
    spec.function = Some(EditFunction::DescriptionEditWithMask);
    spec.base_image = Some(ImageRef::File(saved.base.clone()));
    spec.mask_image = Some(ImageRef::File(saved.path.clone()));
    let mut editor = Editor::from_spec(&spec);
    editor.parent = Some(saved.job);
    editor.focus = EditorFocus::Prompt;
    editor
}

/// Draws the painter full screen.
pub fn draw_painter(state: &AppState, frame: &mut Frame, area: Rect) {
    let Some(painter) = state.studio.painter.as_ref() else {
        return;
    };
    let body = painter_layout(area);
    let top = Rect::new(area.x, area.y, area.width, 1.min(area.height));
    let bottom = Rect::new(area.x, body.bottom(), area.width, 1.min(area.height));
    frame.render_widget(Clear, area);
    let picture = state.studio.picture(&painter.base);
    let marked = painter.mask.as_ref().map_or(0.0, |m| {
        100.0 * m.edit_count() as f64 / (f64::from(m.width()) * f64::from(m.height()))
    });
    let tool = if painter.erase { "ERASE" } else { "paint" };
    let size = painter.mask.as_ref().map_or(String::new(), |m| {
        format!("{}x{} · ", m.width(), m.height())
    });
    let saving = if painter.saving { " · saving…" } else { "" };
    let caption = format!(
        " mask · job {} · {size}brush {} · {tool} · {marked:.1}% to edit{saving}",
        painter.job, painter.brush
    );
    frame.render_widget(Line::from(caption).bold(), top);
    match picture {
        Some(PictureSlot::Ready(picture)) => {
            draw_picture(picture, painter.mask.as_ref(), body, frame.buffer_mut());
            let fit = CellFit::new(picture.width, picture.height, body.width, body.height);
            let cursor = fit.clamp(painter.cursor);
            let (x, y) = (body.x + cursor.col, body.y + cursor.row);
            if body.contains((x, y).into()) {
                let cell = &mut frame.buffer_mut()[(x, y)];
                cell.set_symbol("+");
                cell.set_style(Style::new().fg(Color::White).bg(Color::Black).bold());
            }
        }
        Some(PictureSlot::Failed(message)) => frame.render_widget(
            Paragraph::new(sanitize(message))
                .style(Style::new().fg(Color::Red))
                .wrap(Wrap { trim: true }),
            body,
        ),
        Some(PictureSlot::Loading) | None => frame.render_widget(
            Paragraph::new("loading…").style(Style::new().fg(Color::DarkGray)),
            body,
        ),
    }
    // The keys as the default table has them; the full list (as rebound) is in the help.
    let hint = if area.width >= 122 {
        " hjkl move · Space paint · x erase · +/- brush size · r rectangle · i invert · c clear · Enter save + inpaint · Esc leave"
    } else {
        " Space paint · x erase · +/- size · r rect · i invert · c clear · Enter save·Esc"
    };
    frame.render_widget(Line::from(hint).fg(Color::DarkGray), bottom);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::crossterm::event::{Event, KeyModifiers};
    use time::macros::datetime;

    use super::*;
    use crate::ui::state::Header;
    use crate::ui::studio::StudioEvent;

    /// A painter open on a 400x200 image, its picture decoded, on an 80x24 screen.
    fn painting() -> AppState {
        let layout = frame_layout(Rect::new(0, 0, 80, 24));
        let mut state = AppState::new(layout, datetime!(2026-11-20 12:00 UTC), Header::default());
        let base = PathBuf::from("/data/images/9/0.png");
        state.studio.painter = Some(Painter::new(JobId(9), base.clone(), Mode::Browse));
        state.mode = Mode::Painter;
        assert!(state.studio.want_picture(&base));
        let picture = Picture {
            width: 400,
            height: 200,
            small: image::RgbImage::new(200, 100),
        };
        state.studio_event(StudioEvent::Picture(base, Ok(Arc::new(picture))));
        state
    }

    fn mouse(kind: MouseEventKind, column: u16, row: u16) -> Event {
        Event::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    }

    #[test]
    fn a_drag_paints_where_the_pointer_goes_and_outside_the_image_nothing() {
        let keys = KeyMap::default();
        let mut state = painting();
        let image = painter_layout(state.layout.area);
        let fit = state.painter_fit().unwrap();
        // 400x200 on 80x22 cells: 80 dots across, 40 down, 5 pixels a dot.
        assert_eq!((fit.dots_wide, fit.dots_high), (80, 40));
        let drag = MouseEventKind::Drag(MouseButton::Left);
        state.handle(&keys, &mouse(drag, image.x + 10, image.y + 5));
        let painter = state.studio.painter.as_ref().unwrap();
        assert_eq!(painter.cursor, Cell { col: 10, row: 5 });
        let mask = painter.mask.as_ref().unwrap();
        // The middle of cell (10, 5) is pixel (52, 55).
        assert!(mask.is_edit(52, 55));
        let painted = mask.edit_count();
        // Below the image (rows 20-21 of the area) a drag paints nothing.
        state.handle(&keys, &mouse(drag, image.x + 10, image.y + 21));
        let mask = state
            .studio
            .painter
            .as_ref()
            .unwrap()
            .mask
            .as_ref()
            .unwrap();
        assert_eq!(mask.edit_count(), painted);
        // A release does not paint either.
        let up = MouseEventKind::Up(MouseButton::Left);
        state.handle(&keys, &mouse(up, image.x + 30, image.y + 5));
        let mask = state
            .studio
            .painter
            .as_ref()
            .unwrap()
            .mask
            .as_ref()
            .unwrap();
        assert_eq!(mask.edit_count(), painted);
    }

    #[test]
    fn enter_sends_the_mask_once_and_esc_leaves_without_saving() {
        let keys = KeyMap::default();
        let key = |c| Event::Key(KeyEvent::from(ratatui::crossterm::event::KeyCode::Char(c)));
        let enter = Event::Key(KeyEvent::from(ratatui::crossterm::event::KeyCode::Enter));
        let mut state = painting();
        assert!(
            state.handle(&keys, &enter).is_empty(),
            "nothing painted yet"
        );
        state.handle(&keys, &key(' '));
        let sent = state.handle(&keys, &enter);
        assert!(matches!(
            &sent[..],
            [Command::Studio(StudioCommand::SaveMask {
                job: JobId(9),
                ..
            })]
        ));
        assert!(
            state.handle(&keys, &enter).is_empty(),
            "once, while it saves"
        );
        let saved = SavedMask {
            job: JobId(9),
            base: PathBuf::from("/data/images/9/0.png"),
            path: PathBuf::from("/data/masks/job-9-1.png"),
        };
        state.studio_event(StudioEvent::MaskSaved(Ok(saved)));
        assert_eq!(state.mode, Mode::Editor);
        let editor = state.editor.as_ref().unwrap();
        let (spec, _) = editor.build();
        assert_eq!(
            (spec.model, spec.function, editor.parent),
            (
                Model::Wanx21ImageEdit,
                Some(EditFunction::DescriptionEditWithMask),
                Some(JobId(9))
            )
        );
        assert_eq!(
            spec.mask_image,
            Some(ImageRef::File("/data/masks/job-9-1.png".into()))
        );

        let mut state = painting();
        state.handle(&keys, &key(' '));
        let esc = Event::Key(KeyEvent::from(ratatui::crossterm::event::KeyCode::Esc));
        assert!(state.handle(&keys, &esc).is_empty());
        assert_eq!(state.mode, Mode::Browse);
        assert!(state.studio.painter.is_none());
    }
}
