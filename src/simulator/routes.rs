//! The HTTP surface: `/api/v1` as API.md describes it, the upload host (`/__oss`), result
//! images (`/results`), and the simulator's own `/__sim` admin endpoints.
//!
//! Every JSON answer is built by hand from API.md, never from `dashscope::wire`, so that
//! the simulator checks the client instead of agreeing with it by construction.

// Handlers answer errors as ready `Response`s, as axum intends; boxing them would only
// add noise to every early return.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use time::macros::{format_description, offset};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::Faults;
use super::generation;
use super::state::{Counter, Policy, Sim, Upload};
use super::tasks::{Failure, Outcome, Status, Task, TaskKind, hash64};
use crate::dashscope::validate::validate_all;
use crate::dashscope::{Endpoint, Family, JobSpec, Model, WireError};

pub(super) type Shared = Arc<Sim>;

/// Big enough for three 10 MB images as data URIs in one create body.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router(sim: Shared) -> Router {
    let api = Router::new()
        .route(Endpoint::TextToImage.path(), post(create_text_to_image))
        .route(Endpoint::ImageToImage.path(), post(create_image_to_image))
        .route(
            Endpoint::ImageGeneration.path(),
            post(generation::create_generation),
        )
        .route(
            Endpoint::MultimodalGeneration.path(),
            post(generation::call_multimodal),
        )
        .route("/tasks", get(list_tasks))
        .route("/tasks/{id}", get(fetch_task))
        .route("/tasks/{id}/cancel", post(cancel_task))
        .route("/uploads", get(get_policy))
        .route("/quotas", get(super::quotas::list_quotas))
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_wrong_method)
        .layer(middleware::from_fn_with_state(sim.clone(), api_faults))
        .layer(middleware::from_fn_with_state(sim.clone(), service_date));
    let results = Router::new()
        .route("/results/{task}/{file}", get(result_image))
        .layer(middleware::from_fn_with_state(sim.clone(), download_faults));
    Router::new()
        .nest("/api/v1", api)
        .merge(results)
        .route("/__oss", post(upload_object))
        .route("/__sim/stats", get(stats))
        .route("/__sim/faults", post(set_faults))
        .route("/__sim/advance", post(advance_clock))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(sim)
}

pub(super) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The service's error body: JSON with `code`, `message`, `request_id`.
pub(super) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({ "code": code, "message": message.into(), "request_id": request_id() });
    (status, axum::Json(body)).into_response()
}

pub(super) fn invalid(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

pub(super) fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
}

/// `Authorization: Bearer <key>`: the configured key, or any non-empty key.
pub(super) fn authorize(sim: &Sim, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let ok = match (&sim.config.key, given) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(expected), Some(given)) => expected == given,
    };
    if ok {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidApiKey",
            "Invalid API-key provided.",
        ))
    }
}

// ---- faults -------------------------------------------------------------------------

async fn api_faults(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let roll = sim.roll();
    if (roll.http_500 || roll.http_503)
        && let Some(delay) = roll.slow
    {
        tokio::time::sleep(delay).await;
    }
    if roll.http_500 {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error has occured, please try again later or contact service support.",
        );
    }
    if roll.http_503 {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ModelUnavailable",
            "Model is unavailable, please try again later.",
        );
    }
    let answer = match roll.slow {
        // A slow answer is late, not lost: the call takes effect now, in a task of its own
        // so that a client giving up (and hanging up, which would drop this handler) cannot
        // undo it, and the answer follows after the delay. A create therefore still makes
        // its task when the client times out, as on the service.
        Some(delay) => {
            let call = tokio::spawn(next.run(request));
            tokio::time::sleep(delay).await;
            call.await.unwrap_or_else(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    format!("the call crashed: {e}"),
                )
            })
        }
        None => next.run(request).await,
    };
    if roll.reset {
        connection_reset()
    } else {
        answer
    }
}

/// The service's clock in every API answer's `Date` header, as a web server stamps it
/// when the answer goes out: the simulator's clock, which `/__sim/advance` moves on.
async fn service_date(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let mut answer = next.run(request).await;
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(sim.clock.now_ms()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let date = now.format(format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ));
    if let Some(date) = date.ok().and_then(|d| HeaderValue::from_str(&d).ok()) {
        answer.headers_mut().insert(header::DATE, date);
    }
    answer
}

async fn download_faults(State(sim): State<Shared>, request: Request, next: Next) -> Response {
    let roll = sim.roll();
    if let Some(delay) = roll.slow {
        tokio::time::sleep(delay).await;
    }
    let answer = next.run(request).await;
    if roll.reset {
        connection_reset()
    } else {
        answer
    }
}

/// An answer whose body fails before its first byte: hyper then closes the connection
/// without writing the head, and the client sees the connection drop.
fn connection_reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

async fn api_wrong_method() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "This path does not take that HTTP method.",
    )
}

async fn api_not_found(headers: HeaderMap, State(sim): State<Shared>) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested path does not exist under /api/v1.",
    )
}

// ---- creates ------------------------------------------------------------------------

async fn create_text_to_image(
    State(sim): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(sim, Endpoint::TextToImage, headers, body).await
}

async fn create_image_to_image(
    State(sim): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(sim, Endpoint::ImageToImage, headers, body).await
}

async fn create(sim: Shared, endpoint: Endpoint, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    if !header_is(&headers, "x-dashscope-async", "enable") {
        return invalid(
            "current user api does not support synchronous calls: send the header X-DashScope-Async: enable",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return invalid(format!(
            "Content-Type must be application/json, not `{content_type}`"
        ));
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => return invalid(format!("The request body is not valid JSON: {e}")),
    };
    let spec = match JobSpec::from_wire(&body) {
        Ok(spec) => spec,
        Err(WireError::UnknownModel(name)) => {
            return error(
                StatusCode::NOT_FOUND,
                "ModelNotFound",
                format!("Model not exist: {name}"),
            );
        }
        Err(e) => return invalid(e.to_string()),
    };
    if !generation::serves(spec.model, endpoint) {
        let model = spec.model;
        // A model of the other prompt endpoint is told where to go; a messages model
        // gets the service's `url error`.
        return match model
            .entry()
            .endpoints
            .iter()
            .find(|e| matches!(e, Endpoint::TextToImage | Endpoint::ImageToImage))
        {
            Some(right) => invalid(format!(
                "Model {model} is not served by {}; send it to {}",
                endpoint.path(),
                right.path()
            )),
            None => generation::url_error(),
        };
    }
    match admit(&sim, &headers, spec, body, TaskKind::Synthesis).await {
        Ok(task_id) => axum::Json(json!({
            "output": { "task_status": "PENDING", "task_id": task_id },
            "request_id": request_id(),
        }))
        .into_response(),
        Err(refused) => refused,
    }
}

/// Judges a create whose body was read (`body` in the prompt shape `spec` came from):
/// the rate quota, the model's rules, `oss://` inputs, the in-flight limit. An accepted
/// one becomes a task, worked on at once; its id is returned.
pub(super) async fn admit(
    sim: &Shared,
    headers: &HeaderMap,
    spec: JobSpec,
    body: Value,
    kind: TaskKind,
) -> Result<String, Response> {
    let model = spec.model;
    let now = sim.clock.now_ms();
    let limits = sim.limits(model);
    // The gateway's rate quota comes before anything looks at the request.
    if !sim.lock().take_token(model, limits, now) {
        sim.lock().count(Counter::Throttled, Some(model));
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "Throttling.RateQuota",
            format!(
                "Requests rate limit exceeded, please try again later. ({model} accepts {} creates per second)",
                limits.submit_per_second
            ),
        ));
    }
    let errors = validate_all(&spec);
    if !errors.is_empty() {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(invalid(message));
    }
    let oss: Vec<&str> = spec
        .image_refs()
        .iter()
        .filter(|(_, i)| i.is_oss())
        .map(|(f, _)| *f)
        .collect();
    if !oss.is_empty() && !header_is(headers, "x-dashscope-ossresourceresolve", "enable") {
        return Err(invalid(format!(
            "{} is an oss:// URL; such requests need the header X-DashScope-OssResourceResolve: enable",
            oss[0]
        )));
    }
    for (field, image) in spec.image_refs() {
        if image.is_oss() {
            let key = image.to_string()["oss://".len()..].to_string();
            let lock = sim.lock();
            match lock.uploads.get(&key) {
                Some(upload) if upload.model == model => {}
                Some(upload) => {
                    return Err(invalid(format!(
                        "{field}: {image} was uploaded for model {}, not {model}; an upload is tied to its model",
                        upload.model
                    )));
                }
                None => {
                    return Err(invalid(format!(
                        "{field}: {image} does not exist; upload it first"
                    )));
                }
            }
        }
    }

    let task_id = uuid::Uuid::new_v4().to_string();
    let mut task = Task::new(task_id.clone(), model, body, &spec, now, sim.latency_ms());
    task.kind = kind;
    task.plan = sim.plan(spec.image_count());
    {
        // Creates beyond `in_flight` tasks PENDING or RUNNING are refused with 429
        // Throttling (API.md: "over the rate or concurrency limit"). Every accepted task
        // therefore has a slot to run in: it waits PENDING for its queue time, then runs.
        let mut lock = sim.lock();
        lock.forget_expired(now, sim.ttl_ms());
        let in_flight = lock.in_flight(model, now, sim.ttl_ms());
        if in_flight >= limits.in_flight {
            lock.count(Counter::Throttled, Some(model));
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttling",
                format!(
                    "Requests rate limit exceeded, please try again later. ({model} allows {} tasks PENDING or RUNNING at once; {in_flight} are)",
                    limits.in_flight
                ),
            ));
        }
        lock.tasks.insert(task_id.clone(), task.clone());
        let counter = if kind == TaskKind::SyncCall {
            Counter::SyncCall
        } else {
            Counter::Create
        };
        lock.count(counter, Some(model));
        lock.note_in_flight(model, in_flight + 1);
    }
    sim.persist_task(task).await;
    tokio::spawn(Arc::clone(sim).work(task_id.clone()));
    Ok(task_id)
}

// ---- polls, cancels, lists ------------------------------------------------------------

async fn fetch_task(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    let now = sim.clock.now_ms();
    let mut lock = sim.lock();
    // A synchronous call leaves no task to poll.
    let task = lock
        .task(&id, now, sim.ttl_ms())
        .filter(|t| t.kind != TaskKind::SyncCall)
        .cloned();
    let Some(task) = task else {
        lock.count(Counter::Poll, None);
        return axum::Json(json!({
            "request_id": request_id(),
            "output": { "task_id": id, "task_status": "UNKNOWN" },
        }))
        .into_response();
    };
    lock.count(Counter::Poll, Some(task.model));
    drop(lock);
    axum::Json(task_json(&sim, &task, now)).into_response()
}

/// `GET /tasks/{id}`'s answer for a known task.
fn task_json(sim: &Sim, task: &Task, now: i64) -> Value {
    let phase = task.phase(now);
    let mut output = json!({
        "task_id": task.id,
        "task_status": phase.status.as_str(),
        "submit_time": service_time(task.submit_ms),
    });
    if let Some(at) = phase.scheduled_ms {
        output["scheduled_time"] = json!(service_time(at));
    }
    if let Some(at) = phase.end_ms {
        output["end_time"] = json!(service_time(at));
    }
    let mut answer = json!({ "request_id": request_id() });
    if matches!(phase.status, Status::Succeeded | Status::Failed) {
        match &task.outcome {
            Some(Outcome::Images(images)) => {
                let spec = task.spec();
                let succeeded = images.iter().filter(|i| i.is_none()).count();
                let results: Vec<Value> = images
                    .iter()
                    .enumerate()
                    .map(|(i, failure)| match failure {
                        Some(f) => json!({ "code": f.code, "message": f.message }),
                        None => result_item(sim, task, &spec, i),
                    })
                    .collect();
                if succeeded == 0 {
                    let first = images.iter().flatten().next().cloned().unwrap_or_else(|| {
                        Failure::new(
                            "InternalError.Algo",
                            "Algorithm process error: no image could be generated.",
                        )
                    });
                    output["code"] = json!(first.code);
                    output["message"] = json!(first.message);
                } else if task.kind == TaskKind::Generation {
                    output["choices"] = json!(generation::choices(sim, task));
                    output["finished"] = json!(true);
                } else {
                    output["results"] = json!(results);
                }
                if task.kind == TaskKind::Generation {
                    answer["usage"] = generation::wan_usage(sim, task, succeeded);
                } else {
                    output["task_metrics"] = json!({ "TOTAL": images.len(), "SUCCEEDED": succeeded, "FAILED": images.len() - succeeded });
                    answer["usage"] = json!({ "image_count": succeeded });
                }
            }
            Some(Outcome::Failed(failure)) => {
                output["code"] = json!(failure.code);
                output["message"] = json!(failure.message);
            }
            None => {}
        }
    }
    answer["output"] = output;
    answer
}

fn result_item(sim: &Sim, task: &Task, spec: &JobSpec, index: usize) -> Value {
    let mut item = json!({ "url": format!("{}/results/{}/{index}.png", sim.origin, task.id) });
    if spec.model.family() == Family::TextToImage {
        item["orig_prompt"] = json!(spec.prompt);
        if spec.prompt_extend != Some(false) {
            item["actual_prompt"] = json!(format!(
                "{}. Rich detail, soft natural light, balanced composition, high-definition photograph.",
                spec.prompt.trim_end_matches(['.', ' '])
            ));
        }
    }
    item
}

/// The service's time format, in China Standard Time as the service writes it.
fn service_time(ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset!(+8));
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    ))
    .unwrap_or_default()
}

async fn cancel_task(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    let now = sim.clock.now_ms();
    let canceled = {
        let mut lock = sim.lock();
        let model = lock.task(&id, now, sim.ttl_ms()).map(|t| t.model);
        lock.count(Counter::Cancel, model);
        match lock.tasks.get_mut(&id) {
            Some(task) if model.is_some() && task.phase(now).status == Status::Pending => {
                task.canceled_ms = Some(now);
                Some(task.clone())
            }
            _ => None,
        }
    };
    match canceled {
        Some(task) => {
            sim.persist_task(task).await;
            axum::Json(json!({ "request_id": request_id() })).into_response()
        }
        None => error(
            StatusCode::BAD_REQUEST,
            "UnsupportedOperation",
            "Failed to cancel the task, please confirm if the task is in PENDING status.",
        ),
    }
}

#[derive(serde::Deserialize)]
struct ListParams {
    page_no: Option<String>,
    page_size: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    model_name: Option<String>,
    status: Option<String>,
}

async fn list_tasks(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    let number =
        |name: &str, value: &Option<String>, default: u64, max: u64| -> Result<u64, Response> {
            match value {
                None => Ok(default),
                Some(text) => match text.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(invalid(format!(
                        "{name} `{text}` must be a whole number from 1 to {max}"
                    ))),
                },
            }
        };
    let time = |name: &str, value: &Option<String>| -> Result<Option<i64>, Response> {
        let Some(text) = value else { return Ok(None) };
        PrimitiveDateTime::parse(
            text,
            format_description!("[year][month][day][hour][minute][second]"),
        )
        .map(|t| Some((t.assume_offset(offset!(+8)).unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| {
            invalid(format!(
                "{name} `{text}` must be a time written YYYYMMDDhhmmss"
            ))
        })
    };
    let parsed = (|| {
        Ok::<_, Response>((
            number("page_no", &params.page_no, 1, 1_000_000)?,
            number("page_size", &params.page_size, 10, 100)?,
            time("start_time", &params.start_time)?,
            time("end_time", &params.end_time)?,
        ))
    })();
    let (page_no, page_size, start, end) = match parsed {
        Ok(parsed) => parsed,
        Err(answer) => return answer,
    };
    let now = sim.clock.now_ms();
    let ttl = sim.ttl_ms();
    let lock = sim.lock();
    let mut matching: Vec<(&Task, super::tasks::Phase)> = lock
        .tasks
        .values()
        .filter(|t| !t.expired(now, ttl) && t.kind != TaskKind::SyncCall)
        .map(|t| (t, t.phase(now)))
        .filter(|(t, phase)| {
            start.is_none_or(|s| t.submit_ms >= s)
                && end.is_none_or(|e| t.submit_ms <= e)
                && params
                    .model_name
                    .as_deref()
                    .is_none_or(|m| t.model_name() == m)
                && params
                    .status
                    .as_deref()
                    .is_none_or(|s| phase.status.as_str().eq_ignore_ascii_case(s))
        })
        .collect();
    matching.sort_by(|a, b| {
        b.0.submit_ms
            .cmp(&a.0.submit_ms)
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    let total = matching.len() as u64;
    let data: Vec<Value> = matching
        .iter()
        .skip(((page_no - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(|(task, phase)| {
            let mut item = json!({
                "task_id": task.id,
                "status": phase.status.as_str(),
                "model_name": task.model_name(),
                "gmt_create": task.submit_ms,
                "region": "cn-beijing",
                "request_id": request_id(),
            });
            if let Some(at) = phase.scheduled_ms {
                item["start_time"] = json!(at);
            }
            if let Some(at) = phase.end_ms {
                item["end_time"] = json!(at);
            }
            item
        })
        .collect();
    axum::Json(json!({
        "request_id": request_id(),
        "total": total,
        "total_page": total.div_ceil(page_size),
        "page_no": page_no,
        "page_size": page_size,
        "data": data,
    }))
    .into_response()
}

// ---- uploads --------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct PolicyParams {
    action: Option<String>,
    model: Option<String>,
}

async fn get_policy(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<PolicyParams>,
) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    if params.action.as_deref() != Some("getPolicy") {
        return invalid("action must be getPolicy");
    }
    let Some(model_name) = params.model else {
        return invalid("model is required: the upload is tied to the model that will use it");
    };
    let Ok(model) = model_name.parse::<Model>() else {
        return error(
            StatusCode::NOT_FOUND,
            "ModelNotFound",
            format!("Model not exist: {model_name}"),
        );
    };
    let now = sim.clock.now_ms();
    let expires_ms = now + 300_000;
    let date = service_time(now)[..10].to_string();
    let account = format!("{:016x}", hash64(&[b"account", model.id().as_bytes()]));
    let upload_dir = format!(
        "dashscope-instant/{account}/{date}/{}",
        uuid::Uuid::new_v4()
    );
    let policy_doc = json!({
        "expiration": service_time(expires_ms),
        "conditions": [["content-length-range", 0, 1024u64 * 1024 * 1024], ["starts-with", "$key", upload_dir]],
    });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy_doc.to_string());
    let signature = base64::engine::general_purpose::STANDARD
        .encode(hash64(&[policy.as_bytes(), b"simulated-oss-secret"]).to_le_bytes());
    let access_key_id = "LTAI5tSimulatedOssKey".to_string();
    sim.lock().policies.insert(
        upload_dir.clone(),
        Policy {
            model,
            policy: policy.clone(),
            signature: signature.clone(),
            access_key_id: access_key_id.clone(),
            expires_ms,
        },
    );
    axum::Json(json!({
        "request_id": request_id(),
        "data": {
            "policy": policy,
            "signature": signature,
            "upload_dir": upload_dir,
            "upload_host": format!("{}/__oss", sim.origin),
            "expire_in_seconds": 300,
            "max_file_size_mb": 1024,
            "capacity_limit_mb": 999_999_999,
            "oss_access_key_id": access_key_id,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        },
    }))
    .into_response()
}

/// OSS answers in XML.
fn oss_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{message}</Message>\n  <RequestId>{}</RequestId>\n  <HostId>dashscope-file-mgr.oss-cn-beijing.aliyuncs.com</HostId>\n</Error>\n",
        request_id()
    );
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        )],
        body,
    )
        .into_response()
}

/// The upload host: an OSS PostObject form. Checks the fields getPolicy handed out.
async fn upload_object(State(sim): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = match parse_multipart(content_type, &body) {
        Ok(parts) => parts,
        Err(message) => return oss_error(StatusCode::BAD_REQUEST, "InvalidArgument", &message),
    };
    let field = |name: &str| {
        parts
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
    };
    for required in [
        "OSSAccessKeyId",
        "Signature",
        "policy",
        "key",
        "x-oss-object-acl",
        "x-oss-forbid-overwrite",
        "success_action_status",
    ] {
        if field(required).is_none() {
            return oss_error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                &format!("the form field {required} is missing"),
            );
        }
    }
    let Some(file_index) = parts.iter().position(|p| p.name == "file") else {
        return oss_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "the form field file is missing",
        );
    };
    if file_index != parts.len() - 1 {
        return oss_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "the file field must be the last field of the form",
        );
    }
    let key = field("key").unwrap_or_default();
    let now = sim.clock.now_ms();
    let grant = {
        let lock = sim.lock();
        lock.policies
            .iter()
            .find(|(dir, _)| key.starts_with(&format!("{dir}/")))
            .map(|(_, p)| p.clone())
    };
    let Some(grant) = grant else {
        return oss_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "the key is not inside an upload_dir handed out by getPolicy",
        );
    };
    if now > grant.expires_ms {
        return oss_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Invalid according to Policy: Policy expired.",
        );
    }
    if field("OSSAccessKeyId").as_deref() != Some(grant.access_key_id.as_str())
        || field("policy").as_deref() != Some(grant.policy.as_str())
        || field("Signature").as_deref() != Some(grant.signature.as_str())
    {
        return oss_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let data = parts[file_index].data.clone();
    let upload = Upload {
        model: grant.model,
        bytes: Arc::new(data),
        created_ms: now,
    };
    {
        let mut lock = sim.lock();
        if field("x-oss-forbid-overwrite").as_deref() == Some("true")
            && lock.uploads.contains_key(&key)
        {
            return oss_error(
                StatusCode::CONFLICT,
                "FileAlreadyExists",
                "The object you specified already exists.",
            );
        }
        lock.uploads.insert(key.clone(), upload.clone());
        lock.count(Counter::Upload, Some(grant.model));
    }
    sim.persist_upload(key, upload).await;
    let status = if field("success_action_status").as_deref() == Some("200") {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    };
    status.into_response()
}

struct Part {
    name: String,
    data: Vec<u8>,
}

/// A `multipart/form-data` body, split into its named parts.
fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Part>, String> {
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Err(format!(
            "Content-Type must be multipart/form-data, not `{content_type}`"
        ));
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
        .ok_or("the multipart Content-Type has no boundary")?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = body;
    let start = find(rest, &delimiter).ok_or("the body has no multipart boundary")?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("a multipart boundary must end its line")?;
        let head_end = find(rest, b"\r\n\r\n")
            .ok_or("a multipart part has no blank line after its headers")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(&delimiter);
        let end = find(rest, &closing).ok_or("a multipart part is not closed by a boundary")?;
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .and_then(|l| {
                l.split(';').find_map(|p| {
                    p.trim()
                        .strip_prefix("name=")
                        .map(|n| n.trim_matches('"').to_string())
                })
            })
            .ok_or("a multipart part has no Content-Disposition name")?;
        parts.push(Part {
            name,
            data: rest[..end].to_vec(),
        });
        rest = &rest[end + closing.len()..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---- result images --------------------------------------------------------------------

async fn result_image(
    State(sim): State<Shared>,
    Path((task, file)): Path<(String, String)>,
) -> Response {
    let now = sim.clock.now_ms();
    let png = file
        .strip_suffix(".png")
        .and_then(|i| i.parse::<u32>().ok())
        .and_then(|index| {
            let lock = sim.lock();
            lock.task(&task, now, sim.ttl_ms())?;
            lock.images.get(&(task.clone(), index)).cloned()
        });
    match png {
        Some(png) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
            Body::from(png.as_ref().clone()),
        )
            .into_response(),
        None => oss_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ),
    }
}

// ---- /__sim ---------------------------------------------------------------------------

async fn stats(State(sim): State<Shared>) -> Response {
    axum::Json(sim.lock().stats_json()).into_response()
}

async fn set_faults(State(sim): State<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            sim.set_faults(faults.clone());
            axum::Json(json!(faults)).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad faults: {e}")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct Advance {
    seconds: f64,
}

async fn advance_clock(State(sim): State<Shared>, body: Bytes) -> Response {
    match serde_json::from_slice::<Advance>(&body) {
        Ok(Advance { seconds }) if seconds >= 0.0 && seconds.is_finite() => {
            sim.clock.advance((seconds * 1000.0) as i64);
            axum::Json(json!({ "now_ms": sim.clock.now_ms() })).into_response()
        }
        Ok(_) => (
            StatusCode::BAD_REQUEST,
            "seconds must be a finite number >= 0",
        )
            .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("bad advance: {e}; send {{\"seconds\": N}}"),
        )
            .into_response(),
    }
}
