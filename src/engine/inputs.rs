//! A job's local input files on the host that sends it. On a team store the job may have
//! been queued on another host: its inputs are read from the bytes stored with it
//! (`Store::input_on_disk`), not from whatever this host holds at the recorded path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ctx::Ctx;
use crate::dashscope::{ClientError, ImageRef, JobSpec, ValidationError};
use crate::store::JobDetail;

/// Where this host reads a local input from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InputHere {
    /// A file holding the bytes the job was queued with (the recorded one, or a copy).
    At(PathBuf),
    /// The recorded path, as the store has no copy: its reader says what is wrong, if anything.
    AsRecorded,
    /// Not on this host, and the store that would hold a copy has none.
    Missing,
}

/// Where to read an input from: the file holding the queued bytes if the store gave one;
/// else the recorded path, unless nothing is there on a store that keeps inputs (the
/// job was queued on another host without them: say so rather than "no such file").
fn input_here(from_store: Option<PathBuf>, store_keeps_inputs: bool, exists: bool) -> InputHere {
    match from_store {
        Some(file) => InputHere::At(file),
        None if store_keeps_inputs && !exists => InputHere::Missing,
        None => InputHere::AsRecorded,
    }
}

/// `spec` with each local input pointing at the file `here` names for its path; one
/// `Missing` is refused naming its field and path.
fn with_inputs_here(
    mut spec: JobSpec,
    here: &HashMap<PathBuf, InputHere>,
) -> Result<JobSpec, ValidationError> {
    let place = |field: &str, image: &mut ImageRef| {
        let ImageRef::File(path) = image else {
            return Ok(());
        };
        match here.get(path.as_path()) {
            Some(InputHere::At(file)) => *path = file.clone(),
            Some(InputHere::Missing) => {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "cannot read {}: not on this host and not in the store",
                        path.display()
                    ),
                ));
            }
            Some(InputHere::AsRecorded) | None => {}
        }
        Ok(())
    };
    if let Some(base) = &mut spec.base_image {
        place("base_image", base)?;
    }
    if let Some(mask) = &mut spec.mask_image {
        place("mask_image", mask)?;
    }
    for image in &mut spec.images {
        place("images", image)?;
    }
    Ok(spec)
}

/// `job`'s spec with its local inputs read from where this host has them (see the
/// module's comment). Blocking work runs on the store's threads. A store error is an
/// `Io` error (the create is tried again); an input nowhere to be had is `Invalid`.
pub(super) async fn inputs_here(ctx: &Ctx, job: &JobDetail) -> Result<JobSpec, ClientError> {
    let id = job.summary.id;
    let paths: Vec<PathBuf> = local_files(&job.spec).map(Path::to_path_buf).collect();
    let cache = ctx.config.image_cache();
    let here = ctx
        .db(move |store| {
            let keeps = store.keeps_input_files();
            let mut here = HashMap::new();
            for path in paths {
                let from_store = store.input_on_disk(id, &path, &cache)?;
                let place = input_here(from_store, keeps, path.exists());
                here.insert(path, place);
            }
            Ok(here)
        })
        .await
        .map_err(|e| ClientError::Io(format!("cannot read the job's input files: {e}")))?;
    Ok(with_inputs_here(job.spec.clone(), &here)?)
}

/// The paths of `spec`'s local file inputs.
fn local_files(spec: &JobSpec) -> impl Iterator<Item = &Path> {
    spec.image_refs()
        .into_iter()
        .filter_map(|(_, image)| match image {
            ImageRef::File(path) => Some(path.as_path()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::{EditFunction, Model};

    fn edit(base: &str, mask: &str) -> JobSpec {
        let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "p");
        spec.function = Some(EditFunction::DescriptionEditWithMask);
        spec.base_image = Some(ImageRef::File(base.into()));
        spec.mask_image = Some(ImageRef::File(mask.into()));
        spec
    }

    #[test]
    fn the_stored_copy_wins_and_a_missing_input_is_named_only_where_copies_are_kept() {
        let cached = PathBuf::from("/cache/ab.png");
        assert_eq!(
            input_here(Some(cached.clone()), true, true),
            InputHere::At(cached)
        );
        assert_eq!(input_here(None, true, false), InputHere::Missing);
        assert_eq!(input_here(None, true, true), InputHere::AsRecorded);
        // SQLite: one host, the path is the file; its reader words any problem.
        assert_eq!(input_here(None, false, false), InputHere::AsRecorded);
    }

    #[test]
    fn each_input_points_at_the_file_here_and_a_missing_one_names_its_field() {
        let here = HashMap::from([
            (
                PathBuf::from("/a/base.png"),
                InputHere::At("/cache/ab.png".into()),
            ),
            (PathBuf::from("/a/mask.png"), InputHere::AsRecorded),
        ]);
        let spec = with_inputs_here(edit("/a/base.png", "/a/mask.png"), &here).unwrap();
        assert_eq!(
            spec.base_image,
            Some(ImageRef::File("/cache/ab.png".into()))
        );
        assert_eq!(spec.mask_image, Some(ImageRef::File("/a/mask.png".into())));

        let here = HashMap::from([
            (PathBuf::from("/a/base.png"), InputHere::AsRecorded),
            (PathBuf::from("/a/mask.png"), InputHere::Missing),
        ]);
        let refused = with_inputs_here(edit("/a/base.png", "/a/mask.png"), &here).unwrap_err();
        assert_eq!(refused.field, "mask_image");
        assert_eq!(
            refused.message,
            "cannot read /a/mask.png: not on this host and not in the store"
        );
    }
}
