//! What the studio writes besides new jobs: the winner of a side-by-side compare. The
//! winner's images are starred (what the gallery's star filter shows) and the job gets an
//! event naming the jobs it beat (what `show` lists), in one transaction.

use crate::dashscope::Timestamp;

use super::db::params;
use super::{JobId, Store, StoreError, current_state, insert_event};

impl Store {
    /// Records that `winner` won a compare against `others`: stars its saved images and
    /// notes it on the job. Returns how many images were starred.
    pub fn record_compare_winner(
        &self,
        winner: JobId,
        others: &[JobId],
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        conn.in_write_tx(|tx| {
            let state = current_state(tx, winner)?;
            let starred = tx.execute(
                "UPDATE images SET starred = 1 WHERE job_id = ?1 AND path IS NOT NULL",
                params![winner.0],
            )?;
            let against = others
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            insert_event(
                tx,
                winner,
                Timestamp::now(),
                Some(state),
                state,
                Some(&format!("won a compare against jobs {against}")),
            )?;
            Ok(starred)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::dashscope::{JobSpec, Model};

    use super::*;

    #[test]
    fn the_winner_has_its_saved_images_starred_and_an_event_naming_the_losers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let spec = JobSpec::new(Model::Wanx21T2iTurbo, "a fox");
        let parent = store.enqueue(&spec).unwrap();
        let ids = store
            .enqueue_with_parents(&[(&spec, Some(parent)), (&spec, Some(parent))], None, &[])
            .unwrap();
        let (winner, loser) = (ids[0], ids[1]);
        {
            let mut conn = store.conn();
            for (job, idx, path) in [
                (winner, 0, Some("/img/a.png")),
                (winner, 1, None),
                (loser, 0, Some("/img/b.png")),
            ] {
                conn.execute(
                    "INSERT INTO images (job_id, idx, path) VALUES (?1, ?2, ?3)",
                    params![job.0, idx, path],
                )
                .unwrap();
            }
        }
        assert_eq!(
            store
                .record_compare_winner(winner, &[loser, parent])
                .unwrap(),
            1
        );
        let starred = |job: JobId| -> Vec<i64> {
            store
                .conn()
                .query_map(
                    "SELECT starred FROM images WHERE job_id = ?1 ORDER BY idx",
                    params![job.0],
                    |row| row.get(0),
                )
                .unwrap()
        };
        assert_eq!(starred(winner), [1, 0], "only the saved image");
        assert_eq!(starred(loser), [0]);
        let detail = store.job(winner).unwrap().unwrap();
        assert_eq!(detail.parent_job_id, Some(parent));
        let last = detail.events.last().unwrap();
        assert_eq!(
            last.detail.as_deref(),
            Some(format!("won a compare against jobs {loser}, {parent}").as_str())
        );
        assert_eq!(store.job(parent).unwrap().unwrap().parent_job_id, None);
        assert!(matches!(
            store.record_compare_winner(JobId(999), &[winner]),
            Err(StoreError::NoSuchJob(JobId(999)))
        ));
    }
}
