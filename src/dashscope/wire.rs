//! The service's answers, as the client reads them. Unknown fields are ignored so that
//! a service that adds fields does not break the client.

use serde::{Deserialize, Serialize};

use super::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Pending,
    Running,
    Suspended,
    Succeeded,
    Failed,
    Canceled,
    Unknown,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Suspended => "SUSPENDED",
            TaskStatus::Succeeded => "SUCCEEDED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Canceled => "CANCELED",
            TaskStatus::Unknown => "UNKNOWN",
        }
    }

    /// PENDING, RUNNING and SUSPENDED tasks may still change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled | TaskStatus::Unknown
        )
    }
}

/// The answer to a create request.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCreated {
    pub task_id: String,
    pub task_status: TaskStatus,
    pub request_id: Option<String>,
}

/// The answer to `GET /tasks/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    pub task_id: String,
    pub status: TaskStatus,
    /// `"2025-02-21 17:56:31.786"` as the service writes it.
    pub submit_time: Option<String>,
    pub scheduled_time: Option<String>,
    pub end_time: Option<String>,
    pub results: Vec<TaskResult>,
    /// Text parts of an image-generation task's interleaved output.
    pub texts: Vec<String>,
    pub metrics: Option<TaskMetrics>,
    /// Why a FAILED task failed.
    pub code: Option<String>,
    pub message: Option<String>,
    /// `usage.image_count`: images billed.
    pub image_count: Option<u32>,
    pub request_id: Option<String>,
}

/// One image of a finished task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TaskResult {
    Image {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orig_prompt: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actual_prompt: Option<String>,
    },
    Failed {
        code: String,
        #[serde(default, alias = "msg")]
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMetrics {
    #[serde(rename = "TOTAL")]
    pub total: u32,
    #[serde(rename = "SUCCEEDED")]
    pub succeeded: u32,
    #[serde(rename = "FAILED")]
    pub failed: u32,
}

/// Filters for `GET /tasks`; times are `YYYYMMDDhhmmss`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub page_no: u32,
    pub page_size: u32,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub model_name: Option<String>,
    pub status: Option<TaskStatus>,
}

/// The answer to `GET /tasks`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskList {
    pub total: u64,
    pub total_page: u64,
    pub page_no: u32,
    pub page_size: u32,
    pub data: Vec<TaskSummary>,
    /// The service's clock when it answered (its `Date` header), if it said: what its
    /// list remembers is reckoned by this clock, not ours.
    pub service_time: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub task_id: String,
    pub status: TaskStatus,
    #[serde(default)]
    pub model_name: Option<String>,
    /// The list writes its times as epoch milliseconds.
    #[serde(default)]
    pub gmt_create: Option<Timestamp>,
    #[serde(default)]
    pub start_time: Option<Timestamp>,
    #[serde(default)]
    pub end_time: Option<Timestamp>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
}
