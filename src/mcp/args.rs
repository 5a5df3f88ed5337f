//! The tools' arguments, named as the "Universal Image Generator" MCP server names them
//! (`prompt`, `image_file_path`, `image_url`, `encoded_image`, `function`,
//! `mask_image_url`) so that assistants configured for it keep working, plus the options
//! every DashScope model takes. Each turns into a `JobSpec` that `intake` then checks.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::dashscope::catalogue::ImageSlots;
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

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TextToImageArgs {
    /// What the image shows (up to 800 characters).
    pub prompt: String,
    /// wanx2.1-t2i-turbo (default), wanx2.1-t2i-plus or wanx2.0-t2i-turbo.
    pub model: Option<String>,
    /// Output size "W*H", each side 512-1440, at most 2 megapixels (default 1024*1024).
    pub size: Option<String>,
    /// Images to make, 1-4 (default 1 here; each image is billed).
    pub n: Option<u32>,
    /// 0-2147483647; image i of the job uses seed+i.
    pub seed: Option<u64>,
    /// What the image should not show (up to 500 characters).
    pub negative_prompt: Option<String>,
    /// Let the service rewrite the prompt (default true).
    pub prompt_extend: Option<bool>,
    /// Add the service's watermark (default false).
    pub watermark: Option<bool>,
    #[serde(flatten)]
    pub wait: WaitOptions,
}

/// Options of the editing models, shared by the three transform tools.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct EditOptions {
    /// wanx2.1-imageedit (default), wanx-x-painting (inpainting with a mask), or a model
    /// that takes a list of images: wan2.5-i2i-preview, wan2.6-image, wan2.7-image(-pro),
    /// qwen-image-2.0(-pro), qwen-image-edit(-plus, -max).
    pub model: Option<String>,
    /// wanx2.1-imageedit's function (default description_edit): stylization_all,
    /// stylization_local, description_edit, description_edit_with_mask (needs a mask),
    /// remove_watermark, expand, super_resolution, colorization, doodle,
    /// control_cartoon_feature.
    pub function: Option<String>,
    /// wan2.5-i2i-preview only.
    pub negative_prompt: Option<String>,
    /// Images to make, 1-4 (default 1 here).
    pub n: Option<u32>,
    pub seed: Option<u64>,
    /// Output size "W*H": wanx-x-painting takes 1024*1024, 720*1280 or 1280*720;
    /// wan2.5-i2i-preview 768*768 to 1280*1280 pixels in total.
    pub size: Option<String>,
    /// wanx-x-painting's style, e.g. "<auto>", "<anime>", "<watercolor>".
    pub style: Option<String>,
    /// wanx-x-painting: the [r, g, b] colours that mark the edit area in the mask
    /// (default: the mask is binarised, white is the edit area).
    pub mask_color: Option<Vec<[u8; 3]>>,
    /// expand: how far to extend each side, 1.0-2.0 (unset sides stay 1.0).
    pub top_scale: Option<f64>,
    pub bottom_scale: Option<f64>,
    pub left_scale: Option<f64>,
    pub right_scale: Option<f64>,
    /// super_resolution: 1-4 (1 = enhance only).
    pub upscale_factor: Option<u32>,
    pub watermark: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FileArgs {
    /// A local image file (JPG, PNG, BMP, TIFF, WEBP); it is uploaded to the service's
    /// temporary storage (or inlined for wan2.5-i2i-preview).
    pub image_file_path: String,
    /// What to change.
    pub prompt: String,
    /// A local mask file, white = edit, black = keep, at the image's resolution.
    pub mask_file_path: Option<String>,
    /// wan2.5-i2i-preview: images 2 and 3, local files.
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
    /// A public URL of the mask (white = edit), required by description_edit_with_mask
    /// and wanx-x-painting.
    pub mask_image_url: Option<String>,
    /// wan2.5-i2i-preview: images 2 and 3, public URLs.
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
    /// wan2.5-i2i-preview: images 2 and 3, as data URIs.
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
    pub fn spec(&self) -> Result<JobSpec, ArgError> {
        let model = parse_model(self.model.as_deref(), Model::Wanx21T2iTurbo)?;
        let mut spec = JobSpec::new(model, self.prompt.clone());
        spec.negative_prompt = self.negative_prompt.clone();
        spec.size = parse_size(self.size.as_deref())?;
        spec.n = Some(self.n.unwrap_or(1));
        spec.seed = self.seed;
        spec.prompt_extend = self.prompt_extend;
        spec.watermark = self.watermark;
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
    /// others take a base image and a mask.
    pub fn spec(&self, prompt: &str, inputs: Inputs) -> Result<JobSpec, ArgError> {
        let model = parse_model(self.model.as_deref(), Model::Wanx21ImageEdit)?;
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
