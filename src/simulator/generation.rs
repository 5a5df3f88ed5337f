//! The messages endpoints (API-CURRENT.md section 1): image-generation, asynchronous like
//! text2image but with `input.messages` and images in `output.choices`, and
//! multimodal-generation, which holds the connection while the images are made and
//! answers them at once.
//!
//! A messages body is read back into the prompt shape (`dashscope::prompt_body`) and
//! judged by the same `admit` as any create, so the models' rules exist once; a call goes
//! through the same task machinery (latency, rendering, faults, in-flight count), and
//! only the answers differ. Answers are built by hand from API-CURRENT.md.

#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::routes::{Shared, admit, authorize, error, header_is, invalid, request_id};
use super::state::Sim;
use super::tasks::{Outcome, Status, Task, TaskKind};
use crate::dashscope::{Endpoint, JobSpec, Model, WireError, prompt_body};

/// What the service answers a model sent to an endpoint that does not serve it.
const URL_ERROR: &str = "url error, please check url！ For details, see: https://help.aliyun.com/zh/model-studio/error-code#error-url";

/// How often a held synchronous call looks whether its images are made.
const SYNC_CHECK: Duration = Duration::from_millis(20);

/// `POST .../image-generation/generation`: creates a task (async header required).
pub(super) async fn create_generation(
    State(sim): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    if !header_is(&headers, "x-dashscope-async", "enable") {
        return invalid(
            "current user api does not support synchronous calls: send the header X-DashScope-Async: enable",
        );
    }
    let (spec, body) = match read(&headers, &body, Endpoint::ImageGeneration) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    match admit(&sim, &headers, spec, body, TaskKind::Generation).await {
        Ok(task_id) => axum::Json(json!({
            "request_id": request_id(),
            "output": { "task_id": task_id, "task_status": "PENDING" },
        }))
        .into_response(),
        Err(refused) => refused,
    }
}

/// `POST .../multimodal-generation/generation`: makes the images while the caller waits.
pub(super) async fn call_multimodal(
    State(sim): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = authorize(&sim, &headers) {
        return denied;
    }
    if header_is(&headers, "x-dashscope-async", "enable") {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "current user api does not support asynchronous calls",
        );
    }
    let (spec, body) = match read(&headers, &body, Endpoint::MultimodalGeneration) {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let task_id = match admit(&sim, &headers, spec, body, TaskKind::SyncCall).await {
        Ok(task_id) => task_id,
        Err(refused) => return refused,
    };
    // Held like the service holds it: until the task's latency has passed and its images
    // are made. A caller that hangs up meanwhile does not stop the work (it is billed).
    let task = loop {
        let now = sim.clock.now_ms();
        let task = sim.lock().task(&task_id, now, sim.ttl_ms()).cloned();
        match task {
            Some(task) if task.phase(now).status.in_flight() => {}
            Some(task) => break task,
            None => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "the call was lost",
                );
            }
        }
        tokio::time::sleep(SYNC_CHECK).await;
    };
    sync_answer(&sim, &task)
}

/// Reads a messages body: JSON, the messages, the model, and whether `endpoint` serves
/// it. Returns the spec and the body in the prompt shape, for `admit`.
fn read(
    headers: &HeaderMap,
    body: &[u8],
    endpoint: Endpoint,
) -> Result<(JobSpec, Value), Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(invalid(format!(
            "Content-Type must be application/json, not `{content_type}`"
        )));
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("The request body is not valid JSON: {e}")))?;
    let body = prompt_body(&body).map_err(|e| invalid(e.to_string()))?;
    let spec = JobSpec::from_wire(&body).map_err(|e| match e {
        WireError::UnknownModel(name) => error(
            StatusCode::NOT_FOUND,
            "ModelNotFound",
            format!("Model not exist: {name}"),
        ),
        other => invalid(other.to_string()),
    })?;
    if !serves(spec.model, endpoint) {
        return Err(invalid(URL_ERROR));
    }
    Ok((spec, body))
}

/// Whether `endpoint` serves `model`.
pub(super) fn serves(model: Model, endpoint: Endpoint) -> bool {
    model.entry().endpoints.contains(&endpoint)
}

/// The `url error` answer, for the prompt endpoints too.
pub(super) fn url_error() -> Response {
    invalid(URL_ERROR)
}

/// `output.choices` of a finished task: one choice per image made, each one image part.
pub(super) fn choices(sim: &Sim, task: &Task) -> Vec<Value> {
    let Some(Outcome::Images(images)) = &task.outcome else {
        return Vec::new();
    };
    images
        .iter()
        .enumerate()
        .filter(|(_, failure)| failure.is_none())
        .map(|(i, _)| {
            json!({
                "finish_reason": "stop",
                "message": { "role": "assistant", "content": [{
                    "image": format!("{}/results/{}/{i}.png?Expires=86400", sim.origin, task.id),
                    "type": "image",
                }]},
            })
        })
        .collect()
}

/// `usage` as wan2.6 and later write it: the size and token counts.
pub(super) fn wan_usage(sim: &Sim, task: &Task, image_count: usize) -> Value {
    let size = first_size(sim, task).map_or_else(String::new, |(w, h)| format!("{w}*{h}"));
    json!({
        "image_count": image_count, "size": size,
        "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
    })
}

/// The answer of a synchronous call: the images, or the task's error.
fn sync_answer(sim: &Sim, task: &Task) -> Response {
    let now = sim.clock.now_ms();
    if task.phase(now).status != Status::Succeeded {
        let (code, message) = match &task.outcome {
            Some(Outcome::Failed(f)) => (f.code.clone(), f.message.clone()),
            Some(Outcome::Images(images)) => images
                .iter()
                .flatten()
                .next()
                .map(|f| (f.code.clone(), f.message.clone()))
                .unwrap_or_else(|| ("InternalError.Algo".into(), "no image".into())),
            None => ("InternalError".into(), "no outcome".into()),
        };
        // A bad input is the caller's fault (400); anything else the service's (500).
        let status = if code.starts_with("InvalidParameter") || code.starts_with("BadRequest") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return error(status, &code, message);
    }
    let choices = choices(sim, task);
    let count = choices.len();
    let answer = if task.model.id().starts_with("qwen-image") {
        let (width, height) = first_size(sim, task).unwrap_or((0, 0));
        json!({
            "output": { "choices": choices },
            "usage": { "width": width, "height": height, "image_count": count },
            "request_id": request_id(),
        })
    } else {
        json!({
            "output": { "choices": choices, "finished": true },
            "usage": wan_usage(sim, task, count),
            "request_id": request_id(),
        })
    };
    axum::Json(answer).into_response()
}

/// The size of the task's first image, read from its PNG header.
fn first_size(sim: &Sim, task: &Task) -> Option<(u32, u32)> {
    let lock = sim.lock();
    let png: Arc<Vec<u8>> = lock
        .images
        .iter()
        .filter(|((id, _), _)| *id == task.id)
        .min_by_key(|((_, i), _)| *i)
        .map(|(_, png)| png.clone())?;
    drop(lock);
    // IHDR: the 8-byte signature, length and type, then width and height, big-endian.
    let width = u32::from_be_bytes(png.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(png.get(20..24)?.try_into().ok()?);
    Some((width, height))
}
