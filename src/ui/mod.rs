//! The dashboard: a ratatui front end on the store and the engine.
//!
//! - `state`: the view-model; `draw`: a pure function of it; `update`: events to state
//!   changes and commands; `keys`: the one key table; `editor`: the job editor.

pub mod draw;
pub mod editor;
pub mod keys;
pub mod state;
pub mod update;
