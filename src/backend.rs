//! Which service wandash talks to: the live one, or the simulator built into wandash
//! when there is no key and no base URL (so that wandash can be tried without an
//! account). Starting things lives here, not in the engine: the engine takes whatever
//! `Client` it is given and knows nothing of the simulator.

use std::path::PathBuf;
use std::time::Duration;

use crate::dashscope::{ApiKey, Client, ClientError, Region};
use crate::engine::EngineError;
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

/// The backend rule, for `connect` and for anyone who must know the answer without
/// connecting (the dashboard, when another process runs the engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// A key: the live service, at the given base URL or else the region's.
    Live(ApiKey),
    /// A base URL but no key: an error, since no service answers without one.
    MissingKey,
    /// Neither: the simulator inside this process.
    Simulator,
}

/// A key picks the live service; a base URL without a key is an error; neither picks the
/// built-in simulator.
pub fn choose(api_key: Option<ApiKey>, base_url: Option<&str>) -> Choice {
    match (api_key, base_url) {
        (Some(key), _) => Choice::Live(key),
        (None, Some(_)) => Choice::MissingKey,
        (None, None) => Choice::Simulator,
    }
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

/// Connects as `choose` decides; the simulator, when chosen, is started inside this
/// process and lives as long as the returned `Backend`.
pub async fn connect(settings: BackendSettings) -> Result<Backend, EngineError> {
    let client_error = |e: ClientError| EngineError::Backend(e.to_string());
    match choose(settings.api_key, settings.base_url.as_deref()) {
        Choice::MissingKey => Err(EngineError::MissingKey),
        Choice::Live(key) => {
            let base_url = settings
                .base_url
                .unwrap_or_else(|| settings.region.base_url().to_string());
            let client = Client::new(&base_url, key)
                .map_err(client_error)?
                .in_region(settings.region);
            Ok(Backend {
                client,
                kind: BackendKind::Live { base_url },
                sim: None,
            })
        }
        Choice::Simulator => {
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
            let client = Client::new(&base_url, ApiKey::new("simulator".into()))
                .map_err(client_error)?
                .in_region(settings.region);
            tracing::info!(%base_url, "no API key and no base URL: using the built-in simulator");
            Ok(Backend {
                client,
                kind: BackendKind::Simulator { base_url },
                sim: Some(sim),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_picks_the_live_service_with_or_without_a_base_url() {
        let key = ApiKey::new("k".into());
        assert_eq!(choose(Some(key.clone()), None), Choice::Live(key.clone()));
        assert_eq!(
            choose(Some(key.clone()), Some("http://127.0.0.1:9/api/v1")),
            Choice::Live(key)
        );
    }

    #[test]
    fn a_base_url_without_a_key_is_refused_rather_than_simulated() {
        assert_eq!(
            choose(None, Some("http://127.0.0.1:9/api/v1")),
            Choice::MissingKey
        );
    }

    #[test]
    fn neither_key_nor_base_url_picks_the_built_in_simulator() {
        assert_eq!(choose(None, None), Choice::Simulator);
    }
}
