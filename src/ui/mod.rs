//! The dashboard: a ratatui front end on the store and the engine.
//!
//! - `state`: the view-model; `draw`: a pure function of it; `update`: events to state
//!   changes and commands; `keys`: the one key table; `editor`: the job editor.
//! - `data`: a worker thread that fills the view-model from the store and applies the
//!   user's changes; `preview`: a worker that decodes and encodes images.
//! - `stats`: the `$` view of spend and free images, its state and its drawing.
//! - the studio: `mask` (the painter's pure logic), `painter` (`m`), `compare` (`Space`,
//!   `C`), `variations` (`s`, `E`), `studio` (their shared state, commands and worker).
//! - `gallery`: the grid of images (`v`), its state, keys and drawing; `thumbnails`: the
//!   workers that decode, scale and encode its tiles, most wanted first, cached.
//! - `event`: the one event type, which the workers send and the app loop receives.
//! - `app`: the terminal, the one event channel and the draw-when-dirty loop.

mod app;
pub mod compare;
pub mod data;
pub mod draw;
pub mod editor;
pub mod event;
pub mod gallery;
pub mod keys;
pub mod mask;
pub mod painter;
pub mod preview;
mod queue;
pub mod state;
pub mod stats;
pub mod studio;
pub mod thumbnails;
pub mod update;
pub mod variations;

pub use app::{Notify, UiError, UiOptions, run};
