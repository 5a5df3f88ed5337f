//! The one key table: the handlers look keys up here and the help overlay lists it, so
//! help cannot disagree with what the keys do. It is plain data, so a config file can
//! replace entries later.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

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
    /// A yes/no question.
    Confirm,
    /// The help overlay.
    Help,
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
    Copy,
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

    /// The contexts in the order help lists them.
    pub fn contexts() -> [Context; 7] {
        [
            Context::Browse,
            Context::Search,
            Context::Editor,
            Context::Choice,
            Context::FullPreview,
            Context::Confirm,
            Context::Help,
        ]
    }
}

impl Default for KeyMap {
    fn default() -> Self {
        use Action::*;
        use Context::*;
        let b = |context, keys: &[Key], action, help| Binding {
            context,
            keys: keys.to_vec(),
            action,
            help,
        };
        let mut bindings = vec![
            b(
                Browse,
                &[Key::char('j'), Key::plain(KeyCode::Down)],
                Down,
                "next job",
            ),
            b(
                Browse,
                &[Key::char('k'), Key::plain(KeyCode::Up)],
                Up,
                "previous job",
            ),
            b(
                Browse,
                &[Key::plain(KeyCode::PageDown), Key::ctrl('d')],
                PageDown,
                "page down",
            ),
            b(
                Browse,
                &[Key::plain(KeyCode::PageUp), Key::ctrl('u')],
                PageUp,
                "page up",
            ),
            b(
                Browse,
                &[Key::char('g'), Key::plain(KeyCode::Home)],
                First,
                "newest job",
            ),
            b(
                Browse,
                &[Key::char('G'), Key::plain(KeyCode::End)],
                Last,
                "oldest job",
            ),
            b(Browse, &[Key::plain(KeyCode::Tab)], NextPane, "next pane"),
        ];
        for (i, c) in ['1', '2', '3', '4', '5', '6'].into_iter().enumerate() {
            let help = "state tab, as numbered in the bar";
            bindings.push(b(Browse, &[Key::char(c)], ShowTab(i), help));
        }
        bindings.extend([
            b(Browse, &[Key::char('/')], StartSearch, "search prompts"),
            b(Browse, &[Key::char('n')], NewJob, "new job (editor)"),
            b(
                Browse,
                &[Key::char('e')],
                Fork,
                "fork the job into the editor",
            ),
            b(
                Browse,
                &[Key::plain(KeyCode::Enter)],
                FullScreen,
                "full-screen preview",
            ),
            b(Browse, &[Key::char('[')], PrevImage, "previous image"),
            b(Browse, &[Key::char(']')], NextImage, "next image"),
            b(Browse, &[Key::char('c')], Cancel, "cancel the job"),
            b(Browse, &[Key::char('r')], Retry, "retry the job"),
            b(Browse, &[Key::char('d')], Delete, "delete the job (asks)"),
            b(
                Browse,
                &[Key::char('y')],
                Copy,
                "copy prompt (image path in preview)",
            ),
            b(Browse, &[Key::char('?')], ShowHelp, "this help"),
            b(Browse, &[Key::char('q')], Quit, "quit"),
            b(
                Search,
                &[Key::plain(KeyCode::Enter)],
                AcceptSearch,
                "keep the search",
            ),
            b(
                Search,
                &[Key::plain(KeyCode::Esc)],
                Leave,
                "clear the search",
            ),
            b(
                Editor,
                &[Key::ctrl('s')],
                Submit,
                "submit (only a valid job)",
            ),
            b(
                Editor,
                &[Key::plain(KeyCode::Esc)],
                Leave,
                "leave (the draft is kept)",
            ),
            b(Editor, &[Key::plain(KeyCode::Tab)], NextField, "next field"),
            b(
                Editor,
                &[Key::plain(KeyCode::BackTab)],
                PrevField,
                "previous field",
            ),
            b(
                Choice,
                &[Key::plain(KeyCode::Left)],
                ChoicePrev,
                "previous choice",
            ),
            b(
                Choice,
                &[Key::plain(KeyCode::Right), Key::char(' ')],
                ChoiceNext,
                "next choice",
            ),
            b(
                FullPreview,
                &[Key::char('['), Key::plain(KeyCode::Left)],
                PrevImage,
                "previous image",
            ),
            b(
                FullPreview,
                &[Key::char(']'), Key::plain(KeyCode::Right)],
                NextImage,
                "next image",
            ),
            b(
                FullPreview,
                &[
                    Key::plain(KeyCode::Esc),
                    Key::plain(KeyCode::Enter),
                    Key::char('q'),
                ],
                Leave,
                "back",
            ),
            b(
                Confirm,
                &[Key::char('y'), Key::plain(KeyCode::Enter)],
                Yes,
                "yes",
            ),
            b(
                Confirm,
                &[Key::char('n'), Key::plain(KeyCode::Esc)],
                No,
                "no",
            ),
            b(
                Help,
                &[Key::plain(KeyCode::Esc), Key::char('?'), Key::char('q')],
                Leave,
                "close help",
            ),
        ]);
        KeyMap { bindings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
