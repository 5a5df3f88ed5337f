//! The DashScope image-synthesis protocol: the model catalogue, job specs, validation, the
//! HTTP client.

pub mod catalogue;
mod client;
pub mod composition;
mod error;
mod messages;
mod models;
mod quotas;
mod spec;
mod time;
mod upload;
pub mod validate;
mod wire;

pub use self::time::Timestamp;
pub use client::{ApiKey, Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
pub use error::{ClientError, ErrorAction, classify};
pub use messages::{
    DEFAULT_SYNC_CALL_TIMEOUT, GENERATION_PATH, MULTIMODAL_PATH, SyncAnswer, messages_body,
    prompt_body,
};
pub use models::{Endpoint, Family, Model, ModelLimits, UnknownModel};
pub use quotas::{AccountLimits, DEFAULT_QUOTAS_PATH, QUOTAS_PAGE_SIZE, QuotaPage};
pub use spec::{
    BadSize, EditFunction, ExpandScales, ImageRef, JobSpec, OutputSize, PAINT_SIZES, PAINT_STYLES,
    Size, SizeToken, UnknownFunction, UnresolvedImage, WireError, field_applies,
};
pub use validate::{
    ValidationError, check_local_images, max_input_bytes, read_image_file, region_refusal,
    validate, validate_all,
};
pub use wire::{
    ListQuery, TaskCreated, TaskInfo, TaskList, TaskMetrics, TaskResult, TaskStatus, TaskSummary,
};

/// The documented regions and their base URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Region {
    #[serde(rename = "cn-beijing")]
    Beijing,
    #[serde(rename = "ap-southeast-1")]
    Singapore,
    #[serde(rename = "us-east-1")]
    Virginia,
}

impl Region {
    pub const ALL: [Region; 3] = [Region::Beijing, Region::Singapore, Region::Virginia];

    pub fn id(self) -> &'static str {
        match self {
            Region::Beijing => "cn-beijing",
            Region::Singapore => "ap-southeast-1",
            Region::Virginia => "us-east-1",
        }
    }

    pub fn base_url(self) -> &'static str {
        match self {
            Region::Beijing => "https://dashscope.aliyuncs.com/api/v1",
            Region::Singapore => "https://dashscope-intl.aliyuncs.com/api/v1",
            Region::Virginia => "https://dashscope-us.aliyuncs.com/api/v1",
        }
    }
}

impl std::str::FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.id() == s)
            .ok_or_else(|| {
                format!("unknown region `{s}`; one of cn-beijing, ap-southeast-1, us-east-1")
            })
    }
}
