//! What the tools send back: a JSON description of the job (also as structured content)
//! and, where wanted, its first image as MCP image content, downscaled so that an
//! assistant's context is not flooded with megabytes of base64.

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::store::{JobDetail, JobState};

/// The longest side of an image sent back as content.
const PREVIEW_MAX_SIDE: u32 = 512;
/// Images larger than this on disk are not decoded for a preview.
const PREVIEW_MAX_INPUT_BYTES: u64 = 40 * 1024 * 1024;

/// A tool error: the message a person can act on.
pub fn failure(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// A successful answer carrying `value` as text and as structured content.
pub fn data(value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(pretty(&value))]);
    result.structured_content = Some(value);
    result
}

/// Everything an assistant needs about one job: state, parameters, the actual prompt,
/// the local image paths and any error.
pub fn describe(detail: &JobDetail) -> Value {
    let s = &detail.summary;
    let images: Vec<Value> = detail
        .images
        .iter()
        .map(|img| match &img.path {
            Some(path) => json!({"index": img.index, "path": path, "width": img.width, "height": img.height}),
            None => json!({"index": img.index, "error_code": img.error_code, "error_message": img.error_message}),
        })
        .collect();
    let mut value = json!({
        "job_id": s.id,
        "state": s.state(),
        "model": s.model,
        "parameters": detail.spec,
        "actual_prompt": detail.actual_prompt,
        "images": images,
        "images_expected": s.images_expected,
        "images_ok": s.images_ok,
        "images_failed": s.images_failed,
        "task_id": detail.task_id(),
        "attempts": s.attempts,
        "cost_cny": s.cost_cny.map(crate::store::round_to_cent),
        "cancel_requested": s.cancel_requested,
        "submitted_by": s.submitted_by,
    });
    if let Some(error) = s.error() {
        value["error"] = json!({"code": error.kind.code(), "message": error.message});
    }
    value
}

/// The answer for a job: an error result when it ended without images, else the
/// description, with `note` added and the first image attached if `with_image`.
pub async fn job_result(
    detail: &JobDetail,
    note: Option<String>,
    with_image: bool,
) -> CallToolResult {
    let mut value = describe(detail);
    if let Some(note) = &note {
        value["note"] = json!(note);
    }
    let state = detail.summary.state();
    if state.is_final() && state != JobState::Succeeded {
        let reason = detail
            .summary
            .error()
            .map_or_else(|| "no reason recorded".into(), ToString::to_string);
        let headline = format!("job {} ended {state}: {reason}", detail.summary.id);
        let mut result = CallToolResult::error(vec![
            ContentBlock::text(headline),
            ContentBlock::text(pretty(&value)),
        ]);
        result.structured_content = Some(value);
        return result;
    }
    let mut result = data(value);
    let first_image = detail.images.iter().find_map(|i| i.path.clone());
    if let (true, Some(path)) = (with_image, first_image) {
        match tokio::task::spawn_blocking(move || preview_png(&path)).await {
            Ok(Ok(png)) => result.content.push(ContentBlock::image(
                base64::engine::general_purpose::STANDARD.encode(png),
                "image/png",
            )),
            Ok(Err(e)) => tracing::warn!("MCP: no preview for job {}: {e}", detail.summary.id),
            Err(e) => tracing::warn!("MCP: preview worker stopped: {e}"),
        }
    }
    result
}

/// The image at `path` as a PNG whose longest side is at most `PREVIEW_MAX_SIDE`.
fn preview_png(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > PREVIEW_MAX_INPUT_BYTES {
        return Err(format!(
            "{} is {size} bytes; too large to preview",
            path.display()
        ));
    }
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let img = if img.width().max(img.height()) > PREVIEW_MAX_SIDE {
        img.thumbnail(PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE)
    } else {
        img
    };
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("encoding the preview: {e}"))?;
    Ok(png)
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}
