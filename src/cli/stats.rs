//! `wandash stats [--json]`: images and spend per model today, this month and in total,
//! and the free images left, counted locally.

use crate::store::{MoneyStats, round_to_cent};
use crate::ui::stats::StatsSource;

use super::Context;
use super::failure::CliResult;
use super::jobs::{format_time, open_store, store_failure};

/// Where the figures come from for this command line's config and region.
pub fn source(ctx: &Context) -> StatsSource {
    StatsSource {
        region: ctx.region,
        prices: ctx.config.prices.clone(),
        free_quota_since: ctx.config.budget.budget().free_quota_since,
    }
}

pub fn stats(ctx: &Context) -> CliResult {
    let store = open_store(ctx)?;
    let figures = source(ctx).load(&store).map_err(store_failure)?;
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&figures).expect("the figures serialise")
        );
    } else {
        print!("{}", render(&figures));
    }
    Ok(())
}

/// The table `stats` prints.
fn render(figures: &MoneyStats) -> String {
    let yuan = |amount: f64| format!("{:.2}", round_to_cent(amount));
    let mut out = format!(
        "{:<19} {:>6}  {:>14}  {:>14}  {:>15}  {:>9}\n",
        "model", "CNY/img", "today", "this month", "total", "free left"
    );
    for m in &figures.models {
        out.push_str(&format!(
            "{:<19} {:>6}  {:>14}  {:>14}  {:>15}  {:>9}\n",
            m.model.id(),
            m.price_cny.map_or("?".to_string(), yuan),
            format!("{} / {}", m.images_today, yuan(m.spend_today_cny)),
            format!("{} / {}", m.images_month, yuan(m.spend_month_cny)),
            format!("{} / {}", m.images_total, yuan(m.spend_total_cny)),
            format!("{}/{}", m.free_images_left, m.free_images),
        ));
    }
    out.push_str(&format!(
        "spend (CNY): today {}, this month {}, total {} (images saved x the price in {}, free images included; days and months in local time)\n",
        yuan(figures.spend_today_cny),
        yuan(figures.spend_month_cny),
        yuan(figures.spend_total_cny),
        figures.region.id(),
    ));
    out.push_str(&format!(
        "free images: counted locally from this store's jobs since {}; the console's figures may differ\n",
        format_time(figures.free_images_since)
    ));
    out
}
