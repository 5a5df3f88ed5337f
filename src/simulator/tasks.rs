//! One simulated task: what was asked, when, and how it ends.
//!
//! A task's status is never stored: it follows from the clock. It is PENDING for the
//! first part of its latency (queued), RUNNING for the rest and until its images are
//! rendered, then SUCCEEDED or FAILED. This keeps `/__sim/advance` and restarts trivial.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dashscope::{JobSpec, Model};

/// The share of a task's latency it spends queued (PENDING) before it runs.
const QUEUED_SHARE: f64 = 0.4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Failure {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// How a task ended once its work is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// One entry per image: `None` = rendered (served from `/results/<id>/<i>.png`).
    Images(Vec<Option<Failure>>),
    Failed(Failure),
}

/// Faults decided when the task is accepted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub fail_task: bool,
    /// Indexes of images that fail inside a task that partly succeeds.
    pub failed_images: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub model: Model,
    /// The create body as received; the spec is read back from it.
    pub body: Value,
    /// The seed of image 0 (the request's, or one drawn from the task id).
    pub seed: u64,
    pub submit_ms: i64,
    pub queued_ms: i64,
    pub run_ms: i64,
    pub plan: Plan,
    pub canceled_ms: Option<i64>,
    pub outcome: Option<Outcome>,
    /// Clock time the outcome was recorded; the task cannot end before it.
    pub ready_ms: Option<i64>,
    /// Which endpoint made it, and so how its answer is shaped.
    #[serde(default)]
    pub kind: TaskKind,
}

/// Which endpoint a task came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// text2image / image2image: polled, images in `output.results`.
    #[default]
    Synthesis,
    /// image-generation: polled, images in `output.choices`.
    Generation,
    /// multimodal-generation: answered synchronously; the service keeps no task to
    /// poll or list, so it reads UNKNOWN and is not listed.
    SyncCall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Canceled => "CANCELED",
        }
    }

    pub fn in_flight(self) -> bool {
        matches!(self, Status::Pending | Status::Running)
    }
}

/// A task's status and times at one instant (epoch ms).
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub status: Status,
    pub scheduled_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl Task {
    /// The model id the task was created with (a region's own, say `wan2.1-t2i-turbo`),
    /// as the service's task list names it.
    pub fn model_name(&self) -> &str {
        self.body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(self.model.id())
    }

    pub fn new(
        id: String,
        model: Model,
        body: Value,
        spec: &JobSpec,
        submit_ms: i64,
        latency_ms: (u64, u64),
    ) -> Self {
        let (lo, hi) = latency_ms;
        let draw = hash64(&[id.as_bytes(), b"latency"]);
        let total = lo + if hi > lo { draw % (hi - lo + 1) } else { 0 };
        let queued = (total as f64 * QUEUED_SHARE) as i64;
        // Without a seed the service draws one; drawing it from the id keeps it repeatable.
        let seed = spec
            .seed
            .unwrap_or_else(|| hash64(&[id.as_bytes(), b"seed"]) % 2_147_483_648);
        Task {
            id,
            model,
            body,
            seed,
            submit_ms,
            queued_ms: queued,
            run_ms: total as i64 - queued,
            plan: Plan::default(),
            canceled_ms: None,
            outcome: None,
            ready_ms: None,
            kind: TaskKind::Synthesis,
        }
    }

    /// The spec the create body described (it was judged valid when accepted).
    pub fn spec(&self) -> JobSpec {
        JobSpec::from_wire(&self.body).expect("a stored task's body was valid when it was accepted")
    }

    pub fn phase(&self, now: i64) -> Phase {
        let scheduled = self.submit_ms + self.queued_ms;
        if let Some(at) = self.canceled_ms {
            return Phase {
                status: Status::Canceled,
                scheduled_ms: None,
                end_ms: Some(at),
            };
        }
        if now < scheduled {
            return Phase {
                status: Status::Pending,
                scheduled_ms: None,
                end_ms: None,
            };
        }
        let planned_end = scheduled + self.run_ms;
        let running = Phase {
            status: Status::Running,
            scheduled_ms: Some(scheduled),
            end_ms: None,
        };
        let (Some(outcome), Some(ready)) = (&self.outcome, self.ready_ms) else {
            return running;
        };
        let end = planned_end.max(ready);
        if now < end {
            return running;
        }
        let status = match outcome {
            Outcome::Images(images) if images.iter().any(Option::is_none) => Status::Succeeded,
            _ => Status::Failed,
        };
        Phase {
            status,
            scheduled_ms: Some(scheduled),
            end_ms: Some(end),
        }
    }

    pub fn expired(&self, now: i64, ttl_ms: i64) -> bool {
        now >= self.submit_ms + ttl_ms
    }
}

/// A stable 64-bit hash (stable across runs and builds, unlike `DefaultHasher`).
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}
