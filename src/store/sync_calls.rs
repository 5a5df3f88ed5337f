//! The store's side of synchronous calls (the multimodal-generation endpoint): their
//! answer holds the images, and there is no task for anyone to look up later, so the
//! answer is committed before its images are downloaded, and a restart downloads from it.

use super::db::{ToValue, Value, params};
use super::work::EngineStore;
use super::{JobId, JobState, StoreError, transition};
use crate::dashscope::{TaskResult, TaskStatus};

impl EngineStore {
    /// Submitting -> running with a call's answer: `call_id` stands in for the task id
    /// (the service answered synchronously), the task reads SUCCEEDED, and `results` are
    /// kept until the images are saved. False if the job had moved on (cancelled).
    pub(crate) fn record_sync_answer(
        &self,
        id: JobId,
        call_id: &str,
        results: &[TaskResult],
    ) -> Result<bool, StoreError> {
        let answer =
            serde_json::to_string(results).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let done = transition(
                tx,
                id,
                &[JobState::Submitting],
                JobState::Running,
                &[
                    ("task_id", call_id.to_value()),
                    ("task_status", TaskStatus::Succeeded.as_str().to_value()),
                    ("sync_answer", answer.to_value()),
                    ("error_code", Value::Null),
                    ("error_message", Value::Null),
                    ("error_action", Value::Null),
                ],
                Some(&format!(
                    "synchronous call {call_id} answered with {} image(s)",
                    results.len()
                )),
            )?;
            Ok(done)
        })
    }

    /// The results a synchronous call answered for the job, if one did.
    pub(crate) fn sync_answer(&self, id: JobId) -> Result<Option<Vec<TaskResult>>, StoreError> {
        let text: Option<String> = self
            .conn()
            .query_opt(
                "SELECT sync_answer FROM jobs WHERE id = ?1",
                params![id.0],
                |r| r.get(0),
            )?
            .flatten();
        text.map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                StoreError::Corrupt(format!("job {id}: unreadable synchronous answer: {e}"))
            })
        })
        .transpose()
    }
}
