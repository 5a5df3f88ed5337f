//! The queue keys: `p` pauses or resumes the whole queue, `K` / `J` / `T` move the
//! selected queued job up, down or to the top of the send order. Like every handler they
//! only change the view and return commands; the data worker writes to the store.

use super::keys::Action;
use super::state::{AppState, JobState, Tab, ToastLevel, state_label};
use super::update::Command;
use crate::store::QueueStep;

impl AppState {
    pub(super) fn queue_action(&mut self, action: Action) -> Vec<Command> {
        if action == Action::TogglePause {
            return vec![if self.header.pauses.all {
                Command::Resume
            } else {
                Command::Pause
            }];
        }
        let Some(row) = self.list.selected_row() else {
            return Vec::new();
        };
        let id = row.id;
        if row.state != JobState::Queued {
            self.toast(
                ToastLevel::Info,
                format!(
                    "job {id} is {}; only a queued job can be moved in the queue",
                    state_label(row.state)
                ),
            );
            return Vec::new();
        }
        let (command, position) = match action {
            Action::QueueSooner => (
                Command::MoveInQueue(id, QueueStep::Earlier),
                self.list.selected.checked_sub(1),
            ),
            Action::QueueLater => (
                Command::MoveInQueue(id, QueueStep::Later),
                Some(self.list.selected + 1).filter(|p| *p < self.list.total),
            ),
            _ => (Command::MoveToTop(id), Some(0)),
        };
        // The queued tab lists the send order, so the row moves, and the selection stays
        // on it (its id, as always; the position here so the window follows at once).
        // Other tabs list by age: the row stays where it is.
        if self.tab != Tab::Queued {
            return vec![command];
        }
        match position {
            Some(position) => {
                self.list.selected = position;
                self.keep_selection_visible();
                vec![command, Command::Refresh]
            }
            // Already first (or last) in the list: the store would not move it either.
            None => Vec::new(),
        }
    }
}
