//! The one event type of the dashboard. Everything that can change the screen arrives as an
//! `AppEvent` on one channel: the workers (`data`, `preview`) and the input and engine
//! tasks send them, the app loop (`app`) receives them. Living apart from the loop, it lets
//! the workers send events without importing the loop they report to.

use std::sync::Arc;

use ratatui::crossterm::event::Event;
use ratatui_image::protocol::Protocol;

use crate::engine::EngineEvent;
use crate::store::JobId;

use super::gallery::GallerySnapshot;
use super::state::ImageKey;
use super::studio::StudioEvent;
use super::update::{DataSnapshot, SubmitError};

/// Everything that can happen to the dashboard, on one channel.
pub enum AppEvent {
    /// A key, paste, mouse or resize event from the terminal.
    Input(Event),
    /// The terminal's input stream ended or failed.
    InputClosed(String),
    /// SIGTERM or SIGHUP: end as `q` does.
    Terminate,
    /// The data worker's answer to a list request (or to a change made elsewhere).
    Data(Box<DataSnapshot>),
    DataFailed(String),
    Submitted(Result<JobId, SubmitError>),
    /// A cancel, retry or delete finished: the message for a toast.
    ChangeDone(Result<String, String>),
    /// The image worker's encoding of a preview, or why it failed.
    Image(ImageKey, Result<Arc<Protocol>, String>),
    /// The data worker's window of the gallery.
    Gallery(Box<GallerySnapshot>),
    /// The thumbnail workers' encoding of a gallery tile, or why it failed.
    Thumbnail(ImageKey, Result<Arc<Protocol>, String>),
    Engine(EngineEvent),
    /// The `$` view's figures, or why they could not be read.
    Stats(Result<Box<crate::store::MoneyStats>, String>),
    /// A studio worker's answer: a picture, a saved mask, the jobs to compare.
    Studio(StudioEvent),
    /// A timer went off: a toast's time is up, or the idle redraw is due (ages move on).
    Tick,
}
