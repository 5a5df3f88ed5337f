//! Whether the scheduler may claim a model's next queued job now: a pure decision over
//! what its main loop knows each round (the model stopped, the disk refusing images, the
//! store's pauses, which another process may have set, and in a team whether an engine
//! is looking up the model's unanswered creates).

use crate::dashscope::Model;
use crate::store::{PauseHold, Pauses};

/// Why a model's queued jobs are not claimed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// No more creates for the model until the engine restarts (quota, access).
    Stopped,
    /// The disk refuses images: the new tasks' images would meet it too.
    DiskRefusing,
    /// `wandash pause` (or `p` in the dashboard): until someone resumes.
    Paused(PauseHold),
    /// An engine of the team looks up unanswered creates of the model in the service's
    /// task list; no create of it may go out meanwhile.
    Reconciling,
}

impl Hold {
    /// True when the hold ends without anything from a person: the engine keeps
    /// waiting and is not idle (a disk that refuses images is tried again, a look-up
    /// ends). A stopped
    /// model or a pause waits for a person, so jobs held by them leave the engine idle.
    pub(crate) fn ends_by_itself(self) -> bool {
        matches!(self, Hold::DiskRefusing | Hold::Reconciling)
    }
}

/// What holds `model`'s queued jobs back, if anything; `None` means claim.
pub(crate) fn claim_hold(
    model: Model,
    stopped: bool,
    disk_refusing: bool,
    pauses: &Pauses,
    reconciling: bool,
) -> Option<Hold> {
    if stopped {
        Some(Hold::Stopped)
    } else if let Some(pause) = pauses.holds(model) {
        Some(Hold::Paused(pause))
    } else if reconciling {
        Some(Hold::Reconciling)
    } else if disk_refusing {
        Some(Hold::DiskRefusing)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: Model = Model::Wanx21T2iTurbo;
    const OTHER: Model = Model::Wanx21T2iPlus;

    fn paused(all: bool, models: &[Model]) -> Pauses {
        Pauses {
            all,
            models: models.iter().copied().collect(),
        }
    }

    #[test]
    fn nothing_in_the_way_means_claim() {
        assert_eq!(
            claim_hold(MODEL, false, false, &Pauses::default(), false),
            None
        );
        assert_eq!(
            claim_hold(MODEL, false, false, &paused(false, &[OTHER]), false),
            None
        );
    }

    #[test]
    fn a_pause_of_the_queue_or_of_the_model_holds_its_jobs() {
        assert_eq!(
            claim_hold(MODEL, false, false, &paused(true, &[]), false),
            Some(Hold::Paused(PauseHold::Queue))
        );
        assert_eq!(
            claim_hold(MODEL, false, false, &paused(false, &[MODEL]), false),
            Some(Hold::Paused(PauseHold::Model(MODEL)))
        );
    }

    #[test]
    fn a_pause_waits_for_a_person_and_a_refusing_disk_does_not() {
        let pause = claim_hold(MODEL, false, true, &paused(true, &[]), false).unwrap();
        assert_eq!(
            pause,
            Hold::Paused(PauseHold::Queue),
            "named before the disk"
        );
        assert!(!pause.ends_by_itself());
        let disk = claim_hold(MODEL, false, true, &Pauses::default(), false).unwrap();
        assert_eq!(disk, Hold::DiskRefusing);
        assert!(disk.ends_by_itself());
        let stopped = claim_hold(MODEL, true, true, &paused(true, &[]), false).unwrap();
        assert_eq!(
            stopped,
            Hold::Stopped,
            "a stopped model is held whatever else"
        );
        assert!(!stopped.ends_by_itself());
    }

    #[test]
    fn a_look_up_of_unanswered_creates_holds_the_model_until_it_ends() {
        let held = claim_hold(MODEL, false, false, &Pauses::default(), true).unwrap();
        assert_eq!(held, Hold::Reconciling);
        assert!(held.ends_by_itself(), "the engine is not idle meanwhile");
        assert_eq!(
            claim_hold(MODEL, false, false, &paused(true, &[]), true),
            Some(Hold::Paused(PauseHold::Queue)),
            "a pause, which waits for a person, is named first"
        );
    }
}
