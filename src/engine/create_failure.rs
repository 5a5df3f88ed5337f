//! What a create that failed means for its job: wait, retry, give up, stop the model,
//! stop everything, or fail it as refused. Pure, so that each error and attempt count is
//! a unit test; `create` carries the answer out.

use std::time::Duration;

use crate::dashscope::{ClientError, ErrorAction};

/// Whether a failed create may still have made a task: only when the request went out
/// and no answer came back (a reset, a timeout, an answer off the protocol). Anything
/// else (an error answer, or a connection never made) certainly changed nothing.
pub(crate) fn may_have_created(error: &ClientError) -> bool {
    matches!(error, ClientError::Transport(_) | ClientError::Protocol(_))
}

/// Whether the service refused a create for its pace (a 429): one engine's 429 slows
/// the whole team, since they share the account's quota. An unreachable service slows
/// only the engine that found it: each engine finds that out for itself.
pub(crate) fn is_throttled(error: &ClientError) -> bool {
    matches!(error, ClientError::Api { status: 429, .. })
}

/// What the engine does with a job whose create certainly produced no task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailedCreate {
    /// Not this job's doing (a 429, or the service unreachable): back to the queue after
    /// the wait, its attempts untouched, and the model's create pace slowed.
    WaitTurn(Wait),
    /// A passing fault of this create: back to the queue after the wait, one attempt used.
    Retry(Wait),
    /// A passing fault, but the attempts are used up: the job fails.
    GiveUp,
    /// Quota or access: the job goes back to the queue and the model gets no more creates.
    StopModel,
    /// Bad key or arrears: the job goes back to the queue and the engine stops.
    StopAll,
    /// The job itself is refused: it fails with the service's words.
    FixInput,
    /// The service answered the create with something wrong (a task id that cannot be
    /// one): a task may exist, so the job is never created again; it needs attention.
    Unfollowable,
}

/// How long a job waits before its next create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Fixed(Duration),
    /// The configured backoff after this many failures (jittered when carried out).
    Backoff(u32),
}

/// The backoff step a job waits after the service could not be reached: two to four times
/// the base (jittered, capped), so that an outage is not spun through at the create rate.
const UNREACHABLE_BACKOFF_STEP: u32 = 3;

/// How long a throttled job waits: the slowed create pace does the real spacing.
const THROTTLED_WAIT: Duration = Duration::from_secs(1);

/// What a create that failed with `error` means for a job that had used `attempts` of its
/// `max_attempts`.
pub(crate) fn after_failed_create(
    error: &ClientError,
    attempts: u32,
    max_attempts: u32,
) -> AfterFailedCreate {
    let action = error.action();
    // A 429, or a create that never reached the service (it or our network is down), is
    // not this job's doing: the job waits its turn again with its attempts untouched, so
    // neither throttling nor an outage overnight fails it, and the model's create pace
    // drops so that either is probed at a trickle rather than at the full rate.
    let not_this_jobs_doing = match error {
        ClientError::Api { status: 429, .. } if action == ErrorAction::RetryLater => {
            Some(Wait::Fixed(THROTTLED_WAIT))
        }
        ClientError::Unreachable(_) => Some(Wait::Backoff(UNREACHABLE_BACKOFF_STEP)),
        _ => None,
    };
    if matches!(error, ClientError::WrongAnswer(_)) {
        return AfterFailedCreate::Unfollowable;
    }
    match (action, not_this_jobs_doing) {
        (ErrorAction::RetryLater, Some(wait)) => AfterFailedCreate::WaitTurn(wait),
        (ErrorAction::RetryLater, None) if attempts < max_attempts => {
            AfterFailedCreate::Retry(Wait::Backoff(attempts))
        }
        (ErrorAction::RetryLater, None) => AfterFailedCreate::GiveUp,
        (ErrorAction::StopModel, _) => AfterFailedCreate::StopModel,
        (ErrorAction::StopAll, _) => AfterFailedCreate::StopAll,
        (ErrorAction::FixInput, _) => AfterFailedCreate::FixInput,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AfterFailedCreate::{FixInput, GiveUp, Retry, StopAll, StopModel, Unfollowable, WaitTurn};

    const MAX_ATTEMPTS: u32 = 5;

    fn api(status: u16, code: &str) -> ClientError {
        ClientError::Api {
            status,
            code: code.into(),
            message: "the service's words".into(),
            request_id: None,
        }
    }

    /// What the engine does after `error` for a job that had used `attempts`.
    fn after(error: &ClientError, attempts: u32) -> AfterFailedCreate {
        after_failed_create(error, attempts, MAX_ATTEMPTS)
    }

    #[test]
    fn only_a_429_is_throttling() {
        assert!(is_throttled(&api(429, "Throttling.RateQuota")));
        assert!(!is_throttled(&api(500, "InternalError")));
        assert!(!is_throttled(&api(400, "InvalidParameter")));
        assert!(!is_throttled(&ClientError::Unreachable("refused".into())));
    }

    #[test]
    fn throttling_is_not_the_jobs_doing_the_job_waits_its_turn_whatever_its_attempts() {
        for error in [
            api(429, "Throttling"),
            api(429, "Throttling.RateQuota"),
            api(429, "Unknown"),
        ] {
            for attempts in [0, MAX_ATTEMPTS - 1, MAX_ATTEMPTS, MAX_ATTEMPTS + 3] {
                assert_eq!(
                    after(&error, attempts),
                    WaitTurn(Wait::Fixed(THROTTLED_WAIT)),
                    "{error}, {attempts} attempts"
                );
            }
        }
    }

    #[test]
    fn an_unreachable_service_is_waited_out_at_a_backoff_without_using_attempts() {
        let error = ClientError::Unreachable("connection refused".into());
        for attempts in [0, MAX_ATTEMPTS, MAX_ATTEMPTS + 3] {
            assert_eq!(
                after(&error, attempts),
                WaitTurn(Wait::Backoff(UNREACHABLE_BACKOFF_STEP))
            );
        }
    }

    #[test]
    fn a_passing_fault_is_retried_with_a_growing_backoff_until_the_attempts_run_out() {
        for error in [
            api(500, "InternalError"),
            api(503, "ModelUnavailable"),
            api(502, "Unknown"),
            api(408, "Unknown"),
            ClientError::Transport("reset".into()),
            ClientError::Protocol("not JSON".into()),
        ] {
            assert_eq!(after(&error, 0), Retry(Wait::Backoff(0)), "{error}");
            assert_eq!(after(&error, 1), Retry(Wait::Backoff(1)), "{error}");
            assert_eq!(
                after(&error, MAX_ATTEMPTS - 1),
                Retry(Wait::Backoff(MAX_ATTEMPTS - 1)),
                "{error}"
            );
            assert_eq!(after(&error, MAX_ATTEMPTS), GiveUp, "{error}");
            assert_eq!(after(&error, MAX_ATTEMPTS + 1), GiveUp, "{error}");
        }
    }

    #[test]
    fn quota_or_access_stops_the_model_even_when_it_comes_as_a_429() {
        for error in [
            api(429, "Throttling.AllocationQuota"),
            api(403, "AccessDenied"),
            api(403, "Model.AccessDenied"),
            api(400, "ModelNotFound"),
            api(404, "Unknown"),
        ] {
            for attempts in [0, MAX_ATTEMPTS] {
                assert_eq!(after(&error, attempts), StopModel, "{error}");
            }
        }
    }

    #[test]
    fn a_bad_key_or_arrears_stops_everything() {
        for error in [
            api(401, "InvalidApiKey"),
            api(400, "Arrearage"),
            api(401, "Unknown"),
        ] {
            for attempts in [0, MAX_ATTEMPTS] {
                assert_eq!(after(&error, attempts), StopAll, "{error}");
            }
        }
    }

    #[test]
    fn a_refused_job_fails_at_once_and_is_never_retried() {
        for error in [
            api(400, "InvalidParameter"),
            api(400, "DataInspectionFailed"),
            api(400, "IPInfringementSuspect"),
            api(400, "Unknown"),
            ClientError::Io("cannot read ./cat.png".into()),
        ] {
            assert_eq!(after(&error, 0), FixInput, "{error}");
        }
    }

    #[test]
    fn a_create_answered_with_an_unusable_task_id_needs_attention_and_is_never_resent() {
        let error = ClientError::WrongAnswer("task id `../../x` is not a task id".into());
        for attempts in [0, MAX_ATTEMPTS] {
            assert_eq!(after(&error, attempts), Unfollowable);
        }
        assert!(
            !may_have_created(&error),
            "not looked up in the task list either"
        );
    }

    #[test]
    fn only_a_create_that_went_out_unanswered_may_have_made_a_task() {
        assert!(may_have_created(&ClientError::Transport("reset".into())));
        assert!(may_have_created(&ClientError::Protocol("not JSON".into())));
        for answered_or_never_sent in [
            ClientError::Unreachable("connection refused".into()),
            api(500, "InternalError"),
            api(429, "Throttling"),
            ClientError::Io("cannot read ./cat.png".into()),
        ] {
            assert!(
                !may_have_created(&answered_or_never_sent),
                "{answered_or_never_sent}"
            );
        }
    }
}
