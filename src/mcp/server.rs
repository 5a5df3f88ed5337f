//! The tools. Each one checks its input through `intake` like every way into the queue
//! (every rule, then the local files, off the async threads; every problem at once),
//! enqueues into the shared store, waits a bounded time for the job to end, and answers
//! with what the assistant needs.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::common::schema_for_input;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, Implementation, JsonObject, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::answer::{self, failure};
use super::args::{
    self, BatchArgs, EncodedArgs, FileArgs, Inputs, JobIdArgs, ListJobsArgs, TextToImageArgs,
    UrlArgs, WaitOptions,
};
use super::jobs::{Jobs, Waited};
use super::schema::{CATALOGUE_TOOLS, Offer, ToolKind, tool_schema};
use crate::dashscope::{ImageRef, JobSpec, ValidationError};
use crate::intake::{self, Draft};
use crate::store::{CancelOutcome, JobFilter, JobId, StateFilter};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_TIMEOUT_SECONDS: u64 = 1800;
const MAX_LIST: u64 = 200;
const MAX_BATCH: usize = 1000;

#[derive(Clone)]
pub struct WandashMcp {
    jobs: Arc<Jobs>,
    /// The catalogue as the server's region sees it: the image tools' schemas, their
    /// default models, and the region every job is checked against.
    offer: Arc<Offer>,
    tool_router: ToolRouter<Self>,
}

/// A tool's input schema, generated from its argument type (the image tools' model
/// arguments are then written from the catalogue: `schema.rs`).
fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<T>().expect("every tool argument type is a JSON object")
}

/// Reads the arguments; a mistake is a tool error naming what is wrong, not a crash or
/// a protocol error the assistant cannot show.
fn parse<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, CallToolResult> {
    serde_json::from_value(Value::Object(arguments)).map_err(|e| {
        failure(format!(
            "invalid arguments: {e}; see the tool's input schema"
        ))
    })
}

#[tool_router]
impl WandashMcp {
    pub fn new(jobs: Arc<Jobs>, offer: Offer) -> Self {
        let mut tool_router = Self::tool_router();
        for (name, kind) in CATALOGUE_TOOLS {
            let route = tool_router
                .map
                .get_mut(name)
                .expect("every catalogue tool is a tool of this server");
            route.attr.input_schema = Arc::new(tool_schema(kind, &route.attr.input_schema, &offer));
        }
        WandashMcp {
            jobs,
            offer: Arc::new(offer),
            tool_router,
        }
    }

    /// Generate images from a text prompt (the models the region offers: see `model`).
    /// Waits for the job (bounded by timeout_seconds) and answers with the local image
    /// paths, the parameters, the prompt the service actually used, and the first image.
    #[tool(input_schema = schema::<TextToImageArgs>())]
    async fn generate_image_from_text(&self, arguments: JsonObject) -> CallToolResult {
        let args: TextToImageArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        match args.spec(self.offer.default_model(ToolKind::TextToImage)) {
            Ok(spec) => self.run_one(spec, &args.wait, &[]).await,
            Err(e) => failure(format!("invalid input: {e}")),
        }
    }

    /// Transform a local image file with an editing model (see `model`: functions,
    /// inpainting with a mask, or editing with several images). The file is uploaded to
    /// the service's temporary storage; nothing needs hosting.
    #[tool(input_schema = schema::<FileArgs>())]
    async fn transform_image_from_file(&self, arguments: JsonObject) -> CallToolResult {
        let args: FileArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let inputs = (|| {
            Ok::<_, String>(Inputs {
                image: args::local_file("image_file_path", &args.image_file_path)?,
                mask: args
                    .mask_file_path
                    .as_deref()
                    .map(|m| args::local_file("mask_file_path", m))
                    .transpose()?,
                extra: args
                    .extra_image_file_paths
                    .iter()
                    .flatten()
                    .map(|p| args::local_file("extra_image_file_paths", p))
                    .collect::<Result<_, _>>()?,
            })
        })();
        match inputs.and_then(|inputs| {
            args.edit
                .spec(&args.prompt, inputs, self.default_edit_model())
        }) {
            Ok(spec) => self.run_one(spec, &args.wait, FILE_ARGS).await,
            Err(e) => failure(format!("invalid input: {e}")),
        }
    }

    /// Transform an image at a public http(s) URL with an editing model (see `model`;
    /// mask_image_url for the models and functions that take a mask).
    #[tool(input_schema = schema::<UrlArgs>())]
    async fn transform_image_from_url(&self, arguments: JsonObject) -> CallToolResult {
        let args: UrlArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let inputs = (|| {
            Ok::<_, String>(Inputs {
                image: args::remote_url("image_url", &args.image_url)?,
                mask: args
                    .mask_image_url
                    .as_deref()
                    .map(|m| args::remote_url("mask_image_url", m))
                    .transpose()?,
                extra: args
                    .extra_image_urls
                    .iter()
                    .flatten()
                    .map(|u| args::remote_url("extra_image_urls", u))
                    .collect::<Result<_, _>>()?,
            })
        })();
        match inputs.and_then(|inputs| {
            args.edit
                .spec(&args.prompt, inputs, self.default_edit_model())
        }) {
            Ok(spec) => self.run_one(spec, &args.wait, URL_ARGS).await,
            Err(e) => failure(format!("invalid input: {e}")),
        }
    }

    /// Transform an image given as a data URI ("data:image/png;base64,..."). It is
    /// checked, kept in the data directory and uploaded like a local file.
    #[tool(input_schema = schema::<EncodedArgs>())]
    async fn transform_image_from_encoded(&self, arguments: JsonObject) -> CallToolResult {
        let args: EncodedArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let inputs = match self.decoded_inputs(&args).await {
            Ok(inputs) => inputs,
            Err(e) => return failure(format!("invalid input: {e}")),
        };
        match args
            .edit
            .spec(&args.prompt, inputs, self.default_edit_model())
        {
            Ok(spec) => self.run_one(spec, &args.wait, ENCODED_ARGS).await,
            Err(e) => failure(format!("invalid input: {e}")),
        }
    }

    /// List jobs in the wandash store, newest first (the assistant's and everyone
    /// else's: the dashboard and the CLI share it; `mine` keeps those queued as this
    /// user on this host).
    #[tool(input_schema = schema::<ListJobsArgs>())]
    async fn list_jobs(&self, arguments: JsonObject) -> CallToolResult {
        let args: ListJobsArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let state = match args.status.as_deref().map(parse_status).transpose() {
            Ok(s) => s,
            Err(e) => return failure(format!("invalid input: status: {e}")),
        };
        let limit = args.limit.unwrap_or(20).clamp(1, MAX_LIST);
        let search = args.search.filter(|s| !s.trim().is_empty());
        match self
            .jobs
            .list(
                JobFilter {
                    state,
                    search,
                    submitted_by: args.mine.then(|| self.jobs.submitter().to_owned()),
                },
                limit,
            )
            .await
        {
            Ok(rows) => {
                let jobs: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        json!({"job_id": r.id, "state": r.state(), "model": r.model, "prompt": r.prompt,
                            "images_ok": r.images_ok, "images_expected": r.images_expected,
                            "created_at_ms": r.created_at, "error": r.error().map(|e| &e.message), "batch_tag": r.batch_tag,
                            "submitted_by": r.submitted_by})
                    })
                    .collect();
                answer::data(json!({"count": jobs.len(), "jobs": jobs}))
            }
            Err(e) => failure(format!("cannot read the job store: {e}")),
        }
    }

    /// Everything about one job: state, parameters, actual prompt, image paths, errors;
    /// the first image as image content once it succeeded.
    #[tool(input_schema = schema::<JobIdArgs>())]
    async fn get_job(&self, arguments: JsonObject) -> CallToolResult {
        let args: JobIdArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        match self.jobs.job(JobId(args.id)).await {
            Ok(Some(detail)) => {
                answer::job_result(&detail, None, args.return_image.unwrap_or(true)).await
            }
            Ok(None) => failure(no_such_job(args.id)),
            Err(e) => failure(format!("cannot read the job store: {e}")),
        }
    }

    /// Cancel a job: a queued one at once; one already at the service is cancelled there
    /// if it is still PENDING (the service refuses once it runs).
    #[tool(input_schema = schema::<JobIdArgs>())]
    async fn cancel_job(&self, arguments: JsonObject) -> CallToolResult {
        let args: JobIdArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let id = JobId(args.id);
        match self.jobs.cancel(id).await {
            Ok(None) => failure(no_such_job(args.id)),
            Ok(Some(outcome)) => {
                let (outcome, note) = match outcome {
                    CancelOutcome::Cancelled => ("cancelled", "the job was still queued; nothing was sent".to_string()),
                    CancelOutcome::Requested => (
                        "requested",
                        "the engine asks the service to cancel the task; a task that already runs cannot be cancelled"
                            .to_string(),
                    ),
                    CancelOutcome::AlreadyEnded(state) => ("already_ended", format!("the job had already ended {state}")),
                };
                answer::data(json!({"job_id": id, "outcome": outcome, "note": note}))
            }
            Err(e) => failure(format!("cannot cancel job {id}: {e}")),
        }
    }

    /// Queue many jobs at once and return their ids without waiting (for long batches;
    /// follow them with get_job or list_jobs). Every job is checked first: one bad job
    /// and none is queued.
    #[tool(input_schema = schema::<BatchArgs>())]
    async fn submit_batch(&self, arguments: JsonObject) -> CallToolResult {
        let args: BatchArgs = match parse(arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        if args.jobs.is_empty() {
            return failure("invalid input: jobs: is empty; give at least one job");
        }
        if args.jobs.len() > MAX_BATCH {
            return failure(format!(
                "invalid input: jobs: {} jobs, over the limit of {MAX_BATCH} per call",
                args.jobs.len()
            ));
        }
        // Every job is read and checked, so that one answer lists every problem.
        let mut problems: Vec<(usize, String)> = Vec::new();
        let mut drafts = Vec::with_capacity(args.jobs.len());
        for (i, job) in args.jobs.into_iter().enumerate() {
            match intake::spec_from_json(job) {
                Ok(spec) => drafts.push((i, self.draft(spec))),
                Err(e) => problems.push((i, e)),
            }
        }
        let (numbers, drafts): (Vec<usize>, Vec<Draft>) = drafts.into_iter().unzip();
        let checked = match tokio::task::spawn_blocking(move || intake::check_all(drafts)).await {
            Ok(Ok(checked)) => checked,
            Ok(Err(refused)) => {
                for (at, job_problems) in refused {
                    problems.extend(job_problems.iter().map(|p| (numbers[at], p.to_string())));
                }
                Vec::new()
            }
            Err(e) => return failure(format!("checking the images stopped: {e}")),
        };
        if !problems.is_empty() {
            problems.sort_by_key(|(number, _)| *number);
            let lines: Vec<String> = problems
                .into_iter()
                .map(|(number, problem)| format!("job {number}: {problem}"))
                .collect();
            return failure(format!(
                "{} problem(s); nothing was queued (jobs are counted from 0):\n{}",
                lines.len(),
                lines.join("\n")
            ));
        }
        let count = checked.len();
        let images: u32 = checked.iter().map(|job| job.spec().image_count()).sum();
        let ids = match self.jobs.enqueue(checked, args.tag.clone()).await {
            Ok(ids) => ids,
            Err(e) => return failure(format!("cannot queue the batch: {e}")),
        };
        let engine = self.jobs.ensure_engine().await.err();
        let mut value = json!({"job_ids": ids, "jobs": count, "images": images, "tag": args.tag});
        if let Some(e) = engine {
            value["warning"] = json!(format!("the jobs are queued but no engine runs them: {e}"));
        }
        answer::data(value)
    }
}

impl WandashMcp {
    /// A job from a tool: local paths against the server's working directory, the model
    /// checked against the region (refused naming the regions that offer it).
    fn draft(&self, spec: JobSpec) -> Draft {
        Draft::in_working_dir(spec).for_region(self.offer.region)
    }

    fn default_edit_model(&self) -> crate::dashscope::Model {
        self.offer.default_model(ToolKind::Transform)
    }

    /// Checks one job, queues it, waits for it and answers.
    /// `aliases` names the tool argument behind each spec field, for the error messages.
    async fn run_one(
        &self,
        spec: JobSpec,
        wait: &WaitOptions,
        aliases: &[(&str, &str)],
    ) -> CallToolResult {
        let draft = self.draft(spec);
        let checked = match tokio::task::spawn_blocking(move || intake::check(draft)).await {
            Ok(Ok(checked)) => checked,
            Ok(Err(problems)) => return failure(invalid_input(&problems, aliases)),
            Err(e) => return failure(format!("checking the input images stopped: {e}")),
        };
        let id = match self.jobs.enqueue(vec![checked], None).await {
            Ok(ids) => ids[0],
            Err(e) => return failure(format!("cannot queue the job: {e}")),
        };
        if let Err(e) = self.jobs.ensure_engine().await {
            return failure(format!("job {id} is queued, but no engine can run it: {e}"));
        }
        let timeout = wait
            .timeout_seconds
            .map(|s| Duration::from_secs(s.min(MAX_TIMEOUT_SECONDS)))
            .unwrap_or(DEFAULT_TIMEOUT);
        let with_image = wait.return_image.unwrap_or(true);
        match self.jobs.wait(id, timeout).await {
            Ok(Waited::Ended(detail)) => answer::job_result(&detail, None, with_image).await,
            Ok(Waited::TimedOut(detail)) => {
                let note = format!(
                    "job {id} is still {} after {} s; it keeps running: call get_job with id {id} later",
                    detail.summary.state(),
                    timeout.as_secs()
                );
                answer::job_result(&detail, Some(note), with_image).await
            }
            Ok(Waited::EngineStopped(detail, reason)) => {
                let mut value = answer::describe(&detail);
                value["note"] = json!(format!("{reason}; job {id} stays queued"));
                let mut result = failure(format!("job {id} cannot run: {reason}"));
                result.structured_content = Some(value);
                result
            }
            Err(e) => failure(format!(
                "job {id} is queued, but reading it back failed: {e}"
            )),
        }
    }

    /// Decodes the data URIs into files under the data directory, so every editing model
    /// can take them (only wan2.5-i2i-preview takes data URIs itself; the others need
    /// an upload, which works from files).
    async fn decoded_inputs(&self, args: &EncodedArgs) -> Result<Inputs, String> {
        let dir = self.jobs.inputs_dir();
        let mut uris = vec![("encoded_image", args.encoded_image.clone())];
        if let Some(mask) = &args.mask_encoded_image {
            uris.push(("mask_encoded_image", mask.clone()));
        }
        for extra in args.extra_encoded_images.iter().flatten() {
            uris.push(("extra_encoded_images", extra.clone()));
        }
        let has_mask = args.mask_encoded_image.is_some();
        let mut files = tokio::task::spawn_blocking(move || {
            uris.into_iter()
                .map(|(field, uri)| save_data_uri(&dir, field, &uri))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| format!("decoding the images stopped: {e}"))??
        .into_iter();
        let image = files.next().expect("the encoded image is always first");
        let mask = if has_mask { files.next() } else { None };
        Ok(Inputs {
            image,
            mask,
            extra: files.collect(),
        })
    }
}

/// Writes a data URI's image to `dir/<uuid>.<ext>`; errors name the argument.
fn save_data_uri(dir: &std::path::Path, field: &str, uri: &str) -> Result<ImageRef, String> {
    let uri = uri.trim();
    let (mime, bytes) = crate::dashscope::validate::decode_data_uri(uri)
        .map_err(|e| format!("{field}: {e} (expected data:image/<format>;base64,<data>)"))?;
    let format = image::guess_format(&bytes)
        .map_err(|_| format!("{field}: the data is not an image this service reads (JPG, PNG, BMP, TIFF, WEBP); declared {mime}"))?;
    let ext = format.extensions_str().first().copied().unwrap_or("img");
    // An assistant's images are as private as the user's own (0700 / 0600).
    crate::files::create_private_dir(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.{ext}", uuid::Uuid::new_v4()));
    crate::files::create_private_file(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, &bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(ImageRef::File(path))
}

/// The spec fields behind each transform tool's image arguments.
const FILE_ARGS: &[(&str, &str)] = &[
    ("base_image", "image_file_path"),
    ("mask_image", "mask_file_path"),
    ("images", "image_file_path/extra_image_file_paths"),
];
const URL_ARGS: &[(&str, &str)] = &[
    ("base_image", "image_url"),
    ("mask_image", "mask_image_url"),
    ("images", "image_url/extra_image_urls"),
];
const ENCODED_ARGS: &[(&str, &str)] = &[
    ("base_image", "encoded_image"),
    ("mask_image", "mask_encoded_image"),
    ("images", "encoded_image/extra_encoded_images"),
];

/// The error of a refused job: every problem, each in the tool's terms.
fn invalid_input(problems: &[ValidationError], aliases: &[(&str, &str)]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| in_tool_terms(p, aliases)).collect();
    match lines.as_slice() {
        [one] => format!("invalid input: {one}"),
        _ => format!(
            "invalid input, {} problems:\n{}",
            lines.len(),
            lines.join("\n")
        ),
    }
}

/// A validation error with the tool's argument name first, then the spec field (the name
/// the CLI and batch files use): `image_file_path (base_image): ...`.
fn in_tool_terms(e: &ValidationError, aliases: &[(&str, &str)]) -> String {
    match aliases.iter().find(|(field, _)| *field == e.field) {
        Some((field, argument)) => format!("{argument} ({field}): {}", e.message),
        None => e.to_string(),
    }
}

fn parse_status(text: &str) -> Result<StateFilter, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "active" => Ok(StateFilter::Active),
        "problems" => Ok(StateFilter::Problems),
        other => other.parse().map(StateFilter::Only),
    }
}

fn no_such_job(id: i64) -> String {
    format!("there is no job {id}; list_jobs shows the ids")
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WandashMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("wandash", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "wandash: DashScope Tongyi Wanxiang image generation through a durable job queue shared with \
                 the wandash dashboard and CLI. generate_image_from_text and the transform_image_* tools wait \
                 (timeout_seconds) and return local image paths; on timeout call get_job with the job id. \
                 submit_batch queues many jobs without waiting.",
            )
    }
}
