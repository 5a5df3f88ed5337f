//! The tools' arguments, named as the "Universal Image Generator" MCP server names them
//! (`prompt`, `image_file_path`, `image_url`, `encoded_image`, `function`,
//! `mask_image_url`) so that assistants configured for it keep working, plus the options
//! every DashScope model takes. Each turns into a `JobSpec` that `intake` then checks.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::dashscope::catalogue::ImageSlots;
use crate::dashscope::composition::{BoundingBox, PaletteColor};
use crate::dashscope::{EditFunction, ImageRef, JobSpec, Model, OutputSize};

/// How long a tool waits for its job, and what it sends back.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct WaitOptions {
    /// Seconds to wait for the job to end (default 120, at most 1800). On timeout the
    /// answer carries the job id: call get_job with it later; the job keeps running.
    pub timeout_seconds: Option<u64>,
    /// Attach the first image (downscaled to at most 512 px) as image content (default true).
    pub return_image: Option<bool>,
}

/// The arguments whose words depend on the models (`model`, `size`, `n`, `seed`,
/// `negative_prompt`, `prompt_extend`, `watermark` and the editing options) are described
/// by `schema.rs` from the catalogue for the server's region, not here.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TextToImageArgs {
    pub prompt: String,
    pub model: Option<String>,
    pub size: Option<String>,
    pub n: Option<u32>,
    pub seed: Option<u64>,
    pub negative_prompt: Option<String>,
    pub prompt_extend: Option<bool>,
    pub watermark: Option<bool>,
    pub color_palette: Option<Vec<PaletteArg>>,
    #[serde(flatten)]
    pub wait: WaitOptions,
}

/// One colour of wan2.7's `color_palette`, as a tool takes it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct PaletteArg {
    /// `#RRGGBB`.
    pub hex: String,
    /// The colour's share of the image, 0 to 1.
    pub ratio: f64,
}

fn palette(colors: &Option<Vec<PaletteArg>>) -> Vec<PaletteColor> {
    colors
        .iter()
        .flatten()
        .map(|c| PaletteColor {
            hex: c.hex.clone(),
            ratio: c.ratio,
        })
        .collect()
}

/// Options of the editing models, shared by the three transform tools; `schema.rs`
/// describes them from the catalogue (and leaves out those no offered model takes).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct EditOptions {
    pub model: Option<String>,
    pub function: Option<String>,
    pub negative_prompt: Option<String>,
    pub n: Option<u32>,
    pub seed: Option<u64>,
    pub size: Option<String>,
    pub style: Option<String>,
    pub mask_color: Option<Vec<[u8; 3]>>,
    pub top_scale: Option<f64>,
    pub bottom_scale: Option<f64>,
    pub left_scale: Option<f64>,
    pub right_scale: Option<f64>,
    pub upscale_factor: Option<u32>,
    pub watermark: Option<bool>,
    pub color_palette: Option<Vec<PaletteArg>>,
    pub bbox_list: Option<Vec<Vec<BoundingBox>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FileArgs {
    /// A local image file (JPG, PNG, BMP, TIFF, WEBP); it is uploaded to the service's
    /// temporary storage (or inlined for the models that take data URIs).
    pub image_file_path: String,
    /// What to change.
    pub prompt: String,
    /// A local mask file, white = edit, black = keep, at the image's resolution.
    pub mask_file_path: Option<String>,
    pub extra_image_file_paths: Option<Vec<String>>,
    #[serde(flatten)]
    pub edit: EditOptions,
    #[serde(flatten)]
    pub wait: WaitOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UrlArgs {
    /// A public http(s) URL of the image to transform.
    pub image_url: String,
    /// What to change.
    pub prompt: String,
    /// A public URL of the mask (white = edit), for the models and functions that take
    /// one (see `model` and `function`).
    pub mask_image_url: Option<String>,
    pub extra_image_urls: Option<Vec<String>>,
    #[serde(flatten)]
    pub edit: EditOptions,
    #[serde(flatten)]
    pub wait: WaitOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EncodedArgs {
    /// The image as a data URI: "data:image/png;base64,...".
    pub encoded_image: String,
    /// What to change.
    pub prompt: String,
    /// The mask as a data URI (white = edit), at the image's resolution.
    pub mask_encoded_image: Option<String>,
    pub extra_encoded_images: Option<Vec<String>>,
    #[serde(flatten)]
    pub edit: EditOptions,
    #[serde(flatten)]
    pub wait: WaitOptions,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListJobsArgs {
    /// A state (queued, submitting, submitted, running, succeeded, failed, cancelled,
    /// expired, needs_attention) or a group: active, problems.
    pub status: Option<String>,
    /// How many jobs, newest first (default 20, at most 200).
    pub limit: Option<u64>,
    /// Only jobs whose prompt contains this text.
    pub search: Option<String>,
    /// Only the jobs queued as this server's user on this host (`user@host`, their
    /// `submitted_by`); default false: everyone's.
    #[serde(default)]
    pub mine: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct JobIdArgs {
    /// The job id a tool returned (`job_id`).
    pub id: i64,
    /// get_job: attach the first image as image content (default true).
    pub return_image: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BatchArgs {
    /// The jobs, each an object with the fields of a wandash batch line: model, prompt,
    /// and as the model takes them negative_prompt, function, base_image, mask_image,
    /// images (local paths, URLs or data URIs), size, n, seed, prompt_extend, watermark,
    /// style, expand {top,bottom,left,right}, upscale_factor, mask_color.
    pub jobs: Vec<serde_json::Map<String, serde_json::Value>>,
    /// A label to find the batch by later.
    pub tag: Option<String>,
}

/// A bad argument, named, with what is wrong.
pub type ArgError = String;

impl TextToImageArgs {
    /// The spec; `default_model` when the call names none (the region's, `schema.rs`).
    pub fn spec(&self, default_model: Model) -> Result<JobSpec, ArgError> {
        let model = parse_model(self.model.as_deref(), default_model)?;
        let mut spec = JobSpec::new(model, self.prompt.clone());
        spec.negative_prompt = self.negative_prompt.clone();
        spec.size = parse_size(self.size.as_deref())?;
        spec.n = Some(self.n.unwrap_or(1));
        spec.seed = self.seed;
        spec.prompt_extend = self.prompt_extend;
        spec.watermark = self.watermark;
        spec.color_palette = palette(&self.color_palette);
        Ok(spec)
    }
}

/// Where the input images of a transform come from, already turned into references.
pub struct Inputs {
    pub image: ImageRef,
    pub mask: Option<ImageRef>,
    pub extra: Vec<ImageRef>,
}

impl EditOptions {
    /// The spec for `inputs`: a model that takes a list of images (wan2.5-i2i-preview,
    /// wan2.6/2.7-image, qwen-image edit and 2.0) takes every image in `images`; the
    /// others take a base image and a mask. `default_model` when the call names none.
    pub fn spec(
        &self,
        prompt: &str,
        inputs: Inputs,
        default_model: Model,
    ) -> Result<JobSpec, ArgError> {
        let model = parse_model(self.model.as_deref(), default_model)?;
        let mut spec = JobSpec::new(model, prompt);
        if matches!(model.entry().images, ImageSlots::List { .. }) {
            if inputs.mask.is_some() {
                return Err(format!(
                    "mask: {model} takes no mask; describe the change in the prompt"
                ));
            }
            spec.images = std::iter::once(inputs.image).chain(inputs.extra).collect();
        } else {
            if !inputs.extra.is_empty() {
                return Err(format!(
                    "extra images: only the models that take a list of images take more than one, not {model}"
                ));
            }
            spec.base_image = Some(inputs.image);
            spec.mask_image = inputs.mask;
        }
        spec.function = match (&self.function, model) {
            (Some(f), _) => Some(
                f.parse()
                    .map_err(|e: crate::dashscope::UnknownFunction| format!("function: {e}"))?,
            ),
            // The server this one stands in for defaults to description_edit.
            (None, Model::Wanx21ImageEdit) => Some(EditFunction::DescriptionEdit),
            (None, _) => None,
        };
        spec.negative_prompt = self.negative_prompt.clone();
        spec.n = Some(self.n.unwrap_or(1));
        spec.seed = self.seed;
        spec.size = parse_size(self.size.as_deref())?;
        spec.style = self.style.clone();
        spec.mask_color = self.mask_color.clone().unwrap_or_default();
        spec.expand = crate::intake::expand_from_sides([
            self.top_scale,
            self.bottom_scale,
            self.left_scale,
            self.right_scale,
        ]);
        spec.upscale_factor = self.upscale_factor;
        spec.watermark = self.watermark;
        spec.color_palette = palette(&self.color_palette);
        spec.bbox_list = self.bbox_list.clone().unwrap_or_default();
        Ok(spec)
    }
}

fn parse_model(text: Option<&str>, default: Model) -> Result<Model, ArgError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(t) => t
            .parse()
            .map_err(|e: crate::dashscope::UnknownModel| format!("model: {e}")),
    }
}

fn parse_size(text: Option<&str>) -> Result<Option<OutputSize>, ArgError> {
    text.map(|t| {
        t.parse()
            .map_err(|e: crate::dashscope::BadSize| format!("size: {e}"))
    })
    .transpose()
}

/// A local path as an image reference (`intake` makes it absolute against the server's
/// working directory).
pub fn local_file(field: &str, text: &str) -> Result<ImageRef, ArgError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{field}: is empty; give the path of an image file"));
    }
    let path = text.strip_prefix("file://").unwrap_or(text);
    Ok(ImageRef::File(PathBuf::from(path)))
}

/// A URL argument: http(s) only, so a path passed here by mistake is said so.
pub fn remote_url(field: &str, text: &str) -> Result<ImageRef, ArgError> {
    let text = text.trim();
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(ImageRef::Url(text.to_string()))
    } else {
        Err(format!(
            "{field}: `{}` is not an http(s) URL; use transform_image_from_file for local files",
            clip(text, 80)
        ))
    }
}

pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push('…');
        out
    }
}
