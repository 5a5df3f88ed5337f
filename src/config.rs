//! The settings file (`~/.config/wandash/config.toml`).
//!
//! Every table refuses unknown keys, so a typo is an error that names the key and its line
//! instead of a setting silently ignored. `config.example.toml` documents every setting with
//! its default; a test checks the two agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::BackendSettings;
use crate::dashscope::{ApiKey, Model, ModelLimits, Region, Timestamp};
use crate::engine::{Budget, EngineConfig};
pub use crate::ui::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which DashScope region (and so which base URL) to use.
    pub region: Region,
    /// Overrides the region's base URL (e.g. a simulator); `DASHSCOPE_BASE_URL` and
    /// `--base-url` override this.
    pub base_url: Option<String>,
    /// Where the database, images and logs live; default the XDG data directory.
    pub data_dir: Option<PathBuf>,
    /// Per-model quota overrides; a model missing here uses the catalogue's (`wandash
    /// models` shows the limits in force).
    pub limits: BTreeMap<Model, LimitsConfig>,
    /// CNY per successfully generated image, overrides; a model missing here costs what
    /// the catalogue says for the region.
    pub prices: BTreeMap<Model, f64>,
    pub poll: PollConfig,
    pub retry: RetryConfig,
    pub download: DownloadConfig,
    pub simulator: SimulatorConfig,
    pub ui: UiConfig,
    pub batch: BatchConfig,
    pub budget: BudgetConfig,
    pub account: AccountConfig,
    pub sync: SyncConfig,
    pub store: StoreConfig,
}

/// `[store]`: where the job store lives when `--db` does not say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A `postgres://user:password@host:port/db` URL puts the store on a PostgreSQL
    /// server several hosts share; a path, an SQLite file. Default: `wandash.db` in the
    /// data directory.
    pub url: Option<String>,
    /// How long an engine's lease on the store lasts unrenewed (it renews every third of
    /// it): on a PostgreSQL store, the jobs of an engine gone this long are adopted by
    /// the others.
    pub lease_ms: u64,
    /// How many MB of images read from a PostgreSQL store this host keeps in
    /// `<data dir>/cache`: past it, the files used longest ago are deleted.
    pub cache_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            lease_ms: crate::engine::DEFAULT_LEASE.as_millis() as u64,
            cache_mb: crate::store::DEFAULT_CACHE_MB,
        }
    }
}

/// `[sync]`: the synchronous multimodal-generation calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// How long one call may hold its connection. Past it the job needs attention rather
    /// than being sent again, since the service may still make and bill the image.
    /// Unconfirmed (u): the digest gives 28 s to 1-2 minutes per call.
    pub call_timeout_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            call_timeout_ms: crate::dashscope::DEFAULT_SYNC_CALL_TIMEOUT.as_millis() as u64,
        }
    }
}

/// `[budget]`: limits no job is sent past (see `engine::Budget`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub daily_cny: Option<f64>,
    pub monthly_cny: Option<f64>,
    pub free_quota_only: bool,
    /// `YYYY-MM-DD`, local time; `None`: the store's first job.
    pub free_quota_since: Option<String>,
}

impl BudgetConfig {
    /// The start of the `free_quota_since` day in the local time zone.
    fn free_quota_since_at(&self) -> Result<Option<Timestamp>, String> {
        let Some(text) = &self.free_quota_since else {
            return Ok(None);
        };
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(text.trim(), format).map_err(|_| {
            format!(
                "budget.free_quota_since must be a date YYYY-MM-DD, got `{}`",
                crate::text::sanitize(text)
            )
        })?;
        let offset = crate::store::local_now().offset();
        Ok(Some(date.midnight().assume_offset(offset).into()))
    }

    /// The engine's budget (the config has been checked).
    pub fn budget(&self) -> Budget {
        Budget {
            daily_cny: self.daily_cny,
            monthly_cny: self.monthly_cny,
            free_quota_only: self.free_quota_only,
            free_quota_since: self.free_quota_since_at().ok().flatten(),
        }
    }

    fn check(&self) -> Result<(), String> {
        for (key, limit) in [
            ("daily_cny", self.daily_cny),
            ("monthly_cny", self.monthly_cny),
        ] {
            if let Some(limit) = limit
                && !(limit.is_finite() && limit >= 0.0)
            {
                return Err(format!("budget.{key} must be 0 or more CNY, got {limit}"));
            }
        }
        self.free_quota_since_at().map(|_| ())
    }
}

/// Reading the account's own limits (its quotas) when the engine starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    /// Where the quotas are listed, under the base URL. Unconfirmed (u): the English docs
    /// say `/quotas`, the Chinese ones `/models/limits`.
    pub quotas_path: String,
    /// How long the engine's start waits for the quotas before it uses the defaults.
    pub quotas_timeout_ms: u64,
}

impl Default for AccountConfig {
    fn default() -> Self {
        AccountConfig {
            quotas_path: crate::dashscope::DEFAULT_QUOTAS_PATH.to_string(),
            quotas_timeout_ms: 3_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// A batch file that expands to more jobs than this is refused (with the count and the
    /// estimated cost) unless `--yes` or a yes at the terminal says to queue it.
    pub max_jobs: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig { max_jobs: 10_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub submit_per_second: f64,
    pub in_flight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollConfig {
    /// The shortest wait between two polls of one task, in milliseconds.
    pub min_interval_ms: u64,
    /// The longest wait between two polls of one task, in milliseconds.
    pub max_interval_ms: u64,
    /// Task queries per second for the whole account (the service allows 20).
    pub queries_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per job before it ends failed (retryable errors only).
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadConfig {
    /// A result image larger than this is refused.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Task run time range of the embedded simulator (used without an API key and base URL).
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    pub image_protocol: ImageProtocol,
    /// Mouse capture steals the terminal's text selection, so it is off by default.
    pub mouse: bool,
    pub notify: Notify,
    /// Action name -> key, e.g. `quit = "ctrl-q"`; actions not named keep their keys.
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageProtocol {
    Auto,
    Halfblocks,
    Sixel,
    Kitty,
    Iterm2,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: Region::Beijing,
            base_url: None,
            data_dir: None,
            // Overrides only: the catalogue holds every model's defaults (for the region).
            limits: BTreeMap::new(),
            prices: BTreeMap::new(),
            poll: PollConfig::default(),
            retry: RetryConfig::default(),
            download: DownloadConfig::default(),
            simulator: SimulatorConfig::default(),
            ui: UiConfig::default(),
            batch: BatchConfig::default(),
            budget: BudgetConfig::default(),
            account: AccountConfig::default(),
            sync: SyncConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            min_interval_ms: 1_000,
            max_interval_ms: 5_000,
            queries_per_second: 15.0,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
        }
    }
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            latency_min_ms: 2_000,
            latency_max_ms: 8_000,
        }
    }
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            image_protocol: ImageProtocol::Auto,
            mouse: false,
            notify: Notify::Bell,
            keys: BTreeMap::new(),
        }
    }
}

/// `line 2, column 16 (`max_attempts = "five"`): invalid type: string "five", expected u32`.
/// toml's own rendering draws the line over several lines with carets, which the CLI's
/// one-line errors would mangle.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let reason = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return reason;
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let source: String = text[line_start..]
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .take(80)
        .collect();
    if source.is_empty() {
        format!("line {line}, column {column}: {reason}")
    } else {
        format!("line {line}, column {column} (`{source}`): {reason}")
    }
}

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A base URL wandash can talk to: an absolute http or https URL. The reason names the
/// value; the caller names where it came from (the config key or the option).
pub fn check_base_url(url: &str) -> Result<(), String> {
    let shown = crate::text::sanitize(url.trim());
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("`{shown}` is not a URL ({e}); use http(s)://HOST[:PORT]/api/v1"))?;
    if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` is not an http(s) URL; use http(s)://HOST[:PORT]/api/v1"
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config file {path} not found; create it (`wandash config --example > {path}` writes the example) or drop --config"
    )]
    Missing { path: PathBuf },
    #[error("cannot read config file {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// The message names the line, shows it (so the key) and says what was expected.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// `~/.config/wandash/config.toml` (per the platform's conventions).
    pub fn default_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "wandash")
            .map(|d| d.config_dir().join("config.toml"))
    }

    /// Loads `explicit` (which must exist), or the default path (defaults when absent).
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match explicit {
            Some(path) if !path.exists() => Err(ConfigError::Missing {
                path: path.to_path_buf(),
            }),
            Some(path) => Config::read(path),
            None => match Config::default_path() {
                Some(path) if path.exists() => Config::read(&path),
                _ => Ok(Config::default()),
            },
        }
    }

    fn read(path: &Path) -> Result<Config, ConfigError> {
        // A config is a few kilobytes: a device, FIFO or huge file is refused unread.
        let bytes = crate::files::read_regular_file(path, MAX_CONFIG_BYTES).map_err(|refused| {
            ConfigError::Read {
                path: path.to_path_buf(),
                message: match refused {
                    crate::files::ReadRefused::Io(e) => e.to_string(),
                    other => other.to_string(),
                },
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Read {
            path: path.to_path_buf(),
            message: "not UTF-8 text; save it as UTF-8".into(),
        })?;
        let config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Parses TOML text. The error is one line: where, the offending line itself (so the
    /// key is named) and toml's reason (the expected type or the keys allowed there).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| describe_toml_error(text, &e))
    }

    /// Rules serde cannot express: positive rates, ordered ranges, an http(s) base URL.
    pub fn check(&self) -> Result<(), String> {
        crate::ui::keys::KeyMap::with_overrides(&self.ui.keys)?;
        if let Some(url) = &self.base_url {
            check_base_url(url).map_err(|reason| format!("base_url: {reason}"))?;
        }
        for (model, l) in &self.limits {
            // Written to refuse NaN as well.
            if l.submit_per_second.is_nan() || l.submit_per_second <= 0.0 {
                return Err(format!(
                    "limits.\"{model}\".submit_per_second must be above 0, got {}",
                    l.submit_per_second
                ));
            }
            if l.in_flight == 0 {
                return Err(format!("limits.\"{model}\".in_flight must be at least 1"));
            }
        }
        for (model, price) in &self.prices {
            if price.is_nan() || *price < 0.0 {
                return Err(format!("prices.\"{model}\" must be 0 or more, got {price}"));
            }
        }
        self.budget.check()?;
        let path = &self.account.quotas_path;
        if !path.starts_with('/') || path.contains(['?', '#', ' ']) || path.contains("..") {
            return Err(format!(
                "account.quotas_path must be a path under the base URL such as \"/quotas\" (a leading /, no ?, #, spaces or ..), got {path:?}"
            ));
        }
        if !(1..=60_000).contains(&self.account.quotas_timeout_ms) {
            return Err(format!(
                "account.quotas_timeout_ms must be from 1 to 60000, got {}",
                self.account.quotas_timeout_ms
            ));
        }
        if !(1..=3_600_000).contains(&self.sync.call_timeout_ms) {
            return Err(format!(
                "sync.call_timeout_ms must be from 1 to 3600000 (an hour), got {}",
                self.sync.call_timeout_ms
            ));
        }
        // A lease renewed every third of it needs some room above a store's round trip.
        if !(300..=3_600_000).contains(&self.store.lease_ms) {
            return Err(format!(
                "store.lease_ms must be from 300 to 3600000 (an hour), got {}",
                self.store.lease_ms
            ));
        }
        if self.batch.max_jobs == 0 {
            return Err("batch.max_jobs must be at least 1".to_string());
        }
        if self.poll.min_interval_ms == 0 || self.poll.min_interval_ms > self.poll.max_interval_ms {
            return Err(format!(
                "poll.min_interval_ms ({}) must be at least 1 and at most poll.max_interval_ms ({})",
                self.poll.min_interval_ms, self.poll.max_interval_ms
            ));
        }
        if !(self.poll.queries_per_second > 0.0 && self.poll.queries_per_second <= 20.0) {
            return Err(format!(
                "poll.queries_per_second must be above 0 and at most 20 (the service's limit), got {}",
                self.poll.queries_per_second
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if self.retry.backoff_base_ms > self.retry.backoff_cap_ms {
            return Err(format!(
                "retry.backoff_base_ms ({}) must not exceed retry.backoff_cap_ms ({})",
                self.retry.backoff_base_ms, self.retry.backoff_cap_ms
            ));
        }
        if self.simulator.latency_min_ms > self.simulator.latency_max_ms {
            return Err(format!(
                "simulator.latency_min_ms ({}) must not exceed simulator.latency_max_ms ({})",
                self.simulator.latency_min_ms, self.simulator.latency_max_ms
            ));
        }
        Ok(())
    }

    /// The quota wandash schedules against for `model`.
    pub fn limits_for(&self, model: Model) -> ModelLimits {
        self.limits
            .get(&model)
            .map(|l| ModelLimits {
                submit_per_second: l.submit_per_second,
                in_flight: l.in_flight,
            })
            .unwrap_or_else(|| model.default_limits())
    }

    /// Price per image in the configured region, `None` when neither the config nor the
    /// catalogue knows it.
    pub fn price_for(&self, model: Model) -> Option<f64> {
        self.prices
            .get(&model)
            .copied()
            .or_else(|| model.price_in(self.region))
    }

    /// The price of every model that has one, overrides applied.
    pub fn price_table(&self) -> BTreeMap<Model, f64> {
        Model::ALL
            .into_iter()
            .filter_map(|m| Some((m, self.price_for(m)?)))
            .collect()
    }

    pub fn simulator_latency(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.simulator.latency_min_ms),
            Duration::from_millis(self.simulator.latency_max_ms),
        )
    }

    /// The engine's settings; images go under `data_dir`.
    pub fn engine_config(&self, data_dir: &Path) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.to_path_buf(),
            // A model's limits written as API.md's defaults (as `config.example.toml` shows
            // them) set nothing: the account's quotas, where read, come before them.
            limits: Model::ALL
                .into_iter()
                .map(|m| (m, self.limits_for(m)))
                .filter(|(m, limits)| *limits != m.default_limits())
                .collect(),
            prices: self.price_table().into_iter().collect(),
            poll_min: Duration::from_millis(self.poll.min_interval_ms),
            poll_max: Duration::from_millis(self.poll.max_interval_ms),
            queries_per_second: self.poll.queries_per_second,
            max_attempts: self.retry.max_attempts,
            backoff_base: Duration::from_millis(self.retry.backoff_base_ms),
            backoff_cap: Duration::from_millis(self.retry.backoff_cap_ms),
            download_max_bytes: self.download.max_bytes,
            budget: self.budget.budget(),
            quotas_path: self.account.quotas_path.clone(),
            quotas_timeout: Duration::from_millis(self.account.quotas_timeout_ms),
            sync_call_timeout: Duration::from_millis(self.sync.call_timeout_ms),
            lease: Duration::from_millis(self.store.lease_ms),
            image_cache_mb: self.store.cache_mb,
            ..EngineConfig::default()
        }
    }

    /// Which backend to talk to. `base_url` is the command line's (or environment's)
    /// choice, already merged with this file's `base_url`.
    pub fn backend_settings(
        &self,
        api_key: Option<ApiKey>,
        base_url: Option<String>,
        region: Region,
        data_dir: &Path,
    ) -> BackendSettings {
        BackendSettings {
            api_key,
            base_url,
            region,
            data_dir: data_dir.to_path_buf(),
            sim_latency: self.simulator_latency(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn example_file_documents_exactly_the_defaults() {
        let example = Config::parse(include_str!("../config.example.toml")).unwrap();
        assert_eq!(example, Config::default());
        example.check().unwrap();
    }

    #[test]
    fn default_config_gives_the_engines_defaults() {
        let engine = Config::default().engine_config(Path::new("/data"));
        let defaults = EngineConfig::default();
        assert_eq!(engine.data_dir, Path::new("/data"));
        assert_eq!(
            (engine.poll_min, engine.poll_max),
            (defaults.poll_min, defaults.poll_max)
        );
        assert_eq!(engine.queries_per_second, defaults.queries_per_second);
        assert_eq!(engine.max_attempts, defaults.max_attempts);
        assert_eq!(
            (engine.backoff_base, engine.backoff_cap),
            (defaults.backoff_base, defaults.backoff_cap)
        );
        assert_eq!(engine.download_max_bytes, defaults.download_max_bytes);
        assert_eq!(
            (&engine.quotas_path, engine.quotas_timeout),
            (&defaults.quotas_path, defaults.quotas_timeout)
        );
        assert_eq!(engine.sync_call_timeout, Duration::from_secs(180));
        assert_eq!(engine.sync_call_timeout, defaults.sync_call_timeout);
        for model in Model::ALL {
            assert_eq!(
                engine.limits_for(model),
                defaults.limits_for(model),
                "{model}"
            );
            assert_eq!(
                engine.price_for(model),
                defaults.price_for(model),
                "{model}"
            );
        }
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("region = \"cn-beijing\"\n[poll]\nmin_interval = 5\n").unwrap_err();
        assert!(err.contains("min_interval"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn unknown_model_in_limits_is_refused() {
        let err = Config::parse("[limits.\"wanx9\"]\nsubmit_per_second = 1.0\nin_flight = 1\n")
            .unwrap_err();
        assert!(err.contains("wanx9"), "{err}");
    }

    #[test]
    fn limits_override_one_model_and_default_the_rest() {
        let config = Config::parse(
            "[limits.\"wanx2.1-t2i-turbo\"]\nsubmit_per_second = 5.0\nin_flight = 4\n",
        )
        .unwrap();
        assert_eq!(config.limits_for(Model::Wanx21T2iTurbo).in_flight, 4);
        assert_eq!(config.limits_for(Model::WanxXPainting).in_flight, 1);
    }

    #[test]
    fn budgets_are_read_and_checked_by_name() {
        let config = Config::parse(
            "[budget]\ndaily_cny = 1.5\nmonthly_cny = 20.0\nfree_quota_only = true\nfree_quota_since = \"2026-01-15\"\n",
        )
        .unwrap();
        config.check().unwrap();
        let budget = config.engine_config(Path::new("/data")).budget;
        assert_eq!(budget.daily_cny, Some(1.5));
        assert_eq!(budget.monthly_cny, Some(20.0));
        assert!(budget.free_quota_only);
        assert!(budget.free_quota_since.is_some());

        let negative = Config::parse("[budget]\ndaily_cny = -1.0\n").unwrap();
        let err = negative.check().unwrap_err();
        assert!(err.contains("budget.daily_cny"), "{err}");
        let not_a_date = Config::parse("[budget]\nfree_quota_since = \"15/01/2026\"\n").unwrap();
        let err = not_a_date.check().unwrap_err();
        assert!(err.contains("budget.free_quota_since"), "{err}");
        assert!(err.contains("YYYY-MM-DD"), "{err}");
        let typo = Config::parse("[budget]\ndaily = 1.0\n").unwrap_err();
        assert!(typo.contains("daily"), "{typo}");
    }

    #[test]
    fn only_limits_other_than_the_defaults_come_before_the_accounts() {
        let config = Config::parse(
            "[limits.\"wanx2.1-t2i-turbo\"]\nsubmit_per_second = 5.0\nin_flight = 4\n\n[limits.\"wanx2.1-t2i-plus\"]\nsubmit_per_second = 2.0\nin_flight = 2\n",
        )
        .unwrap();
        let engine = config.engine_config(Path::new("/data"));
        assert_eq!(
            engine.limits.keys().collect::<Vec<_>>(),
            [&Model::Wanx21T2iTurbo]
        );
        assert!(
            Config::default()
                .engine_config(Path::new("/data"))
                .limits
                .is_empty()
        );
    }

    #[test]
    fn the_quotas_path_must_be_a_path() {
        for bad in ["quotas", "/quotas?x=1", "/../quotas"] {
            let config = Config::parse(&format!("[account]\nquotas_path = \"{bad}\"\n")).unwrap();
            let err = config.check().unwrap_err();
            assert!(err.contains("account.quotas_path"), "{err}");
        }
        let config = Config::parse("[account]\nquotas_path = \"/models/limits\"\n").unwrap();
        config.check().unwrap();
        assert_eq!(
            config.engine_config(Path::new("/data")).quotas_path,
            "/models/limits"
        );
    }

    #[test]
    fn the_examples_store_urls_name_a_file_and_a_server() {
        use crate::store::Location;
        let example = include_str!("../config.example.toml");
        let kinds: Vec<&str> = example
            .lines()
            .filter_map(|line| line.strip_prefix("# url = "))
            .map(|value| {
                let config = Config::parse(&format!("[store]\nurl = {value}\n")).unwrap();
                config.check().unwrap();
                match Location::of(Path::new(config.store.url.as_deref().unwrap())) {
                    Location::File(_) => "file",
                    Location::Postgres(_) => "server",
                }
            })
            .collect();
        assert_eq!(kinds, ["file", "server"]);
    }

    #[test]
    fn the_lease_is_read_and_checked() {
        let config = Config::parse("[store]\nlease_ms = 5000\n").unwrap();
        assert_eq!(
            config.engine_config(Path::new("/data")).lease,
            Duration::from_secs(5)
        );
        let err = Config::parse("[store]\nlease_ms = 10\n")
            .unwrap()
            .check()
            .unwrap_err();
        assert!(err.contains("store.lease_ms"), "{err}");
    }

    #[test]
    fn ranges_are_checked() {
        let config =
            Config::parse("[poll]\nmin_interval_ms = 9000\nmax_interval_ms = 10\n").unwrap();
        let err = config.check().unwrap_err();
        assert!(err.contains("poll.min_interval_ms"), "{err}");
    }
}
