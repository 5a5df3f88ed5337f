//! What the store hands out: job states, list rows, job details, images and events.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dashscope::{ErrorAction, JobSpec, Model, TaskStatus};

/// A job's row id. Ids grow with creation order, so "newest first" is "highest id first".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    /// Forwards to the number's own formatting, so width and alignment apply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .trim_start_matches('#')
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(JobId)
            .ok_or_else(|| format!("`{s}` is not a job id (a positive number)"))
    }
}

/// Where a job is in its life, as this machine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the scheduler (possibly until `next_attempt_at`).
    Queued,
    /// The create request is (or may be) on the wire; the task id is not known yet.
    Submitting,
    /// The service accepted the task (PENDING).
    Submitted,
    /// The service reports the task RUNNING (or it succeeded and images are downloading).
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// The task outlived the service's 24 h retention before its results were fetched.
    Expired,
    /// The engine cannot decide alone (e.g. a create that may or may not have happened).
    NeedsAttention,
}

impl JobState {
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Submitting,
        JobState::Submitted,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Expired,
        JobState::NeedsAttention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Submitting => "submitting",
            JobState::Submitted => "submitted",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Expired => "expired",
            JobState::NeedsAttention => "needs_attention",
        }
    }

    /// No further change happens without a person (retry) asking for it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Failed
                | JobState::Cancelled
                | JobState::Expired
                | JobState::NeedsAttention
        )
    }

    /// A task exists (or may exist) at the service for this job.
    pub fn is_remote(self) -> bool {
        matches!(
            self,
            JobState::Submitting | JobState::Submitted | JobState::Running
        )
    }

    /// States `retry` accepts.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Cancelled | JobState::Expired | JobState::NeedsAttention
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('-', "_").to_ascii_lowercase();
        JobState::ALL.into_iter().find(|st| st.as_str() == wanted).ok_or_else(|| {
            format!(
                "unknown job state `{s}`; one of queued, submitting, submitted, running, succeeded, failed, cancelled, expired, needs_attention"
            )
        })
    }
}

/// Which jobs a list shows: one state or a group of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    Only(JobState),
    /// queued, submitting, submitted, running.
    Active,
    /// failed, expired, needs_attention: the ones a person should look at.
    Problems,
}

impl StateFilter {
    pub fn states(self) -> Vec<JobState> {
        match self {
            StateFilter::Only(state) => vec![state],
            StateFilter::Active => {
                vec![
                    JobState::Queued,
                    JobState::Submitting,
                    JobState::Submitted,
                    JobState::Running,
                ]
            }
            StateFilter::Problems => vec![
                JobState::Failed,
                JobState::Expired,
                JobState::NeedsAttention,
            ],
        }
    }
}

/// What a list or count selects. `search` matches prompt text, case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub state: Option<StateFilter>,
    pub search: Option<String>,
}

/// One row of a job list: what a table line needs, nothing more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSummary {
    pub id: JobId,
    /// Epoch milliseconds, like every `*_at` in the store.
    pub created_at: i64,
    pub model: Model,
    pub prompt: String,
    pub state: JobState,
    pub task_status: Option<TaskStatus>,
    pub submitted_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub attempts: u32,
    pub images_expected: u32,
    pub images_ok: u32,
    pub images_failed: u32,
    pub cost_cny: Option<f64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub cancel_requested: bool,
    pub batch_tag: Option<String>,
}

/// Everything known about one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobDetail {
    pub summary: JobSummary,
    /// The spec as the user gave it (local paths included).
    pub spec: JobSpec,
    /// The spec actually sent: local files replaced by uploaded `oss://` refs or data URIs.
    pub prepared_spec: Option<JobSpec>,
    pub task_id: Option<String>,
    pub scheduled_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub error_action: Option<ErrorAction>,
    pub actual_prompt: Option<String>,
    pub images: Vec<ImageRecord>,
    pub events: Vec<EventRecord>,
}

/// One image slot of a job: saved, failed at the service, or failed to download.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageRecord {
    pub index: u32,
    pub url: Option<String>,
    pub path: Option<PathBuf>,
    pub sha256: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bytes: Option<u64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl ImageRecord {
    pub fn is_saved(&self) -> bool {
        self.path.is_some()
    }
}

/// One state change (or a note such as "cancel requested", where from == to).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub job_id: JobId,
    pub at: i64,
    pub from_state: Option<JobState>,
    pub to_state: JobState,
    pub detail: Option<String>,
}

/// Jobs per state, for the dashboard header and `wandash watch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub queued: u64,
    pub submitting: u64,
    pub submitted: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub expired: u64,
    pub needs_attention: u64,
}

impl StateCounts {
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Queued => self.queued,
            JobState::Submitting => self.submitting,
            JobState::Submitted => self.submitted,
            JobState::Running => self.running,
            JobState::Succeeded => self.succeeded,
            JobState::Failed => self.failed,
            JobState::Cancelled => self.cancelled,
            JobState::Expired => self.expired,
            JobState::NeedsAttention => self.needs_attention,
        }
    }

    pub(crate) fn slot(&mut self, state: JobState) -> &mut u64 {
        match state {
            JobState::Queued => &mut self.queued,
            JobState::Submitting => &mut self.submitting,
            JobState::Submitted => &mut self.submitted,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
            JobState::Expired => &mut self.expired,
            JobState::NeedsAttention => &mut self.needs_attention,
        }
    }

    pub fn total(&self) -> u64 {
        JobState::ALL.into_iter().map(|s| self.get(s)).sum()
    }

    /// Jobs not yet in a final state.
    pub fn active(&self) -> u64 {
        self.queued + self.submitting + self.submitted + self.running
    }
}

/// What `request_cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The job was still queued: cancelled here, nothing was sent.
    Cancelled,
    /// A task exists: the engine will ask the service to cancel it (only PENDING tasks can be).
    Requested,
    /// The job had already ended; nothing changed.
    AlreadyEnded(JobState),
}
