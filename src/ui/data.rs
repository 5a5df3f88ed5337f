//! The store side of the dashboard: a worker thread that owns a `Store` connection, fills
//! the view-models and carries out the user's commands. SQLite is never touched on the UI
//! task. It also watches for commits by other processes, so progress made by an engine
//! elsewhere shows up without any event from it: on PostgreSQL the server's notifications
//! wake it (`Store::watch_changes`, relayed by a thread of its own), on SQLite it polls
//! `Store::change_marker`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::thread;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedSender;

use crate::dashscope::{ImageRef, JobSpec, Timestamp};
use crate::intake::{self, Draft};
use crate::store::{
    CancelOutcome, ChangeWatcher, GalleryQuery, ImageFiles, JobDetail, JobFilter, JobId, JobState,
    JobSummary, PauseScope, QueueStep, StateCounts, StateFilter, Store, StoreError,
};

use super::event::AppEvent;
use super::gallery::{GalleryRequest, GalleryScope, GallerySnapshot, Tile};
use super::state::{ImageView, JobDetailView, JobRow, Tab, TabCounts};
use super::stats::StatsSource;
use super::studio::StudioEvent;
use super::update::{DataSnapshot, ListRequest, SubmitError};

/// How often the worker looks for commits by other processes on SQLite.
const CHANGE_POLL: Duration = Duration::from_millis(250);
/// On PostgreSQL notifications wake the worker; this slow poll of `change_marker` only
/// covers what a watcher reconnecting after a lost connection cannot have heard.
const FALLBACK_POLL: Duration = Duration::from_secs(5);
/// How long the relay waits for a notification before it looks whether the dashboard
/// is still there.
const RELAY_SLICE: Duration = Duration::from_millis(500);
/// Engines of a busy team commit many times a second: notifications closer together than
/// this make one reload, not a reload each.
const RELAY_COALESCE: Duration = Duration::from_millis(100);

/// Work for the data worker.
#[derive(Debug, Clone)]
pub enum DataJob {
    /// Load this window (and the counts, and the selected job).
    List(ListRequest),
    /// Load this window of the gallery, and again after every change; `None` when the
    /// gallery has closed.
    Gallery(Option<GalleryRequest>),
    Change(StoreChange),
    /// Read the `$` view's figures now and after every change (`Some`), or stop (`None`).
    WatchStats(Option<StatsSource>),
    /// Load these jobs for compare.
    Compare(Vec<JobId>),
    /// The server notified a commit (any process, any host): load again.
    StoreChanged,
}

/// A change the user asked for.
#[derive(Debug, Clone)]
pub enum StoreChange {
    Cancel(JobId),
    Retry(JobId),
    Delete(JobId),
    Pause,
    Resume,
    MoveInQueue(JobId, QueueStep),
    MoveToTop(JobId),
    /// A job, and the job it was made from, if any.
    Submit(Box<JobSpec>, Option<JobId>),
    /// A compare's winner: its images starred, the compare noted on it.
    RecordWinner {
        winner: JobId,
        others: Vec<JobId>,
    },
    /// A seed sweep: these jobs, each made from `parent`.
    Sweep {
        parent: JobId,
        specs: Vec<JobSpec>,
    },
    Star {
        job: JobId,
        index: u32,
        starred: bool,
    },
}

/// The handle the app keeps; dropping it stops the worker.
pub struct DataWorker {
    jobs: Sender<DataJob>,
    /// Never sent on: its drop tells the notification relay (if any) to stop, which lets
    /// go of its sender so that the worker stops too.
    _relay_stop: Option<Sender<()>>,
}

impl DataWorker {
    /// Opens the store (on the calling thread, so a bad path fails before the screen
    /// changes) and starts the worker thread; `files` finds the images a job is made from
    /// on this host (another host's from the store).
    pub fn start(
        store_path: &Path,
        files: ImageFiles,
        events: UnboundedSender<AppEvent>,
    ) -> Result<DataWorker, StoreError> {
        let store = Store::open(store_path)?;
        let spawn_failed = |e: std::io::Error| StoreError::Io {
            path: store_path.to_path_buf(),
            message: e.to_string(),
        };
        // Without notifications (SQLite, or a server that refused to listen) the worker
        // polls the change marker often instead.
        let watcher = store.watch_changes().unwrap_or_else(|err| {
            tracing::warn!("no change notifications, polling instead: {err}");
            None
        });
        let poll = if watcher.is_some() {
            FALLBACK_POLL
        } else {
            CHANGE_POLL
        };
        let (jobs, inbox) = channel();
        let relay_stop = match watcher {
            Some(watcher) => {
                let (stop, stopped) = channel();
                let wake = jobs.clone();
                thread::Builder::new()
                    .name("wandash-ui-changes".into())
                    .spawn(move || relay(&watcher, &wake, &stopped))
                    .map_err(spawn_failed)?;
                Some(stop)
            }
            None => None,
        };
        thread::Builder::new()
            .name("wandash-ui-data".into())
            .spawn(move || serve(store, &files, inbox, events, poll))
            .map_err(spawn_failed)?;
        Ok(DataWorker {
            jobs,
            _relay_stop: relay_stop,
        })
    }

    pub fn send(&self, job: DataJob) {
        // The worker only stops when this handle drops, so a failed send cannot happen
        // while the app runs; there is nothing to do about it at shutdown.
        let _ = self.jobs.send(job);
    }
}

/// Passes the watcher's wakes on to the worker, until the dashboard's handle drops.
fn relay(watcher: &ChangeWatcher, wake: &Sender<DataJob>, stopped: &Receiver<()>) {
    loop {
        let changed = watcher.wait(RELAY_SLICE);
        if let Err(TryRecvError::Disconnected) = stopped.try_recv() {
            return;
        }
        if changed {
            if wake.send(DataJob::StoreChanged).is_err() {
                return;
            }
            thread::sleep(RELAY_COALESCE);
        }
    }
}

fn serve(
    store: Store,
    files: &ImageFiles,
    inbox: Receiver<DataJob>,
    events: UnboundedSender<AppEvent>,
    poll: Duration,
) {
    let mut last_request: Option<ListRequest> = None;
    let mut stats: Option<StatsSource> = None;
    let mut last_gallery: Option<GalleryRequest> = None;
    let mut marker = store.change_marker().ok();
    loop {
        let first = match inbox.recv_timeout(poll) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Take everything waiting: commands run in order, only the newest list request
        // is answered (older ones are for windows the user has scrolled past).
        let mut pending: Vec<DataJob> = first.into_iter().collect();
        pending.extend(inbox.try_iter());
        let (mut wants_list, mut wants_stats, mut wants_gallery) = (false, false, false);
        for job in pending {
            match job {
                DataJob::WatchStats(source) => {
                    wants_stats = source.is_some();
                    stats = source;
                }
                DataJob::List(request) => {
                    last_request = Some(request);
                    wants_list = true;
                }
                DataJob::Compare(ids) => {
                    let jobs = ids
                        .iter()
                        .map(|id| match store.job(*id) {
                            Ok(Some(detail)) => store
                                .starred_indexes(*id)
                                .map(|starred| detail_view(detail, &starred))
                                .map_err(|err| err.to_string()),
                            Ok(None) => Err(format!("job {id} no longer exists")),
                            Err(err) => Err(err.to_string()),
                        })
                        .collect();
                    if events
                        .send(AppEvent::Studio(StudioEvent::CompareLoaded(jobs)))
                        .is_err()
                    {
                        return;
                    }
                }
                DataJob::Gallery(request) => {
                    wants_gallery = request.is_some();
                    last_gallery = request;
                }
                DataJob::StoreChanged => {
                    wants_list = true;
                    wants_gallery = true;
                }
                DataJob::Change(change) => {
                    let reply = apply(&store, files, change);
                    wants_list = true;
                    wants_gallery = true;
                    if events.send(reply).is_err() {
                        return;
                    }
                }
            }
        }
        let now_marker = store.change_marker().ok();
        if now_marker != marker {
            marker = now_marker;
            wants_list = true;
            wants_gallery = true;
        }
        if let (true, Some(request)) = (wants_gallery, &last_gallery) {
            let event = match gallery_snapshot(&store, request) {
                Ok(data) => AppEvent::Gallery(Box::new(data)),
                Err(err) => AppEvent::DataFailed(err.to_string()),
            };
            if events.send(event).is_err() {
                return;
            }
        }
        if let (true, Some(source)) = (wants_list || wants_stats, &stats) {
            let figures = source.load(&store).map(Box::new).map_err(|e| e.to_string());
            if events.send(AppEvent::Stats(figures)).is_err() {
                return;
            }
        }
        if let (true, Some(request)) = (wants_list, &last_request) {
            let event = match snapshot(&store, request) {
                Ok(data) => AppEvent::Data(Box::new(data)),
                Err(err) => AppEvent::DataFailed(err.to_string()),
            };
            if events.send(event).is_err() {
                return;
            }
        }
    }
}

fn apply(store: &Store, files: &ImageFiles, change: StoreChange) -> AppEvent {
    let done = |result: Result<String, StoreError>| {
        AppEvent::ChangeDone(result.map_err(|e| e.to_string()))
    };
    match change {
        StoreChange::Cancel(id) => done(store.request_cancel(id).map(|outcome| match outcome {
            CancelOutcome::Cancelled => format!("job {id} cancelled"),
            CancelOutcome::Requested => format!("cancel of job {id} requested"),
            CancelOutcome::AlreadyEnded(state) => format!("job {id} already {state}"),
        })),
        StoreChange::Retry(id) => done(store.retry(id).map(|()| format!("job {id} queued again"))),
        StoreChange::Delete(id) => {
            done(
                store
                    .delete(id)
                    .map(|deleted| match deleted.images_left.first() {
                        None => format!("job {id} deleted with {}", deleted.files_removed()),
                        Some(left) => format!(
                            "job {id} deleted; cannot remove {}",
                            crate::text::sanitize(left)
                        ),
                    }),
            )
        }
        StoreChange::Pause => done(store.pause(PauseScope::All).map(|_| {
            "queue paused: no new job is sent (p resumes); jobs at the service finish".to_string()
        })),
        StoreChange::Resume => done(
            store
                .resume(PauseScope::All)
                .map(|_| "queue resumed".to_string()),
        ),
        StoreChange::MoveInQueue(id, step) => done(store.move_in_queue(id, step).map(|moved| {
            let way = match step {
                QueueStep::Earlier => "up (sooner)",
                QueueStep::Later => "down (later)",
            };
            match moved {
                true => format!("job {id} moved {way}"),
                false => format!("job {id} cannot move {way}: it is at the end of the queue"),
            }
        })),
        StoreChange::MoveToTop(id) => done(
            store
                .move_to_top(id)
                .map(|()| format!("job {id} goes next")),
        ),
        StoreChange::Submit(spec, parent) => {
            AppEvent::Submitted(submit(store, files, *spec, parent))
        }
        StoreChange::RecordWinner { winner, others } => done(
            store
                .record_compare_winner(winner, &others)
                .map(|starred| format!("job {winner} won; {starred} image(s) starred")),
        ),
        StoreChange::Sweep { parent, specs } => AppEvent::ChangeDone(sweep(store, parent, specs)),
        StoreChange::Star {
            job,
            index,
            starred,
        } => done(
            store
                .set_starred(job, index, starred)
                .map(|found| match (found, starred) {
                    (false, _) => format!("job {job} has no saved image {}", index + 1),
                    (true, true) => format!("image {} of job {job} starred", index + 1),
                    (true, false) => format!("image {} of job {job} unstarred", index + 1),
                }),
        ),
    }
}

/// The sweep's jobs through `intake`, all queued or none; the message for the toast.
fn sweep(store: &Store, parent: JobId, specs: Vec<JobSpec>) -> Result<String, String> {
    let drafts = specs
        .into_iter()
        .map(|spec| Draft::in_working_dir(spec).with_parent(Some(parent)))
        .collect();
    let checked = intake::check_all(drafts).map_err(|refused| {
        let first = refused
            .first()
            .and_then(|(_, problems)| problems.first())
            .map(ToString::to_string)
            .unwrap_or_default();
        format!("seed sweep not queued: {first}")
    })?;
    let ids = intake::enqueue_all(store, checked, None).map_err(|e| e.to_string())?;
    match (ids.first(), ids.last()) {
        (Some(first), Some(last)) => Ok(format!(
            "seed sweep of job {parent}: {} jobs queued ({first}..{last})",
            ids.len()
        )),
        _ => Ok("seed sweep: nothing queued".to_string()),
    }
}

/// The editor's job through `intake`: every rule again and the local files (read here,
/// on the worker, never on the UI task), then the enqueue. Paths typed in the editor are
/// relative to the dashboard's working directory.
fn submit(
    store: &Store,
    files: &ImageFiles,
    mut spec: JobSpec,
    parent: Option<JobId>,
) -> Result<JobId, SubmitError> {
    inputs_here(&mut spec, |recorded| {
        // A fork keeps its parent's input files: the bytes the parent was queued with (on
        // a team store perhaps from another host), before whatever file is at that path
        // here.
        if let Some(parent) = parent {
            match files.input(parent, recorded) {
                Ok(Some(here)) => return Some(here),
                Ok(None) => {}
                Err(why) => tracing::info!(
                    "job {parent}'s input {} not to be had: {why}",
                    recorded.display()
                ),
            }
        }
        match files.local(recorded) {
            Ok(here) => Some(here),
            Err(why) => {
                tracing::info!("input image {} not here: {why}", recorded.display());
                None
            }
        }
    });
    let draft = Draft::in_working_dir(spec).with_parent(parent);
    let checked = intake::check(draft).map_err(SubmitError::Invalid)?;
    intake::enqueue(store, checked).map_err(|e| SubmitError::Failed(e.to_string()))
}

/// Points the job's local image inputs at files on this host. The painter's masked edit
/// and `E` take a job's image as input, recorded where the engine that ran the job saved
/// it, and a fork takes its parent's input files, recorded where they were queued: on a
/// PostgreSQL store either may be another host's disk, and `here` (the store's
/// `input_on_disk` and `image_on_disk`) gives this host's copy. A path `here` cannot place stays as it was,
/// for intake to name with its field.
fn inputs_here(spec: &mut JobSpec, here: impl Fn(&Path) -> Option<PathBuf>) {
    let images = spec
        .base_image
        .iter_mut()
        .chain(spec.mask_image.iter_mut())
        .chain(spec.images.iter_mut());
    for image in images {
        if let ImageRef::File(path) = image
            && let Some(found) = here(path)
        {
            *path = found;
        }
    }
}

/// Loads what one screen needs: counts, the visible window and the selected job.
pub fn snapshot(store: &Store, request: &ListRequest) -> Result<DataSnapshot, StoreError> {
    let everyones = store.counts_by_state()?;
    let tabs = match request.mine {
        true => store.counts_by_state_submitted_by(store.submitter())?,
        false => everyones,
    };
    let filter = JobFilter {
        state: tab_filter(request.tab),
        search: Some(request.search.trim().to_string()).filter(|s| !s.is_empty()),
        submitted_by: request.mine.then(|| store.submitter().to_owned()),
    };
    let total = store.count(&filter)?;
    let summaries = store.list(&filter, request.offset, request.limit)?;
    let selected = request
        .selected
        .checked_sub(request.offset)
        .and_then(|i| summaries.get(i as usize));
    let detail = match selected {
        Some(summary) => match store.job(summary.id)? {
            Some(detail) => Some(detail_view(detail, &store.starred_indexes(summary.id)?)),
            None => None,
        },
        None => None,
    };
    Ok(DataSnapshot {
        request: request.clone(),
        counts: tab_counts(&tabs),
        images_today: store.images_today()?,
        spend_today_cny: store.spend_today()?,
        pauses: store.pauses()?,
        queue: tab_counts(&everyones),
        total,
        rows: summaries.iter().map(row_view).collect(),
        detail,
    })
}

/// Loads the gallery's window: the images of the request's scope, and how many there are.
pub fn gallery_snapshot(
    store: &Store,
    request: &GalleryRequest,
) -> Result<GallerySnapshot, StoreError> {
    let query = GalleryQuery {
        filter: match request.scope {
            GalleryScope::Tab => JobFilter {
                state: tab_filter(request.tab),
                search: Some(request.search.trim().to_string()).filter(|s| !s.is_empty()),
                submitted_by: request.mine.then(|| store.submitter().to_owned()),
            },
            GalleryScope::Job(_) => JobFilter::default(),
        },
        job: match request.scope {
            GalleryScope::Tab => None,
            GalleryScope::Job(id) => Some(id),
        },
        starred_only: request.starred_only,
    };
    let tiles = store
        .gallery(&query, request.offset, request.limit)?
        .into_iter()
        .map(|image| Tile {
            job: image.job,
            index: image.index,
            path: image.path,
            state: image.state,
            spec: image.spec,
            starred: image.starred,
        })
        .collect();
    Ok(GallerySnapshot {
        request: request.clone(),
        total: store.gallery_count(&query)?,
        tiles,
    })
}

/// Which store filter each tab shows.
pub fn tab_filter(tab: Tab) -> Option<StateFilter> {
    match tab {
        Tab::All => None,
        Tab::Queued => Some(StateFilter::Only(JobState::Queued)),
        Tab::Active => Some(StateFilter::Active),
        Tab::Succeeded => Some(StateFilter::Only(JobState::Succeeded)),
        Tab::Failed => Some(StateFilter::Problems),
        Tab::Cancelled => Some(StateFilter::Only(JobState::Cancelled)),
    }
}

fn tab_counts(counts: &StateCounts) -> TabCounts {
    let sum = |filter: Option<StateFilter>| match filter {
        None => counts.total(),
        Some(filter) => filter.states().into_iter().map(|s| counts.get(s)).sum(),
    };
    TabCounts(Tab::ALL.map(|tab| sum(tab_filter(tab))))
}

/// A store time for the views (the epoch for a time no real store holds).
fn at(time: Timestamp) -> OffsetDateTime {
    time.to_datetime().unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn row_view(summary: &JobSummary) -> JobRow {
    JobRow {
        id: summary.id,
        state: summary.state(),
        model: summary.model,
        prompt: crate::text::sanitize(&summary.prompt),
        created_at: at(summary.created_at),
        images_ok: summary.images_ok,
        images_expected: summary.images_expected,
    }
}

/// The view of a job whose images `starred` (indexes) are favourites.
fn detail_view(detail: JobDetail, starred: &[u32]) -> JobDetailView {
    let s = &detail.summary;
    let status = &s.status;
    JobDetailView {
        id: s.id,
        state: s.state(),
        task_id: status.task_id().map(str::to_owned),
        created_at: at(s.created_at),
        submitted_at: status.submitted_at().map(at),
        scheduled_at: status.task().and_then(|t| t.scheduled_at).map(at),
        ended_at: status.ended_at().map(at),
        attempts: s.attempts,
        error: s.error().map(ToString::to_string),
        actual_prompt: detail.actual_prompt.clone(),
        cost_cny: s.cost_cny,
        parent: detail.parent_job_id,
        submitted_by: s.submitted_by.as_deref().map(crate::text::sanitize),
        images: detail
            .images
            .iter()
            .map(|image| ImageView {
                index: image.index,
                path: image.path.clone(),
                width: image.width,
                height: image.height,
                error: match (&image.error_code, &image.error_message) {
                    (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                    (code, message) => code.clone().or_else(|| message.clone()),
                },
                starred: starred.contains(&image.index),
            })
            .collect(),
        spec: detail.spec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::Model;
    use crate::store::ImageCache;
    use crate::ui::draw::{draw, frame_layout};
    use crate::ui::keys::KeyMap;
    use crate::ui::state::{AppState, Header};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use ratatui::layout::Rect;

    #[test]
    fn inputs_here_points_local_inputs_at_this_hosts_files_and_leaves_the_rest() {
        let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "make it red");
        spec.base_image = Some(ImageRef::File("/bob/images/3/0.png".into()));
        spec.mask_image = Some(ImageRef::File("/alice/masks/job-3-1.png".into()));
        spec.images = vec![
            ImageRef::File("/bob/images/3/0.png".into()),
            ImageRef::Url("https://example.com/a.png".into()),
        ];
        inputs_here(&mut spec, |path| {
            (path == Path::new("/bob/images/3/0.png")).then(|| "/alice/cache/ab.png".into())
        });
        let copy = ImageRef::File("/alice/cache/ab.png".into());
        assert_eq!(spec.base_image, Some(copy.clone()));
        assert_eq!(
            spec.mask_image,
            Some(ImageRef::File("/alice/masks/job-3-1.png".into()))
        );
        assert_eq!(
            spec.images,
            [copy, ImageRef::Url("https://example.com/a.png".into())]
        );
    }

    /// The painter's masked edit of an image another host's engine saved, on a store on
    /// PostgreSQL: the submit reads the base from the store into this host's cache.
    #[test]
    fn a_masked_edit_of_another_hosts_image_is_sent_with_this_hosts_copy() {
        use crate::store::tests::test_postgres;
        use crate::store::{ImageRecord, sha256_hex};
        use crate::ui::painter::inpainting_editor;
        use crate::ui::studio::SavedMask;
        let Some(server) = test_postgres::server() else {
            return;
        };
        let url = PathBuf::from(server.fresh_database());
        let store = Store::open(&url).unwrap().into_engine();
        let job = store
            .enqueue(&JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse"))
            .unwrap();
        let png = |colour: u8| {
            let mut bytes = Vec::new();
            image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
                512,
                512,
                image::Luma([colour]),
            ))
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
            bytes
        };
        let dir = tempfile::tempdir().unwrap();
        let recorded = dir.path().join(format!("other-host/images/{job}/0.png"));
        let base = png(90);
        let sha256 = sha256_hex(&base);
        store.put_image_bytes(&sha256, &base, 1 << 20).unwrap();
        let image = ImageRecord {
            index: 0,
            path: Some(recorded.clone()),
            sha256: Some(sha256),
            bytes: Some(base.len() as u64),
            ..Default::default()
        };
        store.record_image(job, &image).unwrap();
        let mask = dir.path().join("this-host/masks/job-1-1.png");
        std::fs::create_dir_all(mask.parent().unwrap()).unwrap();
        std::fs::write(&mask, png(255)).unwrap();
        let (mut spec, _) = inpainting_editor(&SavedMask {
            job,
            base: recorded.clone(),
            path: mask,
        })
        .build();
        spec.prompt = "make it red".into();
        queued_with_this_hosts_copy(&store, &url, dir.path(), spec, job, &base);
    }

    /// A fork of a job queued on another host with a local input file sends the bytes
    /// that job was queued with, though this host has no file at that path.
    #[test]
    fn a_fork_of_a_job_queued_on_another_host_sends_the_input_it_was_queued_with() {
        use crate::dashscope::EditFunction;
        use crate::store::tests::test_postgres;
        let Some(server) = test_postgres::server() else {
            return;
        };
        let url = PathBuf::from(server.fresh_database());
        let store = Store::open(&url).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("other-host/cat.png");
        std::fs::create_dir_all(base.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(600, 600, image::Luma([90]))
            .save(&base)
            .unwrap();
        let bytes = std::fs::read(&base).unwrap();
        let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "colour the cat");
        spec.function = Some(EditFunction::Colorization);
        spec.base_image = Some(ImageRef::File(base.clone()));
        let checked = intake::check(Draft::in_working_dir(spec.clone())).unwrap();
        let job = intake::enqueue(&store, checked).unwrap();
        // This host has no file at that path.
        std::fs::remove_file(&base).unwrap();
        queued_with_this_hosts_copy(&store, &url, dir.path(), spec, job, &bytes);
    }

    /// `spec`, made from job `parent` whose base image is on another host: without the
    /// store's copy it is refused, naming `base_image`; with the store (at `url`) it is
    /// queued from `parent`, its base this host's copy under `dir`, holding `bytes`.
    fn queued_with_this_hosts_copy(
        store: &Store,
        url: &Path,
        dir: &Path,
        spec: JobSpec,
        parent: JobId,
        bytes: &[u8],
    ) {
        let Err(SubmitError::Invalid(refused)) =
            submit(store, &ImageFiles::default(), spec.clone(), Some(parent))
        else {
            panic!("a base image not on this disk was taken without the store's copy");
        };
        assert!(
            refused.iter().any(|e| e.field == "base_image"),
            "{refused:?}"
        );

        let cache = dir.join("this-host/cache");
        let files =
            ImageFiles::for_store(url, ImageCache::at(cache.clone(), 1024 * 1024 * 1024)).unwrap();
        let queued = submit(store, &files, spec, Some(parent)).unwrap();
        let queued = store.job(queued).unwrap().unwrap();
        let Some(ImageRef::File(sent)) = &queued.spec.base_image else {
            panic!("{:?}", queued.spec.base_image);
        };
        assert!(sent.starts_with(&cache), "{}", sent.display());
        assert_eq!(std::fs::read(sent).unwrap(), bytes);
        assert_eq!(queued.parent_job_id, Some(parent));
    }

    /// The tab line of the dashboard drawn from `state`.
    fn tab_line(state: &AppState) -> String {
        let area = state.layout.area;
        let mut terminal = Terminal::new(TestBackend::new(area.width, area.height)).unwrap();
        terminal
            .draw(|frame| {
                draw(state, &KeyMap::default(), frame);
            })
            .unwrap();
        let screen = terminal.backend().to_string();
        screen
            .lines()
            .find(|line| line.contains(" all "))
            .unwrap_or_default()
            .trim_matches(|c: char| c == '"' || c.is_whitespace())
            .to_string()
    }

    /// Under "mine" the tabs count one's own jobs, as the list does, while the batch
    /// progress stays the whole queue's.
    #[test]
    fn under_mine_the_tabs_count_ones_own_jobs_and_the_queue_stays_everyones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wandash.db");
        let alice = Store::open_as(&path, "alice@box1");
        let bob = Store::open_as(&path, "bob@box2");
        let spec = |prompt: &str| JobSpec::new(Model::Wanx21T2iTurbo, prompt);
        let hers = alice
            .enqueue_batch(&[spec("a red fox"), spec("a blue fox")], None)
            .unwrap();
        alice.request_cancel(hers[0]).unwrap();
        bob.enqueue_batch(&[spec("an owl"), spec("a crow"), spec("a wren")], None)
            .unwrap();

        let mut state = AppState::new(
            frame_layout(Rect::new(0, 0, 120, 30)),
            OffsetDateTime::UNIX_EPOCH,
            Header::default(),
        );
        let everyones = snapshot(&alice, &state.list_request()).unwrap();
        state.apply_data(everyones.clone());
        assert_eq!(
            tab_line(&state),
            "1 all 5 2 queued 4 3 active 4 4 succeeded 0 5 failed 0 6 cancelled 1"
        );

        let o = Event::Key(KeyEvent::new(KeyCode::Char('o'), KeyModifiers::NONE));
        state.handle(&KeyMap::default(), &o);
        assert!(state.mine);
        let mine = snapshot(&alice, &state.list_request()).unwrap();
        assert_eq!(mine.total, 2);
        assert_eq!(mine.queue, everyones.queue);
        assert_eq!(mine.remaining(), 4);
        state.apply_data(mine);
        assert_eq!(
            tab_line(&state),
            "1 all 2 2 queued 1 3 active 1 4 succeeded 0 5 failed 0 6 cancelled 1"
        );
    }
}
