//! A loopback DashScope: a real HTTP server on 127.0.0.1 that speaks the protocol in
//! API.md closely enough that a client cannot tell it from the service.
//!
//! Answers are built by hand from API.md (never from `dashscope::wire`), so the simulator
//! is an independent check of the client; create requests are judged with the shared
//! `JobSpec::from_wire` + `validate_all` so the rules exist once.
//!
//! - `tasks`: one task and how its status follows from the clock.
//! - `state`: tasks, uploads, limits, the clock and the counters.
//! - `generation`: the messages endpoints, image-generation and multimodal-generation.
//! - `routes`: the HTTP surface (`/api/v1`, the upload host, result images, `/__sim`).
//! - `quotas`: the account's limits per model (`/api/v1/quotas`), as enforced.
//! - `render`: the PNGs, generated or transformed from the inputs.
//! - `store`: the optional SQLite file that lets a restarted simulator keep its tasks.
//! - `cli`: `wandash sim`.

mod cli;
mod generation;
mod quotas;
mod render;
mod routes;
mod state;
mod store;
mod tasks;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::dashscope::{Model, ModelLimits};

pub use cli::{SimArgs, run_cli};

/// How the simulator behaves. `SimConfig::default()` is the documented service.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// `Some(k)`: only `Bearer k` passes; `None`: any non-empty key passes.
    pub key: Option<String>,
    /// Range of a task's run time, submit to end; drawn deterministically from the task id.
    pub latency: (Duration, Duration),
    /// After this a task reads UNKNOWN and its image URLs answer 404.
    pub ttl: Duration,
    /// Overrides of `Model::default_limits()`.
    pub limits: HashMap<Model, ModelLimits>,
    pub faults: Faults,
    /// SQLite file: tasks, images and uploads survive a restart.
    pub state: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            key: None,
            latency: (Duration::from_millis(200), Duration::from_secs(2)),
            ttl: Duration::from_secs(24 * 3600),
            limits: HashMap::new(),
            faults: Faults::default(),
            state: None,
        }
    }
}

/// Fault rates, each the chance (0.0 to 1.0) that one call or task is hit.
/// Also the JSON body of `POST /__sim/faults` (missing fields read as 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// `/api/v1` calls answered 500 InternalError (before they take effect).
    pub http_500_rate: f64,
    /// `/api/v1` calls answered 503 ModelUnavailable (before they take effect).
    pub http_503_rate: f64,
    /// `/api/v1` calls and result downloads whose connection is closed without an answer.
    /// The call takes effect first (a create still creates its task), like a lost answer.
    pub reset_rate: f64,
    /// `/api/v1` calls answered only after `slow_delay`. They take effect at once, even if
    /// the client gives up meanwhile (a create still creates its task), like a late answer.
    pub slow_rate: f64,
    #[serde(with = "millis")]
    pub slow_delay: Duration,
    /// Tasks (with n >= 2) where some, never all, images fail with InternalError.Algo.
    pub partial_failure_rate: f64,
    /// Tasks that end FAILED with InternalError.Algo.
    pub task_failure_rate: f64,
    /// Seed of the fault dice, so a test run can be repeated.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            http_500_rate: 0.0,
            http_503_rate: 0.0,
            reset_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_secs(3),
            partial_failure_rate: 0.0,
            task_failure_rate: 0.0,
            seed: 0,
        }
    }
}

/// `slow_delay` travels as `slow_delay_ms` would: whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the simulator listens on loopback only; {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("bad simulator setting: {0}")]
    Config(String),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// A simulator serving in the background; dropping it without `shutdown` leaves it
/// serving until the runtime ends.
pub struct RunningSim {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), std::io::Error>>,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT/api/v1`, the base URL a client is given.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets answers in progress finish, and returns when the server is gone.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Ok(Err(err)) = self.server.await {
            tracing::warn!("simulator stopped with an error: {err}");
        }
    }
}

/// Binds and starts serving; returns once the port is open.
pub async fn start(config: SimConfig) -> Result<RunningSim, SimError> {
    if !config.listen.ip().is_loopback() {
        return Err(SimError::NotLoopback(config.listen));
    }
    let (lo, hi) = config.latency;
    if lo > hi {
        return Err(SimError::Config(format!(
            "latency range {lo:?}..{hi:?} is empty"
        )));
    }
    for (model, limits) in &config.limits {
        if limits.submit_per_second.is_nan()
            || limits.submit_per_second <= 0.0
            || limits.in_flight == 0
        {
            return Err(SimError::Config(format!(
                "limits for {model} must be above zero (rate {}, in flight {})",
                limits.submit_per_second, limits.in_flight
            )));
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;
    let sim = Arc::new(state::Sim::open(config, addr).await?);
    sim.resume();
    let app = routes::router(sim);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningSim { addr, stop, server })
}
