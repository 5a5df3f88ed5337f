//! What the engine expects of a task's duration, and what it learns as tasks end.
//!
//! Per model, the run times the service reports are averaged (`learn`) and kept in the
//! store (`worth_saving` decides when: not on every task), so that a new process polls its
//! first tasks when they end. A model never seen to end has only the catalogue's typical
//! duration, a prior that may be far off either way (the service says 90 s for a task that
//! an idle account or the simulator finishes in 1 s): its tasks are polled at
//! `unseen_next_poll`'s schedule until one ends.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::follow::PollSchedule;
use crate::dashscope::Model;
use crate::store::LearnedDuration;

/// What the engine expects of a model's task duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Expected {
    /// Learned from the model's tasks that ended (in this process or an earlier one).
    Learned(Duration),
    /// No task of the model was seen to end: only the catalogue's typical duration.
    Unseen { prior: Duration },
}

impl Expected {
    /// The wait before the next poll of a task `age` old, after `failures` failed polls
    /// in a row (`jitter` in [0, 1) picks where in a backoff's range).
    pub fn next_poll(
        self,
        schedule: &PollSchedule,
        age: Duration,
        failures: u32,
        jitter: f64,
    ) -> Duration {
        match self {
            Expected::Learned(expected) => schedule.next_poll(expected, age, failures, jitter),
            Expected::Unseen { prior } => unseen_next_poll(schedule, prior, age, failures, jitter),
        }
    }
}

/// The wait before the next poll of a task of a model never seen to end, `age` old.
///
/// The schedule of a task expected to take `prior`, but never later than the task's age
/// again (and never sooner than `schedule.min`): polls at min, 2 min, 4 min... then every
/// max, so a task that ends at `d` is seen by 2d (or d + max) however wrong the prior is,
/// for a few polls more than a learned model's tasks cost. After failed polls, the usual
/// backoff.
pub(crate) fn unseen_next_poll(
    schedule: &PollSchedule,
    prior: Duration,
    age: Duration,
    failures: u32,
    jitter: f64,
) -> Duration {
    let planned = schedule.next_poll(prior, age, failures, jitter);
    if failures > 0 {
        return planned;
    }
    planned.min(age.max(schedule.min))
}

/// How much of each newly seen duration goes into the average once it has a few samples:
/// recent tasks count most (the service's queue changes through the day), and one odd
/// task moves it by less than a third.
const NEWEST_WEIGHT: f64 = 0.3;

/// The average after a task of the model took `took`: the plain mean of the first few
/// samples, then a moving average weighting the newest by `NEWEST_WEIGHT`.
pub(crate) fn learn(before: Option<LearnedDuration>, took: Duration) -> LearnedDuration {
    let seen = took.as_secs_f64();
    match before {
        None => LearnedDuration {
            seconds: seen,
            samples: 1,
        },
        Some(before) => {
            let weight = (1.0 / (before.samples as f64 + 1.0)).max(NEWEST_WEIGHT);
            LearnedDuration {
                seconds: before.seconds + weight * (seen - before.seconds),
                samples: before.samples.saturating_add(1),
            }
        }
    }
}

/// How far the average must move from the value in the store before it is saved again:
/// a batch whose tasks take the same time writes once, not once per task.
const SAVE_WHEN_MOVED: f64 = 0.05;

/// Whether `learned` is worth a write to the store, where `saved` is (if anything).
pub(crate) fn worth_saving(saved: Option<LearnedDuration>, learned: LearnedDuration) -> bool {
    match saved {
        None => true,
        Some(saved) => {
            (learned.seconds - saved.seconds).abs() > SAVE_WHEN_MOVED * saved.seconds.abs()
        }
    }
}

/// What the engine knows of each model's durations: the average, and what the store has.
#[derive(Debug, Default)]
pub(crate) struct Durations {
    models: Mutex<HashMap<Model, Known>>,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    learned: LearnedDuration,
    saved: Option<LearnedDuration>,
}

impl Durations {
    /// Starts from what the store kept (from this or an earlier process).
    pub fn remember(&self, kept: Vec<(Model, LearnedDuration)>) {
        let mut models = self.lock();
        for (model, learned) in kept {
            models.insert(
                model,
                Known {
                    learned,
                    saved: Some(learned),
                },
            );
        }
    }

    pub fn expected(&self, model: Model) -> Expected {
        match self.lock().get(&model) {
            Some(known) => Expected::Learned(Duration::from_secs_f64(known.learned.seconds)),
            None => Expected::Unseen {
                prior: model.typical_duration(),
            },
        }
    }

    /// Learns that a task of `model` took `took`; returns the new average when it is
    /// worth saving (then call `saved` once it is).
    pub fn learn(&self, model: Model, took: Duration) -> Option<LearnedDuration> {
        let mut models = self.lock();
        let before = models.get(&model).copied();
        let learned = learn(before.map(|k| k.learned), took);
        let saved = before.and_then(|k| k.saved);
        models.insert(model, Known { learned, saved });
        worth_saving(saved, learned).then_some(learned)
    }

    /// `learned` is now in the store.
    pub fn saved(&self, model: Model, learned: LearnedDuration) {
        if let Some(known) = self.lock().get_mut(&model) {
            known.saved = Some(learned);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Model, Known>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The poll schedule's test defaults, shared with follow.rs's tests.
    use crate::engine::follow::tests::{ms, schedule, secs};

    /// The ages at which a task of a model never seen is polled, up to `until`.
    fn unseen_polls(prior: Duration, until: Duration) -> Vec<Duration> {
        let mut age = Duration::ZERO;
        let mut polls = Vec::new();
        while age < until {
            age += unseen_next_poll(&schedule(), prior, age, 0, 0.0);
            polls.push(age);
        }
        polls
    }

    #[test]
    fn the_first_poll_of_a_model_never_seen_comes_after_min_not_at_its_typical_pace() {
        // A text-to-image model's typical 90 s would put the first poll at 5 s.
        assert_eq!(
            schedule().next_poll(secs(90), Duration::ZERO, 0, 0.0),
            secs(5)
        );
        assert_eq!(
            unseen_next_poll(&schedule(), secs(90), Duration::ZERO, 0, 0.0),
            secs(1)
        );
        assert_eq!(
            Expected::Unseen { prior: secs(90) }.next_poll(&schedule(), Duration::ZERO, 0, 0.0),
            secs(1)
        );
    }

    #[test]
    fn a_model_never_seen_is_polled_at_twice_the_age_then_every_max() {
        assert_eq!(
            unseen_polls(secs(90), secs(30)),
            [
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(13),
                secs(18),
                secs(23),
                secs(28),
                secs(33)
            ]
        );
    }

    #[test]
    fn near_its_prior_a_task_of_a_model_never_seen_gets_the_aimed_poll_then_tenths() {
        // An editing model: typically 10 s.
        assert_eq!(
            unseen_polls(secs(10), secs(13)),
            [
                secs(1),
                secs(2),
                secs(4),
                secs(7),
                ms(8_500),
                ms(10_010),
                ms(11_010),
                ms(12_010),
                ms(13_010)
            ]
        );
    }

    #[test]
    fn a_prior_shorter_than_min_polls_like_the_learned_schedule() {
        let prior = ms(300);
        for age in [Duration::ZERO, ms(200), secs(1), secs(4)] {
            assert_eq!(
                unseen_next_poll(&schedule(), prior, age, 0, 0.0),
                schedule().next_poll(prior, age, 0, 0.0),
                "age {age:?}"
            );
        }
    }

    #[test]
    fn failed_polls_of_a_model_never_seen_back_off_as_usual() {
        for failures in [1, 3, 7] {
            assert_eq!(
                unseen_next_poll(&schedule(), secs(90), secs(2), failures, 0.5),
                schedule().next_poll(secs(90), secs(2), failures, 0.5),
                "{failures} failures"
            );
        }
    }

    #[test]
    fn a_learned_model_polls_at_the_learned_schedule() {
        assert_eq!(
            Expected::Learned(secs(1)).next_poll(&schedule(), Duration::ZERO, 0, 0.0),
            ms(1_010),
            "one poll just past the learned end"
        );
    }

    #[test]
    fn the_average_is_the_mean_of_the_first_samples_then_weights_the_newest_by_a_third() {
        let first = learn(None, secs(4));
        assert_eq!(
            first,
            LearnedDuration {
                seconds: 4.0,
                samples: 1
            }
        );
        let second = learn(Some(first), secs(2));
        assert_eq!(second.seconds, 3.0);
        let third = learn(Some(second), secs(6));
        assert_eq!((third.seconds, third.samples), (4.0, 3));
        let fourth = learn(Some(third), secs(14));
        assert_eq!((fourth.seconds, fourth.samples), (7.0, 4), "weight 0.3");
    }

    #[test]
    fn only_a_move_of_more_than_five_percent_is_saved_again() {
        let saved = LearnedDuration {
            seconds: 10.0,
            samples: 5,
        };
        let at = |seconds| LearnedDuration {
            seconds,
            samples: 6,
        };
        assert!(worth_saving(None, at(10.0)), "the first is always saved");
        assert!(!worth_saving(Some(saved), at(10.4)));
        assert!(!worth_saving(Some(saved), at(9.6)));
        assert!(worth_saving(Some(saved), at(10.6)));
        assert!(worth_saving(Some(saved), at(9.4)));
    }

    #[test]
    fn durations_start_from_the_store_and_ask_to_save_only_what_moved() {
        let durations = Durations::default();
        let model = Model::Wanx21T2iTurbo;
        assert_eq!(
            durations.expected(model),
            Expected::Unseen {
                prior: model.typical_duration()
            }
        );
        durations.remember(vec![(
            model,
            LearnedDuration {
                seconds: 1.0,
                samples: 8,
            },
        )]);
        assert_eq!(durations.expected(model), Expected::Learned(secs(1)));
        assert_eq!(durations.learn(model, ms(1_020)), None, "moved 0.6 %");
        let moved = durations.learn(model, secs(3)).expect("moved 60 %");
        assert!((moved.seconds - 1.6042).abs() < 1e-3, "{moved:?}");
        assert_eq!(moved.samples, 10);
        assert_eq!(
            durations.learn(model, ms(1_610)),
            Some(learn(Some(moved), ms(1_610))),
            "not saved yet: still compared with the store's 1 s"
        );
        durations.saved(model, moved);
        assert_eq!(durations.learn(model, ms(1_610)), None);
    }
}
