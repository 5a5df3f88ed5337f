//! Which service the engine talks to: the live one, or the simulator built into wandash
//! when there is no key and no base URL (so that wandash can be tried without an account).

use std::path::PathBuf;
use std::time::Duration;

use super::EngineError;
use crate::dashscope::{ApiKey, Client, Region};
use crate::simulator::{self, RunningSim, SimConfig};

#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub api_key: Option<ApiKey>,
    pub base_url: Option<String>,
    pub region: Region,
    /// The embedded simulator keeps its state in `data_dir/simulator.db`.
    pub data_dir: PathBuf,
    /// Task run time range of the embedded simulator.
    pub sim_latency: (Duration, Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    Live { base_url: String },
    Simulator { base_url: String },
}

impl BackendKind {
    /// What the dashboard and CLI show: `SIMULATOR` whenever results are not real.
    pub fn label(&self) -> &'static str {
        match self {
            BackendKind::Live { .. } => "LIVE",
            BackendKind::Simulator { .. } => "SIMULATOR",
        }
    }

    pub fn base_url(&self) -> &str {
        match self {
            BackendKind::Live { base_url } | BackendKind::Simulator { base_url } => base_url,
        }
    }
}

pub struct Backend {
    pub client: Client,
    pub kind: BackendKind,
    /// The embedded simulator, kept serving for as long as the backend lives.
    sim: Option<RunningSim>,
}

impl Backend {
    /// Stops the embedded simulator, if any (its state stays in the data directory).
    pub async fn shutdown(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}

/// A key picks the live service (the given base URL, else the region's); a base URL
/// without a key is an error; neither starts the simulator inside this process.
pub async fn connect(settings: BackendSettings) -> Result<Backend, EngineError> {
    let client_error = |e: crate::dashscope::ClientError| EngineError::Backend(e.to_string());
    match (settings.api_key, settings.base_url) {
        (Some(key), base_url) => {
            let base_url = base_url.unwrap_or_else(|| settings.region.base_url().to_string());
            let client = Client::new(&base_url, key).map_err(client_error)?;
            Ok(Backend {
                client,
                kind: BackendKind::Live { base_url },
                sim: None,
            })
        }
        (None, Some(_)) => Err(EngineError::MissingKey),
        (None, None) => {
            let state = settings.data_dir.join("simulator.db");
            let config = SimConfig {
                latency: settings.sim_latency,
                state: Some(state),
                ..SimConfig::default()
            };
            let sim = simulator::start(config).await.map_err(|e| {
                EngineError::Backend(format!("cannot start the built-in simulator: {e}"))
            })?;
            let base_url = sim.base_url();
            // The simulator takes any non-empty key; this one is not a secret.
            let client =
                Client::new(&base_url, ApiKey::new("simulator".into())).map_err(client_error)?;
            tracing::info!(%base_url, "no API key and no base URL: using the built-in simulator");
            Ok(Backend {
                client,
                kind: BackendKind::Simulator { base_url },
                sim: Some(sim),
            })
        }
    }
}
