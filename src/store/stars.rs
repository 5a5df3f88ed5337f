//! Favourite images and the gallery's pages of saved images.
//!
//! A star belongs to one saved image (`images.starred`); a compare's winner stars its
//! job's images through the same column, so everything here sees winners too.

use std::path::PathBuf;

use crate::dashscope::JobSpec;

use super::db::{Dialect, ToValue, Value, params};
use super::{JobFilter, JobId, JobState, Store, StoreError, filter_sql, parse_spec, parse_state};

/// Which saved images a gallery shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GalleryQuery {
    /// The jobs whose images count (a tab's states and a prompt search).
    pub filter: JobFilter,
    /// Only this job's images.
    pub job: Option<JobId>,
    /// Only starred images.
    pub starred_only: bool,
}

/// One saved image with what a gallery tile says about it and what a fork needs.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryImage {
    pub job: JobId,
    pub index: u32,
    pub path: PathBuf,
    pub state: JobState,
    /// The job's spec as the user gave it (with the seed intake chose, if any).
    pub spec: JobSpec,
    pub starred: bool,
}

impl GalleryImage {
    /// The seed this image was made with: the service makes image `i` with `seed + i`.
    pub fn seed(&self) -> Option<u64> {
        image_seed(&self.spec, self.index)
    }
}

/// The seed image `index` of a job with `spec` was made with, if the job's seed is known.
pub fn image_seed(spec: &JobSpec, index: u32) -> Option<u64> {
    spec.seed.map(|seed| seed + u64::from(index))
}

impl Store {
    /// Stars or unstars one saved image; false if the job has no saved image `index`.
    pub fn set_starred(&self, job: JobId, index: u32, starred: bool) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE images SET starred = ?3 WHERE job_id = ?1 AND idx = ?2 AND path IS NOT NULL",
            params![job.0, index, starred],
        )?;
        Ok(changed == 1)
    }

    /// The indexes of a job's starred images, in order.
    pub fn starred_indexes(&self, job: JobId) -> Result<Vec<u32>, StoreError> {
        self.conn().query_map(
            "SELECT idx FROM images WHERE job_id = ?1 AND starred = 1 ORDER BY idx",
            params![job.0],
            |row| row.get(0),
        )
    }

    /// The jobs that have starred images, newest first.
    pub fn starred_jobs(&self) -> Result<Vec<JobId>, StoreError> {
        self.conn().query_map(
            "SELECT DISTINCT job_id FROM images WHERE starred = 1 ORDER BY job_id DESC",
            params![],
            |row| row.get(0).map(JobId),
        )
    }

    /// A window of the saved images `query` selects, newest job first and each job's
    /// images in order.
    pub fn gallery(
        &self,
        query: &GalleryQuery,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<GalleryImage>, StoreError> {
        let (where_sql, mut args) = gallery_sql(query, self.dialect());
        let sql = format!(
            "SELECT images.job_id, images.idx, images.path, jobs.state, jobs.spec, images.starred
             FROM images JOIN jobs ON jobs.id = images.job_id {where_sql}
             ORDER BY images.job_id DESC, images.idx LIMIT ? OFFSET ?"
        );
        args.push(limit.to_value());
        args.push(offset.to_value());
        self.conn().query_map(&sql, &args, |row| {
            let state: String = row.get(3)?;
            let spec: String = row.get(4)?;
            Ok(GalleryImage {
                job: JobId(row.get(0)?),
                index: row.get(1)?,
                path: PathBuf::from(row.get::<String>(2)?),
                state: parse_state(&state)?,
                spec: parse_spec(&spec)?,
                starred: row.get(5)?,
            })
        })
    }

    /// How many saved images `query` selects.
    pub fn gallery_count(&self, query: &GalleryQuery) -> Result<u64, StoreError> {
        let (where_sql, args) = gallery_sql(query, self.dialect());
        let sql =
            format!("SELECT COUNT(*) FROM images JOIN jobs ON jobs.id = images.job_id {where_sql}");
        self.conn().query_row(&sql, &args, |row| row.get(0))
    }
}

/// `WHERE ...` and its arguments: saved images only, then the job filter's clauses (its
/// columns are the jobs table's alone, so they read the same in the join).
fn gallery_sql(query: &GalleryQuery, dialect: Dialect) -> (String, Vec<Value>) {
    let (job_where, mut args) = filter_sql(&query.filter, dialect);
    let mut clauses = vec!["images.path IS NOT NULL".to_string()];
    if let Some(filter) = job_where.strip_prefix("WHERE ") {
        clauses.push(format!("({filter})"));
    }
    if let Some(job) = query.job {
        clauses.push("images.job_id = ?".into());
        args.push(Value::Int(job.0));
    }
    if query.starred_only {
        clauses.push("images.starred = 1".into());
    }
    (format!("WHERE {}", clauses.join(" AND ")), args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::Model;
    use crate::store::StateFilter;

    /// A store with three jobs of two saved images each (the second job's image 1 never
    /// saved), as the engine leaves them.
    fn store_with_images() -> (tempfile::TempDir, Store, Vec<JobId>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let specs: Vec<JobSpec> = ["a fox", "a boat", "a fox again"]
            .into_iter()
            .enumerate()
            .map(|(i, prompt)| {
                let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, prompt);
                spec.seed = Some(100 * i as u64);
                spec
            })
            .collect();
        let ids = store.enqueue_batch(&specs, None).unwrap();
        {
            let mut conn = store.conn();
            for (i, id) in ids.iter().enumerate() {
                for idx in 0..2 {
                    let path = (i != 1 || idx == 0).then(|| format!("/images/{}-{idx}.png", id.0));
                    conn.execute(
                        "INSERT INTO images (job_id, idx, path) VALUES (?1, ?2, ?3)",
                        params![id.0, idx, path],
                    )
                    .unwrap();
                }
            }
            conn.execute(
                "UPDATE jobs SET state = 'succeeded' WHERE id <> ?1",
                params![ids[1].0],
            )
            .unwrap();
        }
        (dir, store, ids)
    }

    fn shown(images: &[GalleryImage]) -> Vec<(i64, u32)> {
        images.iter().map(|i| (i.job.0, i.index)).collect()
    }

    #[test]
    fn the_gallery_pages_saved_images_newest_job_first_with_their_seeds() {
        let (_dir, store, ids) = store_with_images();
        let all = GalleryQuery::default();
        assert_eq!(
            store.gallery_count(&all).unwrap(),
            5,
            "the unsaved image is left out"
        );
        let page = store.gallery(&all, 1, 3).unwrap();
        assert_eq!(shown(&page), [(ids[2].0, 1), (ids[1].0, 0), (ids[0].0, 0)]);
        assert_eq!(page[0].seed(), Some(201), "image 1 of a job with seed 200");
        assert_eq!(page[0].state, JobState::Succeeded);
        assert_eq!(page[1].state, JobState::Queued);

        let foxes = GalleryQuery {
            filter: JobFilter {
                state: Some(StateFilter::Only(JobState::Succeeded)),
                search: Some("fox".into()),
                submitted_by: None,
            },
            ..GalleryQuery::default()
        };
        assert_eq!(store.gallery_count(&foxes).unwrap(), 4);
        let one_job = GalleryQuery {
            job: Some(ids[0]),
            ..GalleryQuery::default()
        };
        assert_eq!(
            shown(&store.gallery(&one_job, 0, 10).unwrap()),
            [(ids[0].0, 0), (ids[0].0, 1)]
        );
    }

    #[test]
    fn stars_mark_saved_images_only_and_the_starred_filter_finds_them() {
        let (_dir, store, ids) = store_with_images();
        assert!(store.set_starred(ids[0], 1, true).unwrap());
        assert!(store.set_starred(ids[2], 0, true).unwrap());
        assert!(
            !store.set_starred(ids[1], 1, true).unwrap(),
            "an image that was never saved cannot be starred"
        );
        assert!(!store.set_starred(JobId(999), 0, true).unwrap());
        assert_eq!(store.starred_indexes(ids[0]).unwrap(), [1]);
        assert_eq!(store.starred_jobs().unwrap(), [ids[2], ids[0]]);

        let starred = GalleryQuery {
            starred_only: true,
            ..GalleryQuery::default()
        };
        let page = store.gallery(&starred, 0, 10).unwrap();
        assert_eq!(shown(&page), [(ids[2].0, 0), (ids[0].0, 1)]);
        assert!(page.iter().all(|i| i.starred));

        assert!(store.set_starred(ids[2], 0, false).unwrap());
        assert_eq!(store.gallery_count(&starred).unwrap(), 1);
        assert_eq!(store.starred_jobs().unwrap(), [ids[0]]);
    }
}
