//! The model catalogue: everything wandash knows about each model, in one table.
//!
//! Validation, the editor's form, the CLI's flags, batch fields, cost estimates, the MCP
//! tools' schemas and `wandash models` all read this table, so adding a model is one
//! entry here (plus its simulator behaviour). Sources: `API.md` for the six original
//! models, `API-CURRENT.md` for the rest. Facts the digest marks (u), unconfirmed, are
//! marked `(u)` here too; the ones that cost money or time (prices, submit rate, tasks
//! in flight) are settings (`[limits."<model>"]`, `[prices]` in the config) with the
//! value below as their default.

use std::time::Duration;

use image::ImageFormat;

use super::Region;
use super::models::{Endpoint, Family, ModelLimits};
use super::spec::{PAINT_SIZES, PAINT_STYLES, Size, SizeToken};

/// One model, as the catalogue describes it.
#[derive(Debug)]
pub struct Entry {
    /// The id wandash stores and shows: the Beijing id (stored jobs keep loading).
    pub id: &'static str,
    /// Where the model is offered, each region with the id it goes by there.
    pub regions: &'static [(Region, &'static str)],
    /// Which fields the request takes, as far as rendering and decoding care.
    pub family: Family,
    /// The model's line, for grouping in lists ("qwen-image", "wan text-to-image"...).
    pub group: &'static str,
    /// The endpoints that serve the model, the preferred first (async before sync).
    pub endpoints: &'static [Endpoint],
    pub input: InputShape,
    /// The longest prompt in characters; `None`: none published.
    pub prompt_limit: Option<usize>,
    pub negative_prompt: NegativePrompt,
    /// `None`: the model takes no size (its output follows its input).
    pub size: Option<SizeRule>,
    pub n: NRule,
    pub seed: bool,
    /// `Some(default)` when the model takes `prompt_extend`.
    pub prompt_extend: Option<bool>,
    pub watermark: bool,
    /// Parameters only some models take.
    pub params: &'static [Param],
    pub images: ImageSlots,
    /// CNY per successful image, per region (defaults of `[prices]`).
    pub prices: &'static [(Region, f64)],
    /// CNY per image when `prompt_extend` is on, where that costs more (z-image-turbo).
    pub extended_prices: &'static [(Region, f64)],
    /// Free images granted per model on activation (the China site; 90 days for the new
    /// models, 180 days for the legacy wanx ones).
    pub free_images: u32,
    /// Defaults of `[limits."<model>"]`.
    pub limits: ModelLimits,
    /// Typical time from create to result, queueing included; where polling starts.
    pub typical_duration: Duration,
    /// Said wherever the model is offered: retiring, free trial only...
    pub lifecycle: Option<&'static str>,
}

/// How the prompt travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// `input.prompt` (and `input.negative_prompt`, `input.images`...).
    Prompt,
    /// `input.messages`: one user message whose content is the text and the images.
    Messages,
}

impl InputShape {
    pub fn as_str(self) -> &'static str {
        match self {
            InputShape::Prompt => "prompt",
            InputShape::Messages => "messages",
        }
    }
}

/// Whether and where a model takes a negative prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegativePrompt {
    No,
    /// `input.negative_prompt`, at most `limit` characters (`None`: none published).
    InInput {
        limit: Option<usize>,
    },
    /// `parameters.negative_prompt` (qwen-image on text2image, every messages model).
    InParameters {
        limit: Option<usize>,
    },
}

impl NegativePrompt {
    pub fn limit(self) -> Option<usize> {
        match self {
            NegativePrompt::No => None,
            NegativePrompt::InInput { limit } | NegativePrompt::InParameters { limit } => limit,
        }
    }
}

/// Which sizes a model makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeRule {
    pub pixels: PixelRule,
    /// Size tokens the model takes besides pixels (`1K`, `2K`, `4K`).
    pub tokens: &'static [SizeToken],
    /// What the service makes when no size is given; `None`: the input's aspect ratio.
    pub default: Option<DefaultSize>,
}

/// A default size as the catalogue writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultSize {
    Pixels(Size),
    Token(SizeToken),
}

/// The rule for a `W*H` size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PixelRule {
    /// Each side in `[min, max]`, and at most `max_pixels` in all if given.
    Sides {
        min: u32,
        max: u32,
        max_pixels: Option<u64>,
    },
    /// Total pixels in `[min_pixels, max_pixels]`, the aspect ratio within 1:`max_aspect`
    /// to `max_aspect`:1 if given.
    Area {
        min_pixels: u64,
        max_pixels: u64,
        max_aspect: Option<u32>,
    },
    /// Only these sizes.
    Fixed(&'static [Size]),
}

/// How many images one task makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NRule {
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

/// Parameters only some models take; each is a field of `JobSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// wanx2.1-imageedit: `function`, and with it `expand` and `upscale_factor`.
    Function,
    /// wanx-x-painting: one of these styles.
    Style(&'static [&'static str]),
    /// wanx-x-painting: the RGB colours that mark the edit area in the mask.
    MaskColor,
    /// wan2.6-image: text and images interleaved in the answer (default false).
    EnableInterleave,
    /// wan2.6-image, interleaved only: at most this many images (1 to `max`).
    MaxImages { max: u32, default: u32 },
    /// wan2.7-image: a sequence of images; `n` may then reach `max_n`.
    EnableSequential { max_n: u32 },
    /// wan2.7-image: think before drawing (text-to-image only).
    ThinkingMode { default: bool },
    /// wan2.7-image: the colours of the image, `min` to `max` `{hex, ratio}` entries.
    ColorPalette { min: u32, max: u32 },
    /// wan2.7-image: boxes per input image, where things go (`composition.rs`; shape u).
    BboxList,
}

impl Param {
    /// The `JobSpec` field (and CLI flag, batch key, MCP argument) of the parameter.
    pub fn field(self) -> &'static str {
        match self {
            Param::Function => "function",
            Param::Style(_) => "style",
            Param::MaskColor => "mask_color",
            Param::EnableInterleave => "enable_interleave",
            Param::MaxImages { .. } => "max_images",
            Param::EnableSequential { .. } => "enable_sequential",
            Param::ThinkingMode { .. } => "thinking_mode",
            Param::ColorPalette { .. } => "color_palette",
            Param::BboxList => "bbox_list",
        }
    }
}

/// Where a model's input images go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageSlots {
    /// Text only.
    None,
    /// `base_image` and `mask_image` (wanx2.1-imageedit, wanx-x-painting).
    BaseAndMask(ImageRules),
    /// `images`: `min` to `max` of them, referred to as image 1, 2, 3 in the prompt.
    List {
        min: usize,
        max: usize,
        rules: ImageRules,
    },
}

impl ImageSlots {
    pub fn rules(self) -> Option<ImageRules> {
        match self {
            ImageSlots::None => None,
            ImageSlots::BaseAndMask(rules) | ImageSlots::List { rules, .. } => Some(rules),
        }
    }
}

/// What an input image must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageRules {
    pub formats: &'static [ImageFormat],
    /// Inclusive bounds for each side.
    pub min_side: u32,
    pub max_side: u32,
    /// The widest aspect ratio, 1:n to n:1, where one is published.
    pub max_aspect: Option<u32>,
    pub max_bytes: u64,
    pub alpha_allowed: bool,
    /// Whether `data:` URIs are taken (local files are then inlined, not uploaded).
    pub data_uri: bool,
}

const MB: u64 = 1024 * 1024;
const SECOND: u64 = 1;

use ImageFormat::{Bmp, Gif, Jpeg, Png, Tiff, WebP};
use Region::{Beijing, Singapore, Virginia};

/// The legacy models' quota (API.md): 2 creates a second, 2 tasks in flight.
const LEGACY_LIMITS: ModelLimits = ModelLimits {
    submit_per_second: 2.0,
    in_flight: 2,
};
/// (u) The new models' real limits are not published (API-CURRENT.md open question 2):
/// the legacy ones are assumed, as a setting, until the quotas endpoint says otherwise.
const ASSUMED_LIMITS: ModelLimits = LEGACY_LIMITS;

const T2I_N: NRule = NRule {
    min: 1,
    max: 4,
    default: 4,
};
const SINGLE_N: NRule = NRule {
    min: 1,
    max: 1,
    default: 1,
};
const EDIT_N: NRule = NRule {
    min: 1,
    max: 4,
    default: 1,
};

const WANX_T2I_SIZE: SizeRule = SizeRule {
    pixels: PixelRule::Sides {
        min: 512,
        max: 1440,
        max_pixels: Some(2_000_000),
    },
    tokens: &[],
    default: Some(DefaultSize::Pixels(Size::new(1024, 1024))),
};

/// wan2.5-t2i-preview and wan2.6-t2i.
const WAN25_T2I_SIZE: SizeRule = SizeRule {
    pixels: PixelRule::Area {
        min_pixels: 1280 * 1280,
        max_pixels: 1440 * 1440,
        max_aspect: Some(4),
    },
    tokens: &[],
    default: Some(DefaultSize::Pixels(Size::new(1280, 1280))),
};

const QWEN_IMAGE_SIZES: [Size; 5] = [
    Size::new(1664, 928),
    Size::new(1472, 1104),
    Size::new(1328, 1328),
    Size::new(1104, 1472),
    Size::new(928, 1664),
];

const LEGACY_EDIT_IMAGES: ImageRules = ImageRules {
    formats: &[Jpeg, Png, Bmp, Tiff, WebP],
    min_side: 512,
    max_side: 4096,
    max_aspect: None,
    max_bytes: 10 * MB,
    alpha_allowed: true,
    data_uri: false,
};

const WAN26_IMAGES: ImageRules = ImageRules {
    formats: &[Jpeg, Png, Bmp, WebP],
    min_side: 240,
    max_side: 8000,
    max_aspect: None,
    max_bytes: 10 * MB,
    alpha_allowed: false,
    data_uri: true,
};

/// (u) Third-party limits (API-CURRENT.md: wan2.7).
const WAN27_IMAGES: ImageRules = ImageRules {
    formats: &[Jpeg, Png, WebP, Bmp],
    min_side: 240,
    max_side: 8000,
    max_aspect: Some(8),
    max_bytes: 20 * MB,
    alpha_allowed: true,
    data_uri: true,
};

/// qwen-image-2.0 (published); the edit models are assumed alike (u).
const QWEN_IMAGES: ImageRules = ImageRules {
    formats: &[Jpeg, Png, Bmp, Tiff, WebP, Gif],
    min_side: 384,
    max_side: 3072,
    max_aspect: None,
    max_bytes: 10 * MB,
    alpha_allowed: true,
    data_uri: true,
};

const ASYNC_T2I: &[Endpoint] = &[Endpoint::TextToImage];
const ASYNC_I2I: &[Endpoint] = &[Endpoint::ImageToImage];
/// Prefer the async image-generation endpoint; the sync one holds a connection open.
const G_THEN_M: &[Endpoint] = &[Endpoint::ImageGeneration, Endpoint::MultimodalGeneration];
const SYNC_ONLY: &[Endpoint] = &[Endpoint::MultimodalGeneration];

/// The Singapore prices of API-CURRENT.md are CNY as the pricing page lists them.
const NEW_PRICE_020: &[(Region, f64)] = &[(Beijing, 0.20), (Singapore, 0.220177)];
const NEW_PRICE_050: &[(Region, f64)] = &[(Beijing, 0.50), (Singapore, 0.550443)];

const QWEN_GROUP: &str = "qwen-image";
const QWEN_EDIT_GROUP: &str = "qwen-image edit";
const WAN_T2I_GROUP: &str = "wan text-to-image";
const WAN_IMAGE_GROUP: &str = "wan image (text and images)";
const WANX_GROUP: &str = "wanx (legacy)";

pub static WANX21_T2I_TURBO: Entry = Entry {
    id: "wanx2.1-t2i-turbo",
    regions: &[
        (Beijing, "wanx2.1-t2i-turbo"),
        (Singapore, "wan2.1-t2i-turbo"),
    ],
    family: Family::TextToImage,
    group: WANX_GROUP,
    endpoints: ASYNC_T2I,
    input: InputShape::Prompt,
    // API.md says 800; QC (wan-text-to-image-v2) says 500. The seeds are right for wanx2.1.
    prompt_limit: Some(800),
    negative_prompt: NegativePrompt::InInput { limit: Some(500) },
    size: Some(WANX_T2I_SIZE),
    n: T2I_N,
    seed: true,
    prompt_extend: Some(true),
    watermark: true,
    params: &[],
    images: ImageSlots::None,
    prices: &[(Beijing, 0.14)],
    extended_prices: &[],
    free_images: 500,
    limits: LEGACY_LIMITS,
    typical_duration: Duration::from_secs(90 * SECOND),
    lifecycle: None,
};

pub static WANX21_T2I_PLUS: Entry = Entry {
    id: "wanx2.1-t2i-plus",
    regions: &[
        (Beijing, "wanx2.1-t2i-plus"),
        (Singapore, "wan2.1-t2i-plus"),
    ],
    prices: &[(Beijing, 0.20)],
    ..WANX21_T2I_TURBO
};

pub static WANX20_T2I_TURBO: Entry = Entry {
    id: "wanx2.0-t2i-turbo",
    regions: &[(Beijing, "wanx2.0-t2i-turbo")],
    prices: &[(Beijing, 0.04)],
    ..WANX21_T2I_TURBO
};

pub static WANX21_IMAGEEDIT: Entry = Entry {
    id: "wanx2.1-imageedit",
    // AC lists an international price ($0.020070), PR says Beijing only: PR is followed.
    regions: &[(Beijing, "wanx2.1-imageedit")],
    family: Family::ImageEdit,
    group: WANX_GROUP,
    endpoints: ASYNC_I2I,
    input: InputShape::Prompt,
    prompt_limit: Some(800),
    negative_prompt: NegativePrompt::No,
    size: None,
    n: EDIT_N,
    seed: true,
    prompt_extend: None,
    watermark: true,
    params: &[Param::Function],
    images: ImageSlots::BaseAndMask(LEGACY_EDIT_IMAGES),
    prices: &[(Beijing, 0.14)],
    extended_prices: &[],
    free_images: 500,
    limits: LEGACY_LIMITS,
    typical_duration: Duration::from_secs(10 * SECOND),
    lifecycle: None,
};

pub static WANX_X_PAINTING: Entry = Entry {
    id: "wanx-x-painting",
    regions: &[(Beijing, "wanx-x-painting")],
    family: Family::Inpainting,
    group: WANX_GROUP,
    endpoints: ASYNC_I2I,
    input: InputShape::Prompt,
    prompt_limit: Some(75),
    negative_prompt: NegativePrompt::No,
    size: Some(SizeRule {
        pixels: PixelRule::Fixed(&PAINT_SIZES),
        tokens: &[],
        default: Some(DefaultSize::Pixels(Size::new(1024, 1024))),
    }),
    n: EDIT_N,
    seed: false,
    prompt_extend: None,
    watermark: false,
    params: &[Param::Style(&PAINT_STYLES), Param::MaskColor],
    // "larger than 256x256 and smaller than 4096x4096", URLs only.
    images: ImageSlots::BaseAndMask(ImageRules {
        formats: &[Jpeg, Png, Bmp],
        min_side: 257,
        max_side: 4095,
        max_aspect: None,
        max_bytes: 10 * MB,
        alpha_allowed: true,
        data_uri: false,
    }),
    prices: &[(Beijing, 0.0)],
    extended_prices: &[],
    free_images: 500,
    limits: ModelLimits {
        submit_per_second: 2.0,
        in_flight: 1,
    },
    typical_duration: Duration::from_secs(10 * SECOND),
    lifecycle: Some("free trial only, retiring: use wanx2.1-imageedit or qwen-image-edit"),
};

pub static WAN25_I2I_PREVIEW: Entry = Entry {
    id: "wan2.5-i2i-preview",
    regions: &[
        (Beijing, "wan2.5-i2i-preview"),
        (Singapore, "wan2.5-i2i-preview"),
    ],
    family: Family::MultiImageEdit,
    group: WAN_IMAGE_GROUP,
    endpoints: ASYNC_I2I,
    input: InputShape::Prompt,
    prompt_limit: None,
    negative_prompt: NegativePrompt::InInput { limit: None },
    size: Some(SizeRule {
        pixels: PixelRule::Area {
            min_pixels: 768 * 768,
            max_pixels: 1280 * 1280,
            max_aspect: Some(4),
        },
        tokens: &[],
        default: None,
    }),
    n: T2I_N,
    seed: true,
    prompt_extend: None,
    watermark: true,
    params: &[],
    images: ImageSlots::List {
        min: 1,
        max: 3,
        rules: ImageRules {
            formats: &[Jpeg, Png, Bmp, WebP],
            min_side: 384,
            max_side: 5000,
            max_aspect: None,
            max_bytes: 10 * MB,
            alpha_allowed: false,
            data_uri: true,
        },
    },
    prices: NEW_PRICE_020,
    extended_prices: &[],
    free_images: 50,
    limits: ASSUMED_LIMITS,
    typical_duration: Duration::from_secs(60 * SECOND),
    lifecycle: None,
};

pub static WAN22_T2I_FLASH: Entry = Entry {
    id: "wan2.2-t2i-flash",
    regions: &[
        (Beijing, "wan2.2-t2i-flash"),
        (Singapore, "wan2.2-t2i-flash"),
    ],
    family: Family::TextToImage,
    group: WAN_T2I_GROUP,
    endpoints: ASYNC_T2I,
    input: InputShape::Prompt,
    prompt_limit: Some(500),
    negative_prompt: NegativePrompt::InInput { limit: Some(500) },
    // Each side 512-1440; the default 1024*1024 is (u).
    size: Some(SizeRule {
        pixels: PixelRule::Sides {
            min: 512,
            max: 1440,
            max_pixels: None,
        },
        tokens: &[],
        default: Some(DefaultSize::Pixels(Size::new(1024, 1024))),
    }),
    n: T2I_N,
    seed: true,
    prompt_extend: Some(true),
    watermark: true,
    params: &[],
    images: ImageSlots::None,
    prices: &[(Beijing, 0.14), (Singapore, 0.183481)],
    extended_prices: &[],
    free_images: 100,
    limits: ASSUMED_LIMITS,
    // (u) Text-to-image on text2image, as wanx2.1.
    typical_duration: Duration::from_secs(60 * SECOND),
    lifecycle: None,
};

pub static WAN22_T2I_PLUS: Entry = Entry {
    id: "wan2.2-t2i-plus",
    regions: &[(Beijing, "wan2.2-t2i-plus"), (Singapore, "wan2.2-t2i-plus")],
    prices: &[(Beijing, 0.20), (Singapore, 0.366962)],
    ..WAN22_T2I_FLASH
};

pub static WAN25_T2I_PREVIEW: Entry = Entry {
    id: "wan2.5-t2i-preview",
    regions: &[
        (Beijing, "wan2.5-t2i-preview"),
        (Singapore, "wan2.5-t2i-preview"),
    ],
    prompt_limit: Some(2000),
    // (u) Not published for wan2.5; wan2.2's 500 is assumed.
    negative_prompt: NegativePrompt::InInput { limit: Some(500) },
    size: Some(WAN25_T2I_SIZE),
    prices: NEW_PRICE_020,
    free_images: 50,
    ..WAN22_T2I_FLASH
};

pub static WAN26_T2I: Entry = Entry {
    id: "wan2.6-t2i",
    regions: &[
        (Beijing, "wan2.6-t2i"),
        (Singapore, "wan2.6-t2i"),
        (Virginia, "wan2.6-t2i"),
    ],
    family: Family::TextToImage,
    group: WAN_T2I_GROUP,
    endpoints: G_THEN_M,
    input: InputShape::Messages,
    prompt_limit: Some(2100),
    negative_prompt: NegativePrompt::InParameters { limit: Some(500) },
    size: Some(WAN25_T2I_SIZE),
    n: T2I_N,
    seed: true,
    prompt_extend: Some(true),
    watermark: true,
    params: &[],
    images: ImageSlots::None,
    // Virginia's 0.20 is as PR lists it; its currency is not stated (u).
    prices: &[(Beijing, 0.20), (Singapore, 0.220177), (Virginia, 0.20)],
    extended_prices: &[],
    free_images: 50,
    limits: ASSUMED_LIMITS,
    // "28 s (example) to 1-2 minutes".
    typical_duration: Duration::from_secs(60 * SECOND),
    lifecycle: None,
};

pub static WAN26_IMAGE: Entry = Entry {
    id: "wan2.6-image",
    regions: &[
        (Beijing, "wan2.6-image"),
        (Singapore, "wan2.6-image"),
        (Virginia, "wan2.6-image"),
    ],
    family: Family::MultiImageEdit,
    group: WAN_IMAGE_GROUP,
    endpoints: G_THEN_M,
    input: InputShape::Messages,
    prompt_limit: Some(2000),
    // (u) Not published; the G body's 500 of wan2.6-t2i is assumed.
    negative_prompt: NegativePrompt::InParameters { limit: Some(500) },
    // Editing: 1K, 2K or 768²-2048²; interleaved: 768²-1280² (checked in validate).
    size: Some(SizeRule {
        pixels: PixelRule::Area {
            min_pixels: 768 * 768,
            max_pixels: 2048 * 2048,
            max_aspect: None,
        },
        tokens: &[SizeToken::K1, SizeToken::K2],
        default: Some(DefaultSize::Token(SizeToken::K1)),
    }),
    // Default 4 is (u); 1 when interleaved (checked in validate).
    n: T2I_N,
    seed: true,
    // Editing only (checked in validate).
    prompt_extend: Some(true),
    watermark: true,
    params: &[
        Param::EnableInterleave,
        Param::MaxImages { max: 5, default: 5 },
    ],
    // Editing takes 1-4 images; interleaved 0-1 (checked in validate).
    images: ImageSlots::List {
        min: 1,
        max: 4,
        rules: WAN26_IMAGES,
    },
    prices: &[(Beijing, 0.20), (Singapore, 0.220177), (Virginia, 0.20)],
    extended_prices: &[],
    free_images: 50,
    limits: ASSUMED_LIMITS,
    // (u) As wan2.6-t2i.
    typical_duration: Duration::from_secs(60 * SECOND),
    lifecycle: None,
};

pub static WAN27_IMAGE: Entry = Entry {
    id: "wan2.7-image",
    regions: &[(Beijing, "wan2.7-image"), (Singapore, "wan2.7-image")],
    family: Family::MultiImageEdit,
    group: WAN_IMAGE_GROUP,
    endpoints: G_THEN_M,
    input: InputShape::Messages,
    prompt_limit: Some(5000),
    // (u) Not published for wan2.7; the wan2.6 500 is assumed.
    negative_prompt: NegativePrompt::InParameters { limit: Some(500) },
    // Explicit pixels: (u) no range published; 512²-4096² assumed.
    size: Some(SizeRule {
        pixels: PixelRule::Area {
            min_pixels: 512 * 512,
            max_pixels: 4096 * 4096,
            max_aspect: Some(8),
        },
        tokens: &[SizeToken::K1, SizeToken::K2],
        default: Some(DefaultSize::Token(SizeToken::K2)),
    }),
    // n 1-4, or up to 12 with enable_sequential; the default 4 is (u).
    n: T2I_N,
    seed: true,
    prompt_extend: None,
    watermark: true,
    params: &[
        Param::EnableSequential { max_n: 12 },
        Param::ThinkingMode { default: true },
        Param::ColorPalette { min: 3, max: 10 },
        Param::BboxList,
    ],
    images: ImageSlots::List {
        min: 0,
        max: 9,
        rules: WAN27_IMAGES,
    },
    prices: NEW_PRICE_020,
    extended_prices: &[],
    free_images: 50,
    limits: ASSUMED_LIMITS,
    // One example task took 13 s.
    typical_duration: Duration::from_secs(15 * SECOND),
    lifecycle: None,
};

pub static WAN27_IMAGE_PRO: Entry = Entry {
    id: "wan2.7-image-pro",
    regions: &[
        (Beijing, "wan2.7-image-pro"),
        (Singapore, "wan2.7-image-pro"),
    ],
    // 4K: pro text-to-image only (checked in validate).
    size: Some(SizeRule {
        pixels: PixelRule::Area {
            min_pixels: 512 * 512,
            max_pixels: 4096 * 4096,
            max_aspect: Some(8),
        },
        tokens: &[SizeToken::K1, SizeToken::K2, SizeToken::K4],
        default: Some(DefaultSize::Token(SizeToken::K2)),
    }),
    prices: &[(Beijing, 0.50), (Singapore, 0.562065)],
    ..WAN27_IMAGE
};

pub static QWEN_IMAGE: Entry = Entry {
    id: "qwen-image",
    regions: &[(Beijing, "qwen-image"), (Singapore, "qwen-image")],
    family: Family::TextToImage,
    group: QWEN_GROUP,
    // Served on text2image too: async first.
    endpoints: &[Endpoint::TextToImage, Endpoint::MultimodalGeneration],
    input: InputShape::Prompt,
    prompt_limit: Some(800),
    negative_prompt: NegativePrompt::InParameters { limit: Some(500) },
    // Some gateways list 1472*1140 instead of 1472*1104 (u).
    size: Some(SizeRule {
        pixels: PixelRule::Fixed(&QWEN_IMAGE_SIZES),
        tokens: &[],
        default: Some(DefaultSize::Pixels(Size::new(1328, 1328))),
    }),
    n: SINGLE_N,
    seed: true,
    prompt_extend: Some(true),
    watermark: true,
    params: &[],
    images: ImageSlots::None,
    prices: &[(Beijing, 0.25), (Singapore, 0.256873)],
    extended_prices: &[],
    free_images: 100,
    limits: ASSUMED_LIMITS,
    // (u) Not published.
    typical_duration: Duration::from_secs(20 * SECOND),
    lifecycle: None,
};

pub static QWEN_IMAGE_PLUS: Entry = Entry {
    id: "qwen-image-plus",
    regions: &[(Beijing, "qwen-image-plus"), (Singapore, "qwen-image-plus")],
    prices: NEW_PRICE_020,
    ..QWEN_IMAGE
};

pub static QWEN_IMAGE_MAX: Entry = Entry {
    id: "qwen-image-max",
    regions: &[(Beijing, "qwen-image-max"), (Singapore, "qwen-image-max")],
    endpoints: SYNC_ONLY,
    input: InputShape::Messages,
    // The default 1664*928 is (u).
    size: Some(SizeRule {
        pixels: PixelRule::Fixed(&QWEN_IMAGE_SIZES),
        tokens: &[],
        default: Some(DefaultSize::Pixels(Size::new(1664, 928))),
    }),
    prices: NEW_PRICE_050,
    ..QWEN_IMAGE
};

pub static QWEN_IMAGE_20: Entry = Entry {
    id: "qwen-image-2.0",
    regions: &[(Beijing, "qwen-image-2.0"), (Singapore, "qwen-image-2.0")],
    family: Family::MultiImageEdit,
    group: QWEN_GROUP,
    endpoints: SYNC_ONLY,
    input: InputShape::Messages,
    // (u) Not published; qwen-image's are assumed.
    prompt_limit: Some(800),
    negative_prompt: NegativePrompt::InParameters { limit: Some(500) },
    // The default: 2048*2048 in the examples, 1024*1024 on another page (u).
    size: Some(SizeRule {
        pixels: PixelRule::Area {
            min_pixels: 512 * 512,
            max_pixels: 2048 * 2048,
            max_aspect: None,
        },
        tokens: &[],
        default: Some(DefaultSize::Pixels(Size::new(2048, 2048))),
    }),
    n: NRule {
        min: 1,
        max: 6,
        default: 1,
    },
    seed: true,
    prompt_extend: Some(true),
    watermark: true,
    params: &[],
    // Text-to-image, or editing with 1-3 images.
    images: ImageSlots::List {
        min: 0,
        max: 3,
        rules: QWEN_IMAGES,
    },
    prices: &[(Beijing, 0.20), (Singapore, 0.256873)],
    extended_prices: &[],
    free_images: 100,
    limits: ASSUMED_LIMITS,
    typical_duration: Duration::from_secs(20 * SECOND),
    lifecycle: None,
};

pub static QWEN_IMAGE_20_PRO: Entry = Entry {
    id: "qwen-image-2.0-pro",
    regions: &[
        (Beijing, "qwen-image-2.0-pro"),
        (Singapore, "qwen-image-2.0-pro"),
    ],
    prices: NEW_PRICE_050,
    ..QWEN_IMAGE_20
};

pub static QWEN_IMAGE_EDIT: Entry = Entry {
    id: "qwen-image-edit",
    regions: &[(Beijing, "qwen-image-edit"), (Singapore, "qwen-image-edit")],
    family: Family::MultiImageEdit,
    group: QWEN_EDIT_GROUP,
    endpoints: SYNC_ONLY,
    input: InputShape::Messages,
    // (u)
    prompt_limit: Some(800),
    // (u) As qwen-image.
    negative_prompt: NegativePrompt::InParameters { limit: Some(500) },
    // Each side 512-2048; the default is about 1024² at the (last) input's aspect ratio.
    size: Some(SizeRule {
        pixels: PixelRule::Sides {
            min: 512,
            max: 2048,
            max_pixels: None,
        },
        tokens: &[],
        default: None,
    }),
    n: SINGLE_N,
    seed: true,
    // (u) As qwen-image.
    prompt_extend: Some(true),
    watermark: true,
    params: &[],
    // 1-3 required; the last sets the aspect ratio.
    images: ImageSlots::List {
        min: 1,
        max: 3,
        rules: QWEN_IMAGES,
    },
    prices: &[(Beijing, 0.30), (Singapore, 0.330266)],
    extended_prices: &[],
    free_images: 100,
    limits: ASSUMED_LIMITS,
    typical_duration: Duration::from_secs(20 * SECOND),
    lifecycle: None,
};

pub static QWEN_IMAGE_EDIT_PLUS: Entry = Entry {
    id: "qwen-image-edit-plus",
    regions: &[
        (Beijing, "qwen-image-edit-plus"),
        (Singapore, "qwen-image-edit-plus"),
    ],
    n: NRule {
        min: 1,
        max: 6,
        default: 1,
    },
    prices: NEW_PRICE_020,
    ..QWEN_IMAGE_EDIT
};

pub static QWEN_IMAGE_EDIT_MAX: Entry = Entry {
    id: "qwen-image-edit-max",
    regions: &[
        (Beijing, "qwen-image-edit-max"),
        (Singapore, "qwen-image-edit-max"),
    ],
    prices: NEW_PRICE_050,
    ..QWEN_IMAGE_EDIT_PLUS
};

pub static Z_IMAGE_TURBO: Entry = Entry {
    id: "z-image-turbo",
    regions: &[(Beijing, "z-image-turbo"), (Singapore, "z-image-turbo")],
    family: Family::TextToImage,
    group: "z-image",
    endpoints: SYNC_ONLY,
    input: InputShape::Messages,
    prompt_limit: Some(800),
    // No negative_prompt or watermark (u).
    negative_prompt: NegativePrompt::No,
    size: Some(SizeRule {
        pixels: PixelRule::Area {
            min_pixels: 512 * 512,
            max_pixels: 2048 * 2048,
            max_aspect: None,
        },
        tokens: &[],
        default: Some(DefaultSize::Pixels(Size::new(1024, 1536))),
    }),
    n: SINGLE_N,
    seed: true,
    // Off by default: turning it on doubles the price.
    prompt_extend: Some(false),
    watermark: false,
    params: &[],
    images: ImageSlots::None,
    prices: &[(Beijing, 0.10), (Singapore, 0.110089)],
    extended_prices: &[(Beijing, 0.20), (Singapore, 0.220177)],
    free_images: 100,
    limits: ASSUMED_LIMITS,
    // (u) Not published; a turbo model.
    typical_duration: Duration::from_secs(10 * SECOND),
    lifecycle: None,
};

impl Entry {
    /// The id the model goes by in `region`, `None` where it is not offered.
    pub fn id_in(&self, region: Region) -> Option<&'static str> {
        self.regions
            .iter()
            .find(|(r, _)| *r == region)
            .map(|(_, id)| *id)
    }

    /// The published price per image in `region`, CNY.
    pub fn price_in(&self, region: Region, prompt_extend: bool) -> Option<f64> {
        let table = if prompt_extend && !self.extended_prices.is_empty() {
            self.extended_prices
        } else {
            self.prices
        };
        table.iter().find(|(r, _)| *r == region).map(|(_, p)| *p)
    }

    /// The preferred endpoint.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoints[0]
    }

    pub fn param(&self, field: &str) -> Option<Param> {
        self.params.iter().copied().find(|p| p.field() == field)
    }

    /// Whether the model takes the `JobSpec` field at all (one it does not is refused).
    pub fn takes(&self, field: &str) -> bool {
        match field {
            "prompt" | "n" => true,
            "negative_prompt" => self.negative_prompt != NegativePrompt::No,
            "function" | "expand" | "upscale_factor" => self.param("function").is_some(),
            "base_image" | "mask_image" => matches!(self.images, ImageSlots::BaseAndMask(_)),
            "images" => matches!(self.images, ImageSlots::List { .. }),
            "size" => self.size.is_some(),
            "seed" => self.seed,
            "watermark" => self.watermark,
            "prompt_extend" => self.prompt_extend.is_some(),
            other => self.param(other).is_some(),
        }
    }

    /// The regions that offer the model, by id, for messages.
    pub fn region_list(&self) -> String {
        self.regions
            .iter()
            .map(|(r, _)| r.id())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl SizeRule {
    /// The rule in words: `each side 512-1440, at most 2000000 pixels`, `1K, 2K or ...`.
    pub fn describe(&self) -> String {
        let pixels = match self.pixels {
            PixelRule::Sides {
                min,
                max,
                max_pixels,
            } => {
                let mut text = format!("each side {min}-{max}");
                if let Some(most) = max_pixels {
                    text.push_str(&format!(", at most {most} pixels"));
                }
                text
            }
            PixelRule::Area {
                min_pixels,
                max_pixels,
                max_aspect,
            } => {
                let mut text = format!("{min_pixels}-{max_pixels} pixels");
                if let Some(n) = max_aspect {
                    text.push_str(&format!(", aspect 1:{n} to {n}:1"));
                }
                text
            }
            PixelRule::Fixed(sizes) => sizes
                .iter()
                .map(Size::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        if self.tokens.is_empty() {
            pixels
        } else {
            let tokens: Vec<&str> = self.tokens.iter().map(|t| t.as_str()).collect();
            format!("{} or {pixels}", tokens.join(", "))
        }
    }
}

impl std::fmt::Display for DefaultSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DefaultSize::Pixels(size) => write!(f, "{size}"),
            DefaultSize::Token(token) => f.write_str(token.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::Model;

    #[test]
    fn every_entry_is_offered_somewhere_and_priced_somewhere() {
        for model in Model::ALL {
            let entry = model.entry();
            assert!(!entry.regions.is_empty(), "{model}");
            assert!(!entry.endpoints.is_empty(), "{model}");
            // Priced only where offered (wanx2.1's Singapore price is not published).
            assert!(!entry.prices.is_empty(), "{model}");
            for (region, _) in entry.prices {
                assert!(entry.id_in(*region).is_some(), "{model} {region:?}");
            }
            assert!(entry.n.min <= entry.n.default && entry.n.default <= entry.n.max);
        }
    }

    #[test]
    fn ids_are_unique_across_models_and_regions() {
        let mut seen = std::collections::HashMap::new();
        for model in Model::ALL {
            for (_, id) in model.entry().regions {
                if let Some(other) = seen.insert(*id, model) {
                    assert_eq!(other, model, "{id} names two models");
                }
            }
        }
    }

    #[test]
    fn singapore_calls_wanx21_by_its_international_id() {
        assert_eq!(WANX21_T2I_TURBO.id_in(Singapore), Some("wan2.1-t2i-turbo"));
        assert_eq!(WANX21_T2I_TURBO.id_in(Beijing), Some("wanx2.1-t2i-turbo"));
        assert_eq!(WANX_X_PAINTING.id_in(Singapore), None);
    }

    #[test]
    fn z_image_costs_double_with_prompt_extend() {
        assert_eq!(Z_IMAGE_TURBO.price_in(Beijing, false), Some(0.10));
        assert_eq!(Z_IMAGE_TURBO.price_in(Beijing, true), Some(0.20));
        assert_eq!(QWEN_IMAGE.price_in(Beijing, true), Some(0.25));
    }

    #[test]
    fn sizes_are_described_with_tokens_first() {
        assert_eq!(
            WAN27_IMAGE_PRO.size.unwrap().describe(),
            "1K, 2K, 4K or 262144-16777216 pixels, aspect 1:8 to 8:1"
        );
        assert_eq!(
            WANX21_T2I_TURBO.size.unwrap().describe(),
            "each side 512-1440, at most 2000000 pixels"
        );
    }
}
