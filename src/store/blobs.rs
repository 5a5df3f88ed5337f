//! Image bytes in the database, so that every host sees every image.
//!
//! On a PostgreSQL store several hosts share one queue, and an image lands on the disk of
//! whichever host's engine ran the job. So that engine also stores the bytes here,
//! content-addressed by sha256, before the image counts as saved; any other host reads
//! them from here when the recorded file is not on its disk, and keeps a copy in its
//! cache directory. An SQLite store is one host's file: its images are all on that disk,
//! and a second copy inside the database would only double the disk it uses, so it keeps
//! no blobs.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::db::{Dialect, params};
use super::{ImageRecord, JobDetail, JobId, Store, StoreError};
use crate::files::{create_private_dir, create_private_file};

/// The lowercase hex sha256 of `bytes`, as images are addressed by.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `text` is a sha256 as `sha256_hex` writes it: 64 lowercase hex digits.
pub(super) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether this store keeps image bytes (see the module's comment): only PostgreSQL.
pub(super) fn keeps_blobs(dialect: Dialect) -> bool {
    dialect == Dialect::Postgres
}

/// Why `put_image_bytes` refuses bytes, before any SQL runs: a limit or a mismatch named.
fn refuse_blob(sha256: &str, bytes: &[u8], max_bytes: u64) -> Option<String> {
    if bytes.len() as u64 > max_bytes {
        return Some(format!(
            "image {sha256} is {} bytes, over the limit of {max_bytes} bytes for an image",
            bytes.len()
        ));
    }
    let actual = sha256_hex(bytes);
    (actual != sha256).then(|| {
        format!(
            "image bytes do not match their sha256: expected {sha256}, the bytes hash to {actual}"
        )
    })
}

/// What the backfill does with an image saved without its bytes in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BackfillStep {
    /// The file is here and is the image recorded: its bytes go to the database.
    Upload,
    /// No file here: another host's image (it uploads it when its engine starts), or a
    /// file deleted since.
    NotHere,
    /// The file here hashes to `actual`, not to the recorded sha256: another image, or a
    /// damaged one. Never uploaded, so that no host is served the wrong bytes.
    Mismatch { actual: String },
}

/// What to do with an image recorded with `recorded_sha256` whose file on this host
/// holds `file` (`None`: no file there).
fn backfill_step(recorded_sha256: &str, file: Option<&[u8]>) -> BackfillStep {
    let Some(bytes) = file else {
        return BackfillStep::NotHere;
    };
    let actual = sha256_hex(bytes);
    if actual == recorded_sha256 {
        BackfillStep::Upload
    } else {
        BackfillStep::Mismatch { actual }
    }
}

/// An image whose file here does not match its recorded sha256 (see `BackfillStep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MismatchedImage {
    pub job: JobId,
    pub index: u32,
    pub path: PathBuf,
    pub recorded: String,
    pub actual: String,
}

/// What one run of `backfill_image_blobs` did, for the engine's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BlobBackfill {
    pub uploaded: u32,
    /// Images without a blob whose file is not on this host.
    pub not_here: u32,
    /// Files here refused by the size limit: logged, not uploaded.
    pub refused: Vec<String>,
    pub mismatched: Vec<MismatchedImage>,
}

/// How many image rows without a blob `backfill_image_blobs` reads per query.
const BACKFILL_PAGE: u32 = 200;

/// Where a host keeps the images it read from the store, `<data dir>/cache`, and how many
/// bytes they may take: past that, the files used longest ago are deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// How many MB the cache holds unless `[store] cache_mb` says otherwise.
pub const DEFAULT_CACHE_MB: u64 = 1024;

impl ImageCache {
    /// `<data_dir>/cache`, holding at most `max_mb` MB (`[store] cache_mb`).
    pub fn new(data_dir: &Path, max_mb: u64) -> ImageCache {
        ImageCache {
            dir: data_dir.join("cache"),
            max_bytes: max_mb.saturating_mul(1024 * 1024),
        }
    }

    /// The folder the cached files are in.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A cache in `dir` itself, for tests that place it.
    #[cfg(test)]
    pub(crate) fn at(dir: PathBuf, max_bytes: u64) -> ImageCache {
        ImageCache { dir, max_bytes }
    }

    /// After `written` was added: deletes the files used longest ago until the cache holds
    /// no more than its limit, never `written` itself (its reader is about to open it).
    /// Best effort: a file another process deleted first is simply gone, and a cache that
    /// cannot be listed is left as it is, with a warning.
    pub(super) fn evict_beyond_limit(&self, written: &Path) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("cannot list the image cache {}: {e}", self.dir.display());
                return;
            }
        };
        let files: Vec<CachedFile> = entries
            .filter_map(Result::ok)
            // Another writer's file in the making is not the cache's yet.
            .filter(|entry| !entry.file_name().to_string_lossy().contains(".tmp-"))
            .filter_map(|entry| {
                let meta = entry.metadata().ok().filter(std::fs::Metadata::is_file)?;
                Some(CachedFile {
                    path: entry.path(),
                    bytes: meta.len(),
                    used: meta.modified().ok()?,
                })
            })
            .collect();
        for path in files_to_evict(files, self.max_bytes, written) {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!("evicted {} from the image cache", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!("cannot evict {} from the image cache: {e}", path.display())
                }
            }
        }
    }
}

/// A file of the image cache as eviction weighs it.
#[derive(Debug, Clone, PartialEq)]
struct CachedFile {
    path: PathBuf,
    bytes: u64,
    /// Its mtime, renewed each time the cache serves it.
    used: SystemTime,
}

/// The files to delete so that `files` hold at most `max_bytes`: those used longest ago
/// first, never `keep`. With `keep` alone over the limit, every other file goes.
fn files_to_evict(mut files: Vec<CachedFile>, max_bytes: u64, keep: &Path) -> Vec<PathBuf> {
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    files.sort_by(|a, b| a.used.cmp(&b.used).then_with(|| a.path.cmp(&b.path)));
    let mut evicted = Vec::new();
    for file in files {
        if total <= max_bytes {
            break;
        }
        if file.path != keep {
            total -= file.bytes;
            evicted.push(file.path);
        }
    }
    evicted
}

/// Marks a cached file as just used, so that eviction keeps it longest. Best effort: a
/// file that cannot be touched is only evicted sooner.
pub(super) fn mark_used(path: &Path) {
    let touched = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!("cannot mark {} as used: {e}", path.display());
    }
}

/// The file a fetched image is cached in: `<cache_dir>/<sha256>.<ext>`, the extension
/// kept from the recorded file (decoders guess by content, people by the name).
pub(super) fn cached_image_path(cache_dir: &Path, sha256: &str, recorded: &Path) -> PathBuf {
    let ext = recorded
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("png");
    cache_dir.join(format!("{sha256}.{ext}"))
}

/// Whether `path` is a file of the recorded size (unknown size: any file). A file of
/// another size is another image, or a torn copy: never shown for this one.
pub(super) fn is_whole_file(path: &Path, size: Option<u64>) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && size.is_none_or(|size| meta.len() == size))
}

impl Store {
    /// Stores an image's bytes under their sha256, on a PostgreSQL store; does nothing on
    /// SQLite (see the module's comment). Idempotent: bytes already there stay. Refuses
    /// bytes over `max_bytes` (the engine's image size limit) or whose sha256 is not
    /// `sha256`, so the table never holds what its key does not name.
    pub fn put_image_bytes(
        &self,
        sha256: &str,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<(), StoreError> {
        // Checked on SQLite too: bytes that do not fit their name are a bug either way.
        if let Some(why) = refuse_blob(sha256, bytes, max_bytes) {
            return Err(StoreError::Corrupt(why));
        }
        let mut conn = self.conn();
        if !keeps_blobs(conn.dialect()) {
            return Ok(());
        }
        conn.execute(
            "INSERT INTO image_blobs (sha256, bytes, size) VALUES (?1, ?2, ?3)
             ON CONFLICT (sha256) DO NOTHING",
            params![sha256, bytes, bytes.len() as u64],
        )?;
        Ok(())
    }

    /// Uploads the bytes of images saved before the store kept them (schema 8) whose file
    /// is on this host, so that other hosts can read them: at most `max_uploads` images,
    /// looking at no more than `max_scanned` images without a blob (most may be other
    /// hosts'). A file that does not hash to its recorded sha256 is reported, never
    /// uploaded. Nothing to do on SQLite. Blocking: file and database I/O, one image at a
    /// time, so the engine's other store calls go between them.
    pub(crate) fn backfill_image_blobs(
        &self,
        max_uploads: u32,
        max_scanned: u32,
        max_bytes: u64,
    ) -> Result<BlobBackfill, StoreError> {
        let mut report = BlobBackfill::default();
        if !keeps_blobs(self.dialect()) {
            return Ok(report);
        }
        let mut after = (0i64, 0u32);
        let mut scanned = 0u32;
        // Several images with the same bytes need one upload.
        let mut uploaded: HashSet<String> = HashSet::new();
        while scanned < max_scanned && report.uploaded < max_uploads {
            let page = self.images_without_blob(after, BACKFILL_PAGE.min(max_scanned - scanned))?;
            let Some(last) = page.last() else {
                break;
            };
            after = (last.0.0, last.1);
            scanned += page.len() as u32;
            for (job, index, path, recorded) in page {
                if report.uploaded >= max_uploads {
                    break;
                }
                if uploaded.contains(&recorded) {
                    continue;
                }
                let file = std::fs::read(&path).ok();
                match backfill_step(&recorded, file.as_deref()) {
                    BackfillStep::NotHere => report.not_here += 1,
                    BackfillStep::Mismatch { actual } => {
                        report.mismatched.push(MismatchedImage {
                            job,
                            index,
                            path,
                            recorded,
                            actual,
                        });
                    }
                    BackfillStep::Upload => {
                        let bytes = file.unwrap_or_default();
                        match self.put_image_bytes(&recorded, &bytes, max_bytes) {
                            Ok(()) => {
                                report.uploaded += 1;
                                uploaded.insert(recorded);
                            }
                            Err(StoreError::Corrupt(why)) => report.refused.push(why),
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Saved images whose bytes the database does not hold, after `after` (job id, index)
    /// in key order: job, index, recorded path and sha256.
    fn images_without_blob(
        &self,
        after: (i64, u32),
        limit: u32,
    ) -> Result<Vec<(JobId, u32, PathBuf, String)>, StoreError> {
        self.conn().query_map(
            "SELECT i.job_id, i.idx, i.path, i.sha256 FROM images i
             WHERE i.path IS NOT NULL AND i.sha256 IS NOT NULL
               AND (i.job_id > ?1 OR (i.job_id = ?1 AND i.idx > ?2))
               AND NOT EXISTS (SELECT 1 FROM image_blobs b WHERE b.sha256 = i.sha256)
             ORDER BY i.job_id, i.idx LIMIT ?3",
            params![after.0, after.1, limit],
            |row| {
                Ok((
                    JobId(row.get(0)?),
                    row.get(1)?,
                    PathBuf::from(row.get::<String>(2)?),
                    row.get(3)?,
                ))
            },
        )
    }

    /// The bytes stored under `sha256`, if any (never on an SQLite store).
    pub fn image_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn().query_opt(
            "SELECT bytes FROM image_blobs WHERE sha256 = ?1",
            params![sha256],
            |row| row.get(0),
        )
    }

    /// A file on this host holding image `image` of job `job`: the recorded file if it is
    /// here whole, else the copy in `cache`, fetched from the database (its sha256
    /// checked, written atomically 0600, the files used longest ago evicted past the
    /// cache's limit) if not cached yet. Blocking: file and database
    /// I/O. An image that is nowhere to be had is an `ImageUnavailable` naming the job,
    /// the image and its sha256.
    pub fn image_on_disk(
        &self,
        job: JobId,
        image: &ImageRecord,
        cache: &ImageCache,
    ) -> Result<PathBuf, StoreError> {
        let unavailable = |sha256: &str, reason: String| StoreError::ImageUnavailable {
            job,
            index: image.index,
            sha256: sha256.to_string(),
            reason,
        };
        let Some(recorded) = &image.path else {
            return Err(unavailable("none", "it was never saved".into()));
        };
        if is_whole_file(recorded, image.bytes) {
            return Ok(recorded.clone());
        }
        let Some(sha256) = image.sha256.as_deref() else {
            return Err(unavailable(
                "none",
                format!("{} is not on this disk", recorded.display()),
            ));
        };
        // It names a file in the cache: anything but a sha256 could name one outside.
        if !is_sha256_hex(sha256) {
            return Err(unavailable(sha256, "its recorded sha256 is not one".into()));
        }
        let cached = cached_image_path(&cache.dir, sha256, recorded);
        if is_whole_file(&cached, image.bytes) {
            mark_used(&cached);
            return Ok(cached);
        }
        if !keeps_blobs(self.dialect()) {
            return Err(unavailable(
                sha256,
                format!(
                    "{} is not on this disk, and an SQLite store keeps no copy of images",
                    recorded.display()
                ),
            ));
        }
        let Some(bytes) = self.image_bytes(sha256)? else {
            return Err(unavailable(
                sha256,
                format!(
                    "{} is not on this disk, nor its bytes in the database",
                    recorded.display()
                ),
            ));
        };
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(unavailable(
                sha256,
                format!("the bytes in the database hash to {actual}; not using them"),
            ));
        }
        write_cached(&cache.dir, &cached, &bytes).map_err(|e| StoreError::Io {
            path: cached.clone(),
            message: format!("caching job {job}'s image {}: {e}", image.index),
        })?;
        cache.evict_beyond_limit(&cached);
        Ok(cached)
    }

    /// Points each saved image of `detail` at the file that holds it on this host
    /// (`image_on_disk`), for a command that hands images out; returns why the others are
    /// not to be had (their recorded paths kept, so they are still named).
    pub fn images_here(&self, detail: &mut JobDetail, cache: &ImageCache) -> Vec<StoreError> {
        let job = detail.summary.id;
        let mut unavailable = Vec::new();
        for image in detail.images.iter_mut().filter(|i| i.is_saved()) {
            match self.image_on_disk(job, image, cache) {
                Ok(here) => image.path = Some(here),
                Err(why) => unavailable.push(why),
            }
        }
        unavailable
    }

    /// `image_on_disk` for the image recorded at `recorded` (what a dashboard holds): the
    /// path itself when the file is here, without a query.
    pub fn image_on_disk_at(
        &self,
        recorded: &Path,
        cache: &ImageCache,
    ) -> Result<PathBuf, StoreError> {
        if recorded.is_file() {
            return Ok(recorded.to_path_buf());
        }
        let path = recorded.to_string_lossy().into_owned();
        let found = self.conn().query_opt(
            "SELECT job_id, idx, sha256, bytes FROM images WHERE path = ?1",
            params![path],
            |row| {
                let job = JobId(row.get(0)?);
                let image = ImageRecord {
                    index: row.get(1)?,
                    path: Some(recorded.to_path_buf()),
                    sha256: row.get(2)?,
                    bytes: row.get::<Option<i64>>(3)?.map(|b| b as u64),
                    ..Default::default()
                };
                Ok((job, image))
            },
        )?;
        match found {
            Some((job, image)) => self.image_on_disk(job, &image, cache),
            None => Err(StoreError::Io {
                path: recorded.to_path_buf(),
                message: "not on this disk, and no image in the store was saved there".into(),
            }),
        }
    }
}

/// Writes `bytes` to `path` atomically (a 0600 temp file beside it, synced, renamed), so
/// another process never reads a torn copy and a failed write leaves nothing behind.
pub(super) fn write_cached(cache_dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    create_private_dir(cache_dir)?;
    // Unique per writer: two workers may fetch the same image at once.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let temp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let written = create_private_file(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    renamed
}

/// This host's way to image files for a reader that holds only recorded paths (the
/// dashboard's image workers): on a PostgreSQL store, a connection of its own to fetch
/// images another host saved, and the cache to keep them in. The default has no store:
/// the recorded paths as they are (an SQLite store's, or files outside one).
#[derive(Clone, Default)]
pub struct ImageFiles {
    store: Option<Arc<Store>>,
    cache: ImageCache,
}

impl ImageFiles {
    /// For the store at `store_path` (a file or a URL, as `Store::open` takes): an SQLite
    /// store's images are all on this disk, so no connection is opened for them.
    pub fn for_store(store_path: &Path, cache: ImageCache) -> Result<ImageFiles, StoreError> {
        let store = match super::Location::of(store_path) {
            super::Location::File(_) => None,
            super::Location::Postgres(_) => Some(Arc::new(Store::open(store_path)?)),
        };
        Ok(ImageFiles { store, cache })
    }

    /// The file to open for the input job `job` was queued with, recorded at `recorded`
    /// (a fork reuses its parent's inputs): `None` where the store kept no copy of it (an
    /// SQLite store: the path is the file). Blocking.
    pub fn input(&self, job: JobId, recorded: &Path) -> Result<Option<PathBuf>, String> {
        match &self.store {
            Some(store) => store
                .input_on_disk(job, recorded, &self.cache)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// The file to open for the image recorded at `recorded`. Blocking.
    pub fn local(&self, recorded: &Path) -> Result<PathBuf, String> {
        match &self.store {
            Some(store) => store
                .image_on_disk_at(recorded, &self.cache)
                .map_err(|e| e.to_string()),
            None => Ok(recorded.to_path_buf()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_over_the_limit_or_of_another_hash_are_refused() {
        let bytes = b"an image";
        let sha = sha256_hex(bytes);
        assert_eq!(refuse_blob(&sha, bytes, 8), None);
        let over = refuse_blob(&sha, bytes, 7).unwrap();
        assert!(
            over.contains("8 bytes") && over.contains("limit of 7"),
            "{over}"
        );
        let wrong = refuse_blob(&sha256_hex(b"other"), bytes, 100).unwrap();
        assert!(wrong.contains(&sha), "{wrong}");
    }

    #[test]
    fn only_a_sha256_names_a_cached_file() {
        assert!(is_sha256_hex(&sha256_hex(b"x")));
        assert!(!is_sha256_hex("../../.ssh/authorized_keys"));
        assert!(!is_sha256_hex(&sha256_hex(b"x").to_uppercase()));
        assert!(!is_sha256_hex(&sha256_hex(b"x")[1..]));
    }

    #[test]
    fn only_a_file_here_that_hashes_to_the_recorded_sha256_is_uploaded() {
        let bytes = b"an image";
        let recorded = sha256_hex(bytes);
        assert_eq!(backfill_step(&recorded, Some(bytes)), BackfillStep::Upload);
        assert_eq!(backfill_step(&recorded, None), BackfillStep::NotHere);
        assert_eq!(
            backfill_step(&recorded, Some(b"another image")),
            BackfillStep::Mismatch {
                actual: sha256_hex(b"another image")
            }
        );
        assert_eq!(
            backfill_step(&recorded, Some(b"")),
            BackfillStep::Mismatch {
                actual: sha256_hex(b"")
            },
            "an emptied file"
        );
    }

    #[test]
    fn only_postgresql_keeps_blobs() {
        assert!(keeps_blobs(Dialect::Postgres));
        assert!(!keeps_blobs(Dialect::Sqlite));
    }

    fn cached(name: &str, bytes: u64, used_secs: u64) -> CachedFile {
        CachedFile {
            path: PathBuf::from(name),
            bytes,
            used: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(used_secs),
        }
    }

    #[test]
    fn the_files_used_longest_ago_go_until_the_cache_fits() {
        let files = vec![
            cached("new", 40, 300),
            cached("oldest", 30, 100),
            cached("middle", 20, 200),
            cached("written", 10, 400),
        ];
        let evict = |max| files_to_evict(files.clone(), max, Path::new("written"));
        assert_eq!(evict(100), Vec::<PathBuf>::new(), "fits exactly");
        assert_eq!(evict(99), vec![PathBuf::from("oldest")]);
        assert_eq!(
            evict(50),
            vec![PathBuf::from("oldest"), PathBuf::from("middle")]
        );
        assert_eq!(
            evict(0),
            vec![
                PathBuf::from("oldest"),
                PathBuf::from("middle"),
                PathBuf::from("new")
            ],
            "the file just written stays, even over the limit"
        );
    }

    #[test]
    fn the_file_just_written_stays_though_it_is_the_oldest() {
        // Its mtime may come from the clock of a host whose copy it was.
        let files = vec![cached("written", 50, 1), cached("other", 50, 2)];
        assert_eq!(
            files_to_evict(files, 60, Path::new("written")),
            vec![PathBuf::from("other")]
        );
        assert_eq!(
            files_to_evict(Vec::new(), 0, Path::new("written")),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn a_cache_of_n_mb_holds_n_mebibytes_in_the_data_dir() {
        let cache = ImageCache::new(Path::new("/data"), 3);
        assert_eq!(cache, ImageCache::at(PathBuf::from("/data/cache"), 3 << 20));
        assert_eq!(
            ImageCache::new(Path::new("/d"), u64::MAX).max_bytes,
            u64::MAX
        );
    }

    #[test]
    fn a_cached_image_is_named_by_its_hash_with_the_recorded_extension() {
        let dir = Path::new("/data/cache");
        assert_eq!(
            cached_image_path(dir, "ab12", Path::new("/h/images/3/0.jpeg")),
            PathBuf::from("/data/cache/ab12.jpeg")
        );
        assert_eq!(
            cached_image_path(dir, "ab12", Path::new("/h/images/3/0")),
            PathBuf::from("/data/cache/ab12.png")
        );
    }
}
