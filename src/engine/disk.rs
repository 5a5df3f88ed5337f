//! Saving a checked image atomically, and the engine-wide view of
//! whether the disk takes images at all.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::decode::CheckedImage;
use crate::store::{ImageRecord, JobId, sha256_hex};

/// The disk refused a write: where, and the operating system's reason ("No space left
/// on device (os error 28)", "Permission denied (os error 13)", "Not a directory ...").
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiskFault {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for DiskFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {}: {}", self.path.display(), self.reason)
    }
}

/// Writes checked image bytes to `<dir>/<job>/<index>.<ext>` atomically: a temp file in
/// the same directory, fsync, rename, fsync of the directory. A crash leaves either the
/// old state or the complete file, never a torn one; a failed write leaves nothing.
/// Blocking: call from `spawn_blocking`.
pub(crate) fn write_image(
    images_dir: &Path,
    job: JobId,
    index: u32,
    url: &str,
    bytes: &[u8],
    checked: CheckedImage,
) -> Result<ImageRecord, DiskFault> {
    let dir = images_dir.join(job.to_string());
    let path = dir.join(format!("{index}.{}", checked.ext));
    write_atomically(&dir, &path, bytes)?;
    Ok(ImageRecord {
        index,
        url: Some(url.to_string()),
        path: Some(path),
        sha256: Some(sha256_hex(bytes)),
        width: Some(checked.width),
        height: Some(checked.height),
        bytes: Some(bytes.len() as u64),
        error_code: None,
        error_message: None,
    })
}

/// Whether the disk currently takes images, shared by every job task.
///
/// Why creates pause while it does not: every new task's images would meet the same
/// full (or read-only) disk, and the service keeps them only 24 hours. So while saves
/// fail the engine sends no new create (jobs stay queued, untouched), and the jobs whose
/// images are already made keep their bytes and retry; the first save that succeeds
/// lifts the pause. If every waiting job gives up (its results outlived the service's
/// retention) the pause lifts too, so the next image is the next probe.
#[derive(Default)]
pub(crate) struct DiskHealth {
    state: Mutex<DiskState>,
    /// Woken when a save succeeds, so waiting jobs retry at once.
    recovered: tokio::sync::Notify,
}

#[derive(Default)]
struct DiskState {
    fault: Option<DiskFault>,
    waiting: usize,
}

impl DiskHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True while saves fail: no new creates.
    pub fn is_refusing(&self) -> bool {
        self.lock().fault.is_some()
    }

    /// The reason saves fail, while they do.
    pub fn fault(&self) -> Option<DiskFault> {
        self.lock().fault.clone()
    }

    /// A save failed with `fault`; `newly_waiting` when its job was not yet waiting on
    /// the disk. Returns true if this starts the engine-wide condition (the caller
    /// announces it): the first refusal, or one after a save had lifted it.
    pub fn refused(&self, fault: &DiskFault, newly_waiting: bool) -> bool {
        let mut state = self.lock();
        if newly_waiting {
            state.waiting += 1;
        }
        state.fault.replace(fault.clone()).is_none()
    }

    /// A save succeeded. Returns true if this ends the engine-wide condition.
    pub fn accepted(&self) -> bool {
        let ended = self.lock().fault.take().is_some();
        if ended {
            self.recovered.notify_waiters();
        }
        ended
    }

    /// A waiting job stopped waiting (saved, or gave up). When the last one gave up
    /// without a save, the condition ends: returns true then.
    pub fn done_waiting(&self) -> bool {
        let mut state = self.lock();
        state.waiting = state.waiting.saturating_sub(1);
        state.waiting == 0 && state.fault.take().is_some()
    }

    /// Resolves when a save succeeds (or right away if none is failing).
    pub async fn wait_recovered(&self) {
        let recovered = self.recovered.notified();
        if !self.is_refusing() {
            return;
        }
        recovered.await;
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), DiskFault> {
    let fault = |at: &Path| {
        let at = at.to_path_buf();
        move |e: std::io::Error| DiskFault {
            path: at,
            reason: e.to_string(),
        }
    };
    // Images are private: the folders 0700 and the file 0600, whatever the umask.
    crate::files::create_private_dir(dir).map_err(fault(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temps(dir, &name);
    let temp: PathBuf = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
    let result = (|| {
        let mut file = crate::files::create_private_file(&temp).map_err(fault(path))?;
        file.write_all(bytes).map_err(fault(path))?;
        file.sync_all().map_err(fault(path))?;
        drop(file);
        std::fs::rename(&temp, path).map_err(fault(path))?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fault(dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Removes the temp files of `name` that an engine killed mid-write left behind. Only
/// this job's task writes this job's folder (one engine per store), so any such file
/// is stale.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.starts_with(&prefix)
            && file.ends_with(".tmp")
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            tracing::warn!(
                "cannot remove the stale temp file {}: {e}",
                entry.path().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decode::check_image;
    use crate::engine::decode::test_images::{png, png_claiming, text_to_image_bound};

    /// Why a save did not happen, as the engine tells the two apart.
    #[derive(Debug)]
    enum Refused {
        NotAnImage(String),
        Disk(DiskFault),
    }

    fn save_image(
        dir: &Path,
        job: JobId,
        index: u32,
        url: &str,
        bytes: &[u8],
    ) -> Result<ImageRecord, Refused> {
        let checked =
            check_image(bytes, text_to_image_bound(1024, 1024)).map_err(Refused::NotAnImage)?;
        write_image(dir, job, index, url, bytes, checked).map_err(Refused::Disk)
    }

    #[test]
    fn saves_a_decodable_image_with_its_hash_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = png(20, 10);
        let rec = save_image(dir.path(), JobId(7), 1, "http://x/1.png", &bytes).unwrap();
        let path = rec.path.clone().unwrap();
        assert_eq!(path, dir.path().join("7").join("1.png"));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(
            (rec.width, rec.height, rec.bytes),
            (Some(20), Some(10), Some(bytes.len() as u64))
        );
        assert_eq!(rec.sha256.unwrap(), sha256_hex(&bytes));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("7"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_hostile_result_url_cannot_choose_where_the_image_lands() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        for url in [
            "http://x/../../../../tmp/evil.png",
            "http://x/%2e%2e%2f%2e%2e%2fevil.png",
            "file:///etc/passwd",
            "http://x/a.png?name=/etc/cron.d/evil",
        ] {
            let rec = save_image(&images, JobId(3), 0, url, &png(4, 4)).unwrap();
            assert_eq!(rec.path.unwrap(), images.join("3").join("0.png"), "{url}");
        }
        let everything: Vec<_> = walk(dir.path());
        assert_eq!(everything, vec![images.join("3").join("0.png")]);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    #[test]
    fn a_temp_file_left_by_a_killed_write_is_removed_on_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let job_dir = dir.path().join("4");
        std::fs::create_dir_all(&job_dir).unwrap();
        let stale = job_dir.join(".0.png.00000000deadbeef.tmp");
        std::fs::write(&stale, b"half an image").unwrap();
        // Another image's temp is not this save's business.
        let other = job_dir.join(".1.png.00000000deadbeef.tmp");
        std::fs::write(&other, b"half an image").unwrap();
        save_image(dir.path(), JobId(4), 0, "u", &png(4, 4)).unwrap();
        assert!(!stale.exists());
        assert!(other.exists());
        assert!(job_dir.join("0.png").exists());
    }

    #[test]
    fn refuses_bytes_that_do_not_decode_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut truncated = png(64, 64);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(
            save_image(dir.path(), JobId(1), 0, "u", &truncated),
            Err(Refused::NotAnImage(_))
        ));
        assert!(matches!(
            save_image(dir.path(), JobId(1), 0, "u", b"<html>"),
            Err(Refused::NotAnImage(_))
        ));
        assert!(!dir.path().join("1").exists());
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_inflated() {
        let dir = tempfile::tempdir().unwrap();
        // The header is read correctly: the same image at its true size still decodes.
        assert!(save_image(dir.path(), JobId(2), 0, "u", &png_claiming(8, 8)).is_ok());
        let bomb = png_claiming(100_000, 100_000);
        match save_image(dir.path(), JobId(3), 0, "u", &bomb) {
            Err(Refused::NotAnImage(why)) => assert!(why.to_lowercase().contains("limit"), "{why}"),
            other => panic!("a 100000x100000 image must be refused, got {other:?}"),
        }
        assert!(!dir.path().join("3").exists());
    }

    #[test]
    fn a_disk_error_names_the_path_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the images directory should be: creating the job folder fails.
        let blocked = dir.path().join("images");
        std::fs::write(&blocked, b"x").unwrap();
        match save_image(&blocked, JobId(1), 0, "u", &png(4, 4)) {
            Err(Refused::Disk(fault)) => {
                assert_eq!(fault.path, blocked.join("1"));
                assert!(fault.reason.contains("Not a directory"), "{fault}");
                assert!(
                    fault.to_string().contains(&*blocked.to_string_lossy()),
                    "{fault}"
                );
            }
            other => panic!("expected a disk fault, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_disk_condition_starts_with_the_first_refusal_and_ends_with_a_save() {
        let health = DiskHealth::default();
        let fault = DiskFault {
            path: "/x".into(),
            reason: "No space left on device (os error 28)".into(),
        };
        assert!(!health.is_refusing());
        assert!(health.refused(&fault, true), "the first refusal starts it");
        assert!(
            !health.refused(&fault, true),
            "a second waiting job does not announce it again"
        );
        assert!(!health.refused(&fault, false), "nor a job that fails again");
        assert!(health.is_refusing());
        let waiter = health.wait_recovered();
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        assert!(health.accepted(), "a save ends it");
        assert!(futures::poll!(waiter.as_mut()).is_ready());
        assert!(!health.accepted(), "and only once");
        assert!(
            health.refused(&fault, false),
            "a failure after the save starts it again"
        );
        assert!(health.accepted());
        assert!(!health.done_waiting());
        assert!(!health.done_waiting());
    }

    #[test]
    fn the_disk_condition_ends_when_the_last_waiting_job_gives_up() {
        let health = DiskHealth::default();
        let fault = DiskFault {
            path: "/x".into(),
            reason: "Permission denied (os error 13)".into(),
        };
        health.refused(&fault, true);
        health.refused(&fault, true);
        assert!(!health.done_waiting(), "one job still waits");
        assert!(health.is_refusing());
        assert!(
            health.done_waiting(),
            "the last one gave up: creates may probe again"
        );
        assert!(!health.is_refusing());
    }
}
