//! `wandash models`: the catalogue for the chosen region, with the limits and prices in
//! force (the config's overrides applied).

use serde_json::{Value, json};

use crate::config::Config;
use crate::dashscope::catalogue::{Entry, ImageSlots, Param};
use crate::dashscope::{Model, Region};

use super::Context;
use super::failure::CliResult;

/// One model as `wandash models` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    pub model: Model,
    /// The id to give `--model` in this region (the region's own).
    pub id: &'static str,
    pub endpoint: &'static str,
    pub sizes: String,
    pub default_size: String,
    pub n: String,
    pub price_cny: Option<f64>,
    pub free_images: u32,
    pub submit_per_second: f64,
    pub in_flight: u32,
    pub prompt_limit: Option<usize>,
    pub images: String,
    pub params: Vec<&'static str>,
    pub note: Option<&'static str>,
}

/// Every model the region offers, in catalogue order.
pub fn rows(config: &Config, region: Region) -> Vec<ModelRow> {
    Model::ALL
        .into_iter()
        .filter_map(|model| {
            let entry = model.entry();
            let id = entry.id_in(region)?;
            let limits = config.limits_for(model);
            Some(ModelRow {
                model,
                id,
                endpoint: entry.endpoint().name(),
                sizes: entry
                    .size
                    .map_or("follows the input".to_string(), |s| s.describe()),
                default_size: entry
                    .size
                    .and_then(|s| s.default)
                    .map_or("the input's aspect".to_string(), |d| d.to_string()),
                n: n_range(entry),
                // The config's override, else what the catalogue says for `region`.
                price_cny: config
                    .prices
                    .get(&model)
                    .copied()
                    .or_else(|| entry.price_in(region, false)),
                free_images: entry.free_images,
                submit_per_second: limits.submit_per_second,
                in_flight: limits.in_flight,
                prompt_limit: entry.prompt_limit,
                images: images(entry),
                params: entry.params.iter().map(|p| p.field()).collect(),
                note: entry.lifecycle,
            })
        })
        .collect()
}

fn n_range(entry: &Entry) -> String {
    let n = entry.n;
    let sequential = entry.params.iter().find_map(|p| match p {
        Param::EnableSequential { max_n } => Some(*max_n),
        _ => None,
    });
    let mut text = if n.min == n.max {
        format!("{}", n.min)
    } else {
        format!("{}-{} (default {})", n.min, n.max, n.default)
    };
    if let Some(max_n) = sequential {
        text.push_str(&format!(", up to {max_n} sequential"));
    }
    text
}

fn images(entry: &Entry) -> String {
    match entry.images {
        ImageSlots::None => "none".to_string(),
        ImageSlots::BaseAndMask(_) => "base image and mask".to_string(),
        ImageSlots::List { min, max, rules } => format!(
            "{min}-{max} images, sides {}-{}, up to {} MB",
            rules.min_side,
            rules.max_side,
            rules.max_bytes / (1024 * 1024)
        ),
    }
}

/// `wandash models [--json]`.
pub fn models(ctx: &Context) -> CliResult {
    let rows = rows(&ctx.config, ctx.region);
    if ctx.json {
        let models: Vec<Value> = rows.iter().map(row_json).collect();
        println!("{}", json!({ "region": ctx.region.id(), "models": models }));
        return Ok(());
    }
    println!(
        "models offered in {} (prices in CNY per image; limits in force)",
        ctx.region.id()
    );
    println!(
        "{:<20} {:<20} {:>7} {:>5} {:<22} {:>7}  sizes",
        "model", "endpoint", "price", "free", "n", "rate"
    );
    for row in &rows {
        let price = row.price_cny.map_or("?".to_string(), |p| format!("{p:.4}"));
        println!(
            "{:<20} {:<20} {:>7} {:>5} {:<22} {:>4}/s{:>2}  {} (default {})",
            row.id,
            row.endpoint,
            price,
            row.free_images,
            row.n,
            row.submit_per_second,
            row.in_flight,
            row.sizes,
            row.default_size
        );
        if let Some(note) = row.note {
            println!("{:<20} note: {note}", "");
        }
    }
    Ok(())
}

fn row_json(row: &ModelRow) -> Value {
    json!({
        "model": row.model.id(),
        "id": row.id,
        "endpoint": row.endpoint,
        "sizes": row.sizes,
        "default_size": row.default_size,
        "n": row.n,
        "price_cny": row.price_cny,
        "free_images": row.free_images,
        "submit_per_second": row.submit_per_second,
        "in_flight": row.in_flight,
        "prompt_limit": row.prompt_limit,
        "images": row.images,
        "parameters": row.params,
        "note": row.note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singapore_lists_its_own_ids_and_not_the_beijing_only_models() {
        let rows = rows(&Config::default(), Region::Singapore);
        let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
        assert!(ids.contains(&"wan2.1-t2i-turbo"), "{ids:?}");
        assert!(!ids.contains(&"wanx-x-painting"), "{ids:?}");
        let flash = rows.iter().find(|r| r.id == "wan2.2-t2i-flash").unwrap();
        assert_eq!(flash.price_cny, Some(0.183481));
    }

    #[test]
    fn virginia_offers_only_wan26() {
        let rows = rows(&Config::default(), Region::Virginia);
        let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, ["wan2.6-t2i", "wan2.6-image"]);
    }

    #[test]
    fn config_overrides_are_the_limits_and_prices_in_force() {
        let config = Config::parse(
            "[limits.\"qwen-image-max\"]\nsubmit_per_second = 5.0\nin_flight = 3\n[prices]\n\"qwen-image-max\" = 0.4\n",
        )
        .unwrap();
        let rows = rows(&config, Region::Beijing);
        let max = rows.iter().find(|r| r.id == "qwen-image-max").unwrap();
        assert_eq!((max.submit_per_second, max.in_flight), (5.0, 3));
        assert_eq!(max.price_cny, Some(0.4));
        assert_eq!(max.n, "1");
    }
}
