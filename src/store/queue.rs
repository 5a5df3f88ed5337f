//! Queue control: the pauses every engine on the store obeys, the order in which queued
//! jobs are sent, and what deleting a job leaves behind.
//!
//! The flags live in the store, not in an engine, so that a worker in another process
//! obeys `wandash pause` at its next claim; the engine checks them once more in the same
//! statement that marks a create as going out (`EngineStore::mark_sending`), so nothing
//! is sent after a pause has committed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::db::{Db, params};
use super::{JobId, JobState, Store, StoreError, current_state, parse_model};
use crate::dashscope::Model;

/// The `paused` row that pauses every model.
const ALL_SCOPE: &str = "all";

/// What is paused: the whole queue, single models, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pauses {
    pub all: bool,
    pub models: BTreeSet<Model>,
}

impl Pauses {
    pub fn is_empty(&self) -> bool {
        !self.all && self.models.is_empty()
    }

    /// Why a queued job of `model` is not sent now, if a pause holds it. The whole
    /// queue's pause is named first: resuming the model alone would not release the job.
    pub fn holds(&self, model: Model) -> Option<PauseHold> {
        if self.all {
            Some(PauseHold::Queue)
        } else if self.models.contains(&model) {
            Some(PauseHold::Model(model))
        } else {
            None
        }
    }
}

/// A pause that holds a job back, as `list`, `show` and the dashboard explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseHold {
    Queue,
    Model(Model),
}

impl std::fmt::Display for PauseHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseHold::Queue => write!(
                f,
                "the queue is paused; `wandash resume` (or `p` in the dashboard) sends it again"
            ),
            PauseHold::Model(model) => write!(
                f,
                "{model} is paused; `wandash resume --model {model}` sends it again"
            ),
        }
    }
}

/// What `pause` and `resume` act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseScope {
    /// Every model. Resuming it lifts every pause, the single models' too.
    All,
    Model(Model),
}

impl PauseScope {
    fn key(self) -> &'static str {
        match self {
            PauseScope::All => ALL_SCOPE,
            PauseScope::Model(model) => model.id(),
        }
    }
}

/// Which way `move_in_queue` moves a job: sent sooner or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStep {
    Earlier,
    Later,
}

/// What deleting a job did to its image files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeletedJob {
    pub images_removed: u32,
    /// Files that could not be removed, each with the OS's reason.
    pub images_left: Vec<String>,
}

impl DeletedJob {
    /// `1 image file`, `3 image files`: what the user is told was removed.
    pub fn files_removed(&self) -> String {
        match self.images_removed {
            1 => "1 image file".to_string(),
            n => format!("{n} image files"),
        }
    }
}

impl Store {
    /// What is paused now.
    pub fn pauses(&self) -> Result<Pauses, StoreError> {
        let rows = self.conn().query("SELECT scope FROM paused", params![])?;
        let mut pauses = Pauses::default();
        for row in &rows {
            let scope: String = row.get(0)?;
            if scope == ALL_SCOPE {
                pauses.all = true;
            } else {
                pauses.models.insert(parse_model(&scope)?);
            }
        }
        Ok(pauses)
    }

    /// No new create goes out for `scope` until it is resumed; tasks already at the
    /// service are followed as before. Pausing what is paused changes nothing.
    pub fn pause(&self, scope: PauseScope) -> Result<Pauses, StoreError> {
        self.conn().execute(
            "INSERT INTO paused (scope) VALUES (?1) ON CONFLICT (scope) DO NOTHING",
            params![scope.key()],
        )?;
        self.pauses()
    }

    /// Lifts the pause of `scope` (`All` lifts every pause); returns what stays paused.
    pub fn resume(&self, scope: PauseScope) -> Result<Pauses, StoreError> {
        match scope {
            PauseScope::All => self.conn().execute("DELETE FROM paused", params![])?,
            PauseScope::Model(model) => self
                .conn()
                .execute("DELETE FROM paused WHERE scope = ?1", params![model.id()])?,
        };
        self.pauses()
    }

    /// Makes a queued job the next one sent (of its model: models are sent side by side).
    pub fn move_to_top(&self, id: JobId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            require_queued(tx, id)?;
            // Below every position the store holds, so positions stay distinct.
            tx.execute(
                "UPDATE jobs SET queue_pos = (SELECT MIN(queue_pos) FROM jobs) - 1 WHERE id = ?1",
                params![id.0],
            )?;
            Ok(())
        })
    }

    /// Swaps a queued job with the queued job sent just before (`Earlier`) or just after
    /// it (`Later`); false when there is none (it is already first or last).
    pub fn move_in_queue(&self, id: JobId, step: QueueStep) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            require_queued(tx, id)?;
            let position: i64 = tx.query_row(
                "SELECT queue_pos FROM jobs WHERE id = ?1",
                params![id.0],
                |r| r.get(0),
            )?;
            let neighbour_sql = match step {
                QueueStep::Earlier => {
                    "SELECT id, queue_pos FROM jobs WHERE state = 'queued' AND (queue_pos, id) < (?1, ?2)
                     ORDER BY queue_pos DESC, id DESC LIMIT 1"
                }
                QueueStep::Later => {
                    "SELECT id, queue_pos FROM jobs WHERE state = 'queued' AND (queue_pos, id) > (?1, ?2)
                     ORDER BY queue_pos, id LIMIT 1"
                }
            };
            let neighbour: Option<(i64, i64)> =
                tx.query_opt(neighbour_sql, params![position, id.0], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let Some((other, other_position)) = neighbour else {
                return Ok(false);
            };
            let set = "UPDATE jobs SET queue_pos = ?1 WHERE id = ?2";
            tx.execute(set, params![other_position, id.0])?;
            tx.execute(set, params![position, other])?;
            Ok(true)
        })
    }
}

/// Only queued jobs have a place in the queue.
fn require_queued(tx: &mut Db, id: JobId) -> Result<(), StoreError> {
    match current_state(tx, id)? {
        JobState::Queued => Ok(()),
        state => Err(StoreError::WrongState {
            id,
            state,
            action: "move it in the queue",
        }),
    }
}

/// The image files a job's rows name, read inside the deleting transaction.
pub(super) fn image_paths(tx: &mut Db, id: JobId) -> Result<Vec<PathBuf>, StoreError> {
    tx.query_map(
        "SELECT path FROM images WHERE job_id = ?1 AND path IS NOT NULL",
        params![id.0],
        |r| r.get::<String>(0).map(PathBuf::from),
    )
}

/// Removes a deleted job's image files, then its image folder (`images/<id>`) if that
/// is left empty. A file already gone is not an error; one that cannot be removed is
/// reported, not fatal: the job's rows are gone either way.
pub(super) fn remove_image_files(id: JobId, paths: &[PathBuf]) -> DeletedJob {
    let mut deleted = DeletedJob::default();
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => deleted.images_removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => deleted.images_left.push(format!("{}: {e}", path.display())),
        }
    }
    let folders: BTreeSet<&std::path::Path> = paths
        .iter()
        .filter_map(|p| p.parent())
        .filter(|dir| dir.file_name().is_some_and(|n| *n == *id.to_string()))
        .collect();
    for folder in folders {
        // Only an empty folder goes; anything else in it stays.
        let _ = std::fs::remove_dir(folder);
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_queue_pause_holds_every_model_and_is_named_first() {
        let mut pauses = Pauses::default();
        assert!(pauses.is_empty());
        assert_eq!(pauses.holds(Model::Wanx21T2iTurbo), None);

        pauses.models.insert(Model::Wanx21T2iTurbo);
        assert_eq!(
            pauses.holds(Model::Wanx21T2iTurbo),
            Some(PauseHold::Model(Model::Wanx21T2iTurbo))
        );
        assert_eq!(pauses.holds(Model::Wanx21T2iPlus), None);

        pauses.all = true;
        assert_eq!(pauses.holds(Model::Wanx21T2iTurbo), Some(PauseHold::Queue));
        assert_eq!(pauses.holds(Model::Wanx21T2iPlus), Some(PauseHold::Queue));
        assert!(!pauses.is_empty());
    }

    #[test]
    fn a_hold_says_how_to_release_it() {
        assert!(PauseHold::Queue.to_string().contains("wandash resume"));
        let model = PauseHold::Model(Model::Wanx21T2iPlus).to_string();
        assert!(
            model.contains("wanx2.1-t2i-plus is paused")
                && model.contains("resume --model wanx2.1-t2i-plus"),
            "{model}"
        );
    }
}
