//! Following a task: polling it on a schedule aimed at its expected end, cancelling it
//! when asked, and ending a job whose task the service no longer has.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::EngineConfig;
use super::answer_failure::{AfterFailedPoll, after_failed_poll, is_wrong_answer};
use super::ctx::{Ctx, Report, Slot, Tracked};
use super::download::fetch_images;
use super::limits::Backoff;
use crate::dashscope::{
    ClientError, ErrorAction, Model, TaskInfo, TaskStatus, Timestamp, classify,
};
use crate::store::{Ending, ErrorKind, ImageRecord, JobError, JobId, JobState, StoreError};

fn expired_error() -> JobError {
    JobError::new(
        ErrorKind::Expired,
        "the service keeps tasks and their images for 24 hours; this one's results can no longer be fetched",
        None,
    )
}

/// Follows a task until it ends, then fetches its images.
pub(crate) async fn track(ctx: Arc<Ctx>, job: Tracked, mut slot: Slot) {
    let id = job.id;
    if let Err(e) = follow(&ctx, &job, &mut slot).await {
        tracing::error!(job = %id, "store error while following the task: {e}");
    }
}

async fn follow(ctx: &Ctx, job: &Tracked, slot: &mut Slot) -> Result<(), StoreError> {
    let id = job.id;
    // Measured from the create's answer (also across restarts), not from when following began.
    let age = || Timestamp::now().since(job.submitted_at);
    let mut failures = 0u32;
    let mut wrong_answers = 0u32;
    let mut last_status: Option<TaskStatus> = None;
    let mut cancel_sent = false;
    let schedule = PollSchedule::of(&ctx.config);
    loop {
        if Timestamp::now() > ctx.results_expire_at(job.submitted_at) {
            slot.release();
            return expire(ctx, id, job.model).await;
        }
        if !cancel_sent && ctx.db(move |s| s.is_cancel_requested(id)).await? {
            cancel_sent = cancel(ctx, job).await?;
        }
        let expected = ctx.durations.expected(job.model);
        tokio::time::sleep(expected.next_poll(&schedule, age(), failures, fastrand::f64())).await;
        ctx.query_token().await;
        let info = match ctx.client.fetch(&job.task_id).await {
            Ok(info) => info,
            Err(e) => {
                failures += 1;
                wrong_answers = if is_wrong_answer(&e) {
                    wrong_answers + 1
                } else {
                    0
                };
                let max_attempts = ctx.config.max_attempts;
                match after_failed_poll(&e, wrong_answers, max_attempts) {
                    AfterFailedPoll::StopAll => {
                        ctx.report(Report::StopAll(e.to_string()));
                        return Ok(());
                    }
                    AfterFailedPoll::GiveUp => {
                        slot.release();
                        return unfollowable(ctx, job, &e, wrong_answers).await;
                    }
                    AfterFailedPoll::Retry => {
                        tracing::warn!(job = %id, task = %job.task_id, failures, "poll failed: {e}");
                        let why = if wrong_answers > 0 {
                            Some(format!(
                                "polling task {}: {e}; try {wrong_answers} of {max_attempts}",
                                job.task_id
                            ))
                        } else {
                            // Told once per run of failures: an outage is waited out.
                            (failures == 1).then(|| {
                                format!(
                                    "polling task {} failed ({e}); polling again with backoff",
                                    job.task_id
                                )
                            })
                        };
                        if let Some(why) = why {
                            let note = JobError::new(
                                ErrorKind::of_client(&e),
                                why,
                                Some(ErrorAction::RetryLater),
                            );
                            ctx.retrying(id, note).await?;
                        }
                        continue;
                    }
                }
            }
        };
        failures = 0;
        wrong_answers = 0;
        // UNKNOWN is the service having forgotten the task, not a state of it: the last
        // status seen stays recorded, for `expire` to know whether it had SUCCEEDED.
        if last_status != Some(info.status) && info.status != TaskStatus::Unknown {
            let (status, scheduled) = (
                info.status,
                info.scheduled_time
                    .as_deref()
                    .and_then(Timestamp::parse_service),
            );
            ctx.db(move |s| s.update_task_status(id, status, scheduled))
                .await?;
            if last_status.is_some() || status != TaskStatus::Pending {
                ctx.changed(
                    id,
                    if status == TaskStatus::Pending {
                        JobState::Submitted
                    } else {
                        JobState::Running
                    },
                );
            }
            last_status = Some(info.status);
        }
        let ended = match info.status {
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Suspended => continue,
            TaskStatus::Succeeded => {
                slot.release();
                ctx.learn_duration(job.model, service_duration(&info).unwrap_or_else(age))
                    .await;
                return fetch_images(ctx, job, &info).await;
            }
            TaskStatus::Failed => {
                let kind = info
                    .code
                    .clone()
                    .map_or(ErrorKind::TaskFailed, ErrorKind::Service);
                let action = classify(0, kind.code());
                let message = info
                    .message
                    .clone()
                    .unwrap_or_else(|| "the service reports the task failed".into());
                Ending::Failed(JobError::new(kind, message, Some(action)))
            }
            TaskStatus::Canceled => Ending::Cancelled,
            TaskStatus::Unknown => {
                slot.release();
                return expire(ctx, id, job.model).await;
            }
        };
        slot.release();
        let state = ended.state();
        ctx.db(move |s| s.end_job(id, ended)).await?;
        ctx.changed(id, state);
        return Ok(());
    }
}

/// Ends a job whose task cannot be followed (the service keeps answering its polls with
/// something wrong, or its id cannot be polled): needs_attention, since the task may
/// exist and even succeed at the service.
async fn unfollowable(
    ctx: &Ctx,
    job: &Tracked,
    error: &ClientError,
    wrong_answers: u32,
) -> Result<(), StoreError> {
    let id = job.id;
    let note = JobError::new(
        ErrorKind::of_client(error),
        format!(
            "stopped following task {} ({wrong_answers} wrong answers in a row): {error}; the task may still exist at the service: check it there, then retry or delete the job",
            crate::text::sanitize(&job.task_id)
        ),
        None,
    );
    tracing::warn!(job = %id, "{}", note.message);
    ctx.db(move |s| s.end_job(id, Ending::NeedsAttention(note)))
        .await?;
    ctx.changed(id, JobState::NeedsAttention);
    Ok(())
}

/// Ends a job whose task the service no longer has (it reads UNKNOWN, or is older than
/// the service keeps tasks). Images already saved stay the job's. When the task had been
/// seen SUCCEEDED (the engine stopped before fetching everything), each image slot without
/// a record is recorded as expired and the job ends as its downloads would have: succeeded
/// with what was saved (so saved images count and are priced), otherwise expired. Without
/// this, a job with saved images ended expired with none counted.
pub(crate) async fn expire(ctx: &Ctx, id: JobId, model: Model) -> Result<(), StoreError> {
    let Some(job) = ctx.db(move |s| s.job_brief(id)).await? else {
        return Ok(());
    };
    if job.summary.status.task_status() != Some(TaskStatus::Succeeded) {
        ctx.db(move |s| s.end_job(id, Ending::Expired(expired_error())))
            .await?;
        ctx.changed(id, JobState::Expired);
        return Ok(());
    }
    let recorded: HashSet<u32> = job.images.iter().map(|i| i.index).collect();
    for index in (0..job.summary.images_expected).filter(|i| !recorded.contains(i)) {
        let record = ImageRecord {
            index,
            error_code: Some(ErrorKind::Expired.code().into()),
            error_message: Some(format!(
                "result image {index} expired at the service before it was downloaded"
            )),
            ..Default::default()
        };
        ctx.db(move |s| s.record_image(id, &record)).await?;
    }
    let price = ctx.config.price_for(model);
    let actual_prompt = job.actual_prompt.clone();
    let state = ctx
        .db(move |s| s.finish_downloads(id, price, actual_prompt.as_deref()))
        .await?;
    if let Some(state) = state {
        ctx.changed(id, state);
    }
    Ok(())
}

/// Asks the service to cancel; only a PENDING task can be, a running one is left running
/// and the refusal noted. Returns whether the service accepted.
async fn cancel(ctx: &Ctx, job: &Tracked) -> Result<bool, StoreError> {
    let id = job.id;
    ctx.query_token().await;
    match ctx.client.cancel(&job.task_id).await {
        // The next poll sees CANCELED and ends the job.
        Ok(()) => {
            tracing::info!(job = %id, task = %job.task_id, "task cancelled");
            Ok(true)
        }
        Err(ClientError::Api { code, message, .. }) if code == "UnsupportedOperation" => {
            ctx.db(move |s| s.note_cancel_refused(id, &message)).await?;
            Ok(false)
        }
        Err(e) => {
            tracing::warn!(job = %id, "cancel failed, will ask again: {e}");
            Ok(false)
        }
    }
}

/// When to poll a task next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PollSchedule {
    /// The least time between two polls of a task, except the aimed poll (below).
    pub min: Duration,
    /// The most time between two polls of a task that answers.
    pub max: Duration,
    /// After failed polls.
    pub backoff: Backoff,
}

impl PollSchedule {
    pub fn of(config: &EngineConfig) -> Self {
        PollSchedule {
            min: config.poll_min,
            max: config.poll_max,
            backoff: Backoff::of(config),
        }
    }

    /// The wait before the next poll of a task `age` old (counted from the create's
    /// answer) that usually takes `expected`, after `failures` polls in a row failed.
    ///
    /// Polls sparsely while the task is young, halving the distance to the expected end
    /// so an early end is seen soon, then aims one poll just past the expected end, where
    /// most tasks finish; after that every `expected / 10`. Within [min, max], except the
    /// aimed poll, which may come sooner than min: it is one query per task, and it
    /// decides how soon the task's slot is reused. After failures it backs off (`jitter`
    /// in [0, 1) picks where in the backoff's range), never sooner than min.
    pub fn next_poll(
        &self,
        expected: Duration,
        age: Duration,
        failures: u32,
        jitter: f64,
    ) -> Duration {
        let (min, max) = (self.min, self.max.max(self.min));
        if failures > 0 {
            return self.backoff.delay(failures, jitter).max(min);
        }
        match expected.checked_sub(age) {
            Some(remaining) if remaining > 2 * min => (remaining / 2).min(max),
            Some(remaining) if !remaining.is_zero() => (remaining + PAST_EXPECTED_END).min(max),
            _ => (expected / 10).clamp(min, max),
        }
    }
}

/// How far past the expected end the aimed poll lands: enough for our clock, which starts
/// when the create is answered, to be behind the service's.
const PAST_EXPECTED_END: Duration = Duration::from_millis(10);

/// How long the service says the task ran (its own submit and end times), so that what
/// the engine learns does not include its own polling delay.
fn service_duration(info: &TaskInfo) -> Option<Duration> {
    let submitted = Timestamp::parse_service(info.submit_time.as_deref()?)?;
    let ended = Timestamp::parse_service(info.end_time.as_deref()?)?;
    (ended >= submitted).then(|| ended.since(submitted))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::engine) const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    pub(in crate::engine) const fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// The defaults: polls 1 to 5 s apart, backoff from 1 s up to a minute.
    pub(in crate::engine) fn schedule() -> PollSchedule {
        PollSchedule {
            min: secs(1),
            max: secs(5),
            backoff: Backoff {
                base: secs(1),
                cap: secs(60),
            },
        }
    }

    /// The next poll of a task that answers, whatever the jitter.
    fn next(expected: Duration, age: Duration) -> Duration {
        let at_least = schedule().next_poll(expected, age, 0, 0.0);
        assert_eq!(at_least, schedule().next_poll(expected, age, 0, 0.99));
        at_least
    }

    #[test]
    fn a_young_task_is_polled_at_half_the_distance_to_its_expected_end_at_most_max() {
        assert_eq!(next(secs(20), secs(0)), secs(5), "capped at max");
        assert_eq!(next(secs(20), secs(14)), secs(3));
        assert_eq!(next(secs(20), ms(17_500)), ms(1_250));
    }

    #[test]
    fn one_poll_is_aimed_just_past_the_expected_end_even_sooner_than_min() {
        assert_eq!(next(secs(20), ms(18_500)), ms(1_510));
        assert_eq!(
            next(secs(20), ms(19_995)),
            ms(15),
            "the aimed poll may come sooner than min"
        );
    }

    #[test]
    fn past_the_expected_end_a_task_is_polled_every_tenth_of_it_within_min_and_max() {
        assert_eq!(next(secs(20), secs(20)), secs(2));
        assert_eq!(next(secs(20), secs(300)), secs(2));
        assert_eq!(next(secs(100), secs(100)), secs(5), "at most max");
        assert_eq!(next(secs(3), secs(4)), secs(1), "at least min");
    }

    #[test]
    fn polls_from_the_create_land_one_just_past_the_expected_end() {
        let expected = secs(10);
        let mut age = Duration::ZERO;
        let mut polls = Vec::new();
        while age <= expected {
            age += next(expected, age);
            polls.push(age);
        }
        assert_eq!(polls, [secs(5), ms(7_500), ms(8_750), ms(10_010)]);
    }

    #[test]
    fn failed_polls_back_off_never_sooner_than_min_nor_capped_by_max() {
        let s = schedule();
        let expected = secs(20);
        assert_eq!(
            s.next_poll(expected, secs(0), 1, 0.0),
            secs(1),
            "at least min"
        );
        assert_eq!(s.next_poll(expected, secs(0), 2, 0.5), ms(1_500));
        assert_eq!(s.next_poll(expected, secs(19), 3, 0.0), secs(2));
        assert_eq!(s.next_poll(expected, secs(19), 4, 0.0), secs(4));
        assert_eq!(
            s.next_poll(expected, secs(19), 20, 0.0),
            secs(30),
            "the backoff's cap, not the poll max"
        );
    }

    #[test]
    fn a_max_below_min_is_read_as_min() {
        let s = PollSchedule {
            max: ms(100),
            ..schedule()
        };
        assert_eq!(s.next_poll(secs(20), secs(0), 0, 0.0), secs(1));
        assert_eq!(s.next_poll(secs(20), secs(60), 0, 0.0), secs(1));
    }

    #[test]
    fn what_is_learned_is_the_run_time_the_service_reports() {
        let info = |submit: &str, end: Option<&str>| TaskInfo {
            task_id: "t".into(),
            status: TaskStatus::Succeeded,
            submit_time: Some(submit.into()),
            scheduled_time: None,
            end_time: end.map(Into::into),
            results: Vec::new(),
            texts: Vec::new(),
            metrics: None,
            code: None,
            message: None,
            image_count: None,
            request_id: None,
        };
        assert_eq!(
            service_duration(&info(
                "2025-02-21 17:56:31.786",
                Some("2025-02-21 17:56:39.286")
            )),
            Some(ms(7_500))
        );
        assert_eq!(
            service_duration(&info("2025-02-21 17:56:31.786", None)),
            None
        );
        assert_eq!(
            service_duration(&info(
                "2025-02-21 17:56:39.286",
                Some("2025-02-21 17:56:31.786")
            )),
            None,
            "an end before the submit is no duration"
        );
    }
}
