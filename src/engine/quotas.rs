//! The limits the engine keeps to per model, and where each came from: the config where
//! it sets a model's limits, else the account's quotas as the service states them (read
//! once when the engine starts, bounded in time), else the catalogue's defaults.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::EngineConfig;
use crate::dashscope::{AccountLimits, Client, Model, ModelLimits};

/// Where a model's limits in force came from.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitSource {
    /// Set in the config (`[limits."<model>"]`).
    Config,
    /// The account's quotas; a field they do not state is the catalogue's default.
    Account,
    /// The catalogue's default, and why the account's quotas were not used.
    Default { why: String },
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitSource::Config => f.write_str("config"),
            LimitSource::Account => f.write_str("account"),
            LimitSource::Default { why } => write!(f, "default ({why})"),
        }
    }
}

/// One model's limits in force.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsInForce {
    pub model: Model,
    pub limits: ModelLimits,
    pub source: LimitSource,
}

/// Every model's limits in force under `config`, reading the account's quotas from the
/// service behind `client` (at `config.quotas_path`, given `config.quotas_timeout` at
/// most). For a listing of the models (`wandash models`) as much as for the engine.
pub async fn limits_in_force(client: &Client, config: &EngineConfig) -> Vec<LimitsInForce> {
    let account = read_account(client, &config.quotas_path, config.quotas_timeout).await;
    Model::ALL
        .into_iter()
        .map(|model| {
            let stated = account.as_ref().map(|by_model| by_model.get(&model));
            resolve(model, config.limits.get(&model).copied(), stated)
        })
        .collect()
}

/// `config` with every model's limits set to those in force (each logged with its
/// source). A stop cuts the account's read short: the defaults stand in.
pub(crate) async fn apply_limits_in_force(
    client: &Client,
    mut config: EngineConfig,
    stop: &CancellationToken,
) -> EngineConfig {
    let in_force = tokio::select! {
        in_force = limits_in_force(client, &config) => in_force,
        () = stop.cancelled() => return config,
    };
    for LimitsInForce {
        model,
        limits,
        source,
    } in in_force
    {
        tracing::info!(
            %model,
            submit_per_second = limits.submit_per_second,
            in_flight = limits.in_flight,
            %source,
            "limits in force"
        );
        config.limits.insert(model, limits);
    }
    config
}

/// The account's limits per model, or why they could not be read. Pages through the
/// list; the whole read gets `within`.
async fn read_account(
    client: &Client,
    path: &str,
    within: Duration,
) -> Result<HashMap<Model, AccountLimits>, String> {
    let pages = async {
        let mut by_model = HashMap::new();
        let mut seen = 0u64;
        for page_no in 1..=MAX_QUOTA_PAGES {
            let page = client
                .quotas_page(path, page_no)
                .await
                .map_err(|e| format!("the account's quotas at {path} were not read: {e}"))?;
            seen += page.limits.len() as u64;
            let last = page.limits.is_empty() || seen >= page.total;
            for stated in page.limits {
                // Quotas of models wandash does not make (chat models...) are not ours.
                if let Ok(model) = stated.model.parse::<Model>() {
                    by_model.insert(model, stated);
                }
            }
            if last {
                break;
            }
        }
        Ok(by_model)
    };
    tokio::time::timeout(within, pages)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the account's quotas at {path} did not come within {within:?}"
            ))
        })
}

/// The most pages of quotas read: an account lists a quota per model it can call, chat
/// models included, some dozens; the bound keeps a service that pages forever from
/// holding the start (with the read's time limit).
const MAX_QUOTA_PAGES: u32 = 50;

/// One model's limits in force: the config's if it sets them; else what the account
/// states (`Ok(Some)`), a field it leaves out taken from the catalogue; else the
/// catalogue's default, saying why (the account was not read: `Err`; or it does not name
/// the model, or states nothing usable for it).
pub(crate) fn resolve(
    model: Model,
    configured: Option<ModelLimits>,
    account: Result<Option<&AccountLimits>, &String>,
) -> LimitsInForce {
    let default = model.default_limits();
    let (limits, source) = match (configured, account) {
        (Some(limits), _) => (limits, LimitSource::Config),
        (None, Err(why)) => (default, LimitSource::Default { why: why.clone() }),
        (None, Ok(None)) => (
            default,
            LimitSource::Default {
                why: "the account's quotas do not name this model".into(),
            },
        ),
        (None, Ok(Some(stated))) => {
            if stated.submit_per_second.is_none() && stated.in_flight.is_none() {
                (
                    default,
                    LimitSource::Default {
                        why: "the account's quota for this model states no rate or concurrency"
                            .into(),
                    },
                )
            } else {
                let limits = ModelLimits {
                    submit_per_second: stated
                        .submit_per_second
                        .unwrap_or(default.submit_per_second),
                    in_flight: stated.in_flight.unwrap_or(default.in_flight),
                };
                (limits, LimitSource::Account)
            }
        }
    };
    LimitsInForce {
        model,
        limits,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: Model = Model::Wanx21T2iTurbo;

    fn stated(submit_per_second: Option<f64>, in_flight: Option<u32>) -> AccountLimits {
        AccountLimits {
            model: MODEL.id().into(),
            submit_per_second,
            in_flight,
        }
    }

    fn limits(submit_per_second: f64, in_flight: u32) -> ModelLimits {
        ModelLimits {
            submit_per_second,
            in_flight,
        }
    }

    #[test]
    fn the_config_wins_over_the_account() {
        let account = stated(Some(5.0), Some(8));
        let got = resolve(MODEL, Some(limits(1.0, 1)), Ok(Some(&account)));
        assert_eq!(
            (got.limits, got.source),
            (limits(1.0, 1), LimitSource::Config)
        );
    }

    #[test]
    fn the_account_wins_over_the_defaults_lower_or_higher() {
        let lower = stated(Some(0.5), Some(1));
        let got = resolve(MODEL, None, Ok(Some(&lower)));
        assert_eq!(
            (got.limits, got.source),
            (limits(0.5, 1), LimitSource::Account)
        );
        let higher = stated(Some(10.0), Some(6));
        assert_eq!(
            resolve(MODEL, None, Ok(Some(&higher))).limits,
            limits(10.0, 6)
        );
    }

    #[test]
    fn what_the_account_leaves_out_is_the_default() {
        let default = MODEL.default_limits();
        let only_in_flight = stated(None, Some(1));
        let got = resolve(MODEL, None, Ok(Some(&only_in_flight)));
        assert_eq!(
            (got.limits, got.source),
            (limits(default.submit_per_second, 1), LimitSource::Account)
        );
        let nothing = stated(None, None);
        let got = resolve(MODEL, None, Ok(Some(&nothing)));
        assert_eq!(got.limits, default);
        assert!(
            matches!(&got.source, LimitSource::Default { why } if why.contains("states no rate")),
            "{:?}",
            got.source
        );
    }

    #[test]
    fn without_the_account_the_defaults_say_why() {
        let why = "the account's quotas at /quotas were not read: HTTP 404".to_string();
        let got = resolve(MODEL, None, Err(&why));
        assert_eq!(got.limits, MODEL.default_limits());
        assert_eq!(got.source, LimitSource::Default { why: why.clone() });
        assert_eq!(got.source.to_string(), format!("default ({why})"));
        let got = resolve(MODEL, None, Ok(None));
        assert_eq!(
            got.source.to_string(),
            "default (the account's quotas do not name this model)"
        );
    }
}
