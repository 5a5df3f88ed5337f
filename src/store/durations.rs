//! What the engine learned about task durations, per model: kept in the store so that a
//! new process (`submit --wait`, an MCP call, a fresh dashboard) polls its first tasks at
//! the moment they end instead of at the catalogue's typical duration.

use super::db::params;
use super::{EngineStore, Store, StoreError};
use crate::dashscope::Model;

/// A model's task duration as learned from the tasks that ended: a moving average of the
/// run times the service reported, and how many tasks it was learned from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnedDuration {
    pub seconds: f64,
    pub samples: u64,
}

impl Store {
    /// Every model's learned duration. A model this build does not know (a newer build
    /// learned it) is skipped: what is learned is a hint, never a reason to fail.
    pub fn learned_durations(&self) -> Result<Vec<(Model, LearnedDuration)>, StoreError> {
        let rows = self.conn().query_map(
            "SELECT model, seconds, samples FROM task_durations ORDER BY model",
            params![],
            |row| {
                Ok((
                    row.get::<String>(0)?,
                    LearnedDuration {
                        seconds: row.get(1)?,
                        samples: row.get::<i64>(2)?.max(0) as u64,
                    },
                ))
            },
        )?;
        let mut learned = Vec::new();
        for (model, duration) in rows {
            match model.parse::<Model>() {
                Ok(model) if duration.seconds.is_finite() && duration.seconds > 0.0 => {
                    learned.push((model, duration));
                }
                _ => {
                    tracing::debug!(%model, "learned duration skipped: unknown model or no duration")
                }
            }
        }
        Ok(learned)
    }
}

impl EngineStore {
    /// Records what the engine has learned about `model`'s task durations, replacing what
    /// was there.
    pub(crate) fn save_learned_duration(
        &self,
        model: Model,
        learned: LearnedDuration,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO task_durations (model, seconds, samples) VALUES (?1, ?2, ?3)
             ON CONFLICT (model) DO UPDATE SET seconds = excluded.seconds, samples = excluded.samples",
            params![
                model.id(),
                learned.seconds,
                i64::try_from(learned.samples).unwrap_or(i64::MAX)
            ],
        )?;
        Ok(())
    }
}
