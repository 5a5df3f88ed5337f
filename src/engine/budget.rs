//! Budgets: whether a queued job may be sent, given what has been spent and what is at
//! the service. `hold` decides (a pure function, unit-tested here); `check` runs it for
//! the job the scheduler is about to claim and notes the reason on a job held back.
//!
//! Spend is counted at list price (images x the price per image), free images
//! included: a budget is a promise not to spend more, so it errs on the side of less.

use std::collections::BTreeMap;
use std::fmt;

use super::ctx::Ctx;
use crate::dashscope::{Model, Timestamp};
use crate::store::{ErrorKind, JobError, JobId, JobState, MoneyRows, Periods, StoreError};

/// The config's `[budget]`: limits no job may be sent past.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    /// CNY per local day.
    pub daily_cny: Option<f64>,
    /// CNY per local calendar month.
    pub monthly_cny: Option<f64>,
    /// Send nothing past a model's free images.
    pub free_quota_only: bool,
    /// Where the free images are counted from; `None`: the store's first job.
    pub free_quota_since: Option<Timestamp>,
}

impl Budget {
    /// Whether any limit is set (without one, no job is ever held).
    pub fn is_set(&self) -> bool {
        self.daily_cny.is_some() || self.monthly_cny.is_some() || self.free_quota_only
    }
}

/// What counts against the budget at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spending {
    /// Spent on jobs that ended today (local time), and this month.
    pub today_cny: f64,
    pub month_cny: f64,
    /// What jobs at the service will cost if every image they asked for is made.
    pub at_service_cny: f64,
    /// Free images used per model: made since the free images are counted, plus those
    /// asked for by jobs at the service.
    pub free_used: BTreeMap<Model, u64>,
}

impl Spending {
    /// From the store's sums; `price` is one image's price per model.
    pub fn from_rows(rows: &MoneyRows, price: impl Fn(Model) -> Option<f64>) -> Spending {
        let mut spending = Spending::default();
        for tally in &rows.ended {
            spending.today_cny += tally.today.cost_cny;
            spending.month_cny += tally.month.cost_cny;
            *spending.free_used.entry(tally.model).or_default() += tally.since_free.images;
        }
        for (&model, &images) in &rows.at_service {
            spending.count_sent(model, images, price(model));
        }
        spending
    }

    /// Counts a job as sent: its images are at the service now.
    pub fn count_sent(&mut self, model: Model, images: u64, price: Option<f64>) {
        // A job with no known price is only ever sent without a money budget.
        self.at_service_cny += price.unwrap_or(0.0) * images as f64;
        *self.free_used.entry(model).or_default() += images;
    }
}

/// Why a job is not sent now.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The job would take the day's (or the month's) spend past its limit.
    Limit {
        period: Period,
        limit: f64,
        spent: f64,
        at_service: f64,
        job: f64,
    },
    /// With `free_quota_only`, the job asks for more images than the model has free.
    FreeImages {
        model: Model,
        left: u64,
        wanted: u64,
    },
    /// Under a money limit, a job whose price is unknown cannot be counted.
    NoPrice { model: Model },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Limit {
                period,
                limit,
                spent,
                at_service,
                job,
            } => {
                let (name, key, when) = match period {
                    Period::Day => ("daily", "daily_cny", "tomorrow"),
                    Period::Month => ("monthly", "monthly_cny", "next month"),
                };
                write!(
                    f,
                    "waits for budget: {spent:.2} CNY spent + {at_service:.2} at the service + {job:.2} for this job is over the {name} budget of {limit:.2} CNY; it goes {when}, or when budget.{key} is raised (and the engine restarted)"
                )
            }
            Hold::FreeImages {
                model,
                left,
                wanted,
            } => write!(
                f,
                "waits for budget: budget.free_quota_only is on and {model} has {left} free image(s) left (counted locally), this job asks for {wanted}; it goes when free_quota_only is turned off (and the engine restarted)"
            ),
            Hold::NoPrice { model } => write!(
                f,
                "waits for budget: no price is known for {model}, so a budget cannot count it; set prices.\"{model}\" in the config (and restart the engine)"
            ),
        }
    }
}

/// Amounts compared in whole cents, so that `0.14 x 3` meets a limit of `0.42`.
fn in_cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Whether a job of `model` asking for `images` images, each at `price`, may be sent
/// now; the reason if not. Money limits come first: they are what a person set.
pub fn hold(
    budget: &Budget,
    spending: &Spending,
    model: Model,
    images: u64,
    price: Option<f64>,
) -> Option<Hold> {
    let money_limits = [
        (Period::Day, budget.daily_cny, spending.today_cny),
        (Period::Month, budget.monthly_cny, spending.month_cny),
    ];
    for (period, limit, spent) in money_limits {
        let Some(limit) = limit else { continue };
        let Some(price) = price else {
            return Some(Hold::NoPrice { model });
        };
        let job = price * images as f64;
        if in_cents(spent) + in_cents(spending.at_service_cny) + in_cents(job) > in_cents(limit) {
            return Some(Hold::Limit {
                period,
                limit,
                spent,
                at_service: spending.at_service_cny,
                job,
            });
        }
    }
    if budget.free_quota_only {
        let used = spending.free_used.get(&model).copied().unwrap_or(0);
        let left = model.free_images().saturating_sub(used);
        if images > left {
            return Some(Hold::FreeImages {
                model,
                left,
                wanted: images,
            });
        }
    }
    None
}

/// What each of `jobs` (model, images), sent in queue order, would meet: the hold of
/// those that wait. Jobs that go count against the budget for the ones after them; as
/// in the engine, a model's queue waits behind its first job held back.
pub fn forecast(
    budget: &Budget,
    mut spending: Spending,
    jobs: &[(Model, u64)],
    price: impl Fn(Model) -> Option<f64>,
) -> Vec<Option<Hold>> {
    let mut waiting: BTreeMap<Model, Hold> = BTreeMap::new();
    jobs.iter()
        .map(|&(model, images)| {
            if let Some(first) = waiting.get(&model) {
                return Some(first.clone());
            }
            let held = hold(budget, &spending, model, images, price(model));
            match &held {
                None => spending.count_sent(model, images, price(model)),
                Some(reason) => {
                    waiting.insert(model, reason.clone());
                }
            }
            held
        })
        .collect()
}

/// The periods a budget counts over now, and the earliest job end they need.
pub fn periods_now(budget: &Budget, first_job_at: Option<Timestamp>) -> (Periods, Timestamp) {
    let free_since = budget
        .free_quota_since
        .or(first_job_at)
        .unwrap_or_else(Timestamp::now);
    let periods = Periods::now_local(free_since);
    let from = if budget.free_quota_only {
        periods.month.min(periods.free_since)
    } else {
        periods.month
    };
    (periods, from)
}

/// Whether the budget lets job `id` be sent now. A job held back keeps its place in the
/// queue with the reason noted on it (once: the note is written only when it changes),
/// so `list`, `show` and the dashboard say why it waits.
pub(crate) async fn check(ctx: &Ctx, id: JobId) -> Result<bool, StoreError> {
    let budget = ctx.config.budget.clone();
    if !budget.is_set() {
        return Ok(true);
    }
    let prices: BTreeMap<Model, Option<f64>> = Model::ALL
        .into_iter()
        .map(|m| (m, ctx.config.price_for(m)))
        .collect();
    let read_budget = budget.clone();
    let (job, rows) = ctx
        .db(move |s| {
            let (periods, from) = periods_now(&read_budget, s.first_job_at()?);
            Ok((s.job_brief(id)?, s.money_rows(&periods, from)?))
        })
        .await?;
    let Some(job) = job.filter(|j| j.summary.state() == JobState::Queued) else {
        // Gone or claimed meanwhile: the claim finds out.
        return Ok(true);
    };
    let price = |m: Model| prices.get(&m).copied().flatten();
    let spending = Spending::from_rows(&rows, price);
    let model = job.summary.model;
    let images = u64::from(job.summary.images_expected);
    let Some(held) = hold(&budget, &spending, model, images, price(model)) else {
        return Ok(true);
    };
    let reason = held.to_string();
    let noted = job
        .summary
        .error()
        .is_some_and(|e| e.kind == ErrorKind::OverBudget && e.message == reason);
    if !noted {
        tracing::info!(job = %id, %model, %reason, "held back by the budget");
        ctx.retrying(id, JobError::new(ErrorKind::OverBudget, reason, None))
            .await?;
        ctx.changed(id, JobState::Queued);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ModelTally, Tally};

    const TURBO: Model = Model::Wanx21T2iTurbo;

    fn daily(limit: f64) -> Budget {
        Budget {
            daily_cny: Some(limit),
            ..Budget::default()
        }
    }

    fn spent_today(cny: f64) -> Spending {
        Spending {
            today_cny: cny,
            month_cny: cny,
            ..Spending::default()
        }
    }

    #[test]
    fn no_limit_holds_nothing() {
        let budget = Budget::default();
        assert!(!budget.is_set());
        assert_eq!(hold(&budget, &spent_today(1e6), TURBO, 4, None), None);
    }

    #[test]
    fn a_job_that_fits_the_day_goes_and_one_past_it_waits() {
        let budget = daily(1.0);
        // 0.42 spent + 4 x 0.14 = 0.98: fits.
        assert_eq!(
            hold(&budget, &spent_today(0.42), TURBO, 4, Some(0.14)),
            None
        );
        // Exactly the limit, in binary floating point: 0.44 + 0.56 = 1.00.
        assert_eq!(
            hold(&budget, &spent_today(0.44), TURBO, 4, Some(0.14)),
            None
        );
        let held = hold(&budget, &spent_today(0.45), TURBO, 4, Some(0.14)).unwrap();
        assert!(matches!(
            held,
            Hold::Limit {
                period: Period::Day,
                ..
            }
        ));
        let text = held.to_string();
        assert!(text.contains("daily budget of 1.00 CNY"), "{text}");
        assert!(text.contains("budget.daily_cny"), "{text}");
        assert!(text.contains("tomorrow"), "{text}");
    }

    #[test]
    fn jobs_at_the_service_count_at_their_expected_cost() {
        let mut spending = spent_today(0.0);
        spending.count_sent(TURBO, 4, Some(0.14));
        spending.count_sent(TURBO, 4, Some(0.14));
        // 1.12 at the service, the next 0.56 is over 1.50.
        let held = hold(&daily(1.5), &spending, TURBO, 4, Some(0.14)).unwrap();
        assert!(held.to_string().contains("1.12 at the service"), "{held}");
    }

    #[test]
    fn the_month_is_its_own_limit() {
        let budget = Budget {
            daily_cny: Some(10.0),
            monthly_cny: Some(20.0),
            ..Budget::default()
        };
        let spending = Spending {
            today_cny: 1.0,
            month_cny: 19.9,
            ..Spending::default()
        };
        let held = hold(&budget, &spending, TURBO, 1, Some(0.14)).unwrap();
        assert!(matches!(
            held,
            Hold::Limit {
                period: Period::Month,
                ..
            }
        ));
        assert!(held.to_string().contains("next month"), "{held}");
    }

    #[test]
    fn an_unknown_price_waits_under_a_money_limit_only() {
        let preview = Model::Wan25I2iPreview;
        assert_eq!(
            hold(&daily(5.0), &spent_today(0.0), preview, 1, None),
            Some(Hold::NoPrice { model: preview })
        );
        let free_only = Budget {
            free_quota_only: true,
            ..Budget::default()
        };
        assert_eq!(hold(&free_only, &spent_today(0.0), preview, 1, None), None);
    }

    #[test]
    fn free_quota_only_stops_at_the_free_count() {
        let budget = Budget {
            free_quota_only: true,
            ..Budget::default()
        };
        let mut spending = Spending::default();
        spending.free_used.insert(TURBO, 497);
        assert_eq!(hold(&budget, &spending, TURBO, 3, Some(0.14)), None);
        let held = hold(&budget, &spending, TURBO, 4, Some(0.14)).unwrap();
        assert_eq!(
            held,
            Hold::FreeImages {
                model: TURBO,
                left: 3,
                wanted: 4
            }
        );
        assert!(held.to_string().contains("counted locally"), "{held}");
        // Other models have their own free images.
        assert_eq!(
            hold(&budget, &spending, Model::Wanx21T2iPlus, 4, Some(0.2)),
            None
        );
    }

    #[test]
    fn a_forecast_counts_the_jobs_before_each_one() {
        let budget = daily(1.0);
        let cheap = Model::Wanx20T2iTurbo;
        let jobs = [(TURBO, 4), (TURBO, 2), (TURBO, 4), (TURBO, 1), (cheap, 1)];
        let held = forecast(&budget, Spending::default(), &jobs, |m| {
            m.default_price_cny()
        });
        // 0.56, then 0.84; the third (1.40) waits, and the fourth behind it though it
        // would fit; another model's 0.04 still goes.
        let waits: Vec<bool> = held.iter().map(Option::is_some).collect();
        assert_eq!(waits, [false, false, true, true, false]);
    }

    #[test]
    fn spending_reads_the_store_sums() {
        let rows = MoneyRows {
            ended: vec![ModelTally {
                model: TURBO,
                all: Tally {
                    images: 20,
                    cost_cny: 2.8,
                },
                today: Tally {
                    images: 4,
                    cost_cny: 0.56,
                },
                month: Tally {
                    images: 10,
                    cost_cny: 1.4,
                },
                since_free: Tally {
                    images: 20,
                    cost_cny: 2.8,
                },
            }],
            at_service: [(TURBO, 2)].into_iter().collect(),
        };
        let spending = Spending::from_rows(&rows, Model::default_price_cny);
        assert!((spending.today_cny - 0.56).abs() < 1e-9);
        assert!((spending.month_cny - 1.4).abs() < 1e-9);
        assert!((spending.at_service_cny - 0.28).abs() < 1e-9);
        assert_eq!(spending.free_used[&TURBO], 22);
    }
}
