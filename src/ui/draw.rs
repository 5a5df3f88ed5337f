//! Drawing: a pure function of `AppState` that returns the layout it drew with (the shape
//! of television's `render.rs`), so the logic reads the layout and never calls in here.
//! Every piece of outside text (prompts, service messages, paths, task ids) goes through
//! `text::sanitize` here, at the last moment.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, BorderType, Borders, Cell, Clear, Paragraph, Row, Table, Tabs, Wrap,
};
use ratatui_image::Image;
use time::OffsetDateTime;

use crate::dashscope::validate::prompt_limit;
use crate::text::sanitize;

use super::editor::{Editor, EditorFocus, Field, model_choices};
use super::gallery;
use super::keys::{HelpLine, KeyMap};
use super::state::{
    AppState, BackendLabel, Confirm, FrameLayout, JobState, Mode, Pane, Pauses, PreviewImage,
    Prices, Tab, ToastLevel, state_label,
};

/// Where each part of the main screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenLayout {
    pub header: Rect,
    pub tabs: Rect,
    pub list: Rect,
    pub detail: Rect,
    pub preview: Rect,
    pub footer: Rect,
}

impl ScreenLayout {
    /// Job rows that fit the list: the box minus its borders and the column header.
    pub fn list_rows(&self) -> u16 {
        self.list.height.saturating_sub(3)
    }

    pub fn body(&self) -> Rect {
        self.list.union(self.detail).union(self.preview)
    }
}

/// Wide terminals put the list beside detail-over-preview; narrow ones put the list on
/// top of detail-beside-preview, so an 80x24 terminal still shows all three.
pub fn screen_layout(area: Rect) -> ScreenLayout {
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    // Wide screens put detail and preview beside the list; narrow ones under it.
    let (list, detail, preview) = if area.width >= 120 {
        let [list, right] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(body);
        let [detail, preview] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
        (list, detail, preview)
    } else {
        let [list, bottom] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        let [detail, preview] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        (list, detail, preview)
    };
    ScreenLayout {
        header,
        tabs,
        list,
        detail,
        preview,
        footer,
    }
}

/// The full-screen preview: a caption line, the image, a hint line.
fn full_preview_layout(area: Rect) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// The layout a frame of this size is drawn with, as far as logic needs it. `draw`
/// returns it; the app also uses it for the state it starts with, before the first frame.
pub fn frame_layout(area: Rect) -> FrameLayout {
    let screen = screen_layout(area);
    let [_, full_image, _] = full_preview_layout(area);
    FrameLayout {
        area,
        list_rows: screen.list_rows(),
        preview_image: pane_block("", false).inner(screen.preview),
        full_image,
        gallery: pane_block("", false).inner(screen.body()),
    }
}

/// Draws the whole screen; returns the layout it drew with, for the state to keep.
pub fn draw(state: &AppState, keys: &KeyMap, frame: &mut Frame) -> FrameLayout {
    let area = frame.area();
    let opened = state.gallery.as_ref().filter(|g| g.opened);
    if state.mode == Mode::FullPreview {
        draw_full_preview(state, frame, area);
        draw_toasts(state, frame, area);
    } else if state.mode == Mode::Painter {
        super::painter::draw_painter(state, frame, area);
        draw_toasts(state, frame, area);
    } else if state.mode == Mode::Compare {
        super::compare::draw_compare(state, frame, area);
        draw_toasts(state, frame, area);
    } else if let (Mode::Gallery, Some(gallery)) = (&state.mode, opened) {
        gallery::draw_opened(state, gallery, frame, area);
        draw_toasts(state, frame, area);
    } else {
        draw_main(state, keys, frame, area);
    }
    frame_layout(area)
}

/// The list, detail and preview (or the editor) between the header and the footer, with
/// any overlay on top.
fn draw_main(state: &AppState, keys: &KeyMap, frame: &mut Frame, area: Rect) {
    let layout = screen_layout(area);
    draw_header(state, frame, layout.header);
    draw_tabs(state, frame, layout.tabs);
    if state.mode == Mode::Stats {
        super::stats::draw(&state.stats, frame, layout.body());
    } else if state.mode == Mode::Editor
        && let Some(editor) = &state.editor
    {
        draw_editor(editor, &state.prices, frame, layout.body());
    } else if let Some(gallery) = &state.gallery {
        // Thumbnails only when nothing covers the grid: a graphics image would show through.
        gallery::draw_grid(gallery, state.mode == Mode::Gallery, frame, layout.body());
    } else {
        draw_list(state, frame, layout.list, layout.list_rows());
        draw_detail(state, frame, layout.detail);
        draw_preview(state, frame, layout.preview);
    }
    draw_footer(state, frame, layout.footer);
    match &state.mode {
        Mode::Help => draw_help(keys, state.help_scroll, frame, area),
        Mode::Confirm(question) => draw_confirm(question, frame, area),
        Mode::Sweep => super::variations::draw_sweep(state, frame, area),
        _ => {}
    }
    draw_toasts(state, frame, layout.body());
}

fn pane_block(title: &str, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Block::new()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(style)
        .title(Span::styled(title.to_string(), Style::new().bold()))
}

fn state_style(state: JobState) -> Style {
    match state {
        JobState::Queued => Style::new().fg(Color::Gray),
        JobState::Submitting | JobState::Submitted => Style::new().fg(Color::LightBlue),
        JobState::Running => Style::new().fg(Color::Yellow),
        JobState::Succeeded => Style::new().fg(Color::Green),
        JobState::Failed => Style::new().fg(Color::Red),
        JobState::Cancelled => Style::new().fg(Color::DarkGray),
        JobState::Expired => Style::new().fg(Color::Magenta),
        JobState::NeedsAttention => Style::new().fg(Color::Red).bold(),
    }
}

fn draw_header(state: &AppState, frame: &mut Frame, area: Rect) {
    let h = &state.header;
    let sep = || Span::styled(" │ ", Style::new().fg(Color::DarkGray));
    let backend = match &h.backend {
        BackendLabel::Live { region } => Span::styled(
            format!("LIVE {}", sanitize(region)),
            Style::new().fg(Color::Red).bold(),
        ),
        BackendLabel::Simulator => Span::styled("SIMULATOR", Style::new().fg(Color::Green).bold()),
    };
    let mut spans = vec![
        Span::styled(" wandash", Style::new().bold()),
        sep(),
        backend,
        sep(),
        Span::raw(format!(
            "today {} img ¥{:.2}",
            h.images_today, h.spend_today_cny
        )),
        sep(),
    ];
    let batch = &h.batch;
    if batch.remaining > 0 {
        let mut text = format!("{} left", batch.remaining);
        match batch.per_minute {
            Some(rate) => text.push_str(&format!(" {rate:.1}/min")),
            // Nothing finished lately to measure: a dash, not a rate of zero.
            None => text.push_str(" -/min"),
        }
        if let Some(eta) = batch.eta() {
            text.push_str(&format!(" ETA {}", short_duration(eta.as_secs())));
        }
        spans.push(Span::styled(text, Style::new().fg(Color::Yellow)));
    } else {
        spans.push(Span::raw("idle"));
    }
    spans.push(sep());
    spans.push(Span::raw(format!("img: {}", sanitize(&h.protocol))));
    if state.mine {
        spans.push(sep());
        spans.push(Span::styled("mine", Style::new().fg(Color::Cyan).bold()));
    }
    if let Some(paused) = paused_label(&h.pauses) {
        spans.push(sep());
        spans.push(Span::styled(paused, Style::new().fg(Color::Magenta).bold()));
    }
    if let Some(reason) = &h.engine_stopped {
        spans.push(sep());
        spans.push(Span::styled(
            format!("ENGINE STOPPED: {}", sanitize(reason)),
            Style::new().fg(Color::Red).bold(),
        ));
    }
    frame.render_widget(Line::from(spans), area);
}

/// `PAUSED` for the whole queue, `PAUSED: model-a, model-b` for single models.
fn paused_label(pauses: &Pauses) -> Option<String> {
    if pauses.all {
        return Some("PAUSED".to_string());
    }
    let models: Vec<&str> = pauses.models.iter().map(|m| m.id()).collect();
    (!models.is_empty()).then(|| format!("PAUSED: {}", models.join(", ")))
}

fn draw_tabs(state: &AppState, frame: &mut Frame, area: Rect) {
    let titles = Tab::ALL.iter().enumerate().map(|(i, tab)| {
        Line::from(vec![
            Span::styled(format!("{}", i + 1), Style::new().fg(Color::DarkGray)),
            Span::raw(format!(
                " {} {}",
                tab.label(),
                state.header.counts.get(*tab)
            )),
        ])
    });
    let searching = state.mode == Mode::Search;
    let search = if searching || !state.search.is_empty() {
        let cursor = if searching { "▏" } else { "" };
        format!("/{}{cursor}", sanitize(&state.search))
    } else {
        String::new()
    };
    let search_width = (search.chars().count() as u16 + 1).min(area.width / 3);
    let [tabs_area, search_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(search_width)]).areas(area);
    frame.render_widget(
        Tabs::new(titles)
            .select(state.tab.index())
            .highlight_style(Style::new().fg(Color::Cyan).bold().reversed())
            .padding("", "")
            .divider(" "),
        tabs_area,
    );
    frame.render_widget(
        Line::from(search)
            .style(Style::new().fg(Color::Yellow))
            .right_aligned(),
        search_area,
    );
}

fn draw_list(state: &AppState, frame: &mut Frame, area: Rect, rows_fit: u16) {
    let list = &state.list;
    let rows_fit = u64::from(rows_fit);
    let title = if list.total == 0 {
        " Jobs ".to_string()
    } else if rows_fit == 0 {
        // No row fits: a range would read "1-0".
        format!(" Jobs ({}) ", list.total)
    } else {
        let last = (list.top + rows_fit).min(list.total);
        format!(" Jobs {}-{} of {} ", list.top + 1, last, list.total)
    };
    let block = pane_block(&title, state.pane == Pane::List);
    if list.total == 0 {
        let message = if state.search.is_empty() {
            format!(
                "No {} jobs. Press n to write one.",
                if state.tab == Tab::All {
                    ""
                } else {
                    state.tab.label()
                }
            )
            .replace("No  jobs", "No jobs")
        } else {
            format!("No jobs match /{}.", sanitize(&state.search))
        };
        // Jobs of others may be there: say how to see them.
        let message = if state.mine {
            format!("{message} Only your jobs are shown: o shows everyone's.")
        } else {
            message
        };
        frame.render_widget(
            Paragraph::new(message)
                .style(Style::new().fg(Color::DarkGray))
                .block(block)
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let rows = (list.top..(list.top + rows_fit).min(list.total)).map(|position| {
        let selected = position == list.selected;
        // A visible marker as well as the colours, for monochrome terminals and captures;
        // a job marked for compare shows its mark instead.
        let marked = list
            .row(position)
            .is_some_and(|job| state.studio.marks.contains(&job.id));
        let marker = match (marked, selected) {
            (true, _) => "•",
            (false, true) => "›",
            (false, false) => " ",
        };
        let row = match list.row(position) {
            Some(job) => Row::new(vec![
                Cell::from(marker),
                Cell::from(state_label(job.state)).style(state_style(job.state)),
                Cell::from(job.model.id()),
                Cell::from(format!("{}/{}", job.images_ok, job.images_expected)),
                Cell::from(age(state.now, job.created_at)),
                Cell::from(sanitize(&job.prompt)),
            ]),
            None => Row::new(vec![
                Cell::from("…").style(Style::new().fg(Color::DarkGray)),
            ]),
        };
        if selected {
            row.style(Style::new().reversed())
        } else {
            row
        }
    });
    let header = Row::new(["", "state", "model", "img", "age", "prompt"])
        .style(Style::new().fg(Color::DarkGray).bold());
    let widths = [
        Constraint::Length(1),
        Constraint::Length(10),
        Constraint::Length(18),
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Min(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(block),
        area,
    );
}

fn draw_detail(state: &AppState, frame: &mut Frame, area: Rect) {
    let block = pane_block(" Detail ", state.pane == Pane::Detail);
    let Some(detail) = state.selected_detail() else {
        let text = if state.list.selected_row().is_some() {
            "loading…"
        } else {
            ""
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(Style::new().fg(Color::DarkGray))
                .block(block),
            area,
        );
        return;
    };
    let key = |name: &str| Span::styled(format!("{name:<10} "), Style::new().fg(Color::DarkGray));
    let field =
        |name: &str, value: String| Line::from(vec![key(name), Span::raw(sanitize(&value))]);
    let spec = &detail.spec;
    let mut lines = vec![Line::from(vec![
        key("job"),
        Span::raw(format!("{} ", detail.id)),
        Span::styled(state_label(detail.state), state_style(detail.state)),
        Span::raw(format!(" · {}", spec.model.id())),
    ])];
    if let Some(parent) = detail.parent {
        lines.push(field("from", format!("job {parent}")));
    }
    if let Some(who) = &detail.submitted_by {
        lines.push(field("by", who.clone()));
    }
    if let Some(function) = spec.function {
        lines.push(field("function", function.as_str().to_string()));
    }
    let mut params = Vec::new();
    if let Some(size) = spec.size {
        params.push(format!("size {size}"));
    }
    params.push(format!("n {}", spec.image_count()));
    if let Some(seed) = spec.seed {
        params.push(format!("seed {seed}"));
    }
    if let Some(v) = spec.prompt_extend {
        params.push(format!("extend {v}"));
    }
    if let Some(v) = spec.watermark {
        params.push(format!("watermark {v}"));
    }
    if let Some(style) = &spec.style {
        params.push(format!("style {style}"));
    }
    if let Some(e) = spec.expand {
        params.push(format!(
            "expand {},{},{},{}",
            e.top, e.bottom, e.left, e.right
        ));
    }
    if let Some(f) = spec.upscale_factor {
        params.push(format!("upscale {f}"));
    }
    lines.push(field("params", params.join(" · ")));
    for (name, image) in spec.image_refs() {
        let text = image.to_string();
        let shown = if text.starts_with("data:") {
            format!("{}…", &text[..text.len().min(30)])
        } else {
            text
        };
        lines.push(field(name, shown));
    }
    lines.push(field("prompt", spec.prompt.clone()));
    if let Some(neg) = &spec.negative_prompt {
        lines.push(field("negative", neg.clone()));
    }
    if let Some(actual) = &detail.actual_prompt {
        lines.push(field("actual", actual.clone()));
    }
    if let Some(task) = &detail.task_id {
        lines.push(field("task", task.clone()));
    }
    let mut times = vec![format!("created {}", clock(state.now, detail.created_at))];
    for (name, at) in [
        ("submitted", detail.submitted_at),
        ("scheduled", detail.scheduled_at),
        ("ended", detail.ended_at),
    ] {
        if let Some(at) = at {
            times.push(format!("{name} {}", clock(state.now, at)));
        }
    }
    lines.push(field("times", times.join(" · ")));
    let mut tries = format!("{}", detail.attempts);
    if let Some(cost) = detail.cost_cny {
        tries.push_str(&format!(" · cost ¥{cost:.2}"));
    }
    lines.push(field("attempts", tries));
    if let Some(error) = &detail.error {
        lines.push(Line::from(vec![
            key("error"),
            Span::styled(sanitize(error), Style::new().fg(Color::Red)),
        ]));
    }
    for image in &detail.images {
        let mut text = match &image.path {
            Some(path) => path.display().to_string(),
            None => "not saved".to_string(),
        };
        if let (Some(w), Some(h)) = (image.width, image.height) {
            text.push_str(&format!(" ({w}x{h})"));
        }
        let mut spans = vec![key(&format!("image {}", image.index + 1))];
        if image.starred {
            spans.push(Span::styled("★ ", Style::new().fg(Color::Yellow)));
        }
        spans.push(Span::raw(sanitize(&text)));
        if let Some(error) = &image.error {
            spans.push(Span::styled(
                format!(" {}", sanitize(error)),
                Style::new().fg(Color::Red),
            ));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_preview(state: &AppState, frame: &mut Frame, area: Rect) {
    let saved = state
        .selected_detail()
        .map_or(0, |d| d.saved_images().len());
    let star = if state.selected_image().is_some_and(|i| i.starred) {
        "★ "
    } else {
        ""
    };
    let title = if saved > 0 {
        format!(
            " Preview {}/{} {star}",
            state.image_index.min(saved - 1) + 1,
            saved
        )
    } else {
        " Preview ".to_string()
    };
    let block = pane_block(&title, state.pane == Pane::Preview);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    draw_image(
        state,
        frame,
        inner,
        if saved == 0 { "no image" } else { "" },
    );
}

/// Draws the wanted image if it is encoded, or says why not. The area is cleared first,
/// so a previous job's picture never stays behind.
fn draw_image(state: &AppState, frame: &mut Frame, area: Rect, empty: &str) {
    frame.render_widget(Clear, area);
    let wanted = state.image_in(area);
    let message = match (&state.preview, &wanted) {
        (PreviewImage::Ready(ready), Some(key)) if ready.key == *key => {
            frame.render_widget(Image::new(&ready.protocol), area);
            return;
        }
        (PreviewImage::Failed(key, error), Some(wanted)) if key == wanted => sanitize(error),
        (_, Some(_)) => "loading…".to_string(),
        (_, None) if !empty.is_empty() => empty.to_string(),
        (_, None) => match state.mode {
            Mode::Help | Mode::Confirm(_) | Mode::Sweep => String::new(),
            _ => "no image".to_string(),
        },
    };
    frame.render_widget(
        Paragraph::new(message)
            .style(Style::new().fg(Color::DarkGray))
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn draw_full_preview(state: &AppState, frame: &mut Frame, area: Rect) {
    let [top, body, bottom] = full_preview_layout(area);
    let caption = match (state.selected_detail(), state.selected_image()) {
        (Some(detail), Some(image)) => {
            let count = detail.saved_images().len();
            let path = image
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!(
                " job {} · image {}/{} · {}",
                detail.id,
                state.image_index.min(count - 1) + 1,
                count,
                path
            )
        }
        _ => String::new(),
    };
    frame.render_widget(Line::from(sanitize(&caption)).bold(), top);
    draw_image(state, frame, body, "no image");
    frame.render_widget(
        Line::from(" [ ] previous/next image · Esc back").fg(Color::DarkGray),
        bottom,
    );
}

/// `prices` give what one image of each model costs in the editor's region, if known.
fn draw_editor(editor: &Editor, prices: &Prices, frame: &mut Frame, area: Rect) {
    let price = prices.per_image_in(editor.model, editor.region);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let prompt_error = editor.error_for("prompt");
    let error_height = if prompt_error.is_some() { 3 } else { 0 };
    let [prompt_area, error_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(error_height)]).areas(left);
    let chars = editor.prompt_text().chars().count();
    let limit = prompt_limit(editor.model).map_or(String::new(), |l| format!("/{l}"));
    let title = format!(" Prompt {chars}{limit} ");
    let focused = editor.focus == EditorFocus::Prompt;
    let mut textarea = editor.prompt.clone();
    textarea.set_block(pane_block(&title, focused));
    textarea.set_cursor_line_style(Style::new());
    if !focused {
        textarea.set_cursor_style(Style::new());
    }
    if editor.focus == EditorFocus::Field(Field::Model) {
        // Choosing the model: the region's models, by family, with their prices.
        draw_model_list(editor, prices, frame, prompt_area);
    } else {
        frame.render_widget(&textarea, prompt_area);
    }
    if let Some(error) = prompt_error {
        frame.render_widget(
            Paragraph::new(sanitize(&error.message))
                .style(Style::new().fg(Color::Red))
                .wrap(Wrap { trim: true }),
            error_area,
        );
    }

    let mut lines = Vec::new();
    for field in editor.visible_fields() {
        let focused = editor.focus == EditorFocus::Field(field);
        let value = editor.display_value(field);
        let value = if field.is_choice() {
            format!("‹ {} ›", sanitize(&value))
        } else {
            format!("{}{}", sanitize(&value), if focused { "▏" } else { "" })
        };
        let label_style = if focused {
            Style::new().fg(Color::Cyan).bold()
        } else {
            Style::new().fg(Color::DarkGray)
        };
        let value_style = if focused {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        let mut spans = vec![
            Span::styled(format!("{:<16}", field.label()), label_style),
            Span::styled(value, value_style),
        ];
        // What an empty field means, greyed: the catalogue's default for the model.
        if let Some(default) = editor.default_hint(field) {
            let gap = if field.is_choice() { " " } else { "" };
            spans.push(Span::styled(
                format!("{gap}{default}"),
                Style::new().fg(Color::DarkGray),
            ));
        }
        if focused && field == Field::Size && !editor.size_tokens().is_empty() {
            let tokens: Vec<&str> = editor.size_tokens().iter().map(|t| t.as_str()).collect();
            spans.push(Span::styled(
                format!("  ←/→ {}", tokens.join(" ")),
                Style::new().fg(Color::DarkGray),
            ));
        }
        lines.push(Line::from(spans));
        if let Some(error) = editor.error_for(field.spec_name()) {
            lines.push(Line::styled(
                format!("  ↳ {}", sanitize(&error.message)),
                Style::new().fg(Color::Red),
            ));
        }
    }
    // Errors about fields the form does not show (e.g. one from the fork's spec).
    let shown: Vec<&str> = editor
        .visible_fields()
        .iter()
        .map(|f| f.spec_name())
        .collect();
    for error in editor
        .errors
        .iter()
        .filter(|e| e.field != "prompt" && !shown.contains(&e.field.as_str()))
    {
        lines.push(Line::styled(
            sanitize(&error.to_string()),
            Style::new().fg(Color::Red),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(cost_line(editor, price));
    let status = if editor.submitting {
        Line::styled(
            "checking files and queueing…",
            Style::new().fg(Color::Yellow),
        )
    } else if editor.is_valid() {
        Line::styled("valid · Ctrl-s submits", Style::new().fg(Color::Green))
    } else {
        Line::styled(
            format!("{} to fix before submitting", editor.errors.len()),
            Style::new().fg(Color::Red),
        )
    };
    lines.push(status);
    if let Some(hint) = editor.hint {
        lines.push(Line::styled(hint, Style::new().fg(Color::Yellow)));
    }
    let form_focused = editor.focus != EditorFocus::Prompt;
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block(" Parameters ", form_focused))
            .wrap(Wrap { trim: false }),
        right,
    );
}

/// The models of the editor's region grouped under their family line, the chosen one
/// marked, each with its price per image; scrolled to keep the chosen one in view.
fn draw_model_list(editor: &Editor, prices: &Prices, frame: &mut Frame, area: Rect) {
    let block = pane_block(&format!(" Models · {} ", editor.region.id()), true);
    let inner = block.inner(area);
    let width = usize::from(inner.width);
    let mut lines: Vec<Line> = Vec::new();
    let mut chosen_line = 0;
    let mut group = "";
    for model in model_choices(editor.region) {
        let entry = model.entry();
        if entry.group != group {
            group = entry.group;
            lines.push(Line::styled(
                group.to_string(),
                Style::new().fg(Color::Cyan).bold(),
            ));
        }
        let price = prices
            .per_image_in(model, editor.region)
            .map_or("?".to_string(), |p| format!("{p:.2}"));
        let chosen = model == editor.model;
        let id = format!("{} {}", if chosen { "›" } else { " " }, model.id());
        let pad = width.saturating_sub(id.chars().count() + price.chars().count() + 1);
        let text = format!("{id}{} {price}", " ".repeat(pad));
        if chosen {
            chosen_line = lines.len();
            lines.push(Line::styled(
                text,
                Style::new().add_modifier(Modifier::REVERSED),
            ));
        } else {
            lines.push(Line::raw(text));
        }
    }
    let height = usize::from(inner.height).max(1);
    let scroll = chosen_line.saturating_sub(height.saturating_sub(2) / 2);
    let scroll = scroll.min(lines.len().saturating_sub(height));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        area,
    );
}

/// What the job being written will cost: `n x price = total CNY`.
fn cost_line(editor: &Editor, price: Option<f64>) -> Line<'static> {
    let (spec, _) = editor.build();
    let n = spec.image_count();
    let text = match price {
        Some(price) => format!("cost {n} x {price:.2} = {:.2} CNY", f64::from(n) * price),
        None => format!("cost {n} x ? (no price known for {})", spec.model.id()),
    };
    Line::styled(text, Style::new().fg(Color::Gray))
}

fn draw_footer(state: &AppState, frame: &mut Frame, area: Rect) {
    let hints = match state.mode {
        Mode::Editor => "Ctrl-s submit · Esc leave · Tab next field · ←/→ choice",
        Mode::Search => "type to search prompts · Enter keep · Esc clear",
        Mode::Help => "Esc close help · j/k scroll",
        Mode::Confirm(_) => "y yes · n no",
        Mode::Stats => "Esc back to the jobs",
        Mode::Sweep => "type how many seeds · Enter queue · Esc cancel",
        Mode::Gallery => {
            "hjkl/arrows move · Enter full screen · * star · f starred only · e fork · y copy path · Esc back"
        }
        _ => "? help · n new · e fork · / search · 1-6 tabs · Enter full screen · q quit",
    };
    frame.render_widget(Line::from(format!(" {hints}")).fg(Color::DarkGray), area);
}

/// The help overlay, laid out by `KeyMap::help_layout` (its lines and columns sized to
/// the content and the screen), from line `scroll` when it does not all fit.
fn draw_help(keys: &KeyMap, scroll: usize, frame: &mut Frame, area: Rect) {
    let help = keys.help_layout(area);
    let key_width = help.key_width;
    let lines: Vec<Line> = help
        .lines
        .iter()
        .map(|line| match line {
            HelpLine::Title(title) => Line::styled(*title, Style::new().fg(Color::Cyan).bold()),
            HelpLine::Entry { keys, help } => Line::from(vec![
                Span::styled(format!("  {keys:<key_width$} "), Style::new().bold()),
                Span::raw(help.clone()),
            ]),
        })
        .collect();
    let first = scroll.min(help.overflow);
    // A blank cell after the last column, so no text touches the border.
    let inner_width = help.columns * (help.column_width + 1);
    let popup = area.centered(
        Constraint::Length((inner_width as u16).saturating_add(2)),
        Constraint::Length((help.rows as u16).saturating_add(2)),
    );
    frame.render_widget(Clear, popup);
    let closing = if help.overflow > 0 {
        format!(" j/k scroll {first}/{} · Esc closes ", help.overflow)
    } else {
        " Esc closes ".to_string()
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Keys ")
        .title_bottom(closing);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    for (i, chunk) in lines[first..]
        .chunks(help.rows.max(1))
        .take(help.columns)
        .enumerate()
    {
        let x = inner.x + (i * (help.column_width + 1)) as u16;
        let column =
            Rect::new(x, inner.y, help.column_width as u16, inner.height).intersection(inner);
        frame.render_widget(Paragraph::new(chunk.to_vec()), column);
    }
}

fn draw_confirm(question: &Confirm, frame: &mut Frame, area: Rect) {
    let text = match question {
        Confirm::Delete(id) => format!("Delete job {id} and its images?"),
        Confirm::CancelBilled(id) => {
            format!("Job {id} is already at the service: it may be billed. Cancel it anyway?")
        }
        Confirm::Quit => "The editor holds an unsent prompt. Quit anyway?".to_string(),
    };
    let width = 54.min(area.width);
    // The question wrapped to the popup, a blank line, the answers, and the border.
    let question_lines = (text.chars().count() as u16).div_ceil(width.saturating_sub(4).max(1));
    let popup = area.centered(
        Constraint::Length(width),
        Constraint::Length(question_lines + 4),
    );
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(" Confirm ")
        .border_style(Style::new().fg(Color::Yellow));
    frame.render_widget(
        Paragraph::new(vec![
            Line::raw(text),
            Line::raw(""),
            Line::raw("y yes · n no").fg(Color::DarkGray),
        ])
        .block(block)
        .centered()
        .wrap(Wrap { trim: true }),
        popup,
    );
}

/// Toasts stack up from the bottom right of the body, over the least important rows.
fn draw_toasts(state: &AppState, frame: &mut Frame, area: Rect) {
    let mut y = area.bottom();
    for toast in state.toasts.iter().rev().filter(|t| t.until > state.now) {
        let text = format!(" {} ", sanitize(&toast.text));
        let width = (text.chars().count() as u16).min(area.width.saturating_sub(2));
        if width == 0 || y <= area.y + 1 {
            break;
        }
        y -= 1;
        let rect = Rect::new(area.right().saturating_sub(width + 1), y, width, 1);
        let style = match toast.level {
            ToastLevel::Info => Style::new().fg(Color::Black).bg(Color::Green),
            ToastLevel::Error => Style::new().fg(Color::White).bg(Color::Red),
        };
        frame.render_widget(Clear, rect);
        frame.render_widget(Line::from(text).style(style), rect);
    }
}

/// Age as the list shows it: 3 characters at most (`45s`, `12m`, `3h`, `9d`).
fn age(now: OffsetDateTime, then: OffsetDateTime) -> String {
    short_duration((now - then).whole_seconds().max(0) as u64)
}

fn short_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Times in the detail (UTC, as stored): the clock time, with the date when it is not
/// today's.
fn clock(now: OffsetDateTime, at: OffsetDateTime) -> String {
    let time = format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second());
    if at.date() == now.date() {
        time
    } else {
        format!("{} {time}", at.date())
    }
}
