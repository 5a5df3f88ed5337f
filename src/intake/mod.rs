//! The one way into the queue. The editor, `wandash submit`, batch files and the MCP tools
//! each build a job from their own input, and then all take the same road, so the same
//! job gets the same problems, worded the same, wherever it comes from:
//!
//! build (the surface) -> [`Draft::new`] makes local paths absolute -> [`check`] applies
//! every rule and reads the local files, returning every problem with its field ->
//! [`enqueue`] / [`enqueue_all`] store only jobs that passed.
//!
//! A job that passes without a seed, on a model that takes one, gets a seed of wandash's
//! choosing here: the service would draw one it never reports, and image `i` of a task
//! is made with `seed + i`, so storing the seed makes every image reproducible (the
//! gallery forks an image with its own seed).
//!
//! - `scales`: the one reader of `expand`'s scales (typed text or four numbers).
//! - `json`: a job written as a JSON object (batch file lines, MCP's `submit_batch`).

mod json;
mod scales;

use std::path::Path;

use crate::dashscope::validate::MAX_SEED;
use crate::dashscope::{
    ImageRef, JobSpec, Region, ValidationError, check_local_images, field_applies, max_input_bytes,
    read_image_file, region_refusal, validate_all,
};
use crate::store::{InputFile, JobId, Store, StoreError};

pub use json::spec_from_json;
pub use scales::{expand_from_sides, parse_expand};

/// Every problem of a job, each naming its field (at most one per field). Never empty
/// when `check` returns it.
pub type Problems = Vec<ValidationError>;

/// A job as a surface built it, its local image paths already made absolute: the engine
/// may run in another process, started in another directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    spec: JobSpec,
    /// The region the job will go to, where the surface knows it: a model not offered
    /// there is refused before anything is queued.
    region: Option<Region>,
    /// The job this one is made from (a fork, seed sweep, edit or inpainting).
    parent: Option<JobId>,
}

impl Draft {
    /// `spec` with its relative local paths taken relative to `base_dir` (a batch file's
    /// directory, the working directory of a command or server).
    pub fn new(mut spec: JobSpec, base_dir: &Path) -> Draft {
        absolutize_images(&mut spec, base_dir);
        Draft {
            spec,
            region: None,
            parent: None,
        }
    }

    /// The draft, checked also against what `region` offers.
    pub fn for_region(self, region: Region) -> Draft {
        Draft {
            region: Some(region),
            ..self
        }
    }

    /// The draft as made from job `parent`: the store records where it came from.
    pub fn with_parent(self, parent: Option<JobId>) -> Draft {
        Draft { parent, ..self }
    }

    /// `spec` with its relative local paths taken relative to this process's working
    /// directory (what a person typing a path means).
    pub fn in_working_dir(spec: JobSpec) -> Draft {
        Draft::new(spec, &std::env::current_dir().unwrap_or_default())
    }

    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }
}

/// A job that passed every check. Only [`check`] makes one and only [`enqueue`] and
/// [`enqueue_all`] take one, so nothing reaches the store unchecked.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    spec: JobSpec,
    parent: Option<JobId>,
}

impl Checked {
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }
}

/// Every rule a spec breaks, without reading any file: cheap enough for every keystroke
/// of the editor, and the first half of [`check`].
pub fn rule_problems(spec: &JobSpec) -> Problems {
    validate_all(spec)
}

/// [`rule_problems`], and whether `region` offers the model.
pub fn rule_problems_in(spec: &JobSpec, region: Region) -> Problems {
    let mut problems = rule_problems(spec);
    if spec.model.id_in(region).is_none() {
        problems.retain(|p| p.field != "model");
        problems.insert(0, region_refusal(spec.model, region));
    }
    problems
}

/// Every rule, then every local file and data URI (read and decoded): all the problems
/// at once, each with its field. Reads files: call it off async threads and the UI task.
pub fn check(draft: Draft) -> Result<Checked, Problems> {
    let mut problems = match draft.region {
        Some(region) => rule_problems_in(&draft.spec, region),
        None => rule_problems(&draft.spec),
    };
    if let Err(file_problem) = check_local_images(&files_to_read(&draft.spec, &problems)) {
        problems.push(file_problem);
    }
    if problems.is_empty() {
        Ok(Checked {
            spec: with_known_seed(draft.spec, fastrand::u64(0..=MAX_SEED)),
            parent: draft.parent,
        })
    } else {
        Err(problems)
    }
}

/// [`check`] for many jobs: all checked, or the problems of each bad one with its index.
pub fn check_all(drafts: Vec<Draft>) -> Result<Vec<Checked>, Vec<(usize, Problems)>> {
    let mut checked = Vec::with_capacity(drafts.len());
    let mut refused = Vec::new();
    for (index, draft) in drafts.into_iter().enumerate() {
        match check(draft) {
            Ok(job) => checked.push(job),
            Err(problems) => refused.push((index, problems)),
        }
    }
    if refused.is_empty() {
        Ok(checked)
    } else {
        Err(refused)
    }
}

/// Queues one checked job; returns its id.
pub fn enqueue(store: &Store, job: Checked) -> Result<JobId, StoreError> {
    Ok(enqueue_all(store, vec![job], None)?[0])
}

/// Queues checked jobs in one transaction (all or none), tagged with `tag` if given. On a
/// store shared by hosts (`Store::keeps_input_files`) the jobs' local input files are read
/// once more and their bytes stored first, so an engine on another host sends these
/// bytes. Reads files: call it off async threads and the UI task.
pub fn enqueue_all(
    store: &Store,
    jobs: Vec<Checked>,
    tag: Option<&str>,
) -> Result<Vec<JobId>, StoreError> {
    let specs: Vec<&JobSpec> = jobs.iter().map(|job| &job.spec).collect();
    let inputs = if store.keeps_input_files() {
        store_input_files(store, &specs)?
    } else {
        Vec::new()
    };
    let jobs: Vec<(&JobSpec, Option<JobId>)> =
        jobs.iter().map(|job| (&job.spec, job.parent)).collect();
    store.enqueue_with_parents(&jobs, tag, &inputs)
}

/// Stores the bytes of each local input file `specs` name, read once however many jobs
/// name it (one at a time: a batch's files never sit in memory together), through the
/// bounded reader `check` used, under the model's input size limit. A file gone or made
/// unreadable since `check` is refused naming its field.
fn store_input_files(store: &Store, specs: &[&JobSpec]) -> Result<Vec<InputFile>, StoreError> {
    let mut stored: Vec<InputFile> = Vec::new();
    for spec in specs {
        for (field, image) in spec.image_refs() {
            let ImageRef::File(path) = image else {
                continue;
            };
            if stored.iter().any(|input| input.path() == path) {
                continue;
            }
            let bytes = read_image_file(spec.model, field, path).map_err(|e| StoreError::Io {
                path: path.clone(),
                message: format!("{field} was not queued: {}", e.message),
            })?;
            let max_bytes = max_input_bytes(spec.model);
            stored.push(store.put_input_file(path.clone(), &bytes, max_bytes)?);
        }
    }
    Ok(stored)
}

/// `spec` with `chosen` as its seed when it has none and its model takes one; otherwise
/// `spec` as it is (a seed the user gave is theirs, and a model without seeds refuses one).
pub fn with_known_seed(mut spec: JobSpec, chosen: u64) -> JobSpec {
    if spec.seed.is_none() && field_applies(spec.model, "seed") {
        spec.seed = Some(chosen.min(MAX_SEED));
    }
    spec
}

/// The spec whose images `check_local_images` should read: without the images of fields
/// a rule already refused (one problem per field; and a refused image, say a data URI
/// for a model that takes URLs, must not hide a problem with the next one).
fn files_to_read(spec: &JobSpec, rule_problems: &[ValidationError]) -> JobSpec {
    let refused = |field: &str| rule_problems.iter().any(|p| p.field == field);
    let mut probe = spec.clone();
    if refused("base_image") {
        probe.base_image = None;
    }
    if refused("mask_image") {
        probe.mask_image = None;
    }
    if refused("images") {
        probe.images.clear();
    }
    probe
}

/// Relative local image paths become absolute against `base_dir`.
fn absolutize_images(spec: &mut JobSpec, base_dir: &Path) {
    let fix = |image: &mut ImageRef| {
        if let ImageRef::File(path) = image
            && path.is_relative()
        {
            let joined = base_dir.join(&*path);
            *path = std::path::absolute(&joined).unwrap_or(joined);
        }
    };
    spec.base_image.iter_mut().for_each(fix);
    spec.mask_image.iter_mut().for_each(fix);
    spec.images.iter_mut().for_each(fix);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::dashscope::{EditFunction, Model};

    fn edit_job(prompt: &str, base: ImageRef) -> JobSpec {
        let mut spec = JobSpec::new(Model::Wanx21ImageEdit, prompt);
        spec.function = Some(EditFunction::Colorization);
        spec.base_image = Some(base);
        spec
    }

    fn fields(problems: &[ValidationError]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    fn grey_png(path: &Path, side: u32) {
        image::GrayImage::from_pixel(side, side, image::Luma([128]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn relative_paths_resolve_against_the_base_dir_and_others_stay() {
        let mut spec = edit_job("p", ImageRef::File("in/a.png".into()));
        spec.mask_image = Some(ImageRef::File("/abs/m.png".into()));
        let draft = Draft::new(spec, Path::new("/data/batches"));
        assert_eq!(
            draft.spec().base_image,
            Some(ImageRef::File(PathBuf::from("/data/batches/in/a.png")))
        );
        assert_eq!(
            draft.spec().mask_image,
            Some(ImageRef::File(PathBuf::from("/abs/m.png")))
        );
        let url = ImageRef::Url("https://example.com/a.png".into());
        let draft = Draft::new(edit_job("p", url.clone()), Path::new("/data"));
        assert_eq!(draft.spec().base_image, Some(url));
    }

    #[test]
    fn every_problem_comes_back_at_once_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = edit_job("  ", ImageRef::File("missing.png".into()));
        spec.n = Some(9);
        let problems = check(Draft::new(spec, dir.path())).unwrap_err();
        assert_eq!(
            fields(&problems),
            ["prompt", "n", "base_image"],
            "{problems:?}"
        );
        let missing = dir.path().join("missing.png");
        assert!(
            problems[2]
                .message
                .starts_with(&format!("cannot read {}", missing.display())),
            "{problems:?}"
        );
    }

    #[test]
    fn a_refused_image_is_not_read_and_does_not_hide_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        // A data URI on a model that takes URLs only: refused by a rule, so not decoded;
        // the mask is read all the same.
        let mut spec = edit_job("p", ImageRef::DataUri("data:image/png;base64,AAAA".into()));
        spec.function = Some(EditFunction::DescriptionEditWithMask);
        spec.mask_image = Some(ImageRef::File("nope.png".into()));
        let problems = check(Draft::new(spec, dir.path())).unwrap_err();
        assert_eq!(
            fields(&problems),
            ["base_image", "mask_image"],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("URLs only"), "{problems:?}");
        assert!(problems[1].message.contains("nope.png"), "{problems:?}");
    }

    #[test]
    fn a_good_job_passes_and_keeps_its_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        grey_png(&dir.path().join("a.png"), 600);
        let checked = check(Draft::new(
            edit_job("colour it", ImageRef::File("a.png".into())),
            dir.path(),
        ))
        .unwrap();
        assert_eq!(
            checked.spec().base_image,
            Some(ImageRef::File(dir.path().join("a.png")))
        );
    }

    #[test]
    fn each_input_file_is_stored_once_and_one_gone_since_the_check_names_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let (base, mask) = (dir.path().join("base.png"), dir.path().join("mask.png"));
        grey_png(&base, 600);
        grey_png(&mask, 600);
        let plain = edit_job("p", ImageRef::File(base.clone()));
        let mut masked = plain.clone();
        masked.function = Some(EditFunction::DescriptionEditWithMask);
        masked.mask_image = Some(ImageRef::File(mask.clone()));
        let stored = store_input_files(&store, &[&plain, &masked]).unwrap();
        let paths: Vec<&Path> = stored.iter().map(InputFile::path).collect();
        assert_eq!(paths, [base.as_path(), mask.as_path()]);

        std::fs::remove_file(&mask).unwrap();
        let refused = store_input_files(&store, &[&masked])
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("mask_image was not queued: cannot read")
                && refused.contains(&*mask.to_string_lossy()),
            "{refused}"
        );
    }

    #[test]
    fn a_batch_is_refused_naming_each_bad_job_by_index() {
        let good = JobSpec::new(Model::Wanx21T2iTurbo, "fine");
        let mut bad = good.clone();
        bad.n = Some(0);
        let drafts = [good.clone(), bad, good]
            .into_iter()
            .map(|spec| Draft::new(spec, Path::new("/")))
            .collect();
        let refused = check_all(drafts).unwrap_err();
        assert_eq!(refused.len(), 1);
        assert_eq!((refused[0].0, fields(&refused[0].1)), (1, vec!["n"]));
    }

    #[test]
    fn a_job_without_a_seed_gets_one_where_the_model_takes_one() {
        let free = JobSpec::new(Model::Wanx21T2iTurbo, "a boat");
        assert_eq!(with_known_seed(free.clone(), 77).seed, Some(77));
        let mut given = free.clone();
        given.seed = Some(5);
        assert_eq!(
            with_known_seed(given, 77).seed,
            Some(5),
            "the user's seed stays"
        );
        // x-painting takes no seed: adding one would make the job invalid.
        let painting = JobSpec::new(Model::WanxXPainting, "a boat");
        assert_eq!(with_known_seed(painting, 77).seed, None);

        // Through `check`: the seed is chosen in range and the job is still valid.
        let checked = check(Draft::new(free, Path::new("/"))).unwrap();
        let seed = checked.spec().seed.expect("a seed was chosen");
        assert!(seed <= MAX_SEED);
        assert!(rule_problems(checked.spec()).is_empty());
    }

    #[test]
    fn only_checked_jobs_are_queued_all_in_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let drafts = ["a", "b"]
            .into_iter()
            .map(|p| Draft::new(JobSpec::new(Model::Wanx21T2iTurbo, p), dir.path()))
            .collect();
        let ids = enqueue_all(&store, check_all(drafts).unwrap(), Some("t")).unwrap();
        assert_eq!(ids.len(), 2);
        let one = check(Draft::in_working_dir(JobSpec::new(
            Model::Wanx21T2iTurbo,
            "c",
        )));
        let id = enqueue(&store, one.unwrap()).unwrap();
        assert_eq!(store.job(id).unwrap().unwrap().spec.prompt, "c");
        // A variation names the job it came from; the others name none.
        let variation =
            Draft::new(JobSpec::new(Model::Wanx21T2iTurbo, "d"), dir.path()).with_parent(Some(id));
        let child = enqueue(&store, check(variation).unwrap()).unwrap();
        assert_eq!(store.job(child).unwrap().unwrap().parent_job_id, Some(id));
        assert_eq!(store.job(id).unwrap().unwrap().parent_job_id, None);
    }
}
