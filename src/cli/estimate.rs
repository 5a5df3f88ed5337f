//! `batch --dry-run`: what a batch will cost and how long it takes at the quota bound.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::dashscope::{JobSpec, Model};
use crate::store::{cents, cents_or_none};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEstimate {
    pub model: Model,
    pub jobs: u64,
    pub images: u64,
    /// `None`: no price known for this model (neither API.md nor the config has one).
    #[serde(serialize_with = "cents_or_none")]
    pub cost_cny: Option<f64>,
    /// max(jobs / rate, ceil(jobs / in_flight) x typical task time).
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub jobs: u64,
    pub images: u64,
    pub models: Vec<ModelEstimate>,
    /// The sum over models with a known price.
    #[serde(serialize_with = "cents")]
    pub cost_cny: f64,
    /// False when some model's price is unknown (so `cost_cny` is a lower bound).
    pub cost_complete: bool,
    /// Models have separate quotas and run side by side: the slowest one decides.
    pub seconds: f64,
}

pub fn estimate(specs: &[&JobSpec], config: &Config) -> Estimate {
    let each_once: Vec<(&JobSpec, u64)> = specs.iter().map(|spec| (*spec, 1)).collect();
    estimate_repeated(&each_once, config)
}

/// The estimate for jobs given as (spec, how many jobs like it): a batch too large to build
/// is priced from one job per table.
pub fn estimate_repeated(specs: &[(&JobSpec, u64)], config: &Config) -> Estimate {
    let mut by_model: BTreeMap<Model, (u64, u64)> = BTreeMap::new();
    for (spec, count) in specs {
        let entry = by_model.entry(spec.model).or_default();
        entry.0 = entry.0.saturating_add(*count);
        entry.1 = entry
            .1
            .saturating_add(count.saturating_mul(spec.image_count() as u64));
    }
    let models: Vec<ModelEstimate> = by_model
        .into_iter()
        .map(|(model, (jobs, images))| {
            let limits = config.limits_for(model);
            let by_rate = jobs as f64 / limits.submit_per_second;
            let rounds = jobs.div_ceil(limits.in_flight as u64);
            let by_slots = rounds as f64 * model.typical_duration().as_secs_f64();
            ModelEstimate {
                model,
                jobs,
                images,
                cost_cny: config.price_for(model).map(|p| p * images as f64),
                seconds: by_rate.max(by_slots),
            }
        })
        .collect();
    Estimate {
        jobs: models.iter().map(|m| m.jobs).sum(),
        images: models.iter().map(|m| m.images).sum(),
        cost_cny: models.iter().filter_map(|m| m.cost_cny).sum(),
        cost_complete: models.iter().all(|m| m.cost_cny.is_some()),
        seconds: models.iter().map(|m| m.seconds).fold(0.0, f64::max),
        models,
    }
}

/// `1h 02m 05s`, `3m 20s`, `12s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

impl Estimate {
    pub fn render(&self) -> String {
        let mut out = format!("{} jobs, {} images\n", self.jobs, self.images);
        out.push_str(&format!(
            "{:<20} {:>6} {:>7} {:>12} {:>14}\n",
            "model", "jobs", "images", "cost (CNY)", "time at quota"
        ));
        for m in &self.models {
            let cost = m
                .cost_cny
                .map_or_else(|| "unknown".to_string(), |c| format!("{c:.2}"));
            let time = human_duration(Duration::from_secs_f64(m.seconds));
            out.push_str(&format!(
                "{:<20} {:>6} {:>7} {:>12} {:>14}\n",
                m.model.id(),
                m.jobs,
                m.images,
                cost,
                time
            ));
        }
        out.push_str(&format!("estimated cost: {:.2} CNY", self.cost_cny));
        let unknown: Vec<&str> = self
            .models
            .iter()
            .filter(|m| m.cost_cny.is_none())
            .map(|m| m.model.id())
            .collect();
        if !unknown.is_empty() {
            out.push_str(&format!(
                " plus {} at an unknown price (set it under [prices] in the config)",
                unknown.join(", ")
            ));
        }
        out.push_str(&format!(
            "\nestimated time: {} (each model at its quota, models side by side)\n",
            human_duration(Duration::from_secs_f64(self.seconds))
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_the_slower_of_rate_and_slots() {
        let config = Config::default();
        // 10 t2i jobs: rate 2/s -> 5 s; 2 in flight x 90 s -> 5 rounds = 450 s.
        let spec = JobSpec::new(Model::Wanx21T2iTurbo, "x");
        let specs = vec![&spec; 10];
        let e = estimate(&specs, &config);
        assert_eq!(e.models[0].seconds, 450.0);
        assert_eq!(e.images, 40);
        assert!((e.cost_cny - 40.0 * 0.14).abs() < 1e-9);
        assert!(e.cost_complete);
    }

    #[test]
    fn money_is_serialised_to_the_cent() {
        let spec = JobSpec::new(Model::Wanx21T2iTurbo, "x");
        // 48 images at 0.14: 6.720000000000001 in binary floating point.
        let specs = vec![&spec; 12];
        let e = estimate(&specs, &Config::default());
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["cost_cny"], serde_json::json!(6.72));
        assert_eq!(json["models"][0]["cost_cny"], serde_json::json!(6.72));
    }

    #[test]
    fn unknown_price_is_said() {
        // No Singapore price is published for wan2.1-t2i-turbo.
        let spec = JobSpec::new(Model::Wanx21T2iTurbo, "x");
        let config = Config {
            region: crate::dashscope::Region::Singapore,
            ..Config::default()
        };
        let e = estimate(&[&spec], &config);
        assert_eq!(e.models[0].cost_cny, None);
        assert!(!e.cost_complete);
        assert!(e.render().contains("unknown price"));
    }
}
