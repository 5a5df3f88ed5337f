//! What every command needs: the config, where the store and data live, the backend choice.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::dashscope::Region;

use super::GlobalArgs;
use super::failure::{CliResult, Failure};

pub struct Context {
    pub config: Config,
    pub db_path: PathBuf,
    /// Images, logs (and the embedded simulator's state) live here.
    pub data_dir: PathBuf,
    /// `--base-url` / `DASHSCOPE_BASE_URL`, else the config's `base_url`.
    pub base_url: Option<String>,
    pub region: Region,
    pub json: bool,
}

impl Context {
    pub fn new(global: &GlobalArgs, region: Option<Region>) -> CliResult<Context> {
        let config =
            Config::load(global.config.as_deref()).map_err(|e| Failure::usage(e.to_string()))?;
        let xdg_data = || {
            directories::ProjectDirs::from("", "", "wandash")
                .map(|d| d.data_dir().to_path_buf())
                .ok_or_else(|| {
                    Failure::usage("no home directory to keep the data in; pass --db PATH")
                })
        };
        let (db_path, data_dir) = match (&global.db, &config.data_dir) {
            (Some(db), Some(dir)) => (db.clone(), dir.clone()),
            (Some(db), None) => (db.clone(), parent_dir(db)),
            (None, Some(dir)) => (dir.join("wandash.db"), dir.clone()),
            (None, None) => {
                let dir = xdg_data()?;
                (dir.join("wandash.db"), dir)
            }
        };
        let base_url = global
            .base_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| config.base_url.clone());
        Ok(Context {
            region: region.unwrap_or(config.region),
            config,
            db_path,
            data_dir,
            base_url,
            json: global.json,
        })
    }

    /// Logs go to `<data dir>/logs/wandash.log`, never to the terminal. The filter comes
    /// from `RUST_LOG` (default `info`). Keep the guard alive until exit: it flushes.
    pub fn init_logging(&self) -> Option<tracing_appender::non_blocking::WorkerGuard> {
        let dir = self.data_dir.join("logs");
        std::fs::create_dir_all(&dir).ok()?;
        let appender = tracing_appender::rolling::never(&dir, "wandash.log");
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(false)
            .try_init()
            .ok()?;
        Some(guard)
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
