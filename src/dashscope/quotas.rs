//! The account's quotas (API-CURRENT.md section 4): the create rate and the tasks in
//! flight the service allows per model, read from a paged list.

use reqwest::Method;
use serde::Deserialize;

use super::client::Client;
use super::error::ClientError;

/// Where the quotas are listed under the base URL. Unconfirmed (u): the Alibaba Cloud
/// docs (list-quotas, Sep 2026) give `/quotas`, the Chinese editions `/models/limits`, so
/// it is a setting (`[account] quotas_path`) with this default.
pub const DEFAULT_QUOTAS_PATH: &str = "/quotas";

/// The page size the docs show.
pub const QUOTAS_PAGE_SIZE: u32 = 20;

/// One model's limits as the account states them; `None` where it states nothing usable.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountLimits {
    /// The model id as the service writes it.
    pub model: String,
    pub submit_per_second: Option<f64>,
    pub in_flight: Option<u32>,
}

/// One page of the account's quotas.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaPage {
    /// Quotas in all pages.
    pub total: u64,
    pub limits: Vec<AccountLimits>,
}

impl Client {
    /// Page `page_no` (from 1) of the account's quotas at `path` (see
    /// `DEFAULT_QUOTAS_PATH`).
    pub async fn quotas_page(&self, path: &str, page_no: u32) -> Result<QuotaPage, ClientError> {
        let (page_no, page_size) = (page_no.max(1).to_string(), QUOTAS_PAGE_SIZE.to_string());
        let params = [("page_no", page_no.as_str()), ("page_size", &page_size)];
        let answer: QuotasAnswer = self
            .send_json(self.api_query(Method::GET, path, &params))
            .await?;
        Ok(answer.into_page())
    }
}

#[derive(Deserialize)]
struct QuotasAnswer {
    output: QuotasOutput,
}

#[derive(Deserialize)]
struct QuotasOutput {
    total: u64,
    #[serde(default)]
    quotas: Vec<Quota>,
}

#[derive(Deserialize)]
struct Quota {
    model: String,
    model_limit: Option<Limit>,
    workspace_limit: Option<Limit>,
}

/// The fields wandash uses; `usage_limit*` and `async_user_queue_limit` are not limits
/// on what it sends.
#[derive(Deserialize)]
struct Limit {
    request_limit: Option<f64>,
    /// Seconds: 60 = per minute, 1 = per second.
    request_limit_period: Option<f64>,
    async_user_concurrency_limit: Option<f64>,
}

impl QuotasAnswer {
    fn into_page(self) -> QuotaPage {
        QuotaPage {
            total: self.output.total,
            limits: self
                .output
                .quotas
                .into_iter()
                .map(|quota| stated_limits(quota.model, quota.model_limit, quota.workspace_limit))
                .collect(),
        }
    }
}

/// What a model's quota allows: per field, the smaller of the model's and the
/// workspace's limit (the workspace's cannot exceed the model's, but a service that says
/// otherwise is not believed above the model's). A missing, zero or nonsensical number
/// states nothing; a request limit without its period is no rate.
fn stated_limits(
    model: String,
    model_limit: Option<Limit>,
    workspace: Option<Limit>,
) -> AccountLimits {
    let rate = |limit: &Limit| {
        let requests = limit.request_limit.filter(|n| n.is_finite() && *n > 0.0)?;
        let period = limit
            .request_limit_period
            .filter(|s| s.is_finite() && *s > 0.0)?;
        Some(requests / period)
    };
    let in_flight = |limit: &Limit| {
        limit
            .async_user_concurrency_limit
            .filter(|n| n.is_finite() && *n >= 1.0)
            .map(|n| n.min(f64::from(u32::MAX)) as u32)
    };
    let both = [model_limit.as_ref(), workspace.as_ref()];
    let smallest_rate = both
        .iter()
        .flatten()
        .filter_map(|l| rate(l))
        .reduce(f64::min);
    let smallest_in_flight = both.iter().flatten().filter_map(|l| in_flight(l)).min();
    AccountLimits {
        model: crate::text::sanitize(&model),
        submit_per_second: smallest_rate,
        in_flight: smallest_in_flight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> QuotaPage {
        serde_json::from_str::<QuotasAnswer>(json)
            .expect("parses")
            .into_page()
    }

    #[test]
    fn the_documented_answer_reads_as_two_per_second_and_two_in_flight() {
        let got = page(
            r#"{"request_id":"r","output":{"total":1,"page_no":1,"page_size":20,"quotas":[{"model":"wan2.6-t2i","workspace_id":"w",
             "model_limit":{"request_limit":2,"request_limit_period":1,"usage_limit":null,"usage_limit_field":null,"usage_limit_period":null,
             "async_user_queue_limit":0,"async_user_concurrency_limit":2},"workspace_limit":null}]}}"#,
        );
        assert_eq!(
            got,
            QuotaPage {
                total: 1,
                limits: vec![AccountLimits {
                    model: "wan2.6-t2i".into(),
                    submit_per_second: Some(2.0),
                    in_flight: Some(2),
                }],
            }
        );
    }

    #[test]
    fn a_per_minute_limit_is_a_rate_per_second_and_the_workspace_limit_lowers_it() {
        let got = page(
            r#"{"output":{"total":3,"quotas":[
              {"model":"a","model_limit":{"request_limit":120,"request_limit_period":60,"async_user_concurrency_limit":4},
               "workspace_limit":{"request_limit":30,"request_limit_period":60,"async_user_concurrency_limit":null}},
              {"model":"b","model_limit":{"request_limit":2,"request_limit_period":1,"async_user_concurrency_limit":2},
               "workspace_limit":{"request_limit":5,"request_limit_period":1,"async_user_concurrency_limit":8}},
              {"model":"c","model_limit":null,"workspace_limit":{"request_limit":1,"request_limit_period":1,"async_user_concurrency_limit":1}}]}}"#,
        );
        let limits: Vec<_> = got
            .limits
            .iter()
            .map(|l| (l.model.as_str(), l.submit_per_second, l.in_flight))
            .collect();
        assert_eq!(
            limits,
            [
                ("a", Some(0.5), Some(4)),
                ("b", Some(2.0), Some(2)),
                ("c", Some(1.0), Some(1))
            ],
            "the smaller of the two, field by field"
        );
    }

    #[test]
    fn zero_missing_or_periodless_numbers_state_nothing() {
        let got = page(
            r#"{"output":{"total":2,"quotas":[
              {"model":"a","model_limit":{"request_limit":0,"request_limit_period":1,"async_user_concurrency_limit":0}},
              {"model":"b\u001b[31m","model_limit":{"request_limit":5,"async_user_concurrency_limit":-1}}]}}"#,
        );
        assert_eq!(
            got.limits,
            [
                AccountLimits {
                    model: "a".into(),
                    submit_per_second: None,
                    in_flight: None
                },
                AccountLimits {
                    model: "b[31m".into(),
                    submit_per_second: None,
                    in_flight: None
                }
            ]
        );
        assert_eq!(page(r#"{"output":{"total":0}}"#).limits, []);
    }
}
