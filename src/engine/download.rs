//! Checking a downloaded image and saving it atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::store::{ImageRecord, JobId};

/// Why a downloaded image was not saved.
#[derive(Debug)]
pub(crate) enum SaveError {
    /// The bytes are not an image we can decode: the download is bad, not the disk.
    NotAnImage(String),
    /// The disk refused: the image is still good, try again later.
    Disk(String),
}

/// Decode limits: the service makes at most 4096-ish sides (x4 upscaling of 1440 at most).
const MAX_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Checks that `bytes` decode, then writes `<dir>/<job>/<index>.<ext>` atomically: a temp
/// file in the same directory, fsync, rename, fsync of the directory. A crash leaves
/// either the old state or the complete file, never a torn one. Blocking: call from
/// `spawn_blocking`.
pub(crate) fn save_image(
    images_dir: &Path,
    job: JobId,
    index: u32,
    url: &str,
    bytes: &[u8],
) -> Result<ImageRecord, SaveError> {
    let format = image::guess_format(bytes).map_err(|e| SaveError::NotAnImage(e.to_string()))?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| SaveError::NotAnImage(e.to_string()))?;

    let ext = format.extensions_str().first().copied().unwrap_or("img");
    let dir = images_dir.join(job.to_string());
    let path = dir.join(format!("{index}.{ext}"));
    write_atomically(&dir, &path, bytes)
        .map_err(|e| SaveError::Disk(format!("cannot save {}: {e}", path.display())))?;
    Ok(ImageRecord {
        index,
        url: Some(url.to_string()),
        path: Some(path),
        sha256: Some(sha256_hex(bytes)),
        width: Some(decoded.width()),
        height: Some(decoded.height()),
        bytes: Some(bytes.len() as u64),
        error_code: None,
        error_message: None,
    })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temps(dir, &name);
    let temp: PathBuf = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
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
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!("cannot remove the stale temp file {}: {e}", entry.path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
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
            Err(SaveError::NotAnImage(_))
        ));
        assert!(matches!(
            save_image(dir.path(), JobId(1), 0, "u", b"<html>"),
            Err(SaveError::NotAnImage(_))
        ));
        assert!(!dir.path().join("1").exists());
    }

    /// A small PNG whose header claims `w` x `h`: what a decompression bomb looks like
    /// before it is inflated.
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = png(8, 8);
        // IHDR's data starts at byte 16 (8 signature + 4 length + 4 type); its CRC covers
        // the type and the 13 data bytes.
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_inflated() {
        let dir = tempfile::tempdir().unwrap();
        // The header is read correctly: the same image at its true size still decodes.
        assert!(save_image(dir.path(), JobId(2), 0, "u", &png_claiming(8, 8)).is_ok());
        let bomb = png_claiming(100_000, 100_000);
        match save_image(dir.path(), JobId(3), 0, "u", &bomb) {
            Err(SaveError::NotAnImage(why)) => assert!(why.to_lowercase().contains("limit"), "{why}"),
            other => panic!("a 100000x100000 image must be refused, got {other:?}"),
        }
        assert!(!dir.path().join("3").exists());
    }

    #[test]
    fn a_disk_error_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the images directory should be: creating the job folder fails.
        let blocked = dir.path().join("images");
        std::fs::write(&blocked, b"x").unwrap();
        assert!(matches!(
            save_image(&blocked, JobId(1), 0, "u", &png(4, 4)),
            Err(SaveError::Disk(_))
        ));
    }
}
