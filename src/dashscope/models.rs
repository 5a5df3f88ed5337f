//! The models wandash knows, with the limits and prices from API.md.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which create endpoint a model is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    TextToImage,
    ImageToImage,
    /// Async: `input.messages`, images in the task's `output.choices`.
    ImageGeneration,
    /// Synchronous: the answer holds the images; never sent the async header.
    MultimodalGeneration,
}

impl Endpoint {
    /// The path under the base URL (`.../api/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::TextToImage => "/services/aigc/text2image/image-synthesis",
            Endpoint::ImageToImage => "/services/aigc/image2image/image-synthesis",
            Endpoint::ImageGeneration => super::messages::GENERATION_PATH,
            Endpoint::MultimodalGeneration => super::messages::MULTIMODAL_PATH,
        }
    }

    /// Whether a create returns a task id to poll (else the answer holds the images).
    pub fn is_async(self) -> bool {
        self != Endpoint::MultimodalGeneration
    }
}

/// What kind of request a model takes; decides which fields of a job apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    TextToImage,
    ImageEdit,
    Inpainting,
    MultiImageEdit,
}

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
    // The two models of API-CURRENT.md this build speaks until the catalogue lands.
    #[serde(rename = "wan2.6-t2i")]
    Wan26T2i,
    #[serde(rename = "qwen-image-max")]
    QwenImageMax,
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
    pub const ALL: [Model; 8] = [
        Model::Wanx21T2iTurbo,
        Model::Wanx21T2iPlus,
        Model::Wanx20T2iTurbo,
        Model::Wanx21ImageEdit,
        Model::WanxXPainting,
        Model::Wan25I2iPreview,
        Model::Wan26T2i,
        Model::QwenImageMax,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Model::Wanx21T2iTurbo => "wanx2.1-t2i-turbo",
            Model::Wanx21T2iPlus => "wanx2.1-t2i-plus",
            Model::Wanx20T2iTurbo => "wanx2.0-t2i-turbo",
            Model::Wanx21ImageEdit => "wanx2.1-imageedit",
            Model::WanxXPainting => "wanx-x-painting",
            Model::Wan25I2iPreview => "wan2.5-i2i-preview",
            Model::Wan26T2i => "wan2.6-t2i",
            Model::QwenImageMax => "qwen-image-max",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Model::Wanx21T2iTurbo
            | Model::Wanx21T2iPlus
            | Model::Wanx20T2iTurbo
            | Model::Wan26T2i
            | Model::QwenImageMax => Family::TextToImage,
            Model::Wanx21ImageEdit => Family::ImageEdit,
            Model::WanxXPainting => Family::Inpainting,
            Model::Wan25I2iPreview => Family::MultiImageEdit,
        }
    }

    /// The endpoints that serve the model, the preferred first (async before sync).
    pub fn endpoints(self) -> &'static [Endpoint] {
        match self {
            Model::Wan26T2i => &[Endpoint::ImageGeneration, Endpoint::MultimodalGeneration],
            Model::QwenImageMax => &[Endpoint::MultimodalGeneration],
            _ if self.family() == Family::TextToImage => &[Endpoint::TextToImage],
            _ => &[Endpoint::ImageToImage],
        }
    }

    /// The preferred endpoint.
    pub fn endpoint(self) -> Endpoint {
        self.endpoints()[0]
    }

    /// Defaults from API.md's table. wan2.5's are not published ("see vendor"): the
    /// same 2/s and 2 in flight as its siblings is assumed, overridable in config.
    pub fn default_limits(self) -> ModelLimits {
        let in_flight = if self == Model::WanxXPainting { 1 } else { 2 };
        ModelLimits {
            submit_per_second: 2.0,
            in_flight,
        }
    }

    /// Price per successfully generated image in CNY; `None` where API.md has none.
    pub fn default_price_cny(self) -> Option<f64> {
        match self {
            Model::Wanx21T2iTurbo => Some(0.14),
            Model::Wanx21T2iPlus => Some(0.20),
            Model::Wanx20T2iTurbo => Some(0.04),
            Model::Wanx21ImageEdit => Some(0.14),
            Model::WanxXPainting => Some(0.0),
            Model::Wan25I2iPreview => None,
            Model::Wan26T2i => Some(0.20),
            Model::QwenImageMax => Some(0.50),
        }
    }

    /// How many images a task makes when `n` is not given.
    pub fn default_n(self) -> u32 {
        if self == Model::QwenImageMax {
            return 1;
        }
        match self.family() {
            Family::TextToImage | Family::MultiImageEdit => 4,
            Family::ImageEdit | Family::Inpainting => 1,
        }
    }

    /// Typical task duration from API.md, queueing included; a starting point for polling.
    pub fn typical_duration(self) -> Duration {
        match self {
            // API-CURRENT.md: an example took 28 s; one to two minutes are common.
            Model::Wan26T2i => return Duration::from_secs(60),
            // (u) Not published; a synchronous call of some tens of seconds.
            Model::QwenImageMax => return Duration::from_secs(30),
            _ => {}
        }
        match self.family() {
            Family::TextToImage => Duration::from_secs(90),
            Family::ImageEdit | Family::Inpainting => Duration::from_secs(10),
            Family::MultiImageEdit => Duration::from_secs(60),
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown model `{0}`; known models: wanx2.1-t2i-turbo, wanx2.1-t2i-plus, wanx2.0-t2i-turbo, wanx2.1-imageedit, wanx-x-painting, wan2.5-i2i-preview, wan2.6-t2i, qwen-image-max"
)]
pub struct UnknownModel(pub String);

impl FromStr for Model {
    type Err = UnknownModel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::ALL
            .into_iter()
            .find(|m| m.id() == s)
            .ok_or_else(|| UnknownModel(s.to_string()))
    }
}
