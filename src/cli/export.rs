//! `wandash export --to DIR`: the images of every succeeded job, each job with a JSON
//! sidecar of its parameters, so that any image can be reproduced. `--starred` exports
//! the starred images instead (of jobs in any state), each job's sidecar listing those.
//!
//! DIR may hold other files, and someone else may be able to write in it: the export
//! never writes through a name that is already there. Each file is written to a fresh
//! temporary file in DIR (created exclusively, 0600) and linked into place only if its name
//! is free. A file already there that holds exactly what the export would write is left
//! as it is (an earlier export); anything else there (another file, a symlink) stops the
//! export before it writes anything, unless `--force`, which replaces the name itself
//! (a symlink is replaced, never followed).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::files::{create_private_dir, create_private_file};
use crate::store::{ImageCache, JobDetail, JobFilter, JobState, StateFilter, Store, StoreError};

use super::Context;
use super::failure::{CliResult, Failure};
use super::jobs::{open_store, store_failure};

const PAGE: u64 = 200;
/// How many conflicting names a refusal lists.
const CONFLICTS_SHOWN: usize = 5;

/// One file the export writes into DIR.
struct Output {
    name: String,
    content: Content,
}

enum Content {
    /// A saved image, copied as it is.
    Copy(PathBuf),
    /// A sidecar.
    Text(String),
}

impl Content {
    fn bytes(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Content::Copy(source) => std::fs::read(source),
            Content::Text(text) => Ok(text.clone().into_bytes()),
        }
    }
}

/// What is at an output's name in DIR before the export writes it.
enum Existing {
    Free,
    /// The same bytes as the export would write: an earlier export's file.
    Same,
    /// Something the export did not write (described for the message).
    Other(&'static str),
}

pub fn export(ctx: &Context, to: &Path, force: bool, starred: bool) -> CliResult {
    create_private_dir(to).map_err(|e| {
        Failure::other(format!(
            "cannot create {}: {e}; choose another --to",
            to.display()
        ))
    })?;
    let store = open_store(ctx)?;

    // First every name is checked, so that a refusal leaves DIR exactly as it was.
    let mut conflicts = Vec::new();
    let cache = ctx.image_cache();
    for_each_exported_job(&store, &cache, starred, |detail, only, _| {
        for output in job_outputs(detail, only).0 {
            if let Existing::Other(what) = existing(to, &output)? {
                conflicts.push(format!("{} ({what})", output.name));
            }
        }
        Ok(())
    })?;
    if !conflicts.is_empty() && !force {
        let mut shown = conflicts[..conflicts.len().min(CONFLICTS_SHOWN)].join(", ");
        if conflicts.len() > CONFLICTS_SHOWN {
            shown.push_str(&format!(" and {} more", conflicts.len() - CONFLICTS_SHOWN));
        }
        return Err(Failure::other(format!(
            "{} already holds files this export did not write: {shown}; nothing was exported. \
             Choose an empty --to, or pass --force to replace them",
            to.display()
        )));
    }

    let (mut jobs, mut images, mut missing) = (0u64, 0u64, Vec::new());
    for_each_exported_job(&store, &cache, starred, |detail, only, unavailable| {
        let (outputs, lost) = job_outputs(detail, only);
        for output in &outputs {
            match existing(to, output)? {
                Existing::Same => {}
                Existing::Free => write_new(to, output)?,
                Existing::Other(_) => replace(to, output)?,
            }
            if matches!(output.content, Content::Copy(_)) {
                images += 1;
            }
        }
        jobs += 1;
        missing.extend(lost);
        for why in unavailable {
            eprintln!("warning: {why}; its job's sidecar lists it without a file");
        }
        Ok(())
    })?;
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

/// Calls `each` with every job the export covers and the indexes of the images to export
/// (`None`: all of them): with `starred`, each job with starred images and those; else
/// every succeeded job, a page at a time.
fn for_each_exported_job(
    store: &Store,
    cache: &ImageCache,
    starred: bool,
    mut each: impl FnMut(&JobDetail, Option<&[u32]>, &[StoreError]) -> CliResult,
) -> CliResult {
    // The images exported, as files on this host: on a shared store, another host's
    // images come from the database (`Store::images_here`); why one cannot is passed on.
    let mut exported = |mut detail: JobDetail, only: Option<&[u32]>| {
        detail
            .images
            .retain(|image| only.is_none_or(|only| only.contains(&image.index)));
        let unavailable = store.images_here(&mut detail, cache);
        each(&detail, only, &unavailable)
    };
    if starred {
        for id in store.starred_jobs().map_err(store_failure)? {
            let indexes = store.starred_indexes(id).map_err(store_failure)?;
            if let Some(detail) = store.job(id).map_err(store_failure)? {
                exported(detail, Some(&indexes))?;
            }
        }
        return Ok(());
    }
    let filter = JobFilter {
        state: Some(StateFilter::Only(JobState::Succeeded)),
        search: None,
        submitted_by: None,
    };
    let mut offset = 0;
    loop {
        let page = store.list(&filter, offset, PAGE).map_err(store_failure)?;
        for row in &page {
            if let Some(detail) = store.job(row.id).map_err(store_failure)? {
                exported(detail, None)?;
            }
        }
        if (page.len() as u64) < PAGE {
            return Ok(());
        }
        offset += PAGE;
    }
}

/// One job's files (its saved images, or those of `only`, then its sidecar) and the image
/// files that are gone.
fn job_outputs(detail: &JobDetail, only: Option<&[u32]>) -> (Vec<Output>, Vec<String>) {
    let id = detail.summary.id;
    let mut outputs = Vec::new();
    let mut missing = Vec::new();
    let mut files = Vec::new();
    let exported = detail
        .images
        .iter()
        .filter(|image| only.is_none_or(|only| only.contains(&image.index)));
    for image in exported {
        let Some(source) = &image.path else { continue };
        let ext = source.extension().and_then(|e| e.to_str()).unwrap_or("png");
        let name = format!("job-{id}-{}.{ext}", image.index);
        if !source.is_file() {
            missing.push(source.display().to_string());
            continue;
        }
        files.push(json!({
            "index": image.index,
            "file": name,
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
            "bytes": image.bytes,
        }));
        outputs.push(Output {
            name,
            content: Content::Copy(source.clone()),
        });
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
        "cost_cny": detail.summary.cost_cny.map(crate::store::round_to_cent),
        "images": files,
    });
    outputs.push(Output {
        name: format!("job-{id}.json"),
        content: Content::Text(
            serde_json::to_string_pretty(&sidecar).expect("a sidecar serialises"),
        ),
    });
    (outputs, missing)
}

/// Looks at the output's name in DIR without following a link.
fn existing(to: &Path, output: &Output) -> CliResult<Existing> {
    let target = to.join(&output.name);
    let meta = match std::fs::symlink_metadata(&target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Free),
        Err(e) => return Err(cannot("read", &target, &e)),
    };
    if meta.file_type().is_symlink() {
        return Ok(Existing::Other("a symbolic link"));
    }
    if !meta.is_file() {
        return Ok(Existing::Other("not a regular file"));
    }
    let ours = output
        .content
        .bytes()
        .map_err(|e| cannot("read", &source_or(&target, output), &e))?;
    if meta.len() != ours.len() as u64 {
        return Ok(Existing::Other("a different file"));
    }
    let theirs = std::fs::read(&target).map_err(|e| cannot("read", &target, &e))?;
    Ok(if theirs == ours {
        Existing::Same
    } else {
        Existing::Other("a different file")
    })
}

fn source_or(target: &Path, output: &Output) -> PathBuf {
    match &output.content {
        Content::Copy(source) => source.clone(),
        Content::Text(_) => target.to_path_buf(),
    }
}

/// Writes the output under a name that must still be free: `link` refuses an existing
/// name (a symlink planted since the check included) instead of writing through it.
fn write_new(to: &Path, output: &Output) -> CliResult {
    let target = to.join(&output.name);
    let temp = write_temp(to, output)?;
    let linked = std::fs::hard_link(&temp, &target);
    let _ = std::fs::remove_file(&temp);
    linked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::other(format!(
                "{} appeared while exporting; not overwritten. Run the export again, or pass --force",
                target.display()
            ))
        } else {
            cannot("write", &target, &e)
        }
    })
}

/// With `--force`: puts the output in place of whatever has its name. `rename` replaces
/// the entry itself, so a symlink there is replaced, not followed.
fn replace(to: &Path, output: &Output) -> CliResult {
    let target = to.join(&output.name);
    let temp = write_temp(to, output)?;
    std::fs::rename(&temp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        cannot("replace", &target, &e)
    })
}

/// The output's bytes in a new private file in DIR, for `write_new` or `replace` to put
/// in place.
fn write_temp(to: &Path, output: &Output) -> CliResult<PathBuf> {
    let temp = to.join(format!(".{}.{:016x}.tmp", output.name, fastrand::u64(..)));
    let result = (|| {
        let mut file = create_private_file(&temp)?;
        match &output.content {
            Content::Copy(source) => {
                std::io::copy(&mut std::fs::File::open(source)?, &mut file)?;
            }
            Content::Text(text) => file.write_all(text.as_bytes())?,
        }
        file.sync_all()
    })();
    result.map(|()| temp.clone()).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        cannot("write", &to.join(&output.name), &e)
    })
}

fn cannot(verb: &str, path: &Path, e: &std::io::Error) -> Failure {
    Failure::other(format!("cannot {verb} {}: {e}", path.display()))
}
