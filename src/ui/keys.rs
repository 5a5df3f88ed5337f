//! The one key table: the handlers look keys up here and the help overlay lists it, so
//! help cannot disagree with what the keys do. The config's `[ui.keys]` rebinds actions
//! by name (`KeyMap::with_overrides`), and help shows the keys as rebound.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;

/// One line of the help overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpLine {
    /// A context's title.
    Title(&'static str),
    /// Keys (blank where a description goes on to another line) and what they do.
    Entry { keys: String, help: String },
}

/// The help overlay laid out for one screen size (`KeyMap::help_layout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpLayout {
    pub lines: Vec<HelpLine>,
    /// The longest key label, which every entry pads to.
    pub key_width: usize,
    pub column_width: usize,
    pub columns: usize,
    /// Lines in each column.
    pub rows: usize,
    /// Lines that do not fit on the screen: how far the help scrolls.
    pub overflow: usize,
}

/// Splits text into lines of at most `width` characters at spaces (a word longer than
/// the width gets a line of its own).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && needed > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The job list, detail and preview panes.
    Browse,
    /// Typing a search.
    Search,
    /// The editor, whichever part has focus.
    Editor,
    /// The editor with a choice field focused.
    Choice,
    /// The full-screen preview.
    FullPreview,
    /// A yes/no question (and the seed sweep's "how many?").
    Confirm,
    /// The help overlay.
    Help,
    /// The spend and free images view (`$`).
    Stats,
    /// The mask painter.
    Painter,
    /// Marked jobs side by side.
    Compare,
    /// The gallery's grid, or one of its images full screen.
    Gallery,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Browse => "Jobs",
            Context::Search => "Search",
            Context::Editor => "Editor",
            Context::Choice => "Editor choice fields",
            Context::FullPreview => "Full-screen preview",
            Context::Confirm => "Questions",
            Context::Help => "Help",
            Context::Stats => "Spend and free images",
            Context::Painter => "Mask painter",
            Context::Compare => "Compare",
            Context::Gallery => "Gallery",
        }
    }
}

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Down,
    Up,
    PageDown,
    PageUp,
    First,
    Last,
    NextPane,
    /// Tab index 0-5 (all, queued, active, succeeded, failed, cancelled).
    ShowTab(usize),
    StartSearch,
    NewJob,
    Fork,
    FullScreen,
    PrevImage,
    NextImage,
    Cancel,
    Retry,
    Delete,
    /// Pause the whole queue, or resume it when paused.
    TogglePause,
    /// Move the selected queued job one place towards being sent.
    QueueSooner,
    QueueLater,
    QueueTop,
    Copy,
    ShowStats,
    ShowHelp,
    Quit,
    Submit,
    Leave,
    NextField,
    PrevField,
    ChoicePrev,
    ChoiceNext,
    AcceptSearch,
    Yes,
    No,
    /// Studio: mark the job for compare, compare the marked, sweep seeds, edit the image,
    /// paint a mask on it.
    Mark,
    CompareMarked,
    SeedSweep,
    EditImage,
    PaintMask,
    /// Compare: the winner is column 0-3.
    PickWinner(usize),
    /// The painter's cursor and tools.
    Left,
    Right,
    Paint,
    ToggleErase,
    BrushBigger,
    BrushSmaller,
    Rectangle,
    Invert,
    ClearMask,
    SaveMask,
    /// Opens the gallery.
    Gallery,
    /// Stars or unstars an image.
    Star,
    /// The gallery shows only starred images, or all again.
    StarredOnly,
    /// The list shows only the jobs this user queued from this host, or everyone's again.
    MineOnly,
}

impl Action {
    /// The name `[ui.keys]` uses for the action (`new_job`, `tab_3`, ...).
    pub fn name(self) -> String {
        let name = match self {
            Action::ShowTab(i) => return format!("tab_{}", i + 1),
            Action::PickWinner(i) => return format!("winner_{}", i + 1),
            Action::Down => "down",
            Action::Up => "up",
            Action::PageDown => "page_down",
            Action::PageUp => "page_up",
            Action::First => "first",
            Action::Last => "last",
            Action::NextPane => "next_pane",
            Action::StartSearch => "search",
            Action::NewJob => "new_job",
            Action::Fork => "fork",
            Action::FullScreen => "full_screen",
            Action::PrevImage => "previous_image",
            Action::NextImage => "next_image",
            Action::Cancel => "cancel",
            Action::Retry => "retry",
            Action::Delete => "delete",
            Action::TogglePause => "pause",
            Action::QueueSooner => "move_up",
            Action::QueueLater => "move_down",
            Action::QueueTop => "move_to_top",
            Action::Copy => "copy",
            Action::ShowStats => "stats",
            Action::ShowHelp => "help",
            Action::Quit => "quit",
            Action::Submit => "submit",
            Action::Leave => "leave",
            Action::NextField => "next_field",
            Action::PrevField => "previous_field",
            Action::ChoicePrev => "previous_choice",
            Action::ChoiceNext => "next_choice",
            Action::AcceptSearch => "accept_search",
            Action::Yes => "yes",
            Action::No => "no",
            Action::Mark => "mark",
            Action::CompareMarked => "compare",
            Action::SeedSweep => "seed_sweep",
            Action::EditImage => "edit_image",
            Action::PaintMask => "paint_mask",
            Action::Left => "left",
            Action::Right => "right",
            Action::Paint => "paint",
            Action::ToggleErase => "erase",
            Action::BrushBigger => "brush_bigger",
            Action::BrushSmaller => "brush_smaller",
            Action::Rectangle => "rectangle",
            Action::Invert => "invert",
            Action::ClearMask => "clear_mask",
            Action::SaveMask => "save_mask",
            Action::Gallery => "gallery",
            Action::Star => "star",
            Action::StarredOnly => "starred_only",
            Action::MineOnly => "mine",
        };
        name.to_string()
    }
}

/// One key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key {
            code,
            modifiers: KeyModifiers::NONE,
        }
    }

    pub const fn ctrl(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            modifiers: KeyModifiers::CONTROL,
        }
    }

    pub const fn char(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    /// Reads a key as the config writes it: `q`, `G`, `ctrl-q`, `enter`, `esc`, `tab`,
    /// `shift-tab`, `space`, `up`, `down`, `left`, `right`, `home`, `end`, `pgup`, `pgdn`.
    pub fn parse(text: &str) -> Result<Key, String> {
        let lower = text.to_ascii_lowercase();
        let (ctrl, rest) = match lower.strip_prefix("ctrl-") {
            Some(rest) => (true, &text[text.len() - rest.len()..]),
            None => (false, text),
        };
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "shift-tab" | "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            _ => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_control() => {
                        KeyCode::Char(if ctrl { c.to_ascii_lowercase() } else { c })
                    }
                    _ => {
                        return Err(format!(
                            "`{text}` is not a key; write one character, ctrl-<character>, or one of enter, esc, tab, shift-tab, space, up, down, left, right, home, end, pgup, pgdn"
                        ));
                    }
                }
            }
        };
        let modifiers = if ctrl {
            KeyModifiers::CONTROL
        } else {
            KeyModifiers::NONE
        };
        Ok(Key { code, modifiers })
    }

    fn matches(&self, event: &KeyEvent) -> bool {
        // Shift is part of the character for letters and symbols (`G`, `?`), so it is
        // ignored for characters; every other modifier must match exactly.
        let wanted = self.modifiers - KeyModifiers::SHIFT;
        let got = event.modifiers - KeyModifiers::SHIFT;
        match (self.code, event.code) {
            (KeyCode::Char(a), KeyCode::Char(b)) => a == b && wanted == got,
            (KeyCode::BackTab, KeyCode::BackTab) => wanted == got,
            (a, b) => a == b && self.modifiers == event.modifiers,
        }
    }

    /// How help shows the key.
    pub fn label(&self) -> String {
        let name = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            other => format!("{other:?}"),
        };
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            format!("Ctrl-{name}")
        } else {
            name
        }
    }
}

/// Keys, the action they trigger where, and the help line.
#[derive(Debug, Clone)]
pub struct Binding {
    pub context: Context,
    pub keys: Vec<Key>,
    pub action: Action,
    pub help: &'static str,
}

/// The key table.
#[derive(Debug, Clone)]
pub struct KeyMap {
    pub bindings: Vec<Binding>,
}

impl KeyMap {
    /// The action bound to a key in a context.
    pub fn action(&self, context: Context, event: &KeyEvent) -> Option<Action> {
        self.bindings
            .iter()
            .find(|b| b.context == context && b.keys.iter().any(|k| k.matches(event)))
            .map(|b| b.action)
    }

    /// Help rows for one context: keys joined, and what they do. Neighbouring bindings
    /// with the same help text (the six tab keys) share one row.
    pub fn help_rows(&self, context: Context) -> Vec<(String, &'static str)> {
        let mut rows: Vec<(String, &'static str)> = Vec::new();
        for binding in self.bindings.iter().filter(|b| b.context == context) {
            let keys = binding
                .keys
                .iter()
                .map(Key::label)
                .collect::<Vec<_>>()
                .join(" ");
            match rows.last_mut() {
                Some((joined, help)) if *help == binding.help => {
                    joined.push(' ');
                    joined.push_str(&keys);
                }
                _ => rows.push((keys, binding.help)),
            }
        }
        rows
    }

    /// The default table with actions rebound by name (`quit = "ctrl-q"`): the key
    /// replaces the action's keys wherever the action is bound. Unknown action names and
    /// unreadable keys are errors that name them.
    pub fn with_overrides(
        overrides: &std::collections::BTreeMap<String, String>,
    ) -> Result<KeyMap, String> {
        let mut map = KeyMap::default();
        for (name, key_text) in overrides {
            let key = Key::parse(key_text).map_err(|e| format!("ui.keys.{name}: {e}"))?;
            let mut found = false;
            for binding in map.bindings.iter_mut().filter(|b| b.action.name() == *name) {
                binding.keys = vec![key];
                found = true;
            }
            if !found {
                let mut names: Vec<String> = map.bindings.iter().map(|b| b.action.name()).collect();
                names.dedup();
                return Err(format!(
                    "ui.keys.{name}: no such action; one of {}",
                    names.join(", ")
                ));
            }
        }
        Ok(map)
    }

    /// The help overlay for a screen of `area`: each column as wide as the longest key
    /// label plus the longest description, as many columns side by side as the screen
    /// takes and the lines need, descriptions wrapped when even one column is too wide,
    /// and what still does not fit counted in `overflow` (the help scrolls that far).
    /// Drawing draws it; key handling bounds the scroll with it.
    pub fn help_layout(&self, area: Rect) -> HelpLayout {
        let entries: Vec<(Context, Vec<(String, &'static str)>)> = KeyMap::contexts()
            .into_iter()
            .map(|context| (context, self.help_rows(context)))
            .filter(|(_, rows)| !rows.is_empty())
            .collect();
        let widest = |width: fn(&(String, &'static str)) -> usize| {
            entries
                .iter()
                .flat_map(|(_, rows)| rows.iter().map(width))
                .max()
                .unwrap_or(0)
        };
        let key_width = widest(|(keys, _)| keys.chars().count());
        let help_width = widest(|(_, help)| help.chars().count());
        // "  keys help": an indent, the keys padded, a space, the description.
        let lead = 2 + key_width + 1;
        // The popup keeps a cell of the screen on each side, and its border one more;
        // each column is followed by a blank cell.
        let room_width = usize::from(area.width.saturating_sub(5)).max(1);
        let room_height = usize::from(area.height.saturating_sub(4)).max(1);
        let column_width = (lead + help_width).min(room_width);
        let wrap_width = column_width.saturating_sub(lead).max(10);

        let mut lines = Vec::new();
        for (context, rows) in &entries {
            lines.push(HelpLine::Title(context.title()));
            for (keys, help) in rows {
                for (i, part) in wrap_words(help, wrap_width).into_iter().enumerate() {
                    lines.push(HelpLine::Entry {
                        keys: if i == 0 { keys.clone() } else { String::new() },
                        help: part,
                    });
                }
            }
        }
        let fit_columns = (room_width / (column_width + 1)).max(1);
        let columns = fit_columns.min(lines.len().div_ceil(room_height).max(1));
        HelpLayout {
            key_width,
            column_width,
            columns,
            rows: lines.len().div_ceil(columns).min(room_height),
            overflow: lines.len().saturating_sub(columns * room_height),
            lines,
        }
    }

    /// The contexts in the order help lists them.
    pub fn contexts() -> [Context; 11] {
        [
            Context::Browse,
            Context::Search,
            Context::Editor,
            Context::Choice,
            Context::FullPreview,
            Context::Painter,
            Context::Compare,
            Context::Gallery,
            Context::Confirm,
            Context::Help,
            Context::Stats,
        ]
    }
}

impl Default for KeyMap {
    // One line per binding, so the table reads as the help it produces.
    #[rustfmt::skip]
    fn default() -> Self {
        use Action::*;
        use Context::*;
        use KeyCode::{BackTab, Down, End, Enter, Esc, Home, Left, PageDown, PageUp, Right, Tab, Up};
        let b = |context, keys: &[Key], action, help| Binding { context, keys: keys.to_vec(), action, help };
        let k = Key::plain;
        let c = Key::char;
        let mut bindings = vec![
            b(Browse, &[c('j'), k(Down)], Action::Down, "next job"),
            b(Browse, &[c('k'), k(Up)], Action::Up, "previous job"),
            b(Browse, &[k(PageDown), Key::ctrl('d')], Action::PageDown, "page down"),
            b(Browse, &[k(PageUp), Key::ctrl('u')], Action::PageUp, "page up"),
            b(Browse, &[c('g'), k(Home)], First, "newest job"),
            b(Browse, &[c('G'), k(End)], Last, "oldest job"),
            b(Browse, &[k(Tab)], NextPane, "next pane"),
        ];
        for (i, digit) in ['1', '2', '3', '4', '5', '6'].into_iter().enumerate() {
            bindings.push(b(Browse, &[c(digit)], ShowTab(i), "state tab, as numbered in the bar"));
        }
        bindings.extend([
            b(Browse, &[c('/')], StartSearch, "search prompts"),
            b(Browse, &[c('o')], MineOnly, "own jobs only (user@host) / all"),
            b(Browse, &[c('n')], NewJob, "new job (editor)"),
            b(Browse, &[c('e')], Fork, "fork the job into the editor"),
            b(Browse, &[k(Enter)], FullScreen, "full-screen preview"),
            b(Browse, &[c('[')], PrevImage, "previous image"),
            b(Browse, &[c(']')], NextImage, "next image"),
            b(Browse, &[c('c')], Cancel, "cancel the job"),
            b(Browse, &[c('r')], Retry, "retry the job"),
            b(Browse, &[c('d')], Delete, "delete the job and its images (asks)"),
            b(Browse, &[c('y')], Copy, "copy prompt (image path in preview)"),
            b(Browse, &[c('$')], ShowStats, "spend and free images per model"),
            b(Browse, &[c('p')], TogglePause, "pause / resume the whole queue"),
            b(Browse, &[c('K')], QueueSooner, "move a queued job up: sent sooner"),
            b(Browse, &[c('J')], QueueLater, "move a queued job down: sent later"),
            b(Browse, &[c('T')], QueueTop, "send a queued job next"),
            b(Browse, &[c('v')], Action::Gallery, "gallery (of the job, from detail/preview)"),
            b(Browse, &[c('*')], Star, "star / unstar the image shown"),
            b(Browse, &[c('?')], ShowHelp, "this help"),
            b(Browse, &[c('q')], Quit, "quit"),
            b(Search, &[k(Enter)], AcceptSearch, "keep the search"),
            b(Search, &[k(Esc)], Leave, "clear the search"),
            b(Editor, &[Key::ctrl('s')], Submit, "submit (only a valid job)"),
            b(Editor, &[k(Esc)], Leave, "leave (the draft is kept)"),
            b(Editor, &[k(Tab)], NextField, "next field"),
            b(Editor, &[k(BackTab)], PrevField, "previous field"),
            b(Choice, &[k(Left)], ChoicePrev, "previous choice"),
            b(Choice, &[k(Right), c(' ')], ChoiceNext, "next choice"),
            b(FullPreview, &[c('['), k(Left)], PrevImage, "previous image"),
            b(FullPreview, &[c(']'), k(Right)], NextImage, "next image"),
            b(FullPreview, &[c('*')], Star, "star / unstar the image"),
            b(FullPreview, &[k(Esc), k(Enter), c('q')], Leave, "back"),
            // Left and right share a help row, up and down another; in a full-screen
            // image they step through the gallery's images.
            b(Context::Gallery, &[c('h'), k(Left)], Action::Left, "previous / next image"),
            b(Context::Gallery, &[c('l'), k(Right)], Action::Right, "previous / next image"),
            b(Context::Gallery, &[c('k'), k(Up)], Action::Up, "row up / down"),
            b(Context::Gallery, &[c('j'), k(Down)], Action::Down, "row up / down"),
            b(Context::Gallery, &[k(PageDown), Key::ctrl('d')], Action::PageDown, "page down"),
            b(Context::Gallery, &[k(PageUp), Key::ctrl('u')], Action::PageUp, "page up"),
            b(Context::Gallery, &[c('g'), k(Home)], First, "newest image"),
            b(Context::Gallery, &[c('G'), k(End)], Last, "oldest image"),
            b(Context::Gallery, &[k(Enter)], FullScreen, "full screen / back to the grid"),
            b(Context::Gallery, &[c('*')], Star, "star / unstar the image"),
            b(Context::Gallery, &[c('f')], StarredOnly, "starred images only / all"),
            b(Context::Gallery, &[c('e')], Fork, "fork the job with this image's seed"),
            b(Context::Gallery, &[c('y')], Copy, "copy the image's path (OSC 52)"),
            b(Context::Gallery, &[c('?')], ShowHelp, "this help"),
            b(Context::Gallery, &[k(Esc), c('v'), c('q')], Leave, "back (to the grid, then the jobs)"),
            b(Confirm, &[c('y'), k(Enter)], Yes, "yes"),
            b(Confirm, &[c('n'), k(Esc)], No, "no"),
            b(Help, &[c('j'), k(Down)], Action::Down, "scroll down (when it does not fit)"),
            b(Help, &[c('k'), k(Up)], Action::Up, "scroll up"),
            b(Help, &[k(Esc), c('?'), c('q')], Leave, "close help"),
            b(Stats, &[k(Esc), c('$'), c('q')], Leave, "back to the jobs"),
        ]);
        bindings.extend(studio_bindings());
        KeyMap { bindings }
    }
}

/// The studio's keys: compare, variations and the mask painter.
#[rustfmt::skip]
fn studio_bindings() -> Vec<Binding> {
    use Action::*;
    use Context::*;
    use KeyCode::{Down as DownKey, Enter, Esc, Left as LeftKey, Right as RightKey, Up as UpKey};
    let b = |context, keys: &[Key], action, help| Binding { context, keys: keys.to_vec(), action, help };
    let k = Key::plain;
    let c = Key::char;
    let mut bindings = vec![
        b(Browse, &[c(' ')], Mark, "mark the job for compare (2-4)"),
        b(Browse, &[c('C')], CompareMarked, "compare the marked jobs"),
        b(Browse, &[c('s')], SeedSweep, "seed sweep: queue again, new seeds"),
        b(Browse, &[c('E')], EditImage, "edit this image (editor)"),
        b(Browse, &[c('m')], PaintMask, "paint a mask on this image"),
        b(FullPreview, &[c('E')], EditImage, "edit this image (editor)"),
        b(FullPreview, &[c('m')], PaintMask, "paint a mask on this image"),
        b(Painter, &[c('h'), k(LeftKey)], Left, "move the brush"),
        b(Painter, &[c('l'), k(RightKey)], Right, "move the brush"),
        b(Painter, &[c('k'), k(UpKey)], Up, "move the brush"),
        b(Painter, &[c('j'), k(DownKey)], Down, "move the brush"),
        b(Painter, &[c(' ')], Paint, "paint (drag with mouse on)"),
        b(Painter, &[c('x')], ToggleErase, "paint / erase"),
        b(Painter, &[c('+'), c('=')], BrushBigger, "brush size"),
        b(Painter, &[c('-')], BrushSmaller, "brush size"),
        b(Painter, &[c('r')], Rectangle, "rectangle: last two points"),
        b(Painter, &[c('i')], Invert, "invert the mask"),
        b(Painter, &[c('c')], ClearMask, "clear the mask"),
        b(Painter, &[k(Enter)], SaveMask, "save; inpainting job"),
        b(Painter, &[k(Esc)], Leave, "leave without saving"),
    ];
    for (i, digit) in ['1', '2', '3', '4'].into_iter().enumerate() {
        bindings.push(b(Compare, &[c(digit)], PickWinner(i), "pick the winner (stars it)"));
    }
    bindings.extend([
        b(Compare, &[c('['), k(LeftKey)], PrevImage, "previous / next image"),
        b(Compare, &[c(']'), k(RightKey)], NextImage, "previous / next image"),
        b(Compare, &[k(Esc), c('q')], Leave, "back"),
    ]);
    bindings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn a_rebound_action_answers_its_new_key_only_and_help_shows_it() {
        let overrides = [
            ("quit".to_string(), "ctrl-q".to_string()),
            ("tab_3".to_string(), "a".to_string()),
        ];
        let map = KeyMap::with_overrides(&overrides.into_iter().collect()).unwrap();
        let ctrl_q = press(KeyCode::Char('q'), KeyModifiers::CONTROL);
        assert_eq!(map.action(Context::Browse, &ctrl_q), Some(Action::Quit));
        assert_eq!(
            map.action(
                Context::Browse,
                &press(KeyCode::Char('q'), KeyModifiers::NONE)
            ),
            None
        );
        assert_eq!(
            map.action(
                Context::Browse,
                &press(KeyCode::Char('a'), KeyModifiers::NONE)
            ),
            Some(Action::ShowTab(2))
        );
        let help = map.help_rows(Context::Browse);
        assert!(
            help.iter()
                .any(|(keys, what)| keys == "Ctrl-q" && *what == "quit"),
            "{help:?}"
        );
    }

    #[test]
    fn an_unknown_action_or_key_is_named() {
        let bad_action = [("launch".to_string(), "x".to_string())]
            .into_iter()
            .collect();
        let err = KeyMap::with_overrides(&bad_action).unwrap_err();
        assert!(
            err.starts_with("ui.keys.launch: no such action") && err.contains("new_job"),
            "{err}"
        );
        let bad_key = [("quit".to_string(), "ctrl-".to_string())]
            .into_iter()
            .collect();
        let err = KeyMap::with_overrides(&bad_key).unwrap_err();
        assert!(
            err.starts_with("ui.keys.quit: `ctrl-` is not a key"),
            "{err}"
        );
    }

    #[test]
    fn shifted_characters_match_and_ctrl_does_not_leak() {
        let map = KeyMap::default();
        let big_g = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(map.action(Context::Browse, &big_g), Some(Action::Last));
        let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
        assert_eq!(map.action(Context::Editor, &ctrl_s), Some(Action::Submit));
        let plain_s = KeyEvent::from(KeyCode::Char('s'));
        assert_eq!(map.action(Context::Editor, &plain_s), None);
    }

    #[test]
    fn help_wraps_descriptions_on_a_narrow_screen_instead_of_cutting_them() {
        let map = KeyMap::default();
        let narrow = map.help_layout(Rect::new(0, 0, 40, 100));
        assert_eq!(narrow.columns, 1);
        for line in &narrow.lines {
            if let HelpLine::Entry { help, .. } = line {
                assert!(
                    2 + narrow.key_width + 1 + help.chars().count() <= narrow.column_width,
                    "{help:?} is wider than its column"
                );
            }
        }
        let words = |text: &str| text.split(' ').map(str::to_string).collect::<Vec<_>>();
        let shown: Vec<String> = narrow
            .lines
            .iter()
            .filter_map(|line| match line {
                HelpLine::Entry { help, .. } => Some(words(help)),
                HelpLine::Title(_) => None,
            })
            .flatten()
            .collect();
        let all: Vec<String> = KeyMap::contexts()
            .into_iter()
            .flat_map(|context| map.help_rows(context))
            .flat_map(|(_, help)| words(help))
            .collect();
        assert_eq!(shown, all, "every word of every description is there");
        // A wide screen takes all of it without scrolling (in two columns: the table has
        // grown past one 70-line column).
        let wide = map.help_layout(Rect::new(0, 0, 250, 70));
        assert_eq!((wide.overflow, wide.columns), (0, 2));
    }
}
