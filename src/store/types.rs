//! What the store hands out: job states, list rows, job details, images and events.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::dashscope::{ClientError, ErrorAction, JobSpec, Model, TaskStatus, Timestamp};

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
    /// Only the jobs queued by this `user@host` (`Store::submitter` for one's own).
    pub submitted_by: Option<String>,
}

/// What went wrong, as the engine decides on it. Stored as its text code, the same text
/// the service or the engine has always written (`code`, `from_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The service discarded the task or its images (after 24 h) before they were fetched.
    Expired,
    /// Claimed, then held back before its create went out (the engine stopping, or a
    /// disk refusing images): nothing was sent.
    NotSent,
    /// The engine stopped around this job's create; the job was queued again.
    Interrupted,
    /// A create went unanswered and the service's task list cannot tell whether it made
    /// the task: a person decides.
    CreateUncertain,
    /// Images could not be saved: the disk refused them.
    DiskError,
    /// A downloaded image did not decode.
    InvalidImage,
    /// The task succeeded but returned no image.
    NoImage,
    /// The service reports the task FAILED without saying why.
    TaskFailed,
    /// No answer from the service: unreachable, or the connection broke.
    Network,
    /// The service answered something that does not follow the protocol.
    Protocol,
    /// The service answered, readably, something no client can act on: a create's task
    /// id that cannot be one. A task may exist, so the create is never sent again.
    WrongAnswer,
    /// The service answered a create with a task id another job already has: a task may
    /// have been made for this job that cannot be followed, so a person decides.
    DuplicateTaskId,
    /// The service answered more results than the request asked for; the rest were
    /// ignored (a note, not an end).
    TooManyResults,
    /// The job waits in the queue: sending it would go past a budget of the config's
    /// `[budget]` (a note, not an end: it goes when the budget allows).
    OverBudget,
    /// The job breaks a documented rule (refused before sending).
    InvalidInput,
    /// A local input file could not be read.
    LocalFile,
    /// A code the service sent (`InvalidParameter`, `InternalError.Algo`...), as sent.
    Service(String),
}

impl ErrorKind {
    /// The codes wandash itself writes; any other text is the service's.
    const OWN: [ErrorKind; 16] = [
        ErrorKind::Expired,
        ErrorKind::NotSent,
        ErrorKind::Interrupted,
        ErrorKind::CreateUncertain,
        ErrorKind::DiskError,
        ErrorKind::InvalidImage,
        ErrorKind::NoImage,
        ErrorKind::TaskFailed,
        ErrorKind::Network,
        ErrorKind::Protocol,
        ErrorKind::WrongAnswer,
        ErrorKind::DuplicateTaskId,
        ErrorKind::TooManyResults,
        ErrorKind::OverBudget,
        ErrorKind::InvalidInput,
        ErrorKind::LocalFile,
    ];

    /// The text code, as stored and shown.
    pub fn code(&self) -> &str {
        match self {
            ErrorKind::Expired => "Expired",
            ErrorKind::NotSent => "NotSent",
            ErrorKind::Interrupted => "Interrupted",
            ErrorKind::CreateUncertain => "CreateUncertain",
            ErrorKind::DiskError => "DiskError",
            ErrorKind::InvalidImage => "InvalidImage",
            ErrorKind::NoImage => "NoImage",
            ErrorKind::TaskFailed => "TaskFailed",
            ErrorKind::Network => "Network",
            ErrorKind::Protocol => "Protocol",
            ErrorKind::WrongAnswer => "WrongAnswer",
            ErrorKind::DuplicateTaskId => "DuplicateTaskId",
            ErrorKind::TooManyResults => "TooManyResults",
            ErrorKind::OverBudget => "OverBudget",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::LocalFile => "LocalFile",
            ErrorKind::Service(code) => code,
        }
    }

    /// Reads a stored (or an image's) code back.
    pub fn from_code(code: &str) -> ErrorKind {
        ErrorKind::OWN
            .into_iter()
            .find(|kind| kind.code() == code)
            .unwrap_or_else(|| ErrorKind::Service(code.to_string()))
    }

    /// What a client error was about: the service's own code, or what failed on our side.
    pub fn of_client(error: &ClientError) -> ErrorKind {
        match error {
            ClientError::Invalid(_) => ErrorKind::InvalidInput,
            ClientError::Api { code, .. } => ErrorKind::Service(code.clone()),
            ClientError::Unreachable(_) | ClientError::Transport(_) => ErrorKind::Network,
            ClientError::Protocol(_) => ErrorKind::Protocol,
            ClientError::WrongAnswer(_) => ErrorKind::WrongAnswer,
            ClientError::Io(_) => ErrorKind::LocalFile,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A job's error: what went wrong, the service's (or the engine's) words for it, and
/// what the engine decided to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
    pub action: Option<ErrorAction>,
}

impl JobError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, action: Option<ErrorAction>) -> Self {
        JobError {
            kind,
            message: message.into(),
            action,
        }
    }

    pub fn from_client(error: &ClientError) -> Self {
        let message = match error {
            ClientError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        };
        JobError::new(ErrorKind::of_client(error), message, Some(error.action()))
    }
}

impl fmt::Display for JobError {
    /// `code: message`, as the event log and the job views write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// A task the service made for a job.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRef {
    pub id: String,
    /// The status the service last reported (UNKNOWN is never recorded: it means the
    /// service forgot the task, and the last real status says more).
    pub status: Option<TaskStatus>,
    /// When the create that made it went out: the service's 24 h run from about here.
    pub sent_at: Option<Timestamp>,
    /// When the service started working on it, by its own clock.
    pub scheduled_at: Option<Timestamp>,
}

/// How far an ended job got with the service.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// Nothing reached the service.
    NotSent,
    /// A create went out at `at`, but no task is recorded: it was refused, or its answer
    /// was lost and no task could be attributed to it.
    Sent { at: Timestamp },
    /// The service made this task.
    Task(TaskRef),
}

impl Submission {
    pub fn task(&self) -> Option<&TaskRef> {
        match self {
            Submission::Task(task) => Some(task),
            Submission::NotSent | Submission::Sent { .. } => None,
        }
    }

    pub fn sent_at(&self) -> Option<Timestamp> {
        match self {
            Submission::NotSent => None,
            Submission::Sent { at } => Some(*at),
            Submission::Task(task) => task.sent_at,
        }
    }
}

/// Where a job is in its life, with what is known in that state and only then: a task
/// once the service made one, an end time once it ended, an error where one is the
/// reason it ended. `state()` is the plain discriminant for filters, counts and display.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// Waiting for the scheduler, not before `next_attempt_at`; `last_error` says why an
    /// earlier attempt came back (throttled, interrupted...).
    Queued {
        next_attempt_at: Option<Timestamp>,
        last_error: Option<JobError>,
    },
    /// Claimed for a create; `sending_since` is set once the create went on the wire
    /// (whether the service made the task is then unknown until it answers).
    Submitting {
        sending_since: Option<Timestamp>,
        last_error: Option<JobError>,
    },
    /// The service accepted the task (PENDING). `note`: a problem met meanwhile.
    Submitted {
        task: TaskRef,
        note: Option<JobError>,
    },
    /// The task runs, or it succeeded and its images are being saved. `note`: a problem
    /// met meanwhile (a disk refusing the images), not an end.
    Running {
        task: TaskRef,
        note: Option<JobError>,
    },
    Succeeded {
        task: TaskRef,
        ended_at: Timestamp,
    },
    Failed {
        submission: Submission,
        ended_at: Timestamp,
        error: JobError,
    },
    /// `note`: a problem recorded before the cancel, kept for the record.
    Cancelled {
        submission: Submission,
        ended_at: Timestamp,
        note: Option<JobError>,
    },
    /// The task outlived the service's 24 h retention before its results were fetched.
    Expired {
        submission: Submission,
        ended_at: Timestamp,
        error: JobError,
    },
    /// The engine cannot decide alone (e.g. a create that may or may not have happened).
    NeedsAttention {
        submission: Submission,
        ended_at: Timestamp,
        error: JobError,
    },
}

impl JobStatus {
    pub fn state(&self) -> JobState {
        match self {
            JobStatus::Queued { .. } => JobState::Queued,
            JobStatus::Submitting { .. } => JobState::Submitting,
            JobStatus::Submitted { .. } => JobState::Submitted,
            JobStatus::Running { .. } => JobState::Running,
            JobStatus::Succeeded { .. } => JobState::Succeeded,
            JobStatus::Failed { .. } => JobState::Failed,
            JobStatus::Cancelled { .. } => JobState::Cancelled,
            JobStatus::Expired { .. } => JobState::Expired,
            JobStatus::NeedsAttention { .. } => JobState::NeedsAttention,
        }
    }

    /// The task at the service, once there is one.
    pub fn task(&self) -> Option<&TaskRef> {
        match self {
            JobStatus::Queued { .. } | JobStatus::Submitting { .. } => None,
            JobStatus::Submitted { task, .. }
            | JobStatus::Running { task, .. }
            | JobStatus::Succeeded { task, .. } => Some(task),
            JobStatus::Failed { submission, .. }
            | JobStatus::Cancelled { submission, .. }
            | JobStatus::Expired { submission, .. }
            | JobStatus::NeedsAttention { submission, .. } => submission.task(),
        }
    }

    pub fn task_id(&self) -> Option<&str> {
        self.task().map(|task| task.id.as_str())
    }

    pub fn task_status(&self) -> Option<TaskStatus> {
        self.task().and_then(|task| task.status)
    }

    /// When the (last) create went out.
    pub fn submitted_at(&self) -> Option<Timestamp> {
        match self {
            JobStatus::Queued { .. } => None,
            JobStatus::Submitting { sending_since, .. } => *sending_since,
            JobStatus::Submitted { task, .. }
            | JobStatus::Running { task, .. }
            | JobStatus::Succeeded { task, .. } => task.sent_at,
            JobStatus::Failed { submission, .. }
            | JobStatus::Cancelled { submission, .. }
            | JobStatus::Expired { submission, .. }
            | JobStatus::NeedsAttention { submission, .. } => submission.sent_at(),
        }
    }

    pub fn ended_at(&self) -> Option<Timestamp> {
        match self {
            JobStatus::Queued { .. }
            | JobStatus::Submitting { .. }
            | JobStatus::Submitted { .. }
            | JobStatus::Running { .. } => None,
            JobStatus::Succeeded { ended_at, .. }
            | JobStatus::Failed { ended_at, .. }
            | JobStatus::Cancelled { ended_at, .. }
            | JobStatus::Expired { ended_at, .. }
            | JobStatus::NeedsAttention { ended_at, .. } => Some(*ended_at),
        }
    }

    pub fn next_attempt_at(&self) -> Option<Timestamp> {
        match self {
            JobStatus::Queued {
                next_attempt_at, ..
            } => *next_attempt_at,
            _ => None,
        }
    }

    /// The job's error: why it ended, or the last problem met while it is not final.
    pub fn error(&self) -> Option<&JobError> {
        match self {
            JobStatus::Queued { last_error, .. } | JobStatus::Submitting { last_error, .. } => {
                last_error.as_ref()
            }
            JobStatus::Submitted { note, .. }
            | JobStatus::Running { note, .. }
            | JobStatus::Cancelled { note, .. } => note.as_ref(),
            JobStatus::Succeeded { .. } => None,
            JobStatus::Failed { error, .. }
            | JobStatus::Expired { error, .. }
            | JobStatus::NeedsAttention { error, .. } => Some(error),
        }
    }

    /// Reads the status columns of a row, refusing combinations no write produces (a
    /// final state without an end time, a task state without a task, a failure without
    /// its error).
    pub(crate) fn from_columns(row: StatusColumns) -> Result<JobStatus, String> {
        let error = match row.error_code {
            Some(code) => Some(JobError {
                kind: ErrorKind::from_code(&code),
                message: row.error_message.unwrap_or_default(),
                action: row
                    .error_action
                    .map(|a| {
                        serde_json::from_value::<ErrorAction>(serde_json::Value::String(a.clone()))
                            .map_err(|_| format!("unknown error action `{a}`"))
                    })
                    .transpose()?,
            }),
            None => None,
        };
        let task = row.task_id.map(|id| TaskRef {
            id,
            status: row.task_status,
            sent_at: row.submitted_at,
            scheduled_at: row.scheduled_at,
        });
        let submission = || match (&task, row.submitted_at) {
            (Some(task), _) => Submission::Task(task.clone()),
            (None, Some(at)) => Submission::Sent { at },
            (None, None) => Submission::NotSent,
        };
        let state = row.state;
        let missing = |what: &str| format!("a {state} job without {what}");
        let ended_at = || row.ended_at.ok_or_else(|| missing("an end time"));
        let with_task = || task.clone().ok_or_else(|| missing("a task id"));
        let with_error = || error.clone().ok_or_else(|| missing("an error"));
        Ok(match state {
            JobState::Queued => JobStatus::Queued {
                next_attempt_at: row.next_attempt_at,
                last_error: error,
            },
            JobState::Submitting => JobStatus::Submitting {
                sending_since: row.submitted_at,
                last_error: error,
            },
            JobState::Submitted => JobStatus::Submitted {
                task: with_task()?,
                note: error,
            },
            JobState::Running => JobStatus::Running {
                task: with_task()?,
                note: error,
            },
            JobState::Succeeded => JobStatus::Succeeded {
                task: with_task()?,
                ended_at: ended_at()?,
            },
            JobState::Failed => JobStatus::Failed {
                submission: submission(),
                ended_at: ended_at()?,
                error: with_error()?,
            },
            JobState::Cancelled => JobStatus::Cancelled {
                submission: submission(),
                ended_at: ended_at()?,
                note: error,
            },
            JobState::Expired => JobStatus::Expired {
                submission: submission(),
                ended_at: ended_at()?,
                error: with_error()?,
            },
            JobState::NeedsAttention => JobStatus::NeedsAttention {
                submission: submission(),
                ended_at: ended_at()?,
                error: with_error()?,
            },
        })
    }

    /// The status as the flat columns the store keeps (and the output shapes show).
    pub(crate) fn to_columns(&self) -> StatusColumns {
        let task = self.task();
        let error = self.error();
        StatusColumns {
            state: self.state(),
            task_id: task.map(|t| t.id.clone()),
            task_status: task.and_then(|t| t.status),
            submitted_at: self.submitted_at(),
            scheduled_at: task.and_then(|t| t.scheduled_at),
            ended_at: self.ended_at(),
            next_attempt_at: self.next_attempt_at(),
            error_code: error.map(|e| e.kind.code().to_string()),
            error_message: error.map(|e| e.message.clone()),
            error_action: error.and_then(|e| e.action).map(|a| a.as_str().to_string()),
        }
    }
}

/// A job's status as the `jobs` table keeps it: one column per datum, each `NULL` where
/// the state has no such datum.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusColumns {
    pub state: JobState,
    pub task_id: Option<String>,
    pub task_status: Option<TaskStatus>,
    pub submitted_at: Option<Timestamp>,
    pub scheduled_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub error_action: Option<String>,
}

/// One row of a job list: what a table line needs, nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub id: JobId,
    pub created_at: Timestamp,
    pub model: Model,
    pub prompt: String,
    pub status: JobStatus,
    pub attempts: u32,
    pub images_expected: u32,
    pub images_ok: u32,
    pub images_failed: u32,
    pub cost_cny: Option<f64>,
    /// Someone asked to cancel the job's task (set while it is remote, kept after).
    pub cancel_requested: bool,
    pub batch_tag: Option<String>,
    /// `user@host` that queued the job; `None` for jobs from before it was recorded.
    pub submitted_by: Option<String>,
}

impl JobSummary {
    pub fn state(&self) -> JobState {
        self.status.state()
    }

    pub fn error(&self) -> Option<&JobError> {
        self.status.error()
    }
}

/// The JSON shape of a list row (`wandash list --json`, `show --json`): the store's flat
/// fields, in the order and with the names scripts already read.
#[derive(Serialize)]
struct SummaryOutput<'a> {
    id: JobId,
    created_at: Timestamp,
    model: Model,
    prompt: &'a str,
    state: JobState,
    task_status: Option<TaskStatus>,
    submitted_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    attempts: u32,
    images_expected: u32,
    images_ok: u32,
    images_failed: u32,
    #[serde(serialize_with = "super::money::cents_or_none")]
    cost_cny: Option<f64>,
    error_code: Option<String>,
    error_message: Option<String>,
    cancel_requested: bool,
    batch_tag: Option<&'a str>,
    submitted_by: Option<&'a str>,
}

impl Serialize for JobSummary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let columns = self.status.to_columns();
        SummaryOutput {
            id: self.id,
            created_at: self.created_at,
            model: self.model,
            prompt: &self.prompt,
            state: columns.state,
            task_status: columns.task_status,
            submitted_at: columns.submitted_at,
            ended_at: columns.ended_at,
            attempts: self.attempts,
            images_expected: self.images_expected,
            images_ok: self.images_ok,
            images_failed: self.images_failed,
            cost_cny: self.cost_cny,
            error_code: columns.error_code,
            error_message: columns.error_message,
            cancel_requested: self.cancel_requested,
            batch_tag: self.batch_tag.as_deref(),
            submitted_by: self.submitted_by.as_deref(),
        }
        .serialize(serializer)
    }
}

/// A page of the job list, as far as this build can read it.
#[derive(Debug, Default)]
pub struct Listing {
    pub rows: Vec<JobSummary>,
    pub unreadable: Vec<UnreadableJob>,
}

/// A job whose row cannot be read: its id, and what is wrong in which field.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableJob {
    pub id: JobId,
    pub problem: String,
}

/// Everything known about one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDetail {
    pub summary: JobSummary,
    /// The spec as the user gave it (local paths included).
    pub spec: JobSpec,
    /// The spec actually sent: local files replaced by uploaded `oss://` refs or data URIs.
    pub prepared_spec: Option<JobSpec>,
    pub actual_prompt: Option<String>,
    /// The job this one was made from (a fork, seed sweep, edit or inpainting of it).
    pub parent_job_id: Option<JobId>,
    pub images: Vec<ImageRecord>,
    pub events: Vec<EventRecord>,
}

impl JobDetail {
    pub fn status(&self) -> &JobStatus {
        &self.summary.status
    }

    pub fn task_id(&self) -> Option<&str> {
        self.summary.status.task_id()
    }
}

/// The JSON shape of one job (`wandash show --json`).
#[derive(Serialize)]
struct DetailOutput<'a> {
    summary: &'a JobSummary,
    spec: &'a JobSpec,
    prepared_spec: Option<&'a JobSpec>,
    task_id: Option<String>,
    scheduled_at: Option<Timestamp>,
    next_attempt_at: Option<Timestamp>,
    /// As stored: the `snake_case` name `ErrorAction` serialises to.
    error_action: Option<String>,
    actual_prompt: Option<&'a str>,
    /// Only for a job made from another, so the shape of every other job stays as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_job_id: Option<JobId>,
    images: &'a [ImageRecord],
    events: &'a [EventRecord],
}

impl Serialize for JobDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let columns = self.status().to_columns();
        DetailOutput {
            summary: &self.summary,
            spec: &self.spec,
            prepared_spec: self.prepared_spec.as_ref(),
            task_id: columns.task_id,
            scheduled_at: columns.scheduled_at,
            next_attempt_at: columns.next_attempt_at,
            error_action: columns.error_action,
            actual_prompt: self.actual_prompt.as_deref(),
            parent_job_id: self.parent_job_id,
            images: &self.images,
            events: &self.events,
        }
        .serialize(serializer)
    }
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
    pub at: Timestamp,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn task() -> TaskRef {
        TaskRef {
            id: "t-1".into(),
            status: Some(TaskStatus::Running),
            sent_at: Some(at(10)),
            scheduled_at: Some(at(12)),
        }
    }

    fn error(kind: ErrorKind) -> JobError {
        JobError::new(kind, "why", Some(ErrorAction::RetryLater))
    }

    fn empty(state: JobState) -> StatusColumns {
        StatusColumns {
            state,
            task_id: None,
            task_status: None,
            submitted_at: None,
            scheduled_at: None,
            ended_at: None,
            next_attempt_at: None,
            error_code: None,
            error_message: None,
            error_action: None,
        }
    }

    #[test]
    fn every_state_round_trips_through_its_columns() {
        let statuses = [
            JobStatus::Queued {
                next_attempt_at: Some(at(50)),
                last_error: Some(error(ErrorKind::Service("Throttling".into()))),
            },
            JobStatus::Queued {
                next_attempt_at: None,
                last_error: None,
            },
            JobStatus::Submitting {
                sending_since: Some(at(10)),
                last_error: Some(error(ErrorKind::Interrupted)),
            },
            JobStatus::Submitted {
                task: task(),
                note: None,
            },
            JobStatus::Running {
                task: task(),
                note: Some(error(ErrorKind::DiskError)),
            },
            JobStatus::Succeeded {
                task: task(),
                ended_at: at(99),
            },
            JobStatus::Failed {
                submission: Submission::Sent { at: at(10) },
                ended_at: at(11),
                error: error(ErrorKind::Service("InvalidParameter".into())),
            },
            JobStatus::Failed {
                submission: Submission::Task(task()),
                ended_at: at(99),
                error: error(ErrorKind::TaskFailed),
            },
            JobStatus::Cancelled {
                submission: Submission::NotSent,
                ended_at: at(5),
                note: Some(error(ErrorKind::NotSent)),
            },
            JobStatus::Expired {
                submission: Submission::Task(task()),
                ended_at: at(99),
                error: error(ErrorKind::Expired),
            },
            JobStatus::NeedsAttention {
                submission: Submission::Sent { at: at(10) },
                ended_at: at(20),
                error: JobError::new(ErrorKind::CreateUncertain, "which task?", None),
            },
        ];
        for status in statuses {
            let columns = status.to_columns();
            assert_eq!(columns.state, status.state());
            assert_eq!(JobStatus::from_columns(columns), Ok(status));
        }
    }

    #[test]
    fn the_columns_hold_each_datum_only_in_its_states() {
        let queued = JobStatus::Queued {
            next_attempt_at: Some(at(50)),
            last_error: None,
        };
        assert_eq!(
            queued.to_columns(),
            StatusColumns {
                next_attempt_at: Some(at(50)),
                ..empty(JobState::Queued)
            }
        );
        let failed = JobStatus::Failed {
            submission: Submission::Task(task()),
            ended_at: at(99),
            error: error(ErrorKind::Service("InternalError.Algo".into())),
        };
        assert_eq!(
            failed.to_columns(),
            StatusColumns {
                task_id: Some("t-1".into()),
                task_status: Some(TaskStatus::Running),
                submitted_at: Some(at(10)),
                scheduled_at: Some(at(12)),
                ended_at: Some(at(99)),
                error_code: Some("InternalError.Algo".into()),
                error_message: Some("why".into()),
                error_action: Some("retry_later".into()),
                ..empty(JobState::Failed)
            }
        );
    }

    #[test]
    fn rows_no_write_produces_are_refused() {
        let ended = |state| StatusColumns {
            ended_at: Some(at(1)),
            ..empty(state)
        };
        for (columns, why) in [
            (empty(JobState::Running), "a running job without a task id"),
            (
                ended(JobState::Succeeded),
                "a succeeded job without a task id",
            ),
            (
                empty(JobState::Cancelled),
                "a cancelled job without an end time",
            ),
            (ended(JobState::Failed), "a failed job without an error"),
            (ended(JobState::Expired), "a expired job without an error"),
        ] {
            assert_eq!(JobStatus::from_columns(columns), Err(why.to_string()));
        }
        let unknown_action = StatusColumns {
            error_code: Some("X".into()),
            error_action: Some("shrug".into()),
            ..empty(JobState::Queued)
        };
        assert!(JobStatus::from_columns(unknown_action).is_err());
    }

    /// `list --json` and `show --json` print these shapes; scripts read them by name.
    #[test]
    fn the_json_output_keeps_the_flat_fields_in_their_order() {
        let summary = JobSummary {
            id: JobId(7),
            created_at: at(1),
            model: Model::Wanx21T2iTurbo,
            prompt: "a fox".into(),
            status: JobStatus::Failed {
                submission: Submission::Task(task()),
                ended_at: at(99),
                error: error(ErrorKind::Service("InternalError.Algo".into())),
            },
            attempts: 2,
            images_expected: 1,
            images_ok: 0,
            images_failed: 0,
            cost_cny: None,
            cancel_requested: false,
            batch_tag: Some("b".into()),
            submitted_by: Some("alice@box1".into()),
        };
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            r#"{"id":7,"created_at":1,"model":"wanx2.1-t2i-turbo","prompt":"a fox","state":"failed","task_status":"RUNNING","submitted_at":10,"ended_at":99,"attempts":2,"images_expected":1,"images_ok":0,"images_failed":0,"cost_cny":null,"error_code":"InternalError.Algo","error_message":"why","cancel_requested":false,"batch_tag":"b","submitted_by":"alice@box1"}"#
        );
        let queued = JobSummary {
            status: JobStatus::Queued {
                next_attempt_at: Some(at(50)),
                last_error: None,
            },
            ..summary
        };
        let detail = JobDetail {
            summary: queued,
            spec: JobSpec::new(Model::Wanx21T2iTurbo, "a fox"),
            prepared_spec: None,
            actual_prompt: None,
            parent_job_id: None,
            images: Vec::new(),
            events: Vec::new(),
        };
        let text = serde_json::to_string(&detail).unwrap();
        let mut from = 0;
        for key in [
            "summary",
            "spec",
            "prepared_spec",
            "task_id",
            "scheduled_at",
            "next_attempt_at",
            "error_action",
            "actual_prompt",
            "images",
            "events",
        ] {
            let found = text[from..].find(&format!("\"{key}\":"));
            from += found.unwrap_or_else(|| panic!("`{key}` in its place: {text}"));
        }
        let json = serde_json::to_value(&detail).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 10);
        assert_eq!(json["next_attempt_at"], 50);
        assert_eq!(json["summary"]["state"], "queued");
        assert_eq!(json["summary"]["error_code"], serde_json::Value::Null);
        assert_eq!(json["task_id"], serde_json::Value::Null);
    }

    #[test]
    fn the_cost_in_job_json_is_rounded_to_the_cent() {
        let summary = JobSummary {
            id: JobId(1),
            created_at: at(1),
            model: Model::Wanx21T2iTurbo,
            prompt: "a fox".into(),
            status: JobStatus::Succeeded {
                task: task(),
                ended_at: at(99),
            },
            attempts: 1,
            images_expected: 3,
            images_ok: 3,
            images_failed: 0,
            cost_cny: Some(0.14 * 3.0),
            cancel_requested: false,
            batch_tag: None,
            submitted_by: None,
        };
        let text = serde_json::to_string(&summary).unwrap();
        assert!(text.contains(r#""cost_cny":0.42,"#), "{text}");
    }

    #[test]
    fn error_kinds_are_stored_as_the_codes_written_before() {
        for kind in ErrorKind::OWN {
            assert_eq!(ErrorKind::from_code(kind.code()), kind);
        }
        assert_eq!(ErrorKind::from_code("Expired"), ErrorKind::Expired);
        assert_eq!(
            ErrorKind::from_code("InternalError.Algo"),
            ErrorKind::Service("InternalError.Algo".into())
        );
        let refused = ClientError::Api {
            status: 400,
            code: "InvalidParameter".into(),
            message: "bad size".into(),
            request_id: None,
        };
        for client in [
            refused.clone(),
            ClientError::Unreachable("refused".into()),
            ClientError::Transport("reset".into()),
            ClientError::Protocol("not JSON".into()),
            ClientError::Io("gone".into()),
        ] {
            assert_eq!(ErrorKind::of_client(&client).code(), client.code());
        }
        let recorded = JobError::from_client(&refused);
        assert_eq!(recorded.to_string(), "InvalidParameter: bad size");
        assert_eq!(recorded.action, Some(ErrorAction::FixInput));
    }
}
