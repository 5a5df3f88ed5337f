//! `GET /api/v1/quotas`: the account's limits per model, as API-CURRENT.md section 4
//! shows them. The simulator answers the limits it enforces (`SimConfig::limits`, set by
//! `wandash sim --rate` / `--in-flight`, or API.md's defaults), so a client that reads
//! them and keeps to them is never throttled. Paged like the service (`page_no`,
//! `page_size`); `model` filters by id, `name` is accepted and ignored.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::routes::{Shared, authorize, invalid, request_id};
use crate::dashscope::{Model, ModelLimits};

/// The service's documented page size.
const DEFAULT_PAGE_SIZE: u64 = 20;
const MAX_PAGE_SIZE: u64 = 100;

#[derive(serde::Deserialize)]
pub(super) struct QuotaParams {
    page_no: Option<String>,
    page_size: Option<String>,
    model: Option<String>,
}

pub(super) async fn list_quotas(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<QuotaParams>,
) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    let number = |name: &str, value: &Option<String>, default: u64, max: u64| match value
        .as_deref()
        .filter(|text| !text.is_empty())
    {
        None => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{name} `{text}` must be a whole number from 1 to {max}"
            )),
        },
    };
    let (page_no, page_size) = match (
        number("page_no", &params.page_no, 1, 1_000_000),
        number(
            "page_size",
            &params.page_size,
            DEFAULT_PAGE_SIZE,
            MAX_PAGE_SIZE,
        ),
    ) {
        (Ok(page_no), Ok(page_size)) => (page_no, page_size),
        (Err(why), _) | (_, Err(why)) => return invalid(why),
    };
    let matching: Vec<Model> = Model::ALL
        .into_iter()
        .filter(|m| {
            params
                .model
                .as_deref()
                .is_none_or(|wanted| wanted.is_empty() || m.id() == wanted)
        })
        .collect();
    let quotas: Vec<Value> = matching
        .iter()
        .skip(((page_no - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(|&model| quota_json(model, sim.limits(model)))
        .collect();
    axum::Json(json!({
        "request_id": request_id(),
        "output": {
            "total": matching.len(),
            "page_no": page_no,
            "page_size": page_size,
            "quotas": quotas,
        },
    }))
    .into_response()
}

/// One model's entry. A whole number of creates per second is stated per second, any
/// other rate per minute (the service's two periods: 1 and 60 seconds).
fn quota_json(model: Model, limits: ModelLimits) -> Value {
    let per_second = limits.submit_per_second;
    let (request_limit, period) = if per_second.fract() == 0.0 {
        (per_second, 1)
    } else {
        ((per_second * 60.0).round(), 60)
    };
    json!({
        "model": model.id(),
        "workspace_id": "ws-simulator",
        "model_limit": {
            "request_limit": request_limit as u64,
            "request_limit_period": period,
            "usage_limit": null,
            "usage_limit_field": null,
            "usage_limit_period": null,
            "async_user_queue_limit": 0,
            "async_user_concurrency_limit": limits.in_flight,
        },
        "workspace_limit": null,
    })
}
