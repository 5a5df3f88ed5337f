//! Money: what ended jobs made and cost per model over today, this month and all time,
//! the free images counted locally, and amounts in JSON rounded to the cent.
//!
//! The store sums its rows (`Store::money_rows`, one indexed query); `money_stats` turns
//! those sums into the figures `wandash stats` and the dashboard's `$` view show, with no
//! I/O, so it is tested on rows made up in the test.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use time::{OffsetDateTime, Time, UtcOffset};

use super::db::{ToValue, Value, params};
use super::{Store, StoreError, parse_model};
use crate::dashscope::{Model, Region, Timestamp};

/// An amount rounded to the cent: `6.72`, not the `6.720000000000001` that summing prices
/// in binary floating point leaves.
pub fn round_to_cent(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// Money in JSON, rounded to the cent (`#[serde(serialize_with = "cents")]`).
pub fn cents<S: Serializer>(amount: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_to_cent(*amount))
}

/// `cents` for an amount that may be unknown (`null`).
pub fn cents_or_none<S: Serializer>(
    amount: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match amount {
        Some(amount) => cents(amount, serializer),
        None => serializer.serialize_none(),
    }
}

/// Where the stretches of time that money is counted over begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// Local midnight today.
    pub today: Timestamp,
    /// Local midnight on the first of this month.
    pub month: Timestamp,
    /// Where the free images are counted from.
    pub free_since: Timestamp,
}

impl Periods {
    /// The periods at `now`, whose offset says what "local" is.
    pub fn at(now: OffsetDateTime, free_since: Timestamp) -> Periods {
        let today = now.replace_time(Time::MIDNIGHT);
        let month = today.replace_day(1).unwrap_or(today);
        Periods {
            today: today.into(),
            month: month.into(),
            free_since,
        }
    }

    /// The periods now, in the local time zone.
    pub fn now_local(free_since: Timestamp) -> Periods {
        Periods::at(local_now(), free_since)
    }
}

/// Now in the local time zone. The local offset is unavailable in some multi-threaded
/// processes; UTC then says where a day begins.
pub fn local_now() -> OffsetDateTime {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    OffsetDateTime::now_utc().to_offset(offset)
}

/// Images made and what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub images: u64,
    pub cost_cny: f64,
}

/// One model's ended jobs, summed over each period (`all`: since the scan began).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelTally {
    pub model: Model,
    pub all: Tally,
    pub today: Tally,
    pub month: Tally,
    pub since_free: Tally,
}

/// What the store knows about money at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoneyRows {
    /// Per model with ended jobs in the scanned stretch.
    pub ended: Vec<ModelTally>,
    /// Images asked for by jobs at the service (submitting, submitted, running), per
    /// model: what they will cost is not known until they end.
    pub at_service: BTreeMap<Model, u64>,
}

/// The sums of ended jobs per model: `?1`-`?3` today, month and free-images starts, `?4`
/// where the scan begins, then every known model. (Costs sum with `COALESCE(SUM(..), 0.0)`
/// rather than SQLite's `TOTAL`, which PostgreSQL does not have.)
pub(super) fn ended_sums_sql() -> String {
    let marks = vec!["?"; Model::ALL.len()].join(", ");
    format!(
        "SELECT model, SUM(images_ok), COALESCE(SUM(cost_cny), 0.0),
                SUM(CASE WHEN ended_at >= ?1 THEN images_ok ELSE 0 END),
                COALESCE(SUM(CASE WHEN ended_at >= ?1 THEN cost_cny END), 0.0),
                SUM(CASE WHEN ended_at >= ?2 THEN images_ok ELSE 0 END),
                COALESCE(SUM(CASE WHEN ended_at >= ?2 THEN cost_cny END), 0.0),
                SUM(CASE WHEN ended_at >= ?3 THEN images_ok ELSE 0 END),
                COALESCE(SUM(CASE WHEN ended_at >= ?3 THEN cost_cny END), 0.0)
             FROM jobs WHERE ended_at >= ?4 AND model IN ({marks}) GROUP BY model"
    )
}

impl Store {
    /// Sums of ended jobs per model over `periods`, reading only jobs that ended at or
    /// after `from` (so a budget check reads this month, not all history), and the
    /// images of jobs at the service. One pass over the `jobs_money` index.
    pub fn money_rows(&self, periods: &Periods, from: Timestamp) -> Result<MoneyRows, StoreError> {
        let sql = ended_sums_sql();
        let mut args: Vec<Value> = vec![
            periods.today.into(),
            periods.month.into(),
            periods.free_since.into(),
            from.into(),
        ];
        args.extend(Model::ALL.into_iter().map(|m| m.id().to_value()));
        let mut conn = self.conn();
        let mut rows_out = MoneyRows::default();
        for row in &conn.query(&sql, &args)? {
            let model: String = row.get(0)?;
            let tally = |images: usize| -> Result<Tally, StoreError> {
                Ok(Tally {
                    images: row.get::<i64>(images)?.max(0) as u64,
                    cost_cny: row.get(images + 1)?,
                })
            };
            rows_out.ended.push(ModelTally {
                model: parse_model(&model)?,
                all: tally(1)?,
                today: tally(3)?,
                month: tally(5)?,
                since_free: tally(7)?,
            });
        }
        let at_service = conn.query(
            "SELECT model, SUM(images_expected) FROM jobs
             WHERE state IN ('submitting', 'submitted', 'running') GROUP BY model",
            params![],
        )?;
        for row in &at_service {
            let model: String = row.get(0)?;
            let images: i64 = row.get(1)?;
            rows_out
                .at_service
                .insert(parse_model(&model)?, images.max(0) as u64);
        }
        Ok(rows_out)
    }

    /// Images asked for by each queued job, in queue order (oldest first): what goes
    /// before a job being queued now.
    pub fn queued_images(&self) -> Result<Vec<(Model, u64)>, StoreError> {
        self.conn().query_map(
            "SELECT model, images_expected FROM jobs WHERE state = 'queued' ORDER BY id",
            params![],
            |row| {
                let model: String = row.get(0)?;
                let images: i64 = row.get(1)?;
                Ok((parse_model(&model)?, images.max(0) as u64))
            },
        )
    }

    /// When the store's first job was made: where free images are counted from unless the
    /// config says otherwise.
    pub fn first_job_at(&self) -> Result<Option<Timestamp>, StoreError> {
        self.conn().query_opt(
            "SELECT created_at FROM jobs ORDER BY id LIMIT 1",
            params![],
            |row| row.get(0),
        )
    }
}

impl Store {
    /// The figures of `wandash stats` now: free images counted from `free_since` (or the
    /// store's first job), `price` per image in `region`.
    pub fn money_stats_now(
        &self,
        region: Region,
        free_since: Option<Timestamp>,
        price: impl Fn(Model) -> Option<f64>,
    ) -> Result<MoneyStats, StoreError> {
        let free_since = match free_since {
            Some(at) => at,
            None => self.first_job_at()?.unwrap_or_else(Timestamp::now),
        };
        let periods = Periods::now_local(free_since);
        let rows = self.money_rows(&periods, Timestamp::from_millis(i64::MIN))?;
        Ok(money_stats(&rows, &periods, region, price))
    }
}

/// One model's line of `wandash stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelMoney {
    pub model: Model,
    /// What one image costs in the configured region; `null` when unknown.
    #[serde(serialize_with = "cents_or_none")]
    pub price_cny: Option<f64>,
    pub images_today: u64,
    #[serde(serialize_with = "cents")]
    pub spend_today_cny: f64,
    pub images_month: u64,
    #[serde(serialize_with = "cents")]
    pub spend_month_cny: f64,
    pub images_total: u64,
    #[serde(serialize_with = "cents")]
    pub spend_total_cny: f64,
    /// The free images the model comes with.
    pub free_images: u64,
    /// Images made since `free_images_since`.
    pub free_images_used: u64,
    pub free_images_left: u64,
}

/// What `wandash stats` and the dashboard's `$` view show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoneyStats {
    pub region: Region,
    pub models: Vec<ModelMoney>,
    pub images_today: u64,
    #[serde(serialize_with = "cents")]
    pub spend_today_cny: f64,
    #[serde(serialize_with = "cents")]
    pub spend_month_cny: f64,
    #[serde(serialize_with = "cents")]
    pub spend_total_cny: f64,
    /// Where the free images are counted from (epoch ms).
    pub free_images_since: Timestamp,
    /// Always true: free images are counted from this store's jobs, not asked of the
    /// service (whose console figures lag, and which other clients of the key use too).
    pub free_images_counted_locally: bool,
}

/// The figures for every model from the store's sums. `price` is what one image costs
/// in `region`. Spend is what the jobs recorded when they ended (images saved x the price
/// then); free images are not taken off it, so it is at most what the bill says.
pub fn money_stats(
    rows: &MoneyRows,
    periods: &Periods,
    region: Region,
    price: impl Fn(Model) -> Option<f64>,
) -> MoneyStats {
    let models: Vec<ModelMoney> = Model::ALL
        .into_iter()
        .map(|model| {
            let tally = rows
                .ended
                .iter()
                .find(|t| t.model == model)
                .copied()
                .unwrap_or(ModelTally {
                    model,
                    all: Tally::default(),
                    today: Tally::default(),
                    month: Tally::default(),
                    since_free: Tally::default(),
                });
            let free_images = model.free_images();
            ModelMoney {
                model,
                price_cny: price(model),
                images_today: tally.today.images,
                spend_today_cny: tally.today.cost_cny,
                images_month: tally.month.images,
                spend_month_cny: tally.month.cost_cny,
                images_total: tally.all.images,
                spend_total_cny: tally.all.cost_cny,
                free_images,
                free_images_used: tally.since_free.images,
                free_images_left: free_images.saturating_sub(tally.since_free.images),
            }
        })
        .collect();
    let sum = |field: fn(&ModelMoney) -> f64| models.iter().map(field).sum::<f64>();
    MoneyStats {
        region,
        images_today: models.iter().map(|m| m.images_today).sum(),
        spend_today_cny: sum(|m| m.spend_today_cny),
        spend_month_cny: sum(|m| m.spend_month_cny),
        spend_total_cny: sum(|m| m.spend_total_cny),
        models,
        free_images_since: periods.free_since,
        free_images_counted_locally: true,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn tally(images: u64, cost_cny: f64) -> Tally {
        Tally { images, cost_cny }
    }

    #[test]
    fn periods_begin_at_local_midnight_and_the_first_of_the_month() {
        let periods = Periods::at(
            datetime!(2026-03-17 00:30 +08:00),
            Timestamp::from_millis(5),
        );
        assert_eq!(
            periods.today,
            Timestamp::from(datetime!(2026-03-17 00:00 +08:00))
        );
        assert_eq!(
            periods.month,
            Timestamp::from(datetime!(2026-03-01 00:00 +08:00))
        );
        // 00:30 in Beijing is the day before in UTC: the local day counts.
        assert_eq!(
            periods.today,
            Timestamp::from(datetime!(2026-03-16 16:00 UTC))
        );
        assert_eq!(periods.free_since, Timestamp::from_millis(5));
    }

    #[test]
    fn stats_sum_each_period_and_count_free_images_down() {
        let periods = Periods::at(datetime!(2026-03-17 12:00 UTC), Timestamp::from_millis(0));
        let rows = MoneyRows {
            ended: vec![
                ModelTally {
                    model: Model::Wanx21T2iTurbo,
                    all: tally(48, 6.72),
                    today: tally(4, 0.56),
                    month: tally(12, 1.68),
                    since_free: tally(48, 6.72),
                },
                ModelTally {
                    model: Model::Wanx21T2iPlus,
                    all: tally(3, 0.6),
                    today: tally(1, 0.2),
                    month: tally(1, 0.2),
                    since_free: tally(3, 0.6),
                },
            ],
            at_service: BTreeMap::new(),
        };
        let stats = money_stats(&rows, &periods, Region::Beijing, Model::default_price_cny);
        assert_eq!(
            stats.models.len(),
            Model::ALL.len(),
            "every model has a line"
        );
        let turbo = &stats.models[0];
        assert_eq!(turbo.model, Model::Wanx21T2iTurbo);
        assert_eq!(
            (turbo.images_today, turbo.images_month, turbo.images_total),
            (4, 12, 48)
        );
        assert_eq!(turbo.free_images_left, 500 - 48);
        assert_eq!(turbo.price_cny, Some(0.14));
        let idle = stats
            .models
            .iter()
            .find(|m| m.model == Model::Wan25I2iPreview)
            .unwrap();
        assert_eq!((idle.images_total, idle.free_images_left), (0, 50));
        assert_eq!(stats.images_today, 5);
        assert!((stats.spend_today_cny - 0.76).abs() < 1e-9);
        assert!((stats.spend_month_cny - 1.88).abs() < 1e-9);
        assert!((stats.spend_total_cny - 7.32).abs() < 1e-9);
    }

    #[test]
    fn free_images_left_never_go_below_zero() {
        let periods = Periods::at(datetime!(2026-03-17 12:00 UTC), Timestamp::from_millis(0));
        let rows = MoneyRows {
            ended: vec![ModelTally {
                model: Model::Wan25I2iPreview,
                all: tally(80, 0.0),
                today: tally(0, 0.0),
                month: tally(0, 0.0),
                since_free: tally(80, 0.0),
            }],
            at_service: BTreeMap::new(),
        };
        let stats = money_stats(&rows, &periods, Region::Beijing, |_| None);
        let line = stats
            .models
            .iter()
            .find(|m| m.model == Model::Wan25I2iPreview)
            .unwrap();
        assert_eq!((line.free_images_used, line.free_images_left), (80, 0));
    }

    #[test]
    fn money_in_json_is_rounded_to_the_cent() {
        let periods = Periods::at(datetime!(2026-03-17 12:00 UTC), Timestamp::from_millis(0));
        let rows = MoneyRows {
            ended: vec![ModelTally {
                model: Model::Wanx21T2iTurbo,
                all: tally(48, 0.14 * 48.0),
                today: tally(48, 0.14 * 48.0),
                month: tally(48, 0.14 * 48.0),
                since_free: tally(48, 0.14 * 48.0),
            }],
            at_service: BTreeMap::new(),
        };
        let stats = money_stats(&rows, &periods, Region::Beijing, Model::default_price_cny);
        let text = serde_json::to_string(&stats).unwrap();
        assert!(!text.contains("000000"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["spend_today_cny"], serde_json::json!(6.72));
        assert_eq!(
            json["models"][0]["spend_total_cny"],
            serde_json::json!(6.72)
        );
        assert_eq!(json["region"], "cn-beijing");
        assert_eq!(json["free_images_counted_locally"], true);
    }
}
