//! A job's local input files, kept with the job on a team store.
//!
//! A job's spec names its local inputs (a base image, a mask) by their path on the host
//! that queued it, and the file is read when the job is sent. On a PostgreSQL store the
//! engine that sends it may run on another host, where that path holds nothing, or
//! another file. So intake reads each input file once and stores its bytes in
//! `image_blobs` (content-addressed, as output images; one file at a time, so a batch of
//! many files never sits in memory), then queues the jobs with a `job_inputs` row each
//! (the job, the path as its spec records it, the sha256) in the jobs' transaction. The
//! engine then sends those bytes, from the file itself when it holds them, else from a
//! copy in its cache directory. An SQLite store is one host's file, where the path is the
//! file: it records nothing (as it keeps no image bytes: see `blobs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::blobs::{
    ImageCache, cached_image_path, is_sha256_hex, is_whole_file, keeps_blobs, mark_used,
    write_cached,
};
use super::db::{Db, params};
use super::{JobId, Store, StoreError, sha256_hex};
use crate::dashscope::{ImageRef, JobSpec};
use crate::files::read_regular_file;

/// A local input file whose bytes the store holds (`Store::put_input_file` alone makes
/// one), to be named by the jobs that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    path: PathBuf,
    sha256: String,
}

impl InputFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The files of `inputs` that `spec`'s local file inputs name, each once: a file given
/// as both base image and mask is one row of the job.
fn inputs_named<'a>(spec: &JobSpec, inputs: &'a [InputFile]) -> Vec<&'a InputFile> {
    let mut named = BTreeMap::new();
    for (_, image) in spec.image_refs() {
        if let ImageRef::File(path) = image
            && let Some(input) = inputs.iter().find(|input| input.path == *path)
        {
            named.insert(path.as_path(), input);
        }
    }
    named.into_values().collect()
}

/// Records the input files of job `job` (the `inputs` its spec names) in the enqueueing
/// transaction `tx`, on a store that keeps image bytes; nothing on one that does not.
pub(super) fn record_inputs(
    tx: &mut Db,
    job: JobId,
    spec: &JobSpec,
    inputs: &[InputFile],
) -> Result<(), StoreError> {
    if !keeps_blobs(tx.dialect()) {
        return Ok(());
    }
    for input in inputs_named(spec, inputs) {
        tx.execute(
            "INSERT INTO job_inputs (job_id, path, sha256) VALUES (?1, ?2, ?3)",
            params![
                job.0,
                input.path.to_string_lossy().into_owned(),
                input.sha256
            ],
        )?;
    }
    Ok(())
}

impl Store {
    /// Whether jobs queued here carry their local input files' bytes (see the module's
    /// comment): intake reads the files only for such a store.
    pub fn keeps_input_files(&self) -> bool {
        keeps_blobs(self.dialect())
    }

    /// Stores the bytes of the input file read from `path` (the path exactly as the jobs'
    /// specs record it), at most `max_bytes` (the model's input size limit), for jobs
    /// queued next to name (`enqueue_with_parents`). Bytes stored for jobs that are then
    /// not queued stay, as any image's bytes: content-addressed, they are never wrong.
    pub fn put_input_file(
        &self,
        path: PathBuf,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<InputFile, StoreError> {
        let sha256 = sha256_hex(bytes);
        self.put_image_bytes(&sha256, bytes, max_bytes)?;
        Ok(InputFile { path, sha256 })
    }

    /// A file on this host holding the bytes job `job` was queued with for its input
    /// recorded at `recorded`: the file at `recorded` when it holds them, else a copy in
    /// `cache`, fetched from the database (its sha256 checked, written atomically
    /// 0600) if not cached yet. `None` when the store has no copy of that input (an
    /// SQLite store, or a job queued by a wandash that kept none): the path is all there
    /// is. Blocking: file and database I/O.
    pub fn input_on_disk(
        &self,
        job: JobId,
        recorded: &Path,
        cache: &ImageCache,
    ) -> Result<Option<PathBuf>, StoreError> {
        if !self.keeps_input_files() {
            return Ok(None);
        }
        let path = recorded.to_string_lossy().into_owned();
        let Some((sha256, size)) = self.conn().query_opt(
            "SELECT i.sha256, b.size FROM job_inputs i JOIN image_blobs b ON b.sha256 = i.sha256
             WHERE i.job_id = ?1 AND i.path = ?2",
            params![job.0, path],
            |row| Ok((row.get::<String>(0)?, row.get::<i64>(1)? as u64)),
        )?
        else {
            return Ok(None);
        };
        let corrupt = |message: String| StoreError::Io {
            path: recorded.to_path_buf(),
            message: format!("job {job}'s input: {message}"),
        };
        // Another host may hold another file at the same path: only the same bytes do.
        if holds_bytes(recorded, &sha256, size) {
            return Ok(Some(recorded.to_path_buf()));
        }
        // The sha256 names a file in the cache: intake wrote it, but the row is an outside input.
        if !is_sha256_hex(&sha256) {
            return Err(corrupt(format!(
                "its recorded sha256 `{sha256}` is not one"
            )));
        }
        let cached = cached_image_path(cache.dir(), &sha256, recorded);
        if is_whole_file(&cached, Some(size)) {
            mark_used(&cached);
            return Ok(Some(cached));
        }
        let Some(bytes) = self.image_bytes(&sha256)? else {
            return Err(corrupt(format!(
                "no bytes in the database for sha256 {sha256}"
            )));
        };
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(corrupt(format!(
                "the bytes in the database for sha256 {sha256} hash to {actual}; not using them"
            )));
        }
        write_cached(cache.dir(), &cached, &bytes).map_err(|e| StoreError::Io {
            path: cached.clone(),
            message: format!("caching job {job}'s input {}: {e}", recorded.display()),
        })?;
        cache.evict_beyond_limit(&cached);
        Ok(Some(cached))
    }
}

/// Whether the file at `path` holds the `size` bytes that hash to `sha256`.
fn holds_bytes(path: &Path, sha256: &str, size: u64) -> bool {
    is_whole_file(path, Some(size))
        && read_regular_file(path, size).is_ok_and(|bytes| sha256_hex(&bytes) == sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::Model;

    fn file(path: &str) -> ImageRef {
        ImageRef::File(PathBuf::from(path))
    }

    fn input(path: &str) -> InputFile {
        InputFile {
            path: path.into(),
            sha256: sha256_hex(path.as_bytes()),
        }
    }

    #[test]
    fn a_job_records_each_input_file_it_names_once() {
        let inputs = [input("/a/base.png"), input("/a/other.png")];
        let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "p");
        spec.base_image = Some(file("/a/base.png"));
        spec.mask_image = Some(file("/a/base.png"));
        let named = inputs_named(&spec, &inputs);
        assert_eq!(named, [&inputs[0]]);

        // A URL input and a file no input was read for record nothing.
        spec.base_image = Some(ImageRef::Url("https://example.com/a.png".into()));
        spec.mask_image = Some(file("/a/unread.png"));
        assert!(inputs_named(&spec, &inputs).is_empty());
    }

    #[test]
    fn only_a_file_with_the_same_bytes_stands_for_an_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cat.png");
        std::fs::write(&path, b"a cat").unwrap();
        assert!(holds_bytes(&path, &sha256_hex(b"a cat"), 5));
        assert!(
            !holds_bytes(&path, &sha256_hex(b"a dog"), 5),
            "same size, other bytes"
        );
        assert!(!holds_bytes(&path, &sha256_hex(b"a cat"), 6), "other size");
        assert!(!holds_bytes(
            &dir.path().join("gone.png"),
            &sha256_hex(b"a cat"),
            5
        ));
    }
}
