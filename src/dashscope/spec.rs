//! A job as the user describes it: one flat, serialisable spec for every model.
//!
//! Flat rather than one variant per model so that the CLI's flags, the editor's form,
//! batch files and the store all speak the same shape; `validate` decides which fields
//! apply to which model. `to_wire` builds the create request's JSON body and `from_wire`
//! reads one back (the simulator uses it to apply the same rules the client does).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::Region;
use super::catalogue::NegativePrompt;
use super::composition::{BoundingBox, PaletteColor, bbox_list_wire};
use super::models::Model;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub model: Model,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    /// wanx2.1-imageedit only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<EditFunction>,
    /// wanx2.1-imageedit and wanx-x-painting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<ImageRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_image: Option<ImageRef>,
    /// wan2.5-i2i-preview: 1 to 3 images, referred to as image 1, 2, 3 in the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRef>,
    /// `W*H`, or a token (`1K`, `2K`, `4K`) where the model takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<OutputSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// u64 so that an out-of-range seed reaches validation instead of failing to parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_extend: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<bool>,
    /// wanx-x-painting's style, e.g. `<anime>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// wanx2.1-imageedit `expand` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<ExpandScales>,
    /// wanx2.1-imageedit `super_resolution` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscale_factor: Option<u32>,
    /// wanx-x-painting: RGB colours that mark the edit area in the mask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask_color: Vec<[u8; 3]>,
    /// wan2.6-image: text and images interleaved in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_interleave: Option<bool>,
    /// wan2.6-image, interleaved: at most this many images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_images: Option<u32>,
    /// wan2.7-image: a sequence of images (n up to 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_sequential: Option<bool>,
    /// wan2.7-image: think before drawing (text-to-image only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_mode: Option<bool>,
    /// wan2.7-image: the image's colours (`composition.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub color_palette: Vec<PaletteColor>,
    /// wan2.7-image: boxes per input image (`composition.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bbox_list: Vec<Vec<BoundingBox>>,
}

impl JobSpec {
    /// A spec with only model and prompt set; the rest take the service's defaults.
    pub fn new(model: Model, prompt: impl Into<String>) -> Self {
        JobSpec {
            model,
            prompt: prompt.into(),
            negative_prompt: None,
            function: None,
            base_image: None,
            mask_image: None,
            images: Vec::new(),
            size: None,
            n: None,
            seed: None,
            prompt_extend: None,
            watermark: None,
            style: None,
            expand: None,
            upscale_factor: None,
            mask_color: Vec::new(),
            enable_interleave: None,
            max_images: None,
            enable_sequential: None,
            thinking_mode: None,
            color_palette: Vec::new(),
            bbox_list: Vec::new(),
        }
    }

    /// How many images the task will make.
    pub fn image_count(&self) -> u32 {
        self.n.unwrap_or_else(|| self.model.default_n())
    }

    /// What one image of this job costs in `region`, CNY: the catalogue's price (with
    /// z-image-turbo's surcharge when `prompt_extend` is on), `None` where none is known.
    pub fn price_per_image(&self, region: Region) -> Option<f64> {
        let entry = self.model.entry();
        let extend = self.prompt_extend.or(entry.prompt_extend).unwrap_or(false);
        entry.price_in(region, extend)
    }

    /// Every image reference in the spec, with the request field it goes to.
    pub fn image_refs(&self) -> Vec<(&'static str, &ImageRef)> {
        let mut refs = Vec::new();
        if let Some(base) = &self.base_image {
            refs.push(("base_image", base));
        }
        if let Some(mask) = &self.mask_image {
            refs.push(("mask_image", mask));
        }
        refs.extend(self.images.iter().map(|i| ("images", i)));
        refs
    }

    /// The create request body for the `input.prompt` endpoints (text2image and
    /// image2image), under the stored id. Every image must already be a URL, `oss://` key
    /// or data URI (local files are resolved by the client first); a local path here is
    /// an error.
    pub fn to_wire(&self) -> Result<Value, UnresolvedImage> {
        self.to_wire_as(self.model.id())
    }

    /// [`JobSpec::to_wire`] with the model named `model_id` (its id in the region the
    /// request goes to: `Model::id_in`).
    pub fn to_wire_as(&self, model_id: &str) -> Result<Value, UnresolvedImage> {
        let mut input = Map::new();
        let mut parameters = Map::new();
        input.insert("prompt".into(), json!(self.prompt));
        if let Some(neg) = &self.negative_prompt {
            // qwen-image takes it among the parameters (the QC async example).
            let place = match self.model.entry().negative_prompt {
                NegativePrompt::InParameters { .. } => &mut parameters,
                _ => &mut input,
            };
            place.insert("negative_prompt".into(), json!(neg));
        }
        if let Some(function) = self.function {
            input.insert("function".into(), json!(function.as_str()));
        }
        if let Some(base) = &self.base_image {
            input.insert("base_image_url".into(), json!(base.wire()?));
        }
        if let Some(mask) = &self.mask_image {
            input.insert("mask_image_url".into(), json!(mask.wire()?));
        }
        if !self.images.is_empty() {
            let urls = self
                .images
                .iter()
                .map(ImageRef::wire)
                .collect::<Result<Vec<_>, _>>()?;
            input.insert("images".into(), json!(urls));
        }

        if let Some(size) = self.size {
            parameters.insert("size".into(), json!(size.to_string()));
        }
        if let Some(n) = self.n {
            parameters.insert("n".into(), json!(n));
        }
        if let Some(seed) = self.seed {
            parameters.insert("seed".into(), json!(seed));
        }
        if let Some(extend) = self.prompt_extend {
            parameters.insert("prompt_extend".into(), json!(extend));
        }
        if let Some(watermark) = self.watermark {
            parameters.insert("watermark".into(), json!(watermark));
        }
        if let Some(style) = &self.style {
            parameters.insert("style".into(), json!(style));
        }
        if let Some(scales) = self.expand {
            parameters.insert("top_scale".into(), json!(scales.top));
            parameters.insert("bottom_scale".into(), json!(scales.bottom));
            parameters.insert("left_scale".into(), json!(scales.left));
            parameters.insert("right_scale".into(), json!(scales.right));
        }
        if let Some(factor) = self.upscale_factor {
            parameters.insert("upscale_factor".into(), json!(factor));
        }
        if !self.mask_color.is_empty() {
            parameters.insert("mask_color".into(), json!(self.mask_color));
        }
        for (key, value) in [
            ("enable_interleave", self.enable_interleave),
            ("enable_sequential", self.enable_sequential),
            ("thinking_mode", self.thinking_mode),
        ] {
            if let Some(value) = value {
                parameters.insert(key.into(), json!(value));
            }
        }
        if let Some(max) = self.max_images {
            parameters.insert("max_images".into(), json!(max));
        }
        if !self.color_palette.is_empty() {
            parameters.insert("color_palette".into(), json!(self.color_palette));
        }
        if !self.bbox_list.is_empty() {
            parameters.insert("bbox_list".into(), bbox_list_wire(&self.bbox_list));
        }
        Ok(json!({ "model": model_id, "input": input, "parameters": parameters }))
    }

    /// Reads a create request body. Errors name the field that is malformed; a body
    /// that parses may still break a rule, which `validate` then reports.
    pub fn from_wire(body: &Value) -> Result<JobSpec, WireError> {
        let model_id = body
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| WireError::field("model", "is required and must be a string"))?;
        let model =
            Model::from_str(model_id).map_err(|_| WireError::UnknownModel(model_id.into()))?;
        let empty = Map::new();
        let input = match body.get("input") {
            Some(Value::Object(map)) => map,
            Some(_) => return Err(WireError::field("input", "must be an object")),
            None => return Err(WireError::field("input", "is required")),
        };
        let parameters = match body.get("parameters") {
            Some(Value::Object(map)) => map,
            None | Some(Value::Null) => &empty,
            Some(_) => return Err(WireError::field("parameters", "must be an object")),
        };
        let string =
            |map: &Map<String, Value>, key: &'static str| -> Result<Option<String>, WireError> {
                match map.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(WireError::field(key, "must be a string")),
                }
            };
        let uint = |key: &'static str| -> Result<Option<u64>, WireError> {
            match parameters.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| WireError::field(key, "must be a non-negative integer")),
            }
        };
        let boolean = |key: &'static str| -> Result<Option<bool>, WireError> {
            match parameters.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(WireError::field(key, "must be true or false")),
            }
        };
        let scale = |key: &'static str| -> Result<Option<f64>, WireError> {
            match parameters.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| WireError::field(key, "must be a number")),
            }
        };

        let mut spec = JobSpec::new(model, string(input, "prompt")?.unwrap_or_default());
        spec.negative_prompt = match string(input, "negative_prompt")? {
            Some(neg) => Some(neg),
            None => string(parameters, "negative_prompt")?,
        };
        spec.function = match string(input, "function")? {
            None => None,
            Some(f) => Some(
                f.parse()
                    .map_err(|e: UnknownFunction| WireError::field("function", &e.to_string()))?,
            ),
        };
        spec.base_image = string(input, "base_image_url")?.map(ImageRef::remote);
        spec.mask_image = string(input, "mask_image_url")?.map(ImageRef::remote);
        spec.images = match input.get("images") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(|s| ImageRef::remote(s.to_string())))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| WireError::field("images", "must be a list of strings"))?,
            Some(_) => return Err(WireError::field("images", "must be a list of strings")),
        };
        spec.size = match string(parameters, "size")? {
            None => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|e: BadSize| WireError::field("size", &e.to_string()))?,
            ),
        };
        spec.n = uint("n")?.map(|n| n.min(u32::MAX as u64) as u32);
        spec.seed = uint("seed")?;
        spec.prompt_extend = boolean("prompt_extend")?;
        spec.watermark = boolean("watermark")?;
        spec.enable_interleave = boolean("enable_interleave")?;
        spec.enable_sequential = boolean("enable_sequential")?;
        spec.thinking_mode = boolean("thinking_mode")?;
        spec.max_images = uint("max_images")?.map(|m| m.min(u32::MAX as u64) as u32);
        spec.style = string(parameters, "style")?;
        let scales = [
            scale("top_scale")?,
            scale("bottom_scale")?,
            scale("left_scale")?,
            scale("right_scale")?,
        ];
        if scales.iter().any(Option::is_some) {
            let [top, bottom, left, right] = scales.map(|s| s.unwrap_or(1.0));
            spec.expand = Some(ExpandScales {
                top,
                bottom,
                left,
                right,
            });
        }
        spec.upscale_factor = uint("upscale_factor")?.map(|f| f.min(u32::MAX as u64) as u32);
        spec.mask_color = match parameters.get("mask_color") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                WireError::field("mask_color", "must be a list of [r, g, b] triples of 0-255")
            })?,
        };
        spec.color_palette = match parameters.get("color_palette") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                WireError::field(
                    "color_palette",
                    "must be a list of {\"hex\": \"#RRGGBB\", \"ratio\": 0-1} objects",
                )
            })?,
        };
        spec.bbox_list = match parameters.get("bbox_list") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                WireError::field(
                    "bbox_list",
                    "must be a list, per input image, of [x1, y1, x2, y2] boxes",
                )
            })?,
        };
        Ok(spec)
    }
}

/// A create body that could not be read as a job.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("Model not exist: {0}")]
    UnknownModel(String),
    #[error("{field} {message}")]
    Field {
        field: &'static str,
        message: String,
    },
}

impl WireError {
    fn field(field: &'static str, message: &str) -> Self {
        WireError::Field {
            field,
            message: message.to_string(),
        }
    }
}

/// Where an input image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `http(s)://` or an `oss://` key from the temporary-upload flow.
    Url(String),
    /// `data:{mime};base64,...` (wan2.5 only).
    DataUri(String),
    /// A local file; the client uploads it (or inlines it as a data URI) before creating.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: local file {path} must be uploaded before the request is built")]
pub struct UnresolvedImage {
    pub field: String,
    pub path: PathBuf,
}

impl ImageRef {
    /// Reads what a user typed: a URL, a data URI, or else a path.
    pub fn parse(text: &str) -> ImageRef {
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("data:") {
            ImageRef::DataUri(text.to_string())
        } else if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("oss://")
        {
            ImageRef::Url(text.to_string())
        } else {
            ImageRef::File(PathBuf::from(text.strip_prefix("file://").unwrap_or(text)))
        }
    }

    /// What arrives over the wire is never a local path.
    fn remote(text: String) -> ImageRef {
        if text
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
        {
            ImageRef::DataUri(text)
        } else {
            ImageRef::Url(text)
        }
    }

    fn wire(&self) -> Result<String, UnresolvedImage> {
        match self {
            ImageRef::Url(url) => Ok(url.clone()),
            ImageRef::DataUri(uri) => Ok(uri.clone()),
            ImageRef::File(path) => Err(UnresolvedImage {
                field: "image".into(),
                path: path.clone(),
            }),
        }
    }

    pub fn is_oss(&self) -> bool {
        matches!(self, ImageRef::Url(u) if u.starts_with("oss://"))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Url(url) => f.write_str(url),
            ImageRef::DataUri(uri) => f.write_str(uri),
            ImageRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(ImageRef::parse(&text))
    }
}

/// An output size, `W*H` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Self {
        Size { width, height }
    }

    pub fn pixels(self) -> u64 {
        self.width as u64 * self.height as u64
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}*{}", self.width, self.height)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a size; write it as WIDTH*HEIGHT, e.g. 1024*1024 (or 1K, 2K, 4K for the models that take them)"
)]
pub struct BadSize(pub String);

/// A size by resolution class, for the models that take one (wan2.6-image, wan2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeToken {
    K1,
    K2,
    K4,
}

impl SizeToken {
    pub const ALL: [SizeToken; 3] = [SizeToken::K1, SizeToken::K2, SizeToken::K4];

    pub fn as_str(self) -> &'static str {
        match self {
            SizeToken::K1 => "1K",
            SizeToken::K2 => "2K",
            SizeToken::K4 => "4K",
        }
    }

    /// The longest side such an image has, about (a square of the class).
    pub fn side(self) -> u32 {
        match self {
            SizeToken::K1 => 1024,
            SizeToken::K2 => 2048,
            SizeToken::K4 => 4096,
        }
    }
}

impl fmt::Display for SizeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `size` of a job: pixels, or a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputSize {
    Pixels(Size),
    Token(SizeToken),
}

impl OutputSize {
    /// The pixels the job asks for; a token reads as the square of its class.
    pub fn nominal(self) -> Size {
        match self {
            OutputSize::Pixels(size) => size,
            OutputSize::Token(token) => Size::new(token.side(), token.side()),
        }
    }
}

impl From<Size> for OutputSize {
    fn from(size: Size) -> Self {
        OutputSize::Pixels(size)
    }
}

impl fmt::Display for OutputSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputSize::Pixels(size) => write!(f, "{size}"),
            OutputSize::Token(token) => f.write_str(token.as_str()),
        }
    }
}

impl FromStr for OutputSize {
    type Err = BadSize;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        match SizeToken::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(trimmed))
        {
            Some(token) => Ok(OutputSize::Token(token)),
            None => s.parse().map(OutputSize::Pixels),
        }
    }
}

impl Serialize for OutputSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OutputSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Size {
    type Err = BadSize;
    /// Accepts `W*H` (the wire form) and `WxH` (easier to type in a shell).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSize(s.to_string());
        let (w, h) = s.split_once(['*', 'x', 'X']).ok_or_else(bad)?;
        let width = w.trim().parse().map_err(|_| bad())?;
        let height = h.trim().parse().map_err(|_| bad())?;
        Ok(Size { width, height })
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// wanx2.1-imageedit's ten functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EditFunction {
    StylizationAll,
    StylizationLocal,
    DescriptionEdit,
    DescriptionEditWithMask,
    RemoveWatermark,
    Expand,
    SuperResolution,
    Colorization,
    Doodle,
    ControlCartoonFeature,
}

impl EditFunction {
    pub const ALL: [EditFunction; 10] = [
        EditFunction::StylizationAll,
        EditFunction::StylizationLocal,
        EditFunction::DescriptionEdit,
        EditFunction::DescriptionEditWithMask,
        EditFunction::RemoveWatermark,
        EditFunction::Expand,
        EditFunction::SuperResolution,
        EditFunction::Colorization,
        EditFunction::Doodle,
        EditFunction::ControlCartoonFeature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EditFunction::StylizationAll => "stylization_all",
            EditFunction::StylizationLocal => "stylization_local",
            EditFunction::DescriptionEdit => "description_edit",
            EditFunction::DescriptionEditWithMask => "description_edit_with_mask",
            EditFunction::RemoveWatermark => "remove_watermark",
            EditFunction::Expand => "expand",
            EditFunction::SuperResolution => "super_resolution",
            EditFunction::Colorization => "colorization",
            EditFunction::Doodle => "doodle",
            EditFunction::ControlCartoonFeature => "control_cartoon_feature",
        }
    }

    pub fn needs_mask(self) -> bool {
        self == EditFunction::DescriptionEditWithMask
    }
}

impl fmt::Display for EditFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown function `{0}`; one of stylization_all, stylization_local, description_edit, description_edit_with_mask, remove_watermark, expand, super_resolution, colorization, doodle, control_cartoon_feature"
)]
pub struct UnknownFunction(pub String);

impl FromStr for EditFunction {
    type Err = UnknownFunction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EditFunction::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFunction(s.to_string()))
    }
}

impl Serialize for EditFunction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EditFunction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `expand`'s scale per side: 1.0 keeps the side, 2.0 doubles the canvas that way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpandScales {
    #[serde(default = "one")]
    pub top: f64,
    #[serde(default = "one")]
    pub bottom: f64,
    #[serde(default = "one")]
    pub left: f64,
    #[serde(default = "one")]
    pub right: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for ExpandScales {
    fn default() -> Self {
        ExpandScales {
            top: 1.0,
            bottom: 1.0,
            left: 1.0,
            right: 1.0,
        }
    }
}

/// wanx-x-painting's styles, as the wire spells them.
pub const PAINT_STYLES: [&str; 8] = [
    "<auto>",
    "<3d cartoon>",
    "<anime>",
    "<oil painting>",
    "<watercolor>",
    "<sketch>",
    "<chinese painting>",
    "<flat illustration>",
];

/// wanx-x-painting's three output sizes.
pub const PAINT_SIZES: [Size; 3] = [
    Size::new(1024, 1024),
    Size::new(720, 1280),
    Size::new(1280, 720),
];

/// Whether a model takes a field at all (a field it does not take is refused).
pub fn field_applies(model: Model, field: &str) -> bool {
    model.entry().takes(field)
}
