//! The gallery (`v`): the saved images of the list's tab (or of one job) as a grid of
//! thumbnails, newest job first, each tile captioned with its job, seed and state. A tile
//! opens full screen, stars, forks its job with the image's own seed, or copies its path.
//!
//! Like the rest of the dashboard: a state (`Gallery`), key handling that returns
//! commands, and pure drawing. Tiles come a window at a time from the data worker
//! (`Command::LoadGallery`); thumbnails from the thumbnail worker (`thumbnails.rs`), which
//! the app asks for exactly the keys `AppState::thumbnails_wanted` names.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use ratatui_image::Image;
use ratatui_image::protocol::Protocol;

use crate::dashscope::JobSpec;
use crate::text::sanitize;

use super::editor::Editor;
use super::keys::{Action, Context, KeyMap};
use super::state::{
    AppState, ImageKey, JobId, JobState, Mode, Pane, PreviewImage, Tab, ToastLevel, state_label,
};
use super::update::Command;

/// Whose images the gallery shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GalleryScope {
    /// Every saved image of the jobs in the list's tab and search.
    Tab,
    /// One job's images, side by side.
    Job(JobId),
}

/// What the data worker is asked for: a window of the scope's saved images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GalleryRequest {
    pub scope: GalleryScope,
    pub tab: Tab,
    pub search: String,
    /// A `Tab` scope's jobs are only this process's submitter's.
    pub mine: bool,
    pub starred_only: bool,
    pub offset: u64,
    pub limit: u64,
}

/// The data worker's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GallerySnapshot {
    pub request: GalleryRequest,
    /// Images in the scope.
    pub total: u64,
    /// The window asked for.
    pub tiles: Vec<Tile>,
}

/// One saved image.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub job: JobId,
    pub index: u32,
    pub path: PathBuf,
    pub state: JobState,
    /// The job's spec (raw text: drawing sanitises), what a fork starts from.
    pub spec: JobSpec,
    pub starred: bool,
}

impl Tile {
    /// The seed the service made this image with (`seed + index`), if the job's is known.
    pub fn seed(&self) -> Option<u64> {
        crate::store::image_seed(&self.spec, self.index)
    }

    /// The caption under the tile: star, job and image, seed, state.
    pub fn caption(&self) -> String {
        let star = if self.starred { "★ " } else { "" };
        let seed = self
            .seed()
            .map_or_else(|| "seed ?".to_string(), |s| format!("seed {s}"));
        format!(
            "{star}#{}.{} {seed} {}",
            self.job,
            self.index + 1,
            state_label(self.state)
        )
    }
}

/// What a tile shows for its thumbnail.
#[derive(Clone)]
pub enum Thumb {
    Loading,
    Ready(Arc<Protocol>),
    Failed(String),
}

/// The gallery's state.
pub struct Gallery {
    pub scope: GalleryScope,
    /// The list's tab, search and mine/all when the gallery opened (a `Tab` scope's filter).
    pub tab: Tab,
    pub search: String,
    pub mine: bool,
    pub starred_only: bool,
    /// Images in the scope; unknown (0) until the first answer.
    pub total: u64,
    /// Whether an answer for this filter has arrived (an empty gallery says so only then).
    pub loaded: bool,
    /// Position of `tiles[0]`.
    pub offset: u64,
    pub tiles: Vec<Tile>,
    pub selected: u64,
    /// The first grid row on screen.
    pub top_row: u64,
    /// The selected image is shown full screen.
    pub opened: bool,
    /// Thumbnails of the tiles on screen, as the app last found them.
    pub thumbs: HashMap<ImageKey, Thumb>,
}

impl Gallery {
    pub fn new(scope: GalleryScope, tab: Tab, search: String) -> Gallery {
        Gallery {
            scope,
            tab,
            search,
            mine: false,
            starred_only: false,
            total: 0,
            loaded: false,
            offset: 0,
            tiles: Vec::new(),
            selected: 0,
            top_row: 0,
            opened: false,
            thumbs: HashMap::new(),
        }
    }

    pub fn tile(&self, position: u64) -> Option<&Tile> {
        position
            .checked_sub(self.offset)
            .and_then(|i| self.tiles.get(i as usize))
    }

    pub fn selected_tile(&self) -> Option<&Tile> {
        self.tile(self.selected)
    }

    /// The opened image fitted into `area`, for the preview worker.
    pub fn opened_image(&self, area: Rect) -> Option<ImageKey> {
        let tile = self.selected_tile().filter(|_| self.opened)?;
        (area.width > 0 && area.height > 0).then(|| ImageKey {
            path: tile.path.clone(),
            width: area.width,
            height: area.height,
        })
    }

    /// The window to load for the grid on screen: its tiles and the next screen's, so
    /// scrolling on finds them loaded.
    pub fn request(&self, shape: GridShape) -> GalleryRequest {
        let columns = u64::from(shape.columns);
        GalleryRequest {
            scope: self.scope,
            tab: self.tab,
            search: self.search.clone(),
            mine: self.mine,
            starred_only: self.starred_only,
            offset: self.top_row * columns,
            limit: 2 * shape.tiles(),
        }
    }

    /// Positions of the tiles on screen.
    pub fn on_screen(&self, shape: GridShape) -> std::ops::Range<u64> {
        let first = self.top_row * u64::from(shape.columns);
        first..(first + shape.tiles()).min(self.total)
    }

    /// Whether the tiles on screen are all loaded (nothing to ask the worker for).
    fn screen_loaded(&self, shape: GridShape) -> bool {
        let screen = self.on_screen(shape);
        self.loaded
            && screen.start >= self.offset
            && screen.end <= self.offset + self.tiles.len() as u64
    }

    /// Puts the selected tile's row on screen.
    fn keep_selection_visible(&mut self, shape: GridShape) {
        let row = self.selected / u64::from(shape.columns);
        let rows = u64::from(shape.rows);
        if row < self.top_row {
            self.top_row = row;
        } else if row >= self.top_row + rows {
            self.top_row = row + 1 - rows;
        }
    }
}

/// How the grid divides its area: columns and rows of equal tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridShape {
    pub columns: u16,
    pub rows: u16,
    pub tile_width: u16,
    pub tile_height: u16,
}

/// Tiles are about this many cells wide: two columns on an 80-column terminal, six on a
/// 200-column one.
const TILE_WIDTH: u16 = 32;

impl GridShape {
    pub fn tiles(self) -> u64 {
        u64::from(self.columns) * u64::from(self.rows)
    }

    /// Where tile `slot` (0 at the top left, row by row) goes in `area`.
    pub fn tile_rect(self, area: Rect, slot: u64) -> Rect {
        let columns = u64::from(self.columns.max(1));
        let (row, column) = ((slot / columns) as u16, (slot % columns) as u16);
        Rect::new(
            area.x + column * self.tile_width,
            area.y + row * self.tile_height,
            self.tile_width,
            self.tile_height,
        )
        .intersection(area)
    }

    /// The cells a tile's thumbnail fits into (inside the tile's border).
    pub fn thumb_size(self) -> (u16, u16) {
        (
            self.tile_width.saturating_sub(2),
            self.tile_height.saturating_sub(2),
        )
    }
}

/// The grid for `area`: at least 2x2, more columns as the area widens, and as many rows
/// of tiles about as tall as a square picture in them (cells are twice as tall as wide).
pub fn grid_shape(area: Rect) -> GridShape {
    let columns = (area.width / TILE_WIDTH).max(2);
    let tile_width = area.width / columns;
    // The picture's height in cells plus the border above and the caption below.
    let square_height = tile_width / 2 + 2;
    let rows = (area.height / square_height.max(1)).max(2);
    GridShape {
        columns,
        rows,
        tile_width,
        tile_height: area.height / rows,
    }
}

impl AppState {
    /// The grid the last frame laid the gallery out with.
    pub fn gallery_shape(&self) -> GridShape {
        grid_shape(self.layout.gallery)
    }

    /// `v`: the gallery of the list's tab, or of the selected job when the detail or
    /// preview pane has the focus.
    pub(super) fn open_gallery(&mut self) -> Vec<Command> {
        let scope = match (self.pane, self.list.selected_row()) {
            (Pane::Detail | Pane::Preview, Some(row)) => GalleryScope::Job(row.id),
            _ => GalleryScope::Tab,
        };
        let mut gallery = Gallery::new(scope, self.tab, self.search.clone());
        gallery.mine = self.mine;
        let request = gallery.request(self.gallery_shape());
        self.gallery = Some(gallery);
        self.mode = Mode::Gallery;
        vec![Command::LoadGallery(request)]
    }

    pub(super) fn gallery_key(&mut self, keys: &KeyMap, key: &KeyEvent) -> Vec<Command> {
        let shape = self.gallery_shape();
        let (Some(action), Some(gallery)) =
            (keys.action(Context::Gallery, key), self.gallery.as_mut())
        else {
            return Vec::new();
        };
        let columns = i64::from(shape.columns);
        let page = shape.tiles() as i64;
        let step = match action {
            Action::Left => Some(-1),
            Action::Right => Some(1),
            Action::Up => Some(-columns),
            Action::Down => Some(columns),
            Action::PageUp => Some(-page),
            Action::PageDown => Some(page),
            Action::First => Some(i64::MIN / 2),
            Action::Last => Some(i64::MAX / 2),
            _ => None,
        };
        if let Some(step) = step {
            let last = gallery.total.saturating_sub(1) as i64;
            gallery.selected = (gallery.selected as i64)
                .saturating_add(step)
                .clamp(0, last) as u64;
            gallery.keep_selection_visible(shape);
            return load_if_needed(gallery, shape);
        }
        match action {
            Action::FullScreen => {
                gallery.opened = !gallery.opened && gallery.selected_tile().is_some();
            }
            Action::Leave if gallery.opened => gallery.opened = false,
            Action::Leave => {
                self.gallery = None;
                self.mode = Mode::Browse;
                return vec![Command::CloseGallery];
            }
            Action::StarredOnly => {
                let mut fresh = Gallery::new(gallery.scope, gallery.tab, gallery.search.clone());
                fresh.starred_only = !gallery.starred_only;
                fresh.mine = gallery.mine;
                let request = fresh.request(shape);
                *gallery = fresh;
                return vec![Command::LoadGallery(request)];
            }
            Action::Star => {
                if let Some(at) = gallery.selected.checked_sub(gallery.offset)
                    && let Some(tile) = gallery.tiles.get_mut(at as usize)
                {
                    // Marked at once; the store's answer confirms it.
                    tile.starred = !tile.starred;
                    return vec![Command::Star {
                        job: tile.job,
                        index: tile.index,
                        starred: tile.starred,
                    }];
                }
            }
            Action::Copy => {
                if let Some(tile) = gallery.selected_tile() {
                    return vec![Command::Copy(tile.path.display().to_string())];
                }
            }
            Action::Fork => {
                let Some(tile) = gallery.selected_tile() else {
                    return Vec::new();
                };
                let mut spec = tile.spec.clone();
                spec.seed = tile.seed();
                let mut editor = Editor::from_spec(&spec).in_region(self.region);
                editor.parent = Some(tile.job);
                self.editor = Some(editor);
                self.gallery = None;
                self.mode = Mode::Editor;
                return vec![Command::CloseGallery];
            }
            Action::ShowHelp => {
                self.help_scroll = 0;
                self.mode = Mode::Help;
            }
            _ => {}
        }
        Vec::new()
    }

    /// Takes the data worker's window; asks again if the screen's tiles are still not in
    /// it (the selection moved on meanwhile, or the gallery shrank under it).
    pub fn apply_gallery(&mut self, data: GallerySnapshot) -> Vec<Command> {
        let shape = self.gallery_shape();
        let Some(gallery) = self.gallery.as_mut() else {
            return Vec::new();
        };
        let request = &data.request;
        if (
            request.scope,
            request.tab,
            &request.search,
            request.mine,
            request.starred_only,
        ) != (
            gallery.scope,
            gallery.tab,
            &gallery.search,
            gallery.mine,
            gallery.starred_only,
        ) {
            // An answer for a filter the user has already left.
            return Vec::new();
        }
        gallery.total = data.total;
        gallery.offset = request.offset;
        gallery.tiles = data.tiles;
        gallery.loaded = true;
        gallery.selected = gallery.selected.min(gallery.total.saturating_sub(1));
        gallery.keep_selection_visible(shape);
        if gallery.total == 0 {
            gallery.opened = false;
        }
        load_if_needed(gallery, shape)
    }

    /// A new layout: the grid may have another shape, so the selection is kept on screen
    /// and the window loaded again.
    pub(super) fn gallery_reframed(&mut self) -> Vec<Command> {
        let shape = self.gallery_shape();
        match self.gallery.as_mut() {
            Some(gallery) => {
                gallery.keep_selection_visible(shape);
                vec![Command::LoadGallery(gallery.request(shape))]
            }
            None => Vec::new(),
        }
    }

    /// The thumbnails the screen wants: the tiles on screen, then the next screen's to
    /// have them ready. None while an image is open full screen or something covers the
    /// grid (a graphics image would show through).
    pub fn thumbnails_wanted(&self) -> (Vec<ImageKey>, Vec<ImageKey>) {
        let Some(gallery) = self.gallery.as_ref().filter(|g| !g.opened) else {
            return (Vec::new(), Vec::new());
        };
        if self.mode != Mode::Gallery {
            return (Vec::new(), Vec::new());
        }
        let shape = self.gallery_shape();
        let (width, height) = shape.thumb_size();
        if width == 0 || height == 0 {
            return (Vec::new(), Vec::new());
        }
        let keys = |positions: std::ops::Range<u64>| -> Vec<ImageKey> {
            positions
                .filter_map(|p| gallery.tile(p))
                .map(|tile| ImageKey {
                    path: tile.path.clone(),
                    width,
                    height,
                })
                .collect()
        };
        let screen = gallery.on_screen(shape);
        let ahead = screen.end..(screen.end + shape.tiles()).min(gallery.total);
        (keys(screen), keys(ahead))
    }

    /// Stars or unstars the image the preview shows (`*` in the list and full screen).
    pub(super) fn star_shown_image(&mut self) -> Vec<Command> {
        let Some((job, index, starred)) = self
            .selected_image()
            .zip(self.detail.as_ref())
            .map(|(image, detail)| (detail.id, image.index, !image.starred))
        else {
            self.toast(ToastLevel::Info, "no image shown to star");
            return Vec::new();
        };
        if let Some(image) = self
            .detail
            .as_mut()
            .and_then(|d| d.images.iter_mut().find(|i| i.index == index))
        {
            image.starred = starred;
        }
        vec![Command::Star {
            job,
            index,
            starred,
        }]
    }
}

fn load_if_needed(gallery: &Gallery, shape: GridShape) -> Vec<Command> {
    if gallery.screen_loaded(shape) {
        Vec::new()
    } else {
        vec![Command::LoadGallery(gallery.request(shape))]
    }
}

/// The grid in the body of the screen: a titled frame and the tiles on screen.
/// Thumbnails are drawn only when `images` (nothing covers the grid).
pub fn draw_grid(gallery: &Gallery, images: bool, frame: &mut Frame, area: Rect) {
    let scope = match gallery.scope {
        GalleryScope::Tab if gallery.search.is_empty() => format!("tab {}", gallery.tab.label()),
        GalleryScope::Tab => format!("tab {} /{}", gallery.tab.label(), sanitize(&gallery.search)),
        GalleryScope::Job(id) => format!("job {id}"),
    };
    let starred = if gallery.starred_only {
        " · starred"
    } else {
        ""
    };
    let mine = match gallery.scope {
        GalleryScope::Tab if gallery.mine => " · mine",
        _ => "",
    };
    let position = if gallery.total > 0 {
        format!(" · {}/{}", gallery.selected + 1, gallery.total)
    } else {
        String::new()
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Thick)
        .border_style(Style::new().fg(Color::Cyan))
        .title(Span::styled(
            format!(" Gallery · {scope}{mine}{starred}{position} "),
            Style::new().bold(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // Cleared, so a picture from the screen before never stays behind.
    frame.render_widget(Clear, inner);
    if gallery.total == 0 {
        let message = match (gallery.loaded, gallery.starred_only) {
            (false, _) => "loading…",
            (true, true) => "No starred images here. * stars one; f shows all.",
            (true, false) => "No saved images here yet.",
        };
        frame.render_widget(
            Paragraph::new(message)
                .style(Style::new().fg(Color::DarkGray))
                .wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    let shape = grid_shape(inner);
    let (width, height) = shape.thumb_size();
    let screen = gallery.on_screen(shape);
    for (slot, position) in screen.clone().enumerate() {
        let rect = shape.tile_rect(inner, slot as u64);
        let selected = position == gallery.selected;
        let tile = gallery.tile(position);
        let caption = tile.map_or_else(|| "…".to_string(), Tile::caption);
        let (border, style) = if selected {
            (BorderType::Thick, Style::new().fg(Color::Cyan))
        } else {
            (BorderType::Plain, Style::new().fg(Color::DarkGray))
        };
        let caption_style = if selected {
            Style::new().fg(Color::Cyan).bold().reversed()
        } else {
            Style::new().fg(Color::Gray)
        };
        let tile_block = Block::new()
            .borders(Borders::ALL)
            .border_type(border)
            .border_style(style)
            .title_bottom(Span::styled(format!(" {caption} "), caption_style));
        let thumb_area = tile_block.inner(rect);
        frame.render_widget(tile_block, rect);
        let key = tile.map(|tile| ImageKey {
            path: tile.path.clone(),
            width,
            height,
        });
        let thumb = key.as_ref().and_then(|k| gallery.thumbs.get(k));
        let message = match thumb {
            Some(Thumb::Ready(protocol)) if images => {
                frame.render_widget(Image::new(protocol), thumb_area);
                continue;
            }
            Some(Thumb::Failed(error)) => {
                Line::styled(sanitize(error), Style::new().fg(Color::Red))
            }
            _ if images => Line::styled("…", Style::new().fg(Color::DarkGray)),
            _ => continue,
        };
        frame.render_widget(
            Paragraph::new(message).wrap(Wrap { trim: true }),
            thumb_area,
        );
    }
}

/// The selected image full screen: a caption, the image (from the preview worker, as
/// `AppState::preview`), the keys.
pub fn draw_opened(state: &AppState, gallery: &Gallery, frame: &mut Frame, area: Rect) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let caption = match gallery.selected_tile() {
        Some(tile) => format!(
            " {} · image {}/{} · {}",
            tile.caption(),
            gallery.selected + 1,
            gallery.total,
            tile.path.display()
        ),
        None => String::new(),
    };
    frame.render_widget(Line::from(sanitize(&caption)).bold(), top);
    frame.render_widget(Clear, body);
    let wanted = gallery.opened_image(body);
    let message = match (&state.preview, &wanted) {
        (PreviewImage::Ready(ready), Some(key)) if ready.key == *key => {
            frame.render_widget(Image::new(&ready.protocol), body);
            String::new()
        }
        (PreviewImage::Failed(key, error), Some(wanted)) if key == wanted => sanitize(error),
        (_, Some(_)) => "loading…".to_string(),
        (_, None) => "no image".to_string(),
    };
    if !message.is_empty() {
        frame.render_widget(
            Paragraph::new(message)
                .style(Style::new().fg(Color::DarkGray))
                .wrap(Wrap { trim: true }),
            body,
        );
    }
    frame.render_widget(
        Line::from(" ←/→ previous/next · * star · e fork with this seed · y copy path · Esc grid")
            .fg(Color::DarkGray),
        bottom,
    );
}

#[cfg(test)]
mod tests {
    use ratatui::crossterm::event::{Event, KeyCode};
    use time::macros::datetime;

    use super::*;
    use crate::dashscope::Model;
    use crate::ui::draw::frame_layout;
    use crate::ui::state::Header;

    fn tile(position: u64) -> Tile {
        let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, "a fox");
        spec.seed = Some(1000);
        Tile {
            job: JobId(500 - (position / 4) as i64),
            index: (position % 4) as u32,
            path: PathBuf::from(format!("/images/{position}.png")),
            state: JobState::Succeeded,
            spec,
            starred: false,
        }
    }

    /// A 120x36 screen with the gallery of the tab open and `total` images, the first
    /// window loaded as the data worker would answer it.
    fn open(total: u64) -> (AppState, Vec<Command>) {
        let mut state = AppState::new(
            frame_layout(Rect::new(0, 0, 120, 36)),
            datetime!(2026-11-20 12:00 UTC),
            Header::default(),
        );
        let commands = state.handle(&KeyMap::default(), &press('v'));
        let [Command::LoadGallery(request)] = commands.as_slice() else {
            panic!("v asks for the gallery's first window: {commands:?}");
        };
        let answer = answer(request, total);
        let more = state.apply_gallery(answer);
        (state, more)
    }

    fn answer(request: &GalleryRequest, total: u64) -> GallerySnapshot {
        GallerySnapshot {
            request: request.clone(),
            total,
            tiles: (request.offset..(request.offset + request.limit).min(total))
                .map(tile)
                .collect(),
        }
    }

    fn press(c: char) -> Event {
        Event::Key(KeyEvent::from(KeyCode::Char(c)))
    }

    #[test]
    fn the_grid_is_two_by_two_on_a_small_pane_and_wider_on_a_wide_one() {
        let small = grid_shape(Rect::new(1, 3, 78, 19));
        assert_eq!((small.columns, small.rows), (2, 2));
        let wide = grid_shape(Rect::new(1, 3, 198, 55));
        assert_eq!((wide.columns, wide.rows), (6, 3));
        // Tiles never overlap and stay inside the area.
        let area = Rect::new(1, 3, 198, 55);
        let rects: Vec<Rect> = (0..wide.tiles()).map(|s| wide.tile_rect(area, s)).collect();
        for (i, a) in rects.iter().enumerate() {
            assert_eq!(a.intersection(area), *a);
            assert!(rects[i + 1..].iter().all(|b| !a.intersects(*b)));
        }
    }

    #[test]
    fn moving_walks_the_grid_and_scrolling_past_the_window_loads_the_next() {
        let (mut state, more) = open(1000);
        assert!(more.is_empty(), "the screen's tiles came with the answer");
        let keys = KeyMap::default();
        let shape = state.gallery_shape();
        let columns = u64::from(shape.columns);
        assert!(state.handle(&keys, &press('l')).is_empty());
        assert!(state.handle(&keys, &press('j')).is_empty());
        let gallery = state.gallery.as_ref().unwrap();
        assert_eq!(gallery.selected, 1 + columns);
        // Down to the last row on screen and one more: the window moves and is loaded.
        for _ in 0..shape.rows {
            state.handle(&keys, &press('j'));
        }
        let gallery = state.gallery.as_ref().unwrap();
        assert!(gallery.top_row > 0);
        assert!(state.handle(&keys, &press('h')).is_empty(), "still loaded");
        let commands = state.handle(&keys, &Event::Key(KeyEvent::from(KeyCode::End)));
        let [Command::LoadGallery(request)] = commands.as_slice() else {
            panic!("the last image's window is not loaded: {commands:?}");
        };
        assert_eq!(state.gallery.as_ref().unwrap().selected, 999);
        assert!(request.offset <= 999 && 999 < request.offset + request.limit);
        assert!(state.apply_gallery(answer(request, 1000)).is_empty());
        assert_eq!(
            state.gallery.as_ref().unwrap().selected_tile(),
            Some(&tile(999))
        );
    }

    #[test]
    fn fork_copy_and_star_act_on_the_selected_tile_with_its_own_seed() {
        let (mut state, _) = open(8);
        let keys = KeyMap::default();
        state.handle(&keys, &press('l'));
        state.handle(&keys, &press('l'));
        assert_eq!(
            state.handle(&keys, &press('y')),
            vec![Command::Copy("/images/2.png".into())]
        );
        assert_eq!(
            state.handle(&keys, &press('*')),
            vec![Command::Star {
                job: JobId(500),
                index: 2,
                starred: true
            }]
        );
        assert!(
            state.gallery.as_ref().unwrap().tiles[2].starred,
            "marked at once"
        );
        assert_eq!(
            state.handle(&keys, &press('e')),
            vec![Command::CloseGallery]
        );
        assert_eq!(state.mode, Mode::Editor);
        let (spec, _) = state.editor.as_ref().unwrap().build();
        assert_eq!(spec.seed, Some(1002), "image 2 of a job with seed 1000");
    }

    #[test]
    fn the_starred_filter_starts_over_and_esc_leaves_step_by_step() {
        let (mut state, _) = open(8);
        let keys = KeyMap::default();
        state.handle(&keys, &press('l'));
        let commands = state.handle(&keys, &press('f'));
        let [Command::LoadGallery(request)] = commands.as_slice() else {
            panic!("{commands:?}");
        };
        assert!(request.starred_only && request.offset == 0);
        assert_eq!(state.gallery.as_ref().unwrap().selected, 0);
        // An answer for the filter before is not taken.
        let mut stale = answer(request, 8);
        stale.request.starred_only = false;
        state.apply_gallery(stale);
        assert!(!state.gallery.as_ref().unwrap().loaded);

        state.apply_gallery(answer(request, 3));
        let esc = Event::Key(KeyEvent::from(KeyCode::Esc));
        let enter = Event::Key(KeyEvent::from(KeyCode::Enter));
        state.handle(&keys, &enter);
        assert!(state.gallery.as_ref().unwrap().opened);
        let wanted = state
            .wanted_image()
            .expect("the opened image goes full screen");
        assert_eq!(wanted.path, PathBuf::from("/images/0.png"));
        assert_eq!(state.thumbnails_wanted(), (Vec::new(), Vec::new()));
        state.handle(&keys, &esc);
        assert!(!state.gallery.as_ref().unwrap().opened);
        assert_eq!(state.thumbnails_wanted().0.len(), 3);
        assert_eq!(state.handle(&keys, &esc), vec![Command::CloseGallery]);
        assert_eq!(state.mode, Mode::Browse);
        assert!(state.gallery.is_none());
    }
}
