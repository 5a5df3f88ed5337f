//! Exactly once, the decision: which lost creates (jobs whose create went unanswered) made
//! which of the tasks the service lists but no job records. Pure, so that every way the
//! list can look is a unit test; `recovery` gathers the list and carries the answer out.

use std::time::Duration;

use crate::dashscope::{TaskSummary, Timestamp};
use crate::store::JobId;

/// Tasks created this long before a job's `submitted_at` cannot be its own; also what two
/// clocks may differ by.
const EARLY_SLACK: Duration = Duration::from_secs(120);

/// The list's time filter is coarse (seconds, a time zone we take to be Beijing's): the
/// query asks for a wider window, and the exact epoch times in the answer are filtered.
pub(super) const QUERY_PAD: Duration = Duration::from_secs(24 * 3600);

/// The later of our clock and the service's (the `Date` of its answer): what the service
/// made and what it forgot are reckoned by its clock, which may be far from ours (a
/// machine suspended for a day whose clock has not caught up, a service clock set
/// wrong). Taking the later one errs towards "may have been made" and "may be
/// forgotten", never towards a second create.
pub(super) fn latest_clock(ours: Timestamp, service: Option<Timestamp>) -> Timestamp {
    service.map_or(ours, |service| service.max(ours))
}

/// Whether a list queried up to `asked_to` (plus `QUERY_PAD`) misses tasks the service
/// may have made up to `latest`: then it is asked again, up to `latest`.
pub(super) fn query_falls_short(asked_to: Timestamp, latest: Timestamp) -> bool {
    latest + EARLY_SLACK > asked_to + QUERY_PAD
}

/// The oldest creation time the service's list still vouches for at `latest`: it
/// forgets a task `ttl` after making it. A lost create sent before this may have made a
/// task the list no longer shows, so the list's silence proves nothing about it.
pub(super) fn remembered_since(latest: Timestamp, ttl: Duration) -> Timestamp {
    latest - ttl + EARLY_SLACK
}

/// Where the service's list is searched from: a little before the earliest of the lost
/// creates (`submitted`), or before `now` if none has a time.
pub(super) fn window_start(
    submitted: impl Iterator<Item = Timestamp>,
    now: Timestamp,
) -> Timestamp {
    submitted.min().unwrap_or(now) - EARLY_SLACK
}

/// Whether a task created at `created` (unknown counts as maybe) can be one of the lost
/// creates of a window that starts at `from` and ends at `now`.
pub(super) fn created_in_window(
    created: Option<Timestamp>,
    from: Timestamp,
    now: Timestamp,
) -> bool {
    created.is_none_or(|at| at >= from && at <= now + EARLY_SLACK)
}

/// A job whose create went unanswered.
#[derive(Debug, Clone, Copy)]
pub(super) struct LostCreate<'a> {
    pub id: JobId,
    pub prompt: &'a str,
    /// When the create was sent (by our clock).
    pub sent_at: Timestamp,
}

/// A task of the window that no job records, and the prompt it echoes (finished
/// text-to-image tasks only).
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<'a> {
    pub task: &'a TaskSummary,
    pub echoed_prompt: Option<&'a str>,
}

/// What is done with each lost create.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Pairing<'a> {
    /// Jobs and the task each one's create made.
    pub adopted: Vec<(JobId, &'a TaskSummary)>,
    /// Jobs whose create made no task: they may be submitted again.
    pub not_created: Vec<JobId>,
    /// Jobs with no task listed, sent so long ago that the list may have forgotten the
    /// task they made: whether they made one cannot be known, and a person decides.
    pub forgotten: Vec<JobId>,
    /// Jobs that cannot be told apart from the `unclaimed` tasks: a person decides.
    pub undecided: Vec<JobId>,
    pub unclaimed: Vec<&'a TaskSummary>,
}

/// Pairs lost creates with the tasks no job records. By the prompt finished tasks echo
/// back, where that is unambiguous; a finished task echoing none of the jobs' prompts
/// belongs to someone else on the account. What is left: no task means no create
/// happened (for a create sent since `remembered_since`; before it, the list may have
/// forgotten the task), one job and one task belong together, anything else is
/// undecidable (never a second create that might duplicate a task).
pub(super) fn pair<'a>(
    jobs: &[LostCreate<'_>],
    candidates: &[Candidate<'a>],
    remembered_since: Timestamp,
) -> Pairing<'a> {
    let mut pairing = Pairing::default();
    let mut open_jobs = jobs.to_vec();
    let mut candidates = candidates.to_vec();
    let mut i = 0;
    while i < candidates.len() {
        let echoed = candidates[i].echoed_prompt;
        let matching: Vec<usize> = open_jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| echoed == Some(j.prompt))
            .map(|(k, _)| k)
            .collect();
        let twins = candidates
            .iter()
            .filter(|c| c.echoed_prompt == echoed)
            .count();
        if matching.len() == 1 && twins == 1 {
            let job = open_jobs.remove(matching[0]);
            pairing.adopted.push((job.id, candidates.remove(i).task));
            continue;
        }
        // A finished task whose prompt is none of ours is not ours.
        if echoed.is_some() && matching.is_empty() {
            candidates.remove(i);
            continue;
        }
        i += 1;
    }
    match (open_jobs.as_slice(), candidates.as_slice()) {
        ([], _) => {}
        (open, []) => {
            for job in open {
                if job.sent_at < remembered_since {
                    pairing.forgotten.push(job.id);
                } else {
                    pairing.not_created.push(job.id);
                }
            }
        }
        ([job], [task]) => pairing.adopted.push((job.id, task.task)),
        (open, unclaimed) => {
            pairing.undecided.extend(open.iter().map(|j| j.id));
            pairing.unclaimed.extend(unclaimed.iter().map(|c| c.task));
        }
    }
    pairing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::TaskStatus;

    /// The service's list as pairing sees it: task ids and the prompts they echo.
    fn tasks(listed: &[(&str, Option<&str>)]) -> Vec<(TaskSummary, Option<String>)> {
        listed
            .iter()
            .map(|&(task_id, echoed)| {
                let task = TaskSummary {
                    task_id: task_id.into(),
                    status: TaskStatus::Running,
                    model_name: None,
                    gmt_create: None,
                    start_time: None,
                    end_time: None,
                    region: None,
                    request_id: None,
                };
                (task, echoed.map(Into::into))
            })
            .collect()
    }

    /// What pairing decides, by job number and task id.
    #[derive(Debug, Default, PartialEq)]
    struct Decided {
        adopt: Vec<(i64, &'static str)>,
        resubmit: Vec<i64>,
        needs_attention: Vec<i64>,
        unclaimed: Vec<&'static str>,
        forgotten: Vec<i64>,
    }

    const SENT: Timestamp = Timestamp::from_millis(1_740_131_791_786);

    /// Pairs jobs 1, 2, ... (with these prompts, sent at `SENT`) with the listed tasks,
    /// while the list remembers what was made then.
    fn decide(prompts: &[&str], listed: &[(&'static str, Option<&str>)]) -> Decided {
        decide_remembering(prompts, listed, SENT - Duration::from_secs(1))
    }

    fn decide_remembering(
        prompts: &[&str],
        listed: &[(&'static str, Option<&str>)],
        remembered_since: Timestamp,
    ) -> Decided {
        let jobs: Vec<LostCreate> = prompts
            .iter()
            .zip(1i64..)
            .map(|(&prompt, n)| LostCreate {
                id: JobId(n),
                prompt,
                sent_at: SENT,
            })
            .collect();
        let listed_tasks = tasks(listed);
        let candidates: Vec<Candidate> = listed_tasks
            .iter()
            .map(|(task, echoed)| Candidate {
                task,
                echoed_prompt: echoed.as_deref(),
            })
            .collect();
        let pairing = pair(&jobs, &candidates, remembered_since);
        let task_id = |task: &TaskSummary| {
            listed
                .iter()
                .map(|&(id, _)| id)
                .find(|&id| id == task.task_id)
                .expect("a listed task")
        };
        Decided {
            adopt: pairing
                .adopted
                .iter()
                .map(|&(id, task)| (id.0, task_id(task)))
                .collect(),
            resubmit: pairing.not_created.iter().map(|id| id.0).collect(),
            needs_attention: pairing.undecided.iter().map(|id| id.0).collect(),
            unclaimed: pairing.unclaimed.iter().map(|&t| task_id(t)).collect(),
            forgotten: pairing.forgotten.iter().map(|id| id.0).collect(),
        }
    }

    #[test]
    fn no_unrecorded_task_means_no_create_happened() {
        assert_eq!(
            decide(&["a cat", "a dog"], &[]),
            Decided {
                resubmit: vec![1, 2],
                ..Decided::default()
            }
        );
    }

    #[test]
    fn no_task_listed_proves_nothing_for_a_create_older_than_the_list_remembers() {
        // Sent just before what the list remembers: the task it made may be forgotten.
        let forgotten = decide_remembering(&["a cat"], &[], SENT + Duration::from_millis(1));
        assert_eq!(
            forgotten,
            Decided {
                forgotten: vec![1],
                ..Decided::default()
            }
        );
        // Sent just within it: the list would show the task, so none was made.
        assert_eq!(decide_remembering(&["a cat"], &[], SENT).resubmit, vec![1]);
        // A task that is listed is still adopted, however old the create.
        let listed = decide_remembering(
            &["a cat"],
            &[("t1", None)],
            SENT + Duration::from_secs(3600),
        );
        assert_eq!(listed.adopt, vec![(1, "t1")]);
    }

    #[test]
    fn the_later_clock_decides_what_the_list_remembers_and_how_far_to_ask() {
        let day = Duration::from_secs(24 * 3600);
        let ours = SENT + Duration::from_secs(60);
        // The service's clock a day ahead of ours (our machine slept, its clock did not
        // catch up): a create sent a minute ago by our clock may be a day old to it.
        let theirs = ours + day + Duration::from_secs(3600);
        let latest = latest_clock(ours, Some(theirs));
        assert_eq!(latest, theirs);
        assert!(SENT < remembered_since(latest, day));
        assert!(query_falls_short(ours, latest), "ask again up to its clock");
        // A service clock behind ours, or none given: ours.
        assert_eq!(latest_clock(ours, Some(SENT)), ours);
        assert_eq!(latest_clock(ours, None), ours);
        assert!(SENT >= remembered_since(ours, day));
        assert!(!query_falls_short(ours, ours));
        // A clock a few minutes off is within the pad.
        assert!(!query_falls_short(ours, ours + Duration::from_secs(600)));
    }

    #[test]
    fn one_job_and_one_task_belong_together_while_the_task_echoes_nothing() {
        assert_eq!(
            decide(&["a cat"], &[("t1", None)]),
            Decided {
                adopt: vec![(1, "t1")],
                ..Decided::default()
            }
        );
        assert_eq!(
            decide(&["a cat"], &[("t1", Some("a cat"))]),
            Decided {
                adopt: vec![(1, "t1")],
                ..Decided::default()
            }
        );
    }

    #[test]
    fn a_finished_task_with_another_prompt_is_someone_elses_so_the_job_is_resubmitted() {
        assert_eq!(
            decide(&["a cat"], &[("t1", Some("a ship"))]),
            Decided {
                resubmit: vec![1],
                ..Decided::default()
            }
        );
    }

    #[test]
    fn echoed_prompts_pair_several_jobs_with_their_own_tasks() {
        assert_eq!(
            decide(
                &["a cat", "a dog"],
                &[("t1", Some("a dog")), ("t2", Some("a cat"))]
            ),
            Decided {
                adopt: vec![(2, "t1"), (1, "t2")],
                ..Decided::default()
            }
        );
    }

    #[test]
    fn what_prompts_leave_one_to_one_is_paired_too() {
        assert_eq!(
            decide(&["a cat", "a dog"], &[("t1", None), ("t2", Some("a cat"))]),
            Decided {
                adopt: vec![(1, "t2"), (2, "t1")],
                ..Decided::default()
            }
        );
    }

    #[test]
    fn tasks_that_cannot_be_told_apart_need_a_person_never_a_second_create() {
        let both_running = decide(&["a cat", "a dog"], &[("t1", None), ("t2", None)]);
        assert_eq!(
            both_running,
            Decided {
                needs_attention: vec![1, 2],
                unclaimed: vec!["t1", "t2"],
                ..Decided::default()
            }
        );
        let one_task_for_two = decide(&["a cat", "a dog"], &[("t1", None)]);
        assert_eq!(one_task_for_two.needs_attention, vec![1, 2]);
        let two_tasks_for_one = decide(&["a cat"], &[("t1", None), ("t2", None)]);
        assert_eq!(two_tasks_for_one.needs_attention, vec![1]);
        assert_eq!(two_tasks_for_one.unclaimed, vec!["t1", "t2"]);
    }

    #[test]
    fn twin_prompts_are_not_evidence() {
        // Two jobs with one prompt: either task may be either job's.
        let twin_jobs = decide(
            &["a cat", "a cat"],
            &[("t1", Some("a cat")), ("t2", Some("a cat"))],
        );
        assert_eq!(twin_jobs.needs_attention, vec![1, 2]);
        assert!(twin_jobs.adopt.is_empty());
        // Two tasks echoing one job's prompt: one of them is someone else's.
        let twin_tasks = decide(&["a cat"], &[("t1", Some("a cat")), ("t2", Some("a cat"))]);
        assert_eq!(twin_tasks.needs_attention, vec![1]);
        assert_eq!(twin_tasks.unclaimed, vec!["t1", "t2"]);
    }

    #[test]
    fn the_window_reaches_a_little_before_the_earliest_lost_create() {
        let ms = Duration::from_millis;
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(
            window_start([now - ms(5_000), now - ms(9_000)].into_iter(), now),
            now - ms(9_000) - EARLY_SLACK
        );
        assert_eq!(window_start(std::iter::empty(), now), now - EARLY_SLACK);
        let from = now - ms(60_000);
        assert!(created_in_window(Some(from), from, now));
        assert!(created_in_window(Some(now + EARLY_SLACK), from, now));
        assert!(
            created_in_window(None, from, now),
            "an unknown time may be ours"
        );
        assert!(!created_in_window(Some(from - ms(1)), from, now));
        assert!(!created_in_window(
            Some(now + EARLY_SLACK + ms(1)),
            from,
            now
        ));
    }
}
