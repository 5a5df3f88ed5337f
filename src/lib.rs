//! wandash: a terminal dashboard and durable job engine for DashScope's Tongyi Wanxiang
//! image models.
//!
//! - `backend`: which service to talk to (live, or the built-in simulator), and starting it.
//! - `dashscope`: the protocol (models, job specs, validation) and the HTTP client.
//! - `engine`: the scheduler that takes queued jobs to the service and images to disk.
//! - `intake`: the one way into the queue: every surface's jobs are checked here, all
//!   problems at once, before they are stored.
//! - `mcp`: `wandash mcp`, the Model Context Protocol server for AI assistants.
//! - `simulator`: a loopback server that speaks the same protocol, for tests and demos.
//! - `store`: the durable job store (SQLite) shared by the dashboard, CLI and engine.
//! - `text`: sanitising outside text before it is drawn.

pub mod backend;
pub mod cli;
pub mod config;
pub mod dashscope;
pub mod engine;
pub mod intake;
pub mod mcp;
pub mod simulator;
pub mod store;
pub mod text;
pub mod ui;
