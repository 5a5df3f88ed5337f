//! `wandash export --to DIR`: the images of every succeeded job, each job with a JSON
//! sidecar of its parameters, so that any image can be reproduced.

use std::path::Path;

use serde_json::json;

use crate::store::{JobDetail, JobFilter, JobState, StateFilter};

use super::Context;
use super::failure::{CliResult, Failure};
use super::jobs::{open_store, store_failure};

const PAGE: u64 = 200;

pub fn export(ctx: &Context, to: &Path) -> CliResult {
    std::fs::create_dir_all(to).map_err(|e| {
        Failure::other(format!(
            "cannot create {}: {e}; choose another --to",
            to.display()
        ))
    })?;
    let store = open_store(ctx)?;
    let filter = JobFilter {
        state: Some(StateFilter::Only(JobState::Succeeded)),
        search: None,
    };
    let (mut jobs, mut images, mut missing) = (0u64, 0u64, Vec::new());
    let mut offset = 0;
    loop {
        let page = store.list(&filter, offset, PAGE).map_err(store_failure)?;
        for row in &page {
            let Some(detail) = store.job(row.id).map_err(store_failure)? else {
                continue;
            };
            let (copied, lost) = export_job(&detail, to)?;
            jobs += 1;
            images += copied;
            missing.extend(lost);
        }
        if (page.len() as u64) < PAGE {
            break;
        }
        offset += PAGE;
    }
    for path in &missing {
        eprintln!(
            "warning: image file {} is gone; its job's sidecar lists it without a file",
            path
        );
    }
    if ctx.json {
        println!(
            "{}",
            json!({"jobs": jobs, "images": images, "missing": missing, "to": to})
        );
    } else {
        println!(
            "exported {images} images of {jobs} jobs to {}",
            to.display()
        );
    }
    Ok(())
}

/// Copies one job's saved images and writes its sidecar; returns (copied, missing files).
fn export_job(detail: &JobDetail, to: &Path) -> CliResult<(u64, Vec<String>)> {
    let id = detail.summary.id;
    let mut copied = 0;
    let mut missing = Vec::new();
    let mut files = Vec::new();
    for image in &detail.images {
        let Some(source) = &image.path else { continue };
        let ext = source.extension().and_then(|e| e.to_str()).unwrap_or("png");
        let name = format!("job-{id}-{}.{ext}", image.index);
        if !source.is_file() {
            missing.push(source.display().to_string());
            continue;
        }
        std::fs::copy(source, to.join(&name)).map_err(|e| {
            Failure::other(format!(
                "cannot copy {} to {}: {e}",
                source.display(),
                to.display()
            ))
        })?;
        copied += 1;
        files.push(json!({
            "index": image.index,
            "file": name,
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
            "bytes": image.bytes,
        }));
    }
    let sidecar = json!({
        "id": id,
        "model": detail.summary.model,
        "created_at": detail.summary.created_at,
        "ended_at": detail.status().ended_at(),
        // As the user gave it, and as it was sent (local files replaced by remote refs).
        "spec": detail.spec,
        "request": detail.prepared_spec.as_ref().unwrap_or(&detail.spec).to_wire().ok(),
        "task_id": detail.task_id(),
        "actual_prompt": detail.actual_prompt,
        "cost_cny": detail.summary.cost_cny,
        "images": files,
    });
    let path = to.join(format!("job-{id}.json"));
    let text = serde_json::to_string_pretty(&sidecar).expect("a sidecar serialises");
    std::fs::write(&path, text)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", path.display())))?;
    Ok((copied, missing))
}
