//! Fetching a finished task's images: each downloaded, verified (it must decode) and
//! saved, retried while the service keeps it; a disk that refuses the images keeps the
//! job running until a save succeeds.

use std::collections::HashSet;
use std::sync::Arc;

use super::EngineEvent;
use super::answer_failure::{AfterFailedDownload, after_failed_download, is_wrong_answer};
use super::ctx::{Ctx, Tracked};
use super::decode::{CheckedImage, DecodeBound, check_image};
use super::disk::{DiskFault, write_image};
use crate::dashscope::{ErrorAction, TaskInfo, TaskResult, Timestamp};
use crate::store::{ErrorKind, ImageRecord, JobError, StoreError};

/// Downloads every image not yet saved, then ends the job. A disk that refuses the
/// images keeps the job running (its error noted) until a save succeeds.
pub(crate) async fn fetch_images(
    ctx: &Ctx,
    job: &Tracked,
    info: &TaskInfo,
) -> Result<(), StoreError> {
    let id = job.id;
    let Some(detail) = ctx.db(move |s| s.job_brief(id)).await? else {
        return Ok(());
    };
    let saved: HashSet<u32> = detail
        .images
        .iter()
        .filter(|i| i.is_saved())
        .map(|i| i.index)
        .collect();
    let bound = DecodeBound::for_spec(&detail.spec);
    // A task can make at most the images the request asked for; more is a service fault
    // (one answered 500 results for n=1), and saving them all would fill the disk.
    let asked = detail.summary.images_expected as usize;
    let results = if asked > 0 && info.results.len() > asked {
        let note = JobError::new(
            ErrorKind::TooManyResults,
            format!(
                "the service answered {} results for a request of {asked}; kept the first {asked}, ignored the rest",
                info.results.len()
            ),
            None,
        );
        tracing::warn!(job = %id, "{}", note.message);
        ctx.db(move |s| s.note_error(id, &note)).await?;
        &info.results[..asked]
    } else {
        &info.results[..]
    };
    let mut actual_prompt = None;
    for (index, result) in results.iter().enumerate() {
        let index = index as u32;
        let fetched: Fetched = match result {
            TaskResult::Failed { code, message } => ImageRecord {
                index,
                error_code: Some(code.clone()),
                error_message: Some(message.clone()),
                ..Default::default()
            }
            .into(),
            TaskResult::Image {
                url,
                actual_prompt: actual,
                ..
            } => {
                actual_prompt = actual_prompt.or(actual.clone());
                if saved.contains(&index) {
                    continue;
                }
                download(ctx, job, index, url, bound).await?
            }
        };
        let Fetched { record, bytes } = fetched;
        let path = record.path.clone();
        let max_bytes = ctx.config.download_max_bytes;
        // The bytes go into the store before the record that makes the image saved, in
        // the same call: no host sees a saved image whose bytes it cannot fetch.
        ctx.db(move |s| {
            if let (Some(bytes), Some(sha256)) = (&bytes, &record.sha256) {
                s.put_image_bytes(sha256, bytes, max_bytes)?;
            }
            s.record_image(id, &record)
        })
        .await?;
        if let Some(path) = path {
            ctx.emit(EngineEvent::ImageSaved {
                job: id,
                index,
                path,
            });
        }
    }
    let price = ctx.config.price_for(job.model);
    let state = ctx
        .db(move |s| s.finish_downloads(id, price, actual_prompt.as_deref()))
        .await?;
    if let Some(state) = state {
        tracing::info!(job = %id, %state, "job finished");
        ctx.changed(id, state);
    }
    Ok(())
}

/// A result image as fetched: its record, and the bytes saved when it was, which the
/// store keeps too (see `store::blobs`) so that other hosts can show it.
struct Fetched {
    record: ImageRecord,
    bytes: Option<Arc<Vec<u8>>>,
}

impl From<ImageRecord> for Fetched {
    /// An image that was not saved: its error, no bytes.
    fn from(record: ImageRecord) -> Fetched {
        Fetched {
            record,
            bytes: None,
        }
    }
}

/// One image: downloaded, checked and saved, or its error.
async fn download(
    ctx: &Ctx,
    job: &Tracked,
    index: u32,
    url: &str,
    bound: DecodeBound,
) -> Result<Fetched, StoreError> {
    let id = job.id;
    let failed = |kind: ErrorKind, message: String| ImageRecord {
        index,
        url: Some(url.to_string()),
        error_code: Some(kind.code().into()),
        error_message: Some(message),
        ..Default::default()
    };
    let give_up_at = ctx.results_expire_at(job.submitted_at);
    let max_attempts = ctx.config.max_attempts;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let bytes = match ctx
            .client
            .download(url, ctx.config.download_max_bytes)
            .await
        {
            Ok(bytes) => bytes,
            Err(e) => match after_failed_download(
                &e,
                attempt,
                max_attempts,
                Timestamp::now() < give_up_at,
            ) {
                AfterFailedDownload::Expired => {
                    return Ok(failed(
                        ErrorKind::Expired,
                        format!("result image {index} is no longer available at the service"),
                    )
                    .into());
                }
                AfterFailedDownload::Fail if is_wrong_answer(&e) => {
                    return Ok(failed(
                        ErrorKind::of_client(&e),
                        format!("gave up on result image {index} after {attempt} tries: {e}"),
                    )
                    .into());
                }
                AfterFailedDownload::Fail => {
                    return Ok(failed(ErrorKind::of_client(&e), e.to_string()).into());
                }
                AfterFailedDownload::Retry => {
                    tracing::warn!(job = %id, index, attempt, "download failed, retrying: {e}");
                    let why = if is_wrong_answer(&e) {
                        Some(format!(
                            "downloading image {index}: {e}; try {attempt} of {max_attempts}"
                        ))
                    } else {
                        (attempt == max_attempts).then(|| {
                            format!(
                                "downloading image {index} keeps failing ({e}); retried until the service discards it"
                            )
                        })
                    };
                    if let Some(why) = why {
                        let note = JobError::new(
                            ErrorKind::of_client(&e),
                            why,
                            Some(ErrorAction::RetryLater),
                        );
                        ctx.retrying(id, note).await?;
                    }
                    let wait = ctx.backoff(attempt).min(give_up_at.since(Timestamp::now()));
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
        };
        let checked = {
            // Decodes at once are few: each may take hundreds of megabytes.
            let _decoding = ctx
                .decodes
                .acquire()
                .await
                .map_err(|e| StoreError::Database(format!("image decoding stopped: {e}")))?;
            tokio::task::spawn_blocking(move || {
                let checked = check_image(&bytes, bound);
                (bytes, checked)
            })
            .await
            .map_err(|e| StoreError::Database(format!("checking an image stopped: {e}")))?
        };
        let (bytes, checked) = checked;
        match checked {
            Ok(checked) => return save(ctx, job, index, url, bytes, checked).await,
            Err(why) if attempt >= max_attempts => {
                return Ok(failed(
                    ErrorKind::InvalidImage,
                    format!("downloaded image {index} does not decode: {why}"),
                )
                .into());
            }
            Err(why) => {
                tracing::warn!(job = %id, index, "downloaded image does not decode ({why}); fetching again");
                let note = JobError::new(
                    ErrorKind::InvalidImage,
                    format!(
                        "downloaded image {index} does not decode ({why}); try {attempt} of {max_attempts}"
                    ),
                    Some(ErrorAction::RetryLater),
                );
                ctx.retrying(id, note).await?;
            }
        }
        tokio::time::sleep(ctx.backoff(attempt)).await;
    }
}

/// Saves a checked image. While the disk refuses (full, read-only, not a directory) the
/// bytes stay in memory and the save is retried with backoff, or at once when another
/// job's save succeeds, for as long as the service would keep the image: the job stays
/// running with the reason noted, never failed, so freeing space lets it finish without
/// a restart. Only past the service's retention does the image end as a `DiskError`.
async fn save(
    ctx: &Ctx,
    job: &Tracked,
    index: u32,
    url: &str,
    bytes: Vec<u8>,
    checked: CheckedImage,
) -> Result<Fetched, StoreError> {
    let id = job.id;
    let bytes = Arc::new(bytes);
    let give_up_at = ctx.results_expire_at(job.submitted_at);
    let mut waiting: Option<DiskFault> = None;
    let mut attempt = 0u32;
    loop {
        let (dir, url_owned, data) = (ctx.config.images_dir(), url.to_string(), bytes.clone());
        let written = tokio::task::spawn_blocking(move || {
            write_image(&dir, id, index, &url_owned, &data, checked)
        })
        .await
        .map_err(|e| StoreError::Database(format!("saving an image stopped: {e}")))?;
        let fault = match written {
            Ok(record) => {
                if ctx.disk.accepted() {
                    tracing::info!("the disk takes images again; creates resume");
                    ctx.emit(EngineEvent::DiskRecovered);
                }
                if waiting.is_some() {
                    ctx.disk.done_waiting();
                    tracing::info!(job = %id, index, "image saved after the disk refused it");
                }
                return Ok(Fetched {
                    record,
                    bytes: Some(bytes),
                });
            }
            Err(fault) => fault,
        };
        attempt += 1;
        if ctx.disk.refused(&fault, waiting.is_none()) {
            tracing::error!(path = %fault.path.display(), reason = %fault.reason, "the disk refuses images; no new creates until a save succeeds");
            ctx.emit(EngineEvent::DiskRefused {
                path: fault.path.clone(),
                reason: fault.reason.clone(),
            });
        }
        if waiting.as_ref() != Some(&fault) {
            tracing::error!(job = %id, index, "{fault}; the image is kept in memory and saving it retried");
            let note = JobError::new(
                ErrorKind::DiskError,
                format!("{fault}; the image is kept and saving retried until the disk accepts it"),
                Some(ErrorAction::RetryLater),
            );
            // The store may sit on the same full disk: not being able to note the
            // error is no reason to drop the image.
            if let Err(e) = ctx.db(move |s| s.note_error(id, &note)).await {
                tracing::warn!(job = %id, "cannot note the disk error in the store: {e}");
            }
            waiting = Some(fault.clone());
        }
        if Timestamp::now() >= give_up_at {
            if ctx.disk.done_waiting() {
                tracing::warn!("no job waits on the disk any more; creates resume");
            }
            return Ok(ImageRecord {
                index,
                url: Some(url.to_string()),
                error_code: Some(ErrorKind::DiskError.code().into()),
                error_message: Some(format!(
                    "image {index} could not be saved before the service discarded it: {fault}"
                )),
                ..Default::default()
            }
            .into());
        }
        let wait = ctx.backoff(attempt).min(give_up_at.since(Timestamp::now()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.disk.wait_recovered() => {}
        }
    }
}
