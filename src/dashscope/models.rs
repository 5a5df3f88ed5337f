//! The models wandash knows. What each one takes, costs and allows is in the catalogue
//! (`catalogue.rs`); `Model`'s methods read it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Region;
use super::catalogue::{self, Entry};

/// Which create endpoint a model is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Async (A): `input.prompt`, results in `output.results`.
    TextToImage,
    /// Async (A), the editing models.
    ImageToImage,
    /// Async (G): `input.messages`, results in `output.choices`.
    ImageGeneration,
    /// Synchronous (M): the answer holds the images; never sent the async header.
    MultimodalGeneration,
}

impl Endpoint {
    /// The path under the base URL (`.../api/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::TextToImage => "/services/aigc/text2image/image-synthesis",
            Endpoint::ImageToImage => "/services/aigc/image2image/image-synthesis",
            Endpoint::ImageGeneration => "/services/aigc/image-generation/generation",
            Endpoint::MultimodalGeneration => "/services/aigc/multimodal-generation/generation",
        }
    }

    /// The short name lists show.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::TextToImage => "text2image",
            Endpoint::ImageToImage => "image2image",
            Endpoint::ImageGeneration => "image-generation",
            Endpoint::MultimodalGeneration => "multimodal-generation (sync)",
        }
    }

    /// Whether a create returns a task id to poll (else the answer holds the images).
    pub fn is_async(self) -> bool {
        self != Endpoint::MultimodalGeneration
    }
}

/// What kind of request a model takes, as far as rendering and decoding care (which
/// fields apply is the catalogue's business: `Entry::takes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A prompt, no input image.
    TextToImage,
    /// wanx2.1-imageedit: one base image, a function.
    ImageEdit,
    /// wanx-x-painting: a base image and a mask.
    Inpainting,
    /// A list of input images (for some models optional).
    MultiImageEdit,
}

/// Every model wandash knows; the serde ids are the Beijing ids, stable in stored jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Model {
    #[serde(rename = "wanx2.1-t2i-turbo")]
    Wanx21T2iTurbo,
    #[serde(rename = "wanx2.1-t2i-plus")]
    Wanx21T2iPlus,
    #[serde(rename = "wanx2.0-t2i-turbo")]
    Wanx20T2iTurbo,
    #[serde(rename = "wanx2.1-imageedit")]
    Wanx21ImageEdit,
    #[serde(rename = "wanx-x-painting")]
    WanxXPainting,
    #[serde(rename = "wan2.5-i2i-preview")]
    Wan25I2iPreview,
    #[serde(rename = "wan2.2-t2i-flash")]
    Wan22T2iFlash,
    #[serde(rename = "wan2.2-t2i-plus")]
    Wan22T2iPlus,
    #[serde(rename = "wan2.5-t2i-preview")]
    Wan25T2iPreview,
    #[serde(rename = "wan2.6-t2i")]
    Wan26T2i,
    #[serde(rename = "wan2.6-image")]
    Wan26Image,
    #[serde(rename = "wan2.7-image")]
    Wan27Image,
    #[serde(rename = "wan2.7-image-pro")]
    Wan27ImagePro,
    #[serde(rename = "qwen-image")]
    QwenImage,
    #[serde(rename = "qwen-image-plus")]
    QwenImagePlus,
    #[serde(rename = "qwen-image-max")]
    QwenImageMax,
    #[serde(rename = "qwen-image-2.0")]
    QwenImage20,
    #[serde(rename = "qwen-image-2.0-pro")]
    QwenImage20Pro,
    #[serde(rename = "qwen-image-edit")]
    QwenImageEdit,
    #[serde(rename = "qwen-image-edit-plus")]
    QwenImageEditPlus,
    #[serde(rename = "qwen-image-edit-max")]
    QwenImageEditMax,
    #[serde(rename = "z-image-turbo")]
    ZImageTurbo,
}

/// Per-model quota as the service enforces it (shared by an account and its sub-accounts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelLimits {
    /// Create requests per second; the service allows a burst of this many back to back.
    pub submit_per_second: f64,
    /// Tasks PENDING or RUNNING at once before creates are answered 429.
    pub in_flight: u32,
}

impl Model {
    /// The six models of API.md first (their order is what older lists showed), then
    /// API-CURRENT.md's.
    pub const ALL: [Model; 22] = [
        Model::Wanx21T2iTurbo,
        Model::Wanx21T2iPlus,
        Model::Wanx20T2iTurbo,
        Model::Wanx21ImageEdit,
        Model::WanxXPainting,
        Model::Wan25I2iPreview,
        Model::Wan22T2iFlash,
        Model::Wan22T2iPlus,
        Model::Wan25T2iPreview,
        Model::Wan26T2i,
        Model::Wan26Image,
        Model::Wan27Image,
        Model::Wan27ImagePro,
        Model::QwenImage,
        Model::QwenImagePlus,
        Model::QwenImageMax,
        Model::QwenImage20,
        Model::QwenImage20Pro,
        Model::QwenImageEdit,
        Model::QwenImageEditPlus,
        Model::QwenImageEditMax,
        Model::ZImageTurbo,
    ];

    /// Everything the catalogue says about the model.
    pub fn entry(self) -> &'static Entry {
        use catalogue::*;
        match self {
            Model::Wanx21T2iTurbo => &WANX21_T2I_TURBO,
            Model::Wanx21T2iPlus => &WANX21_T2I_PLUS,
            Model::Wanx20T2iTurbo => &WANX20_T2I_TURBO,
            Model::Wanx21ImageEdit => &WANX21_IMAGEEDIT,
            Model::WanxXPainting => &WANX_X_PAINTING,
            Model::Wan25I2iPreview => &WAN25_I2I_PREVIEW,
            Model::Wan22T2iFlash => &WAN22_T2I_FLASH,
            Model::Wan22T2iPlus => &WAN22_T2I_PLUS,
            Model::Wan25T2iPreview => &WAN25_T2I_PREVIEW,
            Model::Wan26T2i => &WAN26_T2I,
            Model::Wan26Image => &WAN26_IMAGE,
            Model::Wan27Image => &WAN27_IMAGE,
            Model::Wan27ImagePro => &WAN27_IMAGE_PRO,
            Model::QwenImage => &QWEN_IMAGE,
            Model::QwenImagePlus => &QWEN_IMAGE_PLUS,
            Model::QwenImageMax => &QWEN_IMAGE_MAX,
            Model::QwenImage20 => &QWEN_IMAGE_20,
            Model::QwenImage20Pro => &QWEN_IMAGE_20_PRO,
            Model::QwenImageEdit => &QWEN_IMAGE_EDIT,
            Model::QwenImageEditPlus => &QWEN_IMAGE_EDIT_PLUS,
            Model::QwenImageEditMax => &QWEN_IMAGE_EDIT_MAX,
            Model::ZImageTurbo => &Z_IMAGE_TURBO,
        }
    }

    /// The id stored and shown (Beijing's); `id_in` gives a region's own.
    pub fn id(self) -> &'static str {
        self.entry().id
    }

    /// The id the model goes by in `region`, `None` where it is not offered there.
    pub fn id_in(self, region: Region) -> Option<&'static str> {
        self.entry().id_in(region)
    }

    pub fn family(self) -> Family {
        self.entry().family
    }

    /// The preferred endpoint (async where the model has one).
    pub fn endpoint(self) -> Endpoint {
        self.entry().endpoint()
    }

    /// The catalogue's quota, the default of `[limits."<model>"]`. The new models' are
    /// not published (u): the legacy 2/s and 2 in flight are assumed.
    pub fn default_limits(self) -> ModelLimits {
        self.entry().limits
    }

    /// Price per successful image in Beijing, CNY; `price_in` for another region.
    pub fn default_price_cny(self) -> Option<f64> {
        self.price_in(Region::Beijing)
    }

    /// Price per successful image in `region`, CNY (without the surcharge some models
    /// ask for `prompt_extend`: see `JobSpec::price_per_image`).
    pub fn price_in(self, region: Region) -> Option<f64> {
        self.entry().price_in(region, false)
    }

    /// Free images a new account gets for this model (the catalogue's figure). Only
    /// successful images count.
    pub fn free_images(self) -> u64 {
        u64::from(self.entry().free_images)
    }

    /// How many images a task makes when `n` is not given.
    pub fn default_n(self) -> u32 {
        self.entry().n.default
    }

    /// Typical task duration, queueing included; a starting point for polling.
    pub fn typical_duration(self) -> Duration {
        self.entry().typical_duration
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model `{0}`; known models: {known}", known = known_models())]
pub struct UnknownModel(pub String);

fn known_models() -> String {
    Model::ALL.map(Model::id).join(", ")
}

impl FromStr for Model {
    type Err = UnknownModel;
    /// Takes the stored id or any region's own (`wan2.1-t2i-turbo` is wanx2.1-t2i-turbo).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::ALL
            .into_iter()
            .find(|m| m.id() == s || m.entry().regions.iter().any(|(_, id)| *id == s))
            .ok_or_else(|| UnknownModel(s.to_string()))
    }
}
