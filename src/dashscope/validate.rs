//! The service's rules, checked before anything is sent.
//!
//! Every error names the field, the value and the limit, so the CLI, the editor and the
//! simulator's 400 answers all say the same thing.

use std::fmt;
use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use image::{ImageFormat, ImageReader};

use super::models::{Family, Model};
use super::spec::{ImageRef, JobSpec, PAINT_SIZES, PAINT_STYLES, field_applies};

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
/// Input images of every editing model: at most 10 MB.
pub const MAX_INPUT_BYTES: u64 = 10 * 1024 * 1024;

/// The longest prompt a model takes, in characters (`None`: API.md gives no limit).
pub fn prompt_limit(model: Model) -> Option<usize> {
    match model {
        Model::Wan26T2i => return Some(2100),
        Model::QwenImageMax => return Some(800),
        _ => {}
    }
    match model.family() {
        Family::TextToImage | Family::ImageEdit => Some(800),
        Family::Inpainting => Some(75),
        Family::MultiImageEdit => None,
    }
}

pub const NEGATIVE_PROMPT_LIMIT: usize = 500;

/// qwen-image's five output sizes.
pub const QWEN_IMAGE_SIZES: [super::Size; 5] = [
    super::Size::new(1664, 928),
    super::Size::new(1472, 1104),
    super::Size::new(1328, 1328),
    super::Size::new(1104, 1472),
    super::Size::new(928, 1664),
];

/// Total pixels from `min_side`² to `max_side`², aspect ratio 1:4 to 4:1 (wan2.5 and 2.6).
fn check_area(size: super::Size, min_side: u64, max_side: u64) -> Result<(), String> {
    let (min, max) = (min_side * min_side, max_side * max_side);
    if !(min..=max).contains(&size.pixels()) {
        return Err(format!(
            "{size} is {} pixels; total pixels must be {min} ({min_side}*{min_side}) to {max} ({max_side}*{max_side})",
            size.pixels()
        ));
    }
    let (w, h) = (size.width as u64, size.height as u64);
    if w > 4 * h || h > 4 * w {
        return Err(format!("{size} has an aspect ratio outside 1:4 to 4:1"));
    }
    Ok(())
}

/// Checks the first broken rule. Cheap and free of I/O: safe to call on every keystroke.
pub fn validate(spec: &JobSpec) -> Result<(), ValidationError> {
    match validate_all(spec).into_iter().next() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Every broken rule, one per field at most, in the order the fields appear in a form.
pub fn validate_all(spec: &JobSpec) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let model = spec.model;
    let family = model.family();
    let mut check = |field: &str, result: Result<(), String>| {
        if let Err(message) = result {
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
    ] {
        if present && !field_applies(family, field) {
            check(field, Err(format!("does not apply to model {model}")));
        }
    }

    check("prompt", check_prompt(model, &spec.prompt));
    if let Some(neg) = &spec.negative_prompt {
        let len = neg.chars().count();
        if family == Family::TextToImage && len > NEGATIVE_PROMPT_LIMIT {
            check(
                "negative_prompt",
                Err(format!(
                    "{len} characters is over the limit of {NEGATIVE_PROMPT_LIMIT} for {model}"
                )),
            );
        }
    }
    if let Some(n) = spec.n {
        if model == Model::QwenImageMax && n != 1 {
            check(
                "n",
                Err(format!("{n} is out of range; {model} makes n = 1 only")),
            );
        } else if !(1..=4).contains(&n) {
            check("n", Err(format!("{n} is out of range; n must be 1 to 4")));
        }
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
    if let Some(size) = spec.size.filter(|_| field_applies(family, "size")) {
        check("size", check_size(model, size));
    }

    match family {
        Family::ImageEdit => match spec.function {
            None => check("function", Err(format!("is required for {model}"))),
            Some(function) => {
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
        },
        Family::Inpainting => {
            if spec.base_image.is_none() {
                check("base_image", Err(format!("is required for {model}")));
            }
            if spec.mask_image.is_none() {
                check("mask_image", Err(format!("is required for {model}")));
            }
            if let Some(style) = &spec.style
                && !PAINT_STYLES.contains(&style.as_str())
            {
                check(
                    "style",
                    Err(format!(
                        "`{style}` is not a style; one of {}",
                        PAINT_STYLES.join(", ")
                    )),
                );
            }
        }
        Family::MultiImageEdit => {
            let count = spec.images.len();
            if !(1..=3).contains(&count) {
                check(
                    "images",
                    Err(format!("{count} images given; {model} takes 1 to 3")),
                );
            }
        }
        Family::TextToImage => {}
    }

    for (field, image) in spec.image_refs() {
        check(field, check_image_ref(model, image));
    }
    errors
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

fn check_size(model: Model, size: super::Size) -> Result<(), String> {
    match model {
        Model::Wan26T2i => return check_area(size, 1280, 1440),
        Model::QwenImageMax => {
            return if QWEN_IMAGE_SIZES.contains(&size) {
                Ok(())
            } else {
                Err(format!(
                    "{size} is not offered by {model}; one of 1664*928, 1472*1104, 1328*1328, 1104*1472, 928*1664"
                ))
            };
        }
        _ => {}
    }
    match model.family() {
        Family::TextToImage => {
            for (side, value) in [("width", size.width), ("height", size.height)] {
                if !(512..=1440).contains(&value) {
                    return Err(format!(
                        "{side} {value} of {size} is out of range; each side must be 512 to 1440"
                    ));
                }
            }
            if size.pixels() > 2_000_000 {
                return Err(format!(
                    "{size} is {} pixels, over the limit of 2000000 (2 megapixels)",
                    size.pixels()
                ));
            }
            Ok(())
        }
        Family::Inpainting => {
            if PAINT_SIZES.contains(&size) {
                Ok(())
            } else {
                Err(format!(
                    "{size} is not offered by {model}; one of 1024*1024, 720*1280, 1280*720"
                ))
            }
        }
        Family::MultiImageEdit => {
            let (min, max) = (768u64 * 768, 1280u64 * 1280);
            if !(min..=max).contains(&size.pixels()) {
                return Err(format!(
                    "{size} is {} pixels; total pixels must be {min} (768*768) to {max} (1280*1280)",
                    size.pixels()
                ));
            }
            let (w, h) = (size.width as u64, size.height as u64);
            if w > 4 * h || h > 4 * w {
                return Err(format!("{size} has an aspect ratio outside 1:4 to 4:1"));
            }
            Ok(())
        }
        Family::ImageEdit => Err(format!("does not apply to model {model}")),
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
            if model.family() != Family::MultiImageEdit {
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

/// The formats, side range and alpha rule for a model's input images.
pub struct InputRules {
    pub formats: &'static [ImageFormat],
    /// Inclusive bounds for each side.
    pub min_side: u32,
    pub max_side: u32,
    pub alpha_allowed: bool,
}

pub fn input_rules(model: Model) -> InputRules {
    use ImageFormat::*;
    match model.family() {
        Family::ImageEdit | Family::TextToImage => InputRules {
            formats: &[Jpeg, Png, Bmp, Tiff, WebP],
            min_side: 512,
            max_side: 4096,
            alpha_allowed: true,
        },
        // "larger than 256x256 and smaller than 4096x4096"
        Family::Inpainting => InputRules {
            formats: &[Jpeg, Png, Bmp],
            min_side: 257,
            max_side: 4095,
            alpha_allowed: true,
        },
        Family::MultiImageEdit => InputRules {
            formats: &[Jpeg, Png, Bmp, WebP],
            min_side: 384,
            max_side: 5000,
            alpha_allowed: false,
        },
    }
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
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(fail(format!(
            "{} bytes is over the limit of 10 MB ({MAX_INPUT_BYTES} bytes)",
            bytes.len()
        )));
    }
    let rules = input_rules(model);
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
pub(super) fn read_image_file(
    model: Model,
    field: &str,
    path: &Path,
) -> Result<Vec<u8>, ValidationError> {
    use crate::files::{ReadRefused, read_regular_file};
    let shown = path.display();
    read_regular_file(path, MAX_INPUT_BYTES).map_err(|refused| {
        let message = match refused {
            ReadRefused::Io(e) => format!("cannot read {shown}: {e}"),
            ReadRefused::NotRegular { kind } => {
                format!("{shown} is {kind}, not an image file (only regular files are read)")
            }
            ReadRefused::TooLarge {
                length: Some(length),
                ..
            } => format!(
                "{shown} is {length} bytes, over the limit of 10 MB ({MAX_INPUT_BYTES} bytes) of {model}"
            ),
            ReadRefused::TooLarge { length: None, .. } => format!(
                "{shown} holds more than the limit of 10 MB ({MAX_INPUT_BYTES} bytes) of {model}"
            ),
        };
        ValidationError::new(field, message)
    })
}
