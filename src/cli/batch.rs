//! Batch files: TOML (`[[job]]` tables) or JSONL (one job per line), with matrix expansion.
//!
//! A job may give `prompts`, `seeds` and `sizes` lists instead of `prompt`, `seed`, `size`;
//! it then stands for the cartesian product (prompts x seeds x sizes). Every job is parsed
//! and checked (by `intake`, as every job is) before anything is queued, and every error
//! says where it came from.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::dashscope::JobSpec;
use crate::intake::{self, Checked, Draft};

/// Where a job came from in its batch file, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// JSONL: the 1-based line.
    Line(usize),
    /// TOML: the 1-based `[[job]]` table and the line it starts on.
    Table { index: usize, line: usize },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(line) => write!(f, "line {line}"),
            Origin::Table { index, line } => {
                write!(f, "job {index} (the [[job]] table at line {line})")
            }
        }
    }
}

/// One job after expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchJob {
    pub origin: Origin,
    /// Which combination of a matrix job this is (`prompt 2, seed 1`), empty otherwise.
    pub combination: String,
    /// Its local paths already taken relative to the batch file.
    pub draft: Draft,
}

impl BatchJob {
    pub fn spec(&self) -> &JobSpec {
        self.draft.spec()
    }

    /// The job, checked also against what `region` offers.
    pub fn for_region(self, region: crate::dashscope::Region) -> BatchJob {
        BatchJob {
            draft: self.draft.for_region(region),
            ..self
        }
    }

    pub fn place(&self) -> String {
        if self.combination.is_empty() {
            self.origin.to_string()
        } else {
            format!("{}, {}", self.origin, self.combination)
        }
    }
}

/// A problem in a batch file: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub place: String,
    pub message: String,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Jsonl,
}

impl Format {
    /// By extension; otherwise a file whose first non-blank character is `{` is JSONL.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("toml") => Format::Toml,
            Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
            _ if text.trim_start().starts_with('{') => Format::Jsonl,
            _ => Format::Toml,
        }
    }
}

/// The most a batch file may hold. A matrix of a million jobs is a few lines, so this only
/// stops a device, a FIFO or a stray huge file from being read whole.
const MAX_BATCH_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A batch file read and split into its job tables, not yet expanded: how many jobs it makes
/// is known before any of them is built.
#[derive(Debug)]
pub struct BatchFile {
    tables: Tables,
    base_dir: PathBuf,
}

/// Reads a batch file into its tables. Relative image paths are taken relative to the file.
pub fn read_batch(path: &Path) -> Result<BatchFile, Vec<BatchError>> {
    let file_error = |message: String| {
        vec![BatchError {
            place: path.display().to_string(),
            message,
        }]
    };
    if path.is_dir() {
        return Err(file_error(
            "is a directory, not a batch file; give a .toml or .jsonl file".to_string(),
        ));
    }
    let bytes = crate::files::read_regular_file(path, MAX_BATCH_FILE_BYTES)
        .map_err(|refused| file_error(format!("batch file {refused}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        file_error(format!(
            "not UTF-8 text (first bad byte at line {line}, byte offset {offset}); save the file as UTF-8"
        ))
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    BatchFile::parse(&text, Format::detect(path, &text), &base_dir)
}

/// Parses and expands batch text; returns every error found, not just the first.
pub fn parse_batch(
    text: &str,
    format: Format,
    base_dir: &Path,
) -> Result<Vec<BatchJob>, Vec<BatchError>> {
    BatchFile::parse(text, format, base_dir)?.expand()
}

impl BatchFile {
    fn parse(text: &str, format: Format, base_dir: &Path) -> Result<BatchFile, Vec<BatchError>> {
        let tables = match format {
            Format::Jsonl => jsonl_tables(text)?,
            Format::Toml => toml_tables(text)?,
        };
        Ok(BatchFile {
            tables,
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// How many jobs the file expands to, counted from the matrix lists' lengths.
    pub fn job_count(&self) -> u64 {
        self.tables
            .iter()
            .map(|(_, table)| table_job_count(table))
            .fold(0, u64::saturating_add)
    }

    /// Each table's first job with the number of jobs the table makes: enough to price a
    /// batch too large to build (the matrix varies prompt, seed and size, never the model
    /// or the image count).
    pub fn samples(&self) -> Result<Vec<(BatchJob, u64)>, Vec<BatchError>> {
        let mut samples = Vec::new();
        let mut errors = Vec::new();
        for (origin, table) in &self.tables {
            let mut first = table.clone();
            for (plural, _) in MATRIX {
                if let Some(Value::Array(values)) = first.get_mut(plural) {
                    values.truncate(1);
                }
            }
            match expand(origin, first, &self.base_dir) {
                Ok(mut jobs) if !jobs.is_empty() => {
                    samples.push((jobs.swap_remove(0), table_job_count(table)));
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(samples)
        } else {
            Err(errors)
        }
    }

    /// Every job of the file, matrices expanded.
    pub fn expand(self) -> Result<Vec<BatchJob>, Vec<BatchError>> {
        let mut jobs = Vec::new();
        let mut errors = Vec::new();
        for (origin, table) in self.tables {
            match expand(&origin, table, &self.base_dir) {
                Ok(expanded) => jobs.extend(expanded),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if jobs.is_empty() {
            return Err(vec![BatchError {
                place: "batch file".into(),
                message: "holds no jobs".into(),
            }]);
        }
        Ok(jobs)
    }
}

/// The product of a table's matrix lists' lengths (a list that is not one counts once:
/// `expand` reports it).
fn table_job_count(table: &Map<String, Value>) -> u64 {
    MATRIX
        .iter()
        .filter_map(|(plural, _)| match table.get(*plural) {
            Some(Value::Array(values)) => Some(values.len() as u64),
            _ => None,
        })
        .fold(1, u64::saturating_mul)
}

/// Every rule of every job, including reading local images (`intake::check_all`).
/// Returns the checked jobs, in order, or every problem of every bad job.
pub fn check_batch(jobs: Vec<BatchJob>) -> Result<Vec<Checked>, Vec<BatchError>> {
    let places: Vec<String> = jobs.iter().map(BatchJob::place).collect();
    intake::check_all(jobs.into_iter().map(|job| job.draft).collect()).map_err(|refused| {
        refused
            .into_iter()
            .flat_map(|(index, problems)| {
                let place = &places[index];
                problems.into_iter().map(|problem| BatchError {
                    place: place.clone(),
                    message: format!("field `{}`: {}", problem.field, problem.message),
                })
            })
            .collect()
    })
}

/// The job tables of a batch file, each with where it stands.
type Tables = Vec<(Origin, Map<String, Value>)>;

fn jsonl_tables(text: &str) -> Result<Tables, Vec<BatchError>> {
    let mut tables = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = Origin::Line(i + 1);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => tables.push((origin, map)),
            Ok(_) => errors.push(BatchError {
                place: origin.to_string(),
                message: "is not a JSON object".into(),
            }),
            Err(e) => errors.push(BatchError {
                place: origin.to_string(),
                message: format!("not valid JSON: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(tables)
    } else {
        Err(errors)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlBatch {
    #[serde(default)]
    job: Vec<toml::Spanned<toml::Table>>,
}

fn toml_tables(text: &str) -> Result<Tables, Vec<BatchError>> {
    let batch: TomlBatch = toml::from_str(text).map_err(|e| {
        vec![BatchError {
            place: "batch file".into(),
            message: e.to_string().trim_end().replace('\n', " "),
        }]
    })?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let mut tables = Vec::new();
    for (i, spanned) in batch.job.into_iter().enumerate() {
        let origin = Origin::Table {
            index: i + 1,
            line: line_of(spanned.span().start),
        };
        let value = serde_json::to_value(spanned.into_inner()).map_err(|e| {
            vec![BatchError {
                place: origin.to_string(),
                message: format!("cannot read the table: {e}"),
            }]
        })?;
        match value {
            Value::Object(map) => tables.push((origin, map)),
            _ => unreachable!("a TOML table serialises to a JSON object"),
        }
    }
    Ok(tables)
}

/// The matrix keys and the field each stands for.
const MATRIX: [(&str, &str); 3] = [("prompts", "prompt"), ("seeds", "seed"), ("sizes", "size")];

fn expand(
    origin: &Origin,
    mut table: Map<String, Value>,
    base_dir: &Path,
) -> Result<Vec<BatchJob>, BatchError> {
    let fail = |message: String| BatchError {
        place: origin.to_string(),
        message,
    };
    let mut axes: Vec<(&str, Vec<Value>)> = Vec::new();
    for (plural, singular) in MATRIX {
        let Some(list) = table.remove(plural) else {
            continue;
        };
        if table.contains_key(singular) {
            return Err(fail(format!(
                "give either `{singular}` or `{plural}`, not both"
            )));
        }
        match list {
            Value::Array(values) if !values.is_empty() => axes.push((singular, values)),
            Value::Array(_) => {
                return Err(fail(format!(
                    "`{plural}` is empty; list at least one value"
                )));
            }
            _ => {
                return Err(fail(format!(
                    "`{plural}` must be a list, e.g. {plural} = [...]"
                )));
            }
        }
    }
    let mut combos: Vec<(Map<String, Value>, Vec<String>)> = vec![(table, Vec::new())];
    for (field, values) in &axes {
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for (base, label) in &combos {
            for (i, value) in values.iter().enumerate() {
                let mut map = base.clone();
                map.insert(field.to_string(), value.clone());
                let mut label = label.clone();
                label.push(format!("{field} {}", i + 1));
                next.push((map, label));
            }
        }
        combos = next;
    }
    combos
        .into_iter()
        .map(|(map, label)| {
            let combination = label.join(", ");
            let spec = intake::spec_from_json(map).map_err(|message| BatchError {
                place: if combination.is_empty() {
                    origin.to_string()
                } else {
                    format!("{origin}, {combination}")
                },
                message,
            })?;
            Ok(BatchJob {
                origin: origin.clone(),
                combination,
                draft: Draft::new(spec, base_dir),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::dashscope::{ImageRef, Model, Size};

    fn toml_jobs(text: &str) -> Result<Vec<BatchJob>, Vec<BatchError>> {
        parse_batch(text, Format::Toml, Path::new("/tmp"))
    }

    #[test]
    fn matrix_expands_to_the_cartesian_product() {
        let jobs = toml_jobs(
            "[[job]]\nmodel = \"wanx2.1-t2i-turbo\"\nprompts = [\"a\", \"b\", \"c\"]\nseeds = [1, 2]\nsizes = [\"1024*1024\", \"720*1280\"]\nn = 1\n\n[[job]]\nmodel = \"wanx2.0-t2i-turbo\"\nprompt = \"d\"\n",
        )
        .unwrap();
        assert_eq!(jobs.len(), 3 * 2 * 2 + 1);
        assert_eq!(jobs[0].spec().prompt, "a");
        assert_eq!(jobs[0].spec().seed, Some(1));
        assert_eq!(jobs[1].spec().size, Some(Size::new(720, 1280).into()));
        assert_eq!(jobs[11].spec().prompt, "c");
        assert_eq!(jobs[12].spec().model, Model::Wanx20T2iTurbo);
        assert_eq!(jobs[12].origin, Origin::Table { index: 2, line: 8 });
    }

    #[test]
    fn singular_and_plural_together_is_an_error() {
        let errs = toml_jobs(
            "[[job]]\nmodel = \"wanx2.1-t2i-turbo\"\nprompt = \"a\"\nprompts = [\"b\"]\n",
        )
        .unwrap_err();
        assert!(
            errs[0].to_string().contains("either `prompt` or `prompts`"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let errs =
            toml_jobs("[[job]]\nmodel = \"wanx2.1-t2i-turbo\"\nprompt = \"a\"\nn = \"four\"\n")
                .unwrap_err();
        let text = errs[0].to_string();
        assert!(
            text.contains("job 1") && text.contains("field `n`"),
            "{text}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let errs = parse_batch(
            "{\"model\":\"wanx2.1-t2i-turbo\",\"promt\":\"a\"}\n",
            Format::Jsonl,
            Path::new("/"),
        )
        .unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .starts_with("line 1: unknown field `promt`"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn validation_names_line_and_field() {
        let text = "{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"ok\"}\n\n{\"model\":\"wanx2.1-t2i-turbo\",\"prompt\":\"x\",\"n\":9}\n";
        let jobs = parse_batch(text, Format::Jsonl, Path::new("/")).unwrap();
        let errs = check_batch(jobs).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].to_string().starts_with("line 3: field `n`"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn relative_images_resolve_against_the_batch_file() {
        let jobs = parse_batch(
            "{\"model\":\"wanx2.1-imageedit\",\"prompt\":\"p\",\"function\":\"colorization\",\"base_image\":\"in/a.png\"}",
            Format::Jsonl,
            Path::new("/data/batches"),
        )
        .unwrap();
        assert_eq!(
            jobs[0].spec().base_image,
            Some(ImageRef::File(PathBuf::from("/data/batches/in/a.png")))
        );
    }
}
