//! `wandash sim`: the simulator as a standalone server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::dashscope::Model;

use super::{Faults, SimConfig, SimError, start};

#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (loopback only); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,
    /// Accept only this API key (default: any non-empty key).
    #[arg(long)]
    pub key: Option<String>,
    /// Task run time range, e.g. `200ms..2s` or `1s`.
    #[arg(long, default_value = "200ms..2s", value_parser = parse_latency)]
    pub latency: (Duration, Duration),
    /// How long tasks and their images live, e.g. `24h`, `90s`.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// SQLite file that keeps tasks, images and uploads across restarts.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Creates per second for a model, e.g. `wanx2.1-t2i-turbo=10` (repeatable); enforced,
    /// and stated by `/api/v1/quotas` like the account's quota.
    #[arg(long = "rate", value_parser = parse_model_number::<f64>)]
    pub rates: Vec<(Model, f64)>,
    /// Tasks PENDING or RUNNING at once for a model, e.g. `wanx-x-painting=4` (repeatable);
    /// enforced, and stated by `/api/v1/quotas`.
    #[arg(long = "in-flight", value_parser = parse_model_number::<u32>)]
    pub in_flight: Vec<(Model, u32)>,
    /// Share of API calls answered 500 InternalError.
    #[arg(long = "fail-500", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_500: f64,
    /// Share of API calls answered 503 ModelUnavailable.
    #[arg(long = "fail-503", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_503: f64,
    /// Share of API calls and downloads whose connection is dropped without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub resets: f64,
    /// Share of API calls answered late (after --slow-delay).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub slow: f64,
    /// How late a slow answer comes, e.g. `3s`.
    #[arg(long = "slow-delay", default_value = "3s", value_parser = parse_duration)]
    pub slow_delay: Duration,
    /// Share of tasks where some (not all) images fail.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub partial: f64,
    /// Share of tasks that end FAILED.
    #[arg(long = "task-failures", default_value_t = 0.0, value_parser = parse_rate)]
    pub task_failures: f64,
    /// Seed for the fault dice.
    #[arg(long = "fault-seed", default_value_t = 0)]
    pub fault_seed: u64,
}

impl SimArgs {
    pub fn config(&self) -> SimConfig {
        let mut limits = HashMap::new();
        for &(model, rate) in &self.rates {
            limits
                .entry(model)
                .or_insert_with(|| model.default_limits())
                .submit_per_second = rate;
        }
        for &(model, n) in &self.in_flight {
            limits
                .entry(model)
                .or_insert_with(|| model.default_limits())
                .in_flight = n;
        }
        SimConfig {
            listen: self.listen,
            key: self.key.clone(),
            latency: self.latency,
            ttl: self.ttl,
            limits,
            faults: Faults {
                http_500_rate: self.fail_500,
                http_503_rate: self.fail_503,
                reset_rate: self.resets,
                slow_rate: self.slow,
                slow_delay: self.slow_delay,
                partial_failure_rate: self.partial,
                task_failure_rate: self.task_failures,
                seed: self.fault_seed,
            },
            state: self.state.clone(),
        }
    }
}

/// Serves until Ctrl-C. Prints the base URL on stdout so scripts can pick it up.
pub async fn run_cli(args: SimArgs) -> Result<(), SimError> {
    let sim = start(args.config()).await?;
    println!("wandash simulator listening on {}", sim.base_url());
    tokio::signal::ctrl_c().await.map_err(SimError::Serve)?;
    sim.shutdown().await;
    Ok(())
}

/// `250ms`, `2s`, `1.5s`, `5m`, `24h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 250ms, 2s, 5m, 24h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}`; use ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// `200ms..2s` or a single duration.
pub fn parse_latency(text: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = match text.split_once("..") {
        Some((lo, hi)) => (parse_duration(lo)?, parse_duration(hi)?),
        None => {
            let d = parse_duration(text)?;
            (d, d)
        }
    };
    if lo > hi {
        return Err(format!("`{text}`: the lower bound is above the upper one"));
    }
    Ok((lo, hi))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("`{text}` is not a rate from 0 to 1")),
    }
}

fn parse_model_number<T: std::str::FromStr + PartialOrd + Default>(
    text: &str,
) -> Result<(Model, T), String> {
    let (model, number) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write MODEL=N"))?;
    let model: Model = model.trim().parse().map_err(|e| format!("{e}"))?;
    let number: T = number
        .trim()
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    if number <= T::default() {
        return Err(format!("`{text}`: the number must be above zero"));
    }
    Ok((model, number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ranges_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("3 days").is_err());
        assert_eq!(
            parse_latency("200ms..2s"),
            Ok((Duration::from_millis(200), Duration::from_secs(2)))
        );
        assert_eq!(
            parse_latency("1s"),
            Ok((Duration::from_secs(1), Duration::from_secs(1)))
        );
        assert!(parse_latency("2s..1s").is_err());
    }

    #[test]
    fn limit_flags_override_one_field_each() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            sim: SimArgs,
        }
        let cli = Cli::try_parse_from([
            "wandash",
            "--rate",
            "wanx2.1-t2i-turbo=10",
            "--in-flight",
            "wanx-x-painting=4",
            "--fail-500",
            "0.25",
        ])
        .unwrap();
        let config = cli.sim.config();
        assert_eq!(
            config.limits[&Model::Wanx21T2iTurbo].submit_per_second,
            10.0
        );
        assert_eq!(config.limits[&Model::Wanx21T2iTurbo].in_flight, 2);
        assert_eq!(config.limits[&Model::WanxXPainting].in_flight, 4);
        assert_eq!(config.faults.http_500_rate, 0.25);
        assert!(Cli::try_parse_from(["wandash", "--rate", "dall-e=1"]).is_err());
        assert!(Cli::try_parse_from(["wandash", "--resets", "1.5"]).is_err());
    }
}
