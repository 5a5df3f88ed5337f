//! The service's rules, checked before anything is sent.
//!
//! Every error names the field, the value and the limit, so the CLI, the editor and the
//! simulator's 400 answers all say the same thing.

use std::fmt;
use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use image::{ImageFormat, ImageReader};

use super::Region;
use super::catalogue::{ImageRules, ImageSlots, Param, PixelRule, SizeRule};
use super::composition;
use super::models::{Family, Model};
use super::spec::{ImageRef, JobSpec, OutputSize, Size, SizeToken, field_applies};

/// A rule a job breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The spec field, as the CLI and batch files name it (`prompt`, `size`, `mask_image`...).
    pub field: String,
    /// What is wrong, with the value and the limit.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

pub const MAX_SEED: u64 = 2_147_483_647;

/// The longest prompt a model takes, in characters (`None`: none is published).
pub fn prompt_limit(model: Model) -> Option<usize> {
    model.entry().prompt_limit
}

/// Checks the first broken rule. Cheap and free of I/O: safe to call on every keystroke.
pub fn validate(spec: &JobSpec) -> Result<(), ValidationError> {
    match validate_all(spec).into_iter().next() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Every broken rule, one per field at most, in the order the fields appear in a form.
/// The rules are the catalogue's (`Model::entry`).
pub fn validate_all(spec: &JobSpec) -> Vec<ValidationError> {
    let mut errors: Vec<ValidationError> = Vec::new();
    let model = spec.model;
    let entry = model.entry();
    let mut check = |field: &str, result: Result<(), String>| {
        if let Err(message) = result
            && !errors.iter().any(|e| e.field == field)
        {
            errors.push(ValidationError::new(field, message));
        }
    };

    for (field, present) in [
        ("negative_prompt", spec.negative_prompt.is_some()),
        ("function", spec.function.is_some()),
        ("base_image", spec.base_image.is_some()),
        ("mask_image", spec.mask_image.is_some()),
        ("images", !spec.images.is_empty()),
        ("size", spec.size.is_some()),
        ("seed", spec.seed.is_some()),
        ("prompt_extend", spec.prompt_extend.is_some()),
        ("watermark", spec.watermark.is_some()),
        ("style", spec.style.is_some()),
        ("expand", spec.expand.is_some()),
        ("upscale_factor", spec.upscale_factor.is_some()),
        ("mask_color", !spec.mask_color.is_empty()),
        ("enable_interleave", spec.enable_interleave.is_some()),
        ("max_images", spec.max_images.is_some()),
        ("enable_sequential", spec.enable_sequential.is_some()),
        ("thinking_mode", spec.thinking_mode.is_some()),
        ("color_palette", !spec.color_palette.is_empty()),
        ("bbox_list", !spec.bbox_list.is_empty()),
    ] {
        if present && !field_applies(model, field) {
            check(field, Err(format!("does not apply to model {model}")));
        }
    }

    check("prompt", check_prompt(model, &spec.prompt));
    if let (Some(neg), Some(limit)) = (&spec.negative_prompt, entry.negative_prompt.limit()) {
        let len = neg.chars().count();
        if len > limit {
            check(
                "negative_prompt",
                Err(format!(
                    "{len} characters is over the limit of {limit} for {model}"
                )),
            );
        }
    }
    if let Some(n) = spec.n {
        check("n", check_n(spec, n));
    }
    if let Some(seed) = spec.seed
        && seed > MAX_SEED
    {
        check(
            "seed",
            Err(format!(
                "{seed} is out of range; seed must be 0 to {MAX_SEED}"
            )),
        );
    }
    // A size on a model without one is already reported above; once per field.
    if let (Some(size), Some(rule)) = (spec.size, entry.size) {
        check("size", check_size(spec, size, rule));
    }
    check_model_parameters(spec, &mut check);
    if let Some(Param::ColorPalette { min, max }) = entry.param("color_palette")
        && !spec.color_palette.is_empty()
    {
        check(
            "color_palette",
            composition::check_palette(&spec.color_palette, min, max),
        );
    }
    if entry.param("bbox_list").is_some() && !spec.bbox_list.is_empty() {
        check(
            "bbox_list",
            composition::check_bbox_list(&spec.bbox_list, spec.images.len()),
        );
    }

    match entry.images {
        ImageSlots::BaseAndMask(_) if entry.param("function").is_some() => {
            check_image_edit(spec, &mut check)
        }
        ImageSlots::BaseAndMask(_) => {
            if spec.base_image.is_none() {
                check("base_image", Err(format!("is required for {model}")));
            }
            if spec.mask_image.is_none() {
                check("mask_image", Err(format!("is required for {model}")));
            }
        }
        ImageSlots::List { min, max, .. } => {
            let (min, max) = image_count_range(spec, min, max);
            let count = spec.images.len();
            if !(min..=max).contains(&count) {
                let wanted = if min == max {
                    format!("{min}")
                } else {
                    format!("{min} to {max}")
                };
                check(
                    "images",
                    Err(format!("{count} images given; {model} takes {wanted}")),
                );
            }
        }
        ImageSlots::None => {}
    }
    if let Some(Param::Style(styles)) = entry.param("style")
        && let Some(style) = &spec.style
        && !styles.contains(&style.as_str())
    {
        check(
            "style",
            Err(format!(
                "`{style}` is not a style; one of {}",
                styles.join(", ")
            )),
        );
    }

    for (field, image) in spec.image_refs() {
        check(field, check_image_ref(model, image));
    }
    errors
}

/// The refusal of a model `region` does not offer, naming the regions that do.
pub fn region_refusal(model: Model, region: Region) -> ValidationError {
    ValidationError::new(
        "model",
        format!(
            "{model} is not offered in {}; it is offered in {}",
            region.id(),
            model.entry().region_list()
        ),
    )
}

/// wan2.6-image takes 0 or 1 image when interleaving, 1 to 4 when editing.
fn image_count_range(spec: &JobSpec, min: usize, max: usize) -> (usize, usize) {
    if spec.enable_interleave == Some(true) {
        (0, 1)
    } else {
        (min, max)
    }
}

fn check_n(spec: &JobSpec, n: u32) -> Result<(), String> {
    let model = spec.model;
    let rule = model.entry().n;
    let max = match model.entry().param("enable_sequential") {
        Some(Param::EnableSequential { max_n }) if spec.enable_sequential == Some(true) => max_n,
        _ if spec.enable_interleave == Some(true) => 1,
        _ => rule.max,
    };
    if (rule.min..=max).contains(&n) {
        return Ok(());
    }
    Err(if rule.min == max {
        format!("{n} is out of range; n must be {max} for {model}{}", {
            if spec.enable_interleave == Some(true) {
                " with enable_interleave"
            } else {
                ""
            }
        })
    } else if max != rule.max {
        format!(
            "{n} is out of range; n must be {} to {max} with enable_sequential",
            rule.min
        )
    } else {
        format!("{n} is out of range; n must be {} to {max}", rule.min)
    })
}

/// The rules that tie one parameter to another (wan2.6-image, wan2.7-image).
fn check_model_parameters(spec: &JobSpec, check: &mut impl FnMut(&str, Result<(), String>)) {
    let model = spec.model;
    let entry = model.entry();
    let interleaved = spec.enable_interleave == Some(true);
    if let Some(max_images) = spec.max_images
        && let Some(Param::MaxImages { max, .. }) = entry.param("max_images")
    {
        if !interleaved {
            check(
                "max_images",
                Err("applies only with enable_interleave on".to_string()),
            );
        } else if !(1..=max).contains(&max_images) {
            check(
                "max_images",
                Err(format!(
                    "{max_images} is out of range; max_images must be 1 to {max}"
                )),
            );
        }
    }
    if interleaved && spec.prompt_extend.is_some() && field_applies(model, "prompt_extend") {
        check(
            "prompt_extend",
            Err(format!(
                "applies only to editing with {model}, not with enable_interleave"
            )),
        );
    }
    if spec.thinking_mode.is_some()
        && field_applies(model, "thinking_mode")
        && !spec.images.is_empty()
    {
        check(
            "thinking_mode",
            Err(format!(
                "applies only to text-to-image with {model} (no input images)"
            )),
        );
    }
}

fn check_image_edit(spec: &JobSpec, check: &mut impl FnMut(&str, Result<(), String>)) {
    let model = spec.model;
    let Some(function) = spec.function else {
        check("function", Err(format!("is required for {model}")));
        return;
    };
    if spec.base_image.is_none() {
        check("base_image", Err(format!("is required for {model}")));
    }
    if function.needs_mask() && spec.mask_image.is_none() {
        check(
            "mask_image",
            Err(format!("is required for function {function}")),
        );
    }
    if !function.needs_mask() && spec.mask_image.is_some() {
        check(
            "mask_image",
            Err(format!(
                "applies only to function description_edit_with_mask, not {function}"
            )),
        );
    }
    if let Some(scales) = spec.expand {
        if function != super::EditFunction::Expand {
            check(
                "expand",
                Err(format!("applies only to function expand, not {function}")),
            );
        }
        for (side, value) in [
            ("top", scales.top),
            ("bottom", scales.bottom),
            ("left", scales.left),
            ("right", scales.right),
        ] {
            if !(1.0..=2.0).contains(&value) {
                check(
                    &format!("expand.{side}_scale"),
                    Err(format!(
                        "{value} is out of range; scales must be 1.0 to 2.0"
                    )),
                );
            }
        }
    }
    if let Some(factor) = spec.upscale_factor {
        if function != super::EditFunction::SuperResolution {
            check(
                "upscale_factor",
                Err(format!(
                    "applies only to function super_resolution, not {function}"
                )),
            );
        } else if !(1..=4).contains(&factor) {
            check(
                "upscale_factor",
                Err(format!("{factor} is out of range; it must be 1 to 4")),
            );
        }
    }
}

fn check_prompt(model: Model, prompt: &str) -> Result<(), String> {
    // A prompt nobody can see is as empty as no prompt: refuse it before it costs a task.
    if !prompt.chars().any(is_visible) {
        return Err(if prompt.is_empty() {
            "is empty; describe the image you want".to_string()
        } else {
            format!(
                "is empty: its {} character(s) are all whitespace, control or invisible characters; describe the image you want",
                prompt.chars().count()
            )
        });
    }
    if let Some(limit) = prompt_limit(model) {
        let len = prompt.chars().count();
        if len > limit {
            return Err(format!(
                "{len} characters is over the limit of {limit} for {model}"
            ));
        }
    }
    Ok(())
}

/// `768*768` for a perfect square, else the plain number.
fn pixels_shown(pixels: u64) -> String {
    let side = pixels.isqrt();
    if side * side == pixels {
        format!("{pixels} ({side}*{side})")
    } else {
        pixels.to_string()
    }
}

fn check_size(spec: &JobSpec, size: OutputSize, rule: SizeRule) -> Result<(), String> {
    let model = spec.model;
    let size = match size {
        OutputSize::Token(token) => {
            if !rule.tokens.contains(&token) {
                return Err(if rule.tokens.is_empty() {
                    format!(
                        "{token} is not taken by {model}; give WIDTH*HEIGHT ({})",
                        rule.describe()
                    )
                } else {
                    let tokens: Vec<&str> = rule.tokens.iter().map(|t| t.as_str()).collect();
                    format!(
                        "{token} is not taken by {model}; one of {} or WIDTH*HEIGHT",
                        tokens.join(", ")
                    )
                });
            }
            // wan2.7-image-pro makes 4K for text-to-image only.
            if token == SizeToken::K4 && !spec.images.is_empty() {
                return Err(format!(
                    "4K is for text-to-image only with {model}; remove the input images or use 1K or 2K"
                ));
            }
            return Ok(());
        }
        OutputSize::Pixels(size) => size,
    };
    match rule.pixels {
        PixelRule::Sides {
            min,
            max,
            max_pixels,
        } => {
            for (side, value) in [("width", size.width), ("height", size.height)] {
                if !(min..=max).contains(&value) {
                    return Err(format!(
                        "{side} {value} of {size} is out of range; each side must be {min} to {max}"
                    ));
                }
            }
            if let Some(most) = max_pixels
                && size.pixels() > most
            {
                return Err(format!(
                    "{size} is {} pixels, over the limit of {most} ({} megapixels)",
                    size.pixels(),
                    most / 1_000_000
                ));
            }
            Ok(())
        }
        PixelRule::Fixed(sizes) => {
            if sizes.contains(&size) {
                Ok(())
            } else {
                let names: Vec<String> = sizes.iter().map(Size::to_string).collect();
                Err(format!(
                    "{size} is not offered by {model}; one of {}",
                    names.join(", ")
                ))
            }
        }
        PixelRule::Area {
            min_pixels,
            max_pixels,
            max_aspect,
        } => {
            // wan2.6-image interleaved: at most 1280*1280.
            let max_pixels = if spec.enable_interleave == Some(true) {
                max_pixels.min(1280 * 1280)
            } else {
                max_pixels
            };
            if !(min_pixels..=max_pixels).contains(&size.pixels()) {
                return Err(format!(
                    "{size} is {} pixels; total pixels must be {} to {}",
                    size.pixels(),
                    pixels_shown(min_pixels),
                    pixels_shown(max_pixels)
                ));
            }
            let (w, h) = (size.width as u64, size.height as u64);
            if let Some(n) = max_aspect.map(u64::from)
                && (w > n * h || h > n * w)
            {
                return Err(format!("{size} has an aspect ratio outside 1:{n} to {n}:1"));
            }
            Ok(())
        }
    }
}

fn check_image_ref(model: Model, image: &ImageRef) -> Result<(), String> {
    match image {
        ImageRef::Url(url) => {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("oss://"))
            {
                return Err(format!("`{url}` is not an http(s) URL"));
            }
            if model.family() == Family::ImageEdit && url.chars().any(is_cjk) {
                return Err("the URL must not contain Chinese characters".to_string());
            }
            Ok(())
        }
        ImageRef::DataUri(uri) => {
            if !input_rules(model).is_some_and(|r| r.data_uri) {
                return Err(format!("{model} takes URLs only, not base64 data URIs"));
            }
            decode_data_uri(uri).map(|_| ())
        }
        // Local files are checked by `check_local_images`, which reads them.
        ImageRef::File(_) => Ok(()),
    }
}

/// Whether a character shows on screen: not whitespace, not a control character and not
/// one of Unicode's invisible format characters (zero-width spaces and joiners, bidi
/// marks and overrides, word joiners, the byte-order mark, the soft hyphen).
fn is_visible(c: char) -> bool {
    !c.is_whitespace()
        && !c.is_control()
        && !matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
        )
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{3000}'..='\u{303F}' | '\u{FF00}'..='\u{FFEF}')
}

/// Splits a `data:{mime};base64,{data}` URI into its MIME type and bytes.
pub fn decode_data_uri(uri: &str) -> Result<(String, Vec<u8>), String> {
    let rest = uri
        .strip_prefix("data:")
        .ok_or("a data URI must start with data:")?;
    let (mime, data) = rest
        .split_once(";base64,")
        .ok_or("a data URI must read data:{mime};base64,{data}")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("the data URI's base64 is invalid: {e}"))?;
    Ok((mime.to_string(), bytes))
}

/// The rules for a model's input images (`None`: it takes none).
pub fn input_rules(model: Model) -> Option<ImageRules> {
    model.entry().images.rules()
}

/// The byte limit of a model's input images; 10 MB, the common one, for a model that
/// takes none (its images are refused by the rules anyway).
pub fn max_input_bytes(model: Model) -> u64 {
    input_rules(model).map_or(10 * 1024 * 1024, |r| r.max_bytes)
}

/// `10 MB (10485760 bytes)`.
fn bytes_shown(bytes: u64) -> String {
    format!("{} MB ({bytes} bytes)", bytes / (1024 * 1024))
}

/// Checks an input image's bytes against a model's rules: size, format, that it
/// decodes, its dimensions and (wan2.5) no alpha. Returns its width and height.
pub fn check_image_bytes(
    model: Model,
    field: &str,
    bytes: &[u8],
) -> Result<(u32, u32), ValidationError> {
    let fail = |message: String| ValidationError::new(field, message);
    if bytes.is_empty() {
        return Err(fail("the image is empty (0 bytes)".to_string()));
    }
    let max_bytes = max_input_bytes(model);
    if bytes.len() as u64 > max_bytes {
        return Err(fail(format!(
            "{} bytes is over the limit of {}",
            bytes.len(),
            bytes_shown(max_bytes)
        )));
    }
    let Some(rules) = input_rules(model) else {
        return Err(fail(format!("{model} takes no input images")));
    };
    let format = image::guess_format(bytes)
        .map_err(|_| fail("is not an image (unrecognised format)".to_string()))?;
    if !rules.formats.contains(&format) {
        let names: Vec<&str> = rules
            .formats
            .iter()
            .map(|f| f.extensions_str()[0])
            .collect();
        return Err(fail(format!(
            "{format:?} is not accepted by {model}; use one of {}",
            names.join(", ")
        )));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(rules.max_side.max(8192));
    limits.max_image_height = Some(rules.max_side.max(8192));
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| {
        fail(format!(
            "could not be decoded as {format:?} ({e}); the file may be truncated or damaged"
        ))
    })?;
    let (w, h) = (decoded.width(), decoded.height());
    for (side, value) in [("width", w), ("height", h)] {
        if value < rules.min_side || value > rules.max_side {
            return Err(fail(format!(
                "{side} {value} of a {w}x{h} image is out of range; each side must be {} to {} for {model}",
                rules.min_side, rules.max_side
            )));
        }
    }
    if let Some(n) = rules.max_aspect
        && (w > n * h || h > n * w)
    {
        return Err(fail(format!(
            "a {w}x{h} image has an aspect ratio outside 1:{n} to {n}:1, the range of {model}"
        )));
    }
    if !rules.alpha_allowed && format == ImageFormat::Png && decoded.color().has_alpha() {
        return Err(fail(format!(
            "PNG with an alpha channel is not accepted by {model}; save it without alpha"
        )));
    }
    Ok((w, h))
}

/// Reads every local file and data URI in the spec and checks it, and that a mask has
/// its base image's resolution. Does file I/O and decoding: call it off the UI task.
pub fn check_local_images(spec: &JobSpec) -> Result<(), ValidationError> {
    let mut base_dims = None;
    let mut mask_dims = None;
    for (field, image) in spec.image_refs() {
        let bytes = match image {
            ImageRef::File(path) => read_image_file(spec.model, field, path)?,
            ImageRef::DataUri(uri) => {
                decode_data_uri(uri)
                    .map_err(|m| ValidationError::new(field, m))?
                    .1
            }
            ImageRef::Url(_) => continue,
        };
        let dims = check_image_bytes(spec.model, field, &bytes)?;
        match field {
            "base_image" => base_dims = Some(dims),
            "mask_image" => mask_dims = Some(dims),
            _ => {}
        }
    }
    if let (Some((bw, bh)), Some((mw, mh))) = (base_dims, mask_dims)
        && (bw, bh) != (mw, mh)
    {
        return Err(ValidationError::new(
            "mask_image",
            format!(
                "is {mw}x{mh} but the base image is {bw}x{bh}; a mask must have its base image's resolution"
            ),
        ));
    }
    Ok(())
}

/// Reads a local input image through the one bounded reader (`files::read_regular_file`):
/// only a regular file, at most the 10 MB limit. The message names the path and the rule
/// that refused it.
pub fn read_image_file(model: Model, field: &str, path: &Path) -> Result<Vec<u8>, ValidationError> {
    use crate::files::{ReadRefused, read_regular_file};
    let shown = path.display();
    let max_bytes = max_input_bytes(model);
    let limit = bytes_shown(max_bytes);
    read_regular_file(path, max_bytes).map_err(|refused| {
        let message = match refused {
            ReadRefused::Io(e) => format!("cannot read {shown}: {e}"),
            ReadRefused::NotRegular { kind } => {
                format!("{shown} is {kind}, not an image file (only regular files are read)")
            }
            ReadRefused::TooLarge {
                length: Some(length),
                ..
            } => format!("{shown} is {length} bytes, over the limit of {limit} of {model}"),
            ReadRefused::TooLarge { length: None, .. } => {
                format!("{shown} holds more than the limit of {limit} of {model}")
            }
        };
        ValidationError::new(field, message)
    })
}
